"""Two-way parallelism over independent blocks of a batch, for the fast engines.

NumPy releases the GIL inside its loops, so two Python threads working on two halves of
a batch keep both cores busy with the element-wise work that NumPy itself runs on one
core. The BLAS library behind ``@`` has threads of its own, which would then fight ours
for the same two cores (its idle threads spin-wait); ``threadpoolctl`` limits it to one
thread while our two run, and restores it afterwards, so nothing changes for the
caller's own NumPy code.

Safe to use from several threads at once. The pool is created once, under a lock. The
BLAS limit is shared by every ``parallel_map`` (and ``blas_single_threaded`` block)
running at a time, counted under the same lock: the first to start sets BLAS to one
thread (remembering each library's count), the last to finish restores those counts, in
whatever order the calls start and end, from whichever thread. The counts are set
directly in each library (``openblas_set_num_threads`` and its kind, found through
``threadpoolctl``), not through ``threadpoolctl``'s limits: those let only the first
thread that set a count set it again (for OpenBLAS's process-wide pool), so a count taken
in one caller's thread and restored in another's would be lost, and going through one
thread of our own instead costs a thread switch per call. While any call runs, BLAS
stays at one thread for the whole process (the count is per library, not per thread). A
call made from inside one of the pool's workers runs its items in that worker, so
nested calls cannot wait on each other.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy  # noqa: F401  (loads NumPy's BLAS, so that the first look for BLAS libraries finds it)
from threadpoolctl import ThreadpoolController

__all__ = ["N_WORKERS", "parallel_map", "blas_single_threaded"]

N_WORKERS = min(2, os.cpu_count() or 1)
"""Threads used by the fast paths (at most 2: the work is split in halves)."""

_lock = threading.Lock()  # guards everything below
_pool = None
_blas = None  # [(get, set)] of each BLAS library's process-wide thread count, found once
_depth = 0  # calls inside the BLAS limit now, over all threads
_saved = None  # the counts the first of them found; the last one restores them
_local = threading.local()  # .worker is True in the pool's own threads


def _mark_worker():
    _local.worker = True


def _get_pool():
    """The shared pool, created by the first call (once, whichever thread gets here first)."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=N_WORKERS, thread_name_prefix="reference", initializer=_mark_worker)
        return _pool


def _openblas_functions(lib):
    """``(get, set)`` of an OpenBLAS library's process-wide count, by its exported symbols (any prefix or suffix)."""
    for prefix in ("", "scipy_"):
        for suffix in ("", "64_", "_64"):
            get = getattr(lib.dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
            set_ = getattr(lib.dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                return get, set_
    return None


def _blas_libraries():
    """``[(get, set)]`` for every BLAS library loaded in the process (looked up under ``_lock``, until one is found)."""
    global _blas
    if not _blas:
        found = []
        for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
            direct = _openblas_functions(lib) if lib.internal_api == "openblas" and \
                getattr(lib, "threading_layer", None) != "openmp" else None
            found.append(direct or (lib.get_num_threads, lib.set_num_threads))
        _blas = found
    return _blas


@contextmanager
def blas_single_threaded():
    """BLAS on one thread while the block runs; nests across threads (counted, not stacked).

    The first block to start (in any thread) sets every BLAS library's thread count to 1
    and remembers the counts it found; the last to finish restores them.
    """
    global _depth, _saved
    with _lock:
        if _depth == 0:
            libraries = _blas_libraries()
            _saved = [get() for get, _ in libraries]
            for (_, set_), count in zip(libraries, _saved):
                if count != 1:
                    set_(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for (_, set_), count in zip(_blas, _saved):
                    if count != 1:
                        set_(count)
                _saved = None


def _reset_after_fork():
    """In a child process the parent's pool threads do not exist and the lock may be held: start afresh."""
    global _lock, _pool, _blas, _depth, _saved, _local
    _lock, _pool, _blas = threading.Lock(), None, None
    _depth, _saved, _local = 0, None, threading.local()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def parallel_map(fn, items):
    """``[fn(item) for item in items]``, on ``N_WORKERS`` threads with BLAS single-threaded meanwhile.

    Args:
        fn: a callable of one item.
        items: an iterable of items (each block of a batch, say).
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    try:
        items = list(items)
    except TypeError as err:
        raise TypeError(f"items must be an iterable, got {type(items).__name__}") from err
    if N_WORKERS < 2 or len(items) < 2 or getattr(_local, "worker", False):
        return [fn(item) for item in items]
    pool = _get_pool()
    with blas_single_threaded():
        return list(pool.map(fn, items))

"""Two-way parallelism over independent blocks of a batch, for the fast engines.

NumPy releases the GIL inside its loops, so two Python threads working on two halves of
a batch keep both cores busy with the element-wise work that NumPy itself runs on one
core. The BLAS library behind ``@`` has threads of its own, which would then fight ours
for the same two cores (its idle threads spin-wait); ``threadpoolctl`` limits it to one
thread while our two run, and restores it afterwards, so nothing changes for the
caller's own NumPy code.

Safe to use from several threads at once. The pool is created once, under a lock. The
BLAS limit is shared by every ``parallel_map`` running at a time, counted under the same
lock: the first to start sets BLAS to one thread (remembering the count it found), the
last to finish restores that count, in whatever order the calls start and end. Every
change of the limit is made from one thread of this module's own, because recent
``threadpoolctl`` lets only one thread at a time change OpenBLAS's process-wide count
(the others' calls do nothing) and releases it when that thread's limits are all undone;
a limit taken in one caller's thread and restored in another's could be lost. While any
call runs, BLAS stays at one thread for the whole process (the count is per library, not
per thread); while the caller's own ``threadpool_limits`` holds the count, it is left as
the caller set it. A call made from inside one of the pool's workers runs its items in
that worker, so nested calls cannot wait on each other.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

__all__ = ["N_WORKERS", "parallel_map", "blas_single_threaded"]

N_WORKERS = min(2, os.cpu_count() or 1)
"""Threads used by the fast paths (at most 2: the work is split in halves)."""

_lock = threading.Lock()  # guards everything below
_pool = None
_blas_thread = None  # one thread that makes every change of the BLAS limit
_controller = None
_depth = 0  # parallel_map calls inside the BLAS limit now, over all threads
_limiter = None  # the limit set by the first of them; the last one restores it
_local = threading.local()  # .worker is True in the pool's own threads


def _mark_worker():
    _local.worker = True


def _get_pool():
    """The shared pool and BLAS controller, created by the first call (once, whichever thread gets here first)."""
    global _pool, _blas_thread, _controller
    with _lock:
        if _pool is None:
            _controller = ThreadpoolController()
            _blas_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reference-blas")
            _pool = ThreadPoolExecutor(max_workers=N_WORKERS, thread_name_prefix="reference",
                                       initializer=_mark_worker)
        return _pool


def _enter_limit():
    limiter = _controller.limit(limits=1, user_api="blas")
    limiter.__enter__()  # as in a with-statement, so that threadpoolctl releases the count when it is undone
    return limiter


@contextmanager
def blas_single_threaded():
    """BLAS on one thread while the block runs; nests across threads (counted, not stacked)."""
    global _depth, _limiter
    _get_pool()
    with _lock:
        if _depth == 0:
            _limiter = _blas_thread.submit(_enter_limit).result()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                limiter, _limiter = _limiter, None
                _blas_thread.submit(limiter.__exit__, None, None, None).result()


def _reset_after_fork():
    """In a child process the parent's pool threads do not exist and the lock may be held: start afresh."""
    global _lock, _pool, _blas_thread, _controller, _depth, _limiter, _local
    _lock, _pool, _blas_thread, _controller = threading.Lock(), None, None, None
    _depth, _limiter, _local = 0, None, threading.local()


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

"""Two-way parallelism over independent blocks of a batch, for the fast paths.

NumPy releases the GIL inside its loops, so two Python threads working on two halves of
a batch keep both cores busy with the element-wise work that NumPy itself runs on one
core. The BLAS library behind ``@`` has threads of its own, which would then fight ours
for the same two cores (its idle threads spin-wait); ``threadpoolctl`` limits it to one
thread while our two run, and restores it afterwards, so nothing changes for the
caller's own NumPy code.
"""

import os
from concurrent.futures import ThreadPoolExecutor

from threadpoolctl import ThreadpoolController

__all__ = ["N_WORKERS", "parallel_map"]

N_WORKERS = min(2, os.cpu_count() or 1)
"""Threads used by the fast paths (at most 2: the work is split in halves)."""

_pool = None
_controller = None


def parallel_map(fn, items):
    """``[fn(item) for item in items]``, on ``N_WORKERS`` threads with BLAS single-threaded meanwhile."""
    global _pool, _controller
    items = list(items)
    if N_WORKERS < 2 or len(items) < 2:
        return [fn(item) for item in items]
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=N_WORKERS, thread_name_prefix="reference")
        _controller = ThreadpoolController()
    with _controller.limit(limits=1, user_api="blas"):
        return list(_pool.map(fn, items))

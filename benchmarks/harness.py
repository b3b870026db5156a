"""Timing harness: variants of one workload run alternately over several rounds, in one process.

Each round times every variant once (its callable, repeated ``number`` times), in a
rotated order, so that a slow spell of the machine is shared by all of them. The table
reports each variant's median over rounds, the spread (min and max), and the ratio of
medians to the baseline and to the floor.

With a ``Competitor`` (``--contention``), every round is timed twice, once with the
machine otherwise idle and once with one CPU-bound process competing for the cores (a
busy loop, paused with SIGSTOP and resumed with SIGCONT between the two halves), so that
both halves of a round see the same drift of a shared machine; the table then gives the
idle and contended medians of each variant and their ratio, the slowdown.
"""

import os
import platform
import signal
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Result:
    workload: str
    variant: str
    times: list = field(default_factory=list)  # seconds per call, one entry per round
    peak_mb: float = float("nan")
    note: str = ""
    contended: list = field(default_factory=list)  # seconds per call with one competing process

    @property
    def median(self):
        return float(np.median(self.times)) if self.times else float("nan")

    @property
    def contended_median(self):
        return float(np.median(self.contended)) if self.contended else float("nan")

    @property
    def slowdown(self):
        """Contended median over idle median (nan without a contended run)."""
        return self.contended_median / self.median if self.contended and self.times else float("nan")


class Competitor:
    """One CPU-bound process (a Python busy loop) that competes for the cores while resumed.

    Use as a context manager; ``resume()`` and ``pause()`` switch it on and off (SIGCONT,
    SIGSTOP), so that idle and contended timings alternate within one run.
    """

    def __init__(self):
        self.process = None

    def __enter__(self):
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        self.pause()
        return self

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait()

    def pause(self):
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.process.pid, signal.SIGCONT)
        time.sleep(0.05)  # let the scheduler give it its share before timing starts


def _time_round(variants, names, results, attr, r, number):
    order = names[r % len(names):] + names[: r % len(names)]
    for name in order:
        fn = variants[name]
        start = time.perf_counter()
        for _ in range(number):
            fn()
        getattr(results[name], attr).append((time.perf_counter() - start) / number)


def run_workload(workload, variants, rounds, number=1, warmup=1, competitor=None):
    """Time ``variants`` (a dict name -> zero-argument callable) alternately.

    Args:
        workload: the workload's name.
        variants: name -> zero-argument callable.
        rounds: rounds of alternation.
        number: calls per timing.
        warmup: untimed calls of each variant first.
        competitor: a running ``Competitor``, or None: with one, each round is also timed
            with it resumed (``Result.contended``).

    Returns:
        a list of ``Result``, in the order of ``variants``.
    """
    results = {name: Result(workload, name) for name in variants}
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    names = list(variants)
    for r in range(rounds):
        _time_round(variants, names, results, "times", r, number)
        if competitor is not None:
            competitor.resume()
            try:
                _time_round(variants, names, results, "contended", r, number)
            finally:
                competitor.pause()
    return [results[name] for name in names]


def peak_memory_mb(fn):
    """Peak memory allocated through Python's and NumPy's allocators while ``fn`` runs (tracemalloc)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def _fmt_time(s):
    if not np.isfinite(s):
        return "-"
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def format_results(results, baseline=None, floor=None):
    """A Markdown table; ``baseline`` and ``floor`` map a workload to its reference variant.

    When the results hold contended timings, two more columns give the contended median
    and the slowdown (contended over idle median of the same variant).
    """
    contention = any(r.contended for r in results)
    header = ("workload", "variant", "median", "spread (min-max)", "x baseline", "x floor", "peak MB", "note")
    if contention:
        header = header[:4] + ("contended", "slowdown") + header[4:]
    rows = [header]
    by_key = {(r.workload, r.variant): r for r in results}
    for r in results:
        def ratio(ref):
            ref_r = by_key.get((r.workload, (ref or {}).get(r.workload)))
            return f"{r.median / ref_r.median:.2f}" if ref_r and ref_r.times and r.times else "-"
        spread = f"{_fmt_time(min(r.times))} - {_fmt_time(max(r.times))}" if r.times else "-"
        peak = f"{r.peak_mb:.0f}" if np.isfinite(r.peak_mb) else "-"
        row = (r.workload, r.variant, _fmt_time(r.median), spread, ratio(baseline), ratio(floor), peak, r.note)
        if contention:
            slow = f"{r.slowdown:.2f}" if np.isfinite(r.slowdown) else "-"
            row = row[:4] + (_fmt_time(r.contended_median), slow) + row[4:]
        rows.append(row)
    widths = [max(len(row[j]) for row in rows) for j in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def machine_description():
    """Where the benchmarks ran: CPU model, cores, Python and NumPy, each BLAS library with its kernel and threads."""
    from threadpoolctl import threadpool_info

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = f"{names[0]} x {len(names)}" if names else cpu
    except OSError:
        pass
    pools = []
    for info in threadpool_info():
        kernel = info.get("architecture") or "-"
        pools.append(f"{info.get('internal_api')} {info.get('version')} ({info.get('user_api')}, kernel {kernel}, "
                     f"{info.get('num_threads')} threads, {os.path.basename(info.get('filepath', ''))})")
    try:
        load = ", load average %.2f" % os.getloadavg()[0]
    except OSError:
        load = ""
    return (f"{cpu}, {os.cpu_count()} logical cores{load}; {_vector_extensions()}; Python "
            f"{platform.python_version()}, NumPy {np.__version__}; {_kernels_description()}; "
            f"thread pools: {'; '.join(pools) or 'none found'}")


def _vector_extensions():
    """Whether the CPU has AVX2 and AVX-512, as NumPy found them (NumPy's float64 exp is vectorised only with AVX-512)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        return "vector extensions unknown"
    return ", ".join(f"{name} {'yes' if features.get(name) else 'no'}" for name in ("AVX2", "AVX512F"))


def _kernels_description():
    """Which SiLU layers the engines use: numba's compiled kernels (with its version) or NumPy's passes."""
    from reference.engines import _kernels

    if _kernels._compiled() is None:
        return "SiLU layers by NumPy's passes (no compiled kernels)"
    import numba

    return f"SiLU layers compiled by numba {numba.__version__}"

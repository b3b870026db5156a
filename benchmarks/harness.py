"""Timing harness: variants of one workload run alternately over several rounds, in one process.

Each round times every variant once (its callable, repeated ``number`` times), in a
rotated order, so that a slow spell of the machine is shared by all of them. The table
reports each variant's median over rounds, the spread (min and max), and the ratio of
medians to the baseline and to the floor.
"""

import platform
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

    @property
    def median(self):
        return float(np.median(self.times)) if self.times else float("nan")


def run_workload(workload, variants, rounds, number=1, warmup=1):
    """Time ``variants`` (a dict name -> zero-argument callable) alternately.

    Returns:
        a list of ``Result``, in the order of ``variants``.
    """
    results = {name: Result(workload, name) for name in variants}
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    names = list(variants)
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            fn = variants[name]
            start = time.perf_counter()
            for _ in range(number):
                fn()
            results[name].times.append((time.perf_counter() - start) / number)
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
    """A Markdown table; ``baseline`` and ``floor`` map a workload to its reference variant."""
    rows = [("workload", "variant", "median", "spread (min-max)", "x baseline", "x floor", "peak MB", "note")]
    by_key = {(r.workload, r.variant): r for r in results}
    for r in results:
        def ratio(ref):
            ref_r = by_key.get((r.workload, (ref or {}).get(r.workload)))
            return f"{r.median / ref_r.median:.2f}" if ref_r and ref_r.times and r.times else "-"
        spread = f"{_fmt_time(min(r.times))} - {_fmt_time(max(r.times))}" if r.times else "-"
        peak = f"{r.peak_mb:.0f}" if np.isfinite(r.peak_mb) else "-"
        rows.append((r.workload, r.variant, _fmt_time(r.median), spread, ratio(baseline), ratio(floor), peak, r.note))
    widths = [max(len(row[j]) for row in rows) for j in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def machine_description():
    import os
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = f"{names[0]} x {len(names)}" if names else cpu
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, Python {platform.python_version()}, NumPy {np.__version__}"

"""How cost grows: measured times of the fast paths against problem size, on log-log axes.

    python -m benchmarks.scale [--out DIR] [--quick]

Four panels, drawn into ``DIR/scale.png`` (default ``figures/images/``), each with the
slopes of straight lines fitted to the upper half of its range (in log scale) in the
legend; the same slopes are printed as a table.

1. One CFM training step (``train.cfm_step``, fused engine, linear path, 8 gaussians)
   against the batch size B, for several widths w of the hidden layers (w, w, w). At
   small B the step costs a fixed amount (Python, the autograd trace, Adam on the flat
   parameter vector), so the slope is near 0; at large B the cost is proportional to B.
   Width enters through the matmuls, n w^2, once they outweigh the n w element-wise work.
2. Sampling (``ode.integrate`` of a ``nn.VelocityNetwork``, RK4) against the number of
   points, for two step counts: proportional to points x steps past the fixed cost of a step.
3. The divergence of an MLP velocity field on R^d (hidden (64, 64), batch 256) against d:
   exact by reverse mode (``autodiff.divergence``, d backward passes), exact by forward
   mode (``VelocityNetwork.velocity_and_divergence``, d tangents carried through the
   network), and Hutchinson's estimate with one probe (``autodiff.hutchinson_divergence``,
   one backward pass whatever d).
4. The Monte Carlo marginal velocity (``marginal.marginal_velocity``, conical path, d = 2)
   against the number of pairs n_x n_z, with its peak memory (tracemalloc): the work is
   one term per pair, the memory one block of pairs at a time.

Each point is the median of a few repetitions; a repetition repeats the call until it
lasts long enough to be timed, and the repetitions of all sizes of a panel alternate
(``harness.run_workload``), so that a slow spell of a shared machine falls on all of them.
"""

import argparse
import math
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from figures import IMAGES
from reference.autodiff import divergence, hutchinson_divergence
from reference.distributions import make_dataset
from reference.marginal import DEFAULT_CHUNK, marginal_velocity
from reference.engines.mlp import VelocityNetwork
from reference.nn import velocity_apply, velocity_init
from reference.ode import integrate
from reference.paths import ConicalGaussianPath, LinearInterpolationPath
from reference.plot import save
from reference.train import cfm_step

from .harness import machine_description, peak_memory_mb, run_workload

FULL = {
    "batches": [32, 64, 128, 256, 512, 1024, 2048, 4096],
    "widths": [16, 64, 256],
    "points": [100, 300, 1000, 3000, 10_000, 30_000, 100_000],
    "n_steps": [4, 16],
    "dims": [1, 2, 4, 8, 16, 32, 64],
    "sides": [100, 178, 316, 562, 1000, 1778, 3162, 5623, 10_000],  # n_x = n_z, so 1e4 .. 1e8 pairs
    "repeats": 7,
    "sampling_repeats": 5,  # its calls are long (up to seconds): fewer rounds keep the run near 2 minutes
    "min_seconds": 0.1,
}
QUICK = {
    "batches": [32, 64, 256, 1024],
    "widths": [16, 64],
    "points": [100, 300, 1000, 3000],
    "n_steps": [2, 8],
    "dims": [1, 2, 4, 8],
    "sides": [100, 316, 1000, 3162],
    "repeats": 3,
    "sampling_repeats": 3,
    "min_seconds": 0.01,
}
COLORS = ["#1f5fa8", "#c0392b", "#2e8b57", "#8e44ad"]


def median_times(calls, repeats, min_seconds):
    """Median time of one call of each of ``calls`` (a dict key -> zero-argument callable), in seconds.

    A first call of each warms it up and sizes its repetition: the callable is called
    often enough to last about ``min_seconds``. Then ``harness.run_workload`` times the
    repetitions of all of them alternately, round after round in a rotated order, so
    that a slow spell of the machine falls on every size alike instead of bending the
    curve at one of them.

    Returns:
        a dict key -> median seconds per call.
    """
    numbers, repeated = {}, {}
    for key, fn in calls.items():
        start = time.perf_counter()
        fn()
        once = time.perf_counter() - start
        numbers[key] = number = max(1, math.ceil(min_seconds / max(once, 1e-9)))
        repeated[key] = lambda fn=fn, number=number: [fn() for _ in range(number)]
    results = run_workload("scale", repeated, repeats, number=1, warmup=0)
    return {key: r.median / numbers[key] for key, r in zip(calls, results)}


def fit_slope(x, y):
    """The exponent p of the least-squares fit  log y = p log x + c."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def upper_half(x):
    """Mask of the points in the upper half of the range of (increasing) ``x`` in log scale, at least two."""
    x = np.log(np.asarray(x, dtype=float))
    mask = x >= 0.5 * (x[0] + x[-1]) - 1e-9
    mask[-2:] = True
    return mask


def lower_third(x):
    """Mask of the points in the lower third of the range of (increasing) ``x`` in log scale, at least two."""
    x = np.log(np.asarray(x, dtype=float))
    mask = x <= x[0] + (x[-1] - x[0]) / 3 + 1e-9
    mask[:2] = True
    return mask


def measure_training(cfg):
    rng = np.random.default_rng(0)
    data = make_dataset("8gaussians", 10_000, rng)
    path = LinearInterpolationPath()
    calls = {}
    for w in cfg["widths"]:
        params = velocity_init(2, (w, w, w), np.random.default_rng(1))
        for B in cfg["batches"]:
            calls[w, B] = cfm_step(data, path, params, B, 1e-3, np.random.default_rng(2))[0]
    medians = median_times(calls, cfg["repeats"], cfg["min_seconds"])
    times = {w: np.array([medians[w, B] for B in cfg["batches"]]) for w in cfg["widths"]}
    return np.array(cfg["batches"]), times


def measure_sampling(cfg):
    u = VelocityNetwork(velocity_init(2, (64, 64, 64), np.random.default_rng(3)))
    rng = np.random.default_rng(4)
    x0 = {n: rng.standard_normal((n, 2)) for n in cfg["points"]}
    calls = {(s, n): lambda s=s, n=n: integrate(u, x0[n], 0.0, 1.0, s, "rk4")
             for s in cfg["n_steps"] for n in cfg["points"]}
    medians = median_times(calls, cfg["sampling_repeats"], cfg["min_seconds"])
    times = {s: np.array([medians[s, n] for n in cfg["points"]]) for s in cfg["n_steps"]}
    return np.array(cfg["points"]), times


DIVERGENCES = ("exact, reverse mode (d backward passes)", "exact, forward mode (d tangents)",
               "Hutchinson, one probe (one backward pass)")


def measure_divergence(cfg, n=256):
    rng = np.random.default_rng(5)
    calls = {}
    for d in cfg["dims"]:
        params = velocity_init(d, (64, 64), rng)
        network = VelocityNetwork(params)
        u = lambda x, t, params=params: velocity_apply(params, x, t)  # noqa: E731
        x = rng.standard_normal((n, d))
        probe_rng = np.random.default_rng(6)
        calls[DIVERGENCES[0], d] = lambda u=u, x=x: divergence(u, x, 0.5)
        calls[DIVERGENCES[1], d] = lambda network=network, x=x: network.velocity_and_divergence(x, 0.5)
        calls[DIVERGENCES[2], d] = lambda u=u, x=x, r=probe_rng: hutchinson_divergence(u, x, 0.5, r)
    medians = median_times(calls, cfg["repeats"], cfg["min_seconds"])
    times = {name: np.array([medians[name, d] for d in cfg["dims"]]) for name in DIVERGENCES}
    return np.array(cfg["dims"]), times


def measure_marginal(cfg):
    rng = np.random.default_rng(7)
    path = ConicalGaussianPath()
    calls = {}
    for side in cfg["sides"]:
        x, z = rng.standard_normal((side, 2)), 2.0 * rng.standard_normal((side, 2))
        t = rng.uniform(0.0, 0.95, side)
        calls[side] = lambda x=x, t=t, z=z: marginal_velocity(path, x, t, z)
    medians = median_times(calls, cfg["repeats"], cfg["min_seconds"])
    peaks = [peak_memory_mb(calls[side]) for side in cfg["sides"]]
    pairs = np.array(cfg["sides"]) ** 2
    return pairs, np.array([medians[side] for side in cfg["sides"]]), np.array(peaks)


def _fit_line(ax, x, y, mask, color):
    """Draw the fitted power law over the points it was fitted to; return its slope."""
    p = fit_slope(x[mask], y[mask])
    c = np.mean(np.log(y[mask]) - p * np.log(x[mask]))
    xs = np.array([x[mask].min(), x[mask].max()])
    ax.plot(xs, np.exp(c) * xs**p, "--", color=color, lw=2.2, alpha=0.55)
    return p


def draw(training, sampling, div, marginal, header):
    fig, axes = plt.subplots(2, 2, figsize=(13, 10))
    rows = []

    ax = axes[0, 0]
    batches, times = training
    for (w, t), color in zip(times.items(), COLORS):
        p_hi = _fit_line(ax, batches, t, upper_half(batches), color)
        p_lo = fit_slope(batches[lower_third(batches)], t[lower_third(batches)])
        ax.plot(batches, t, "o-", color=color,
                label=f"hidden ({w}, {w}, {w}): slope {p_lo:.2f} small B, {p_hi:.2f} large B")
        rows.append(("training step vs B", f"w = {w}", _range(batches, lower_third(batches)), p_lo))
        rows.append(("training step vs B", f"w = {w}", _range(batches, upper_half(batches)), p_hi))
    widths = np.array(list(times))
    at_max = np.array([t[-1] for t in times.values()])
    width_notes = []
    for k in range(len(widths) - 1):
        p = fit_slope(widths[k:k + 2], at_max[k:k + 2])
        rows.append(("training step vs w", f"B = {batches[-1]}", f"w {widths[k]}..{widths[k + 1]}", p))
        width_notes.append(f"w {widths[k]} -> {widths[k + 1]}: slope {p:.2f}")
    ax.legend(loc="upper left", fontsize=9, title_fontsize=9,
              title=f"at B = {batches[-1]}, time against width:\n" + "; ".join(width_notes))
    ax.set(xlabel="batch size B", ylabel="seconds per step",
           title="1. CFM training step (fused, linear path, 8 gaussians)")

    ax = axes[0, 1]
    points, times = sampling
    for (n_steps, t), color in zip(times.items(), COLORS):
        p = _fit_line(ax, points, t, upper_half(points), color)
        ax.plot(points, t, "o-", color=color, label=f"RK4, {n_steps} steps: slope {p:.2f}")
        rows.append(("sampling vs points", f"{n_steps} steps", _range(points, upper_half(points)), p))
    if len(times) >= 2:
        (s0, t0), (s1, t1) = list(times.items())[0], list(times.items())[-1]
        ratio = float(np.median(t1[upper_half(points)] / t0[upper_half(points)]))
        ax.text(0.03, 0.97, f"{s1} steps / {s0} steps: time x {ratio:.2f} (upper half)",
                transform=ax.transAxes, va="top", fontsize=9, bbox=dict(boxstyle="round", fc="white", ec="0.7"))
    if points[0] < VelocityNetwork.BLOCK_ROWS < points[-1]:
        ax.axvline(VelocityNetwork.BLOCK_ROWS, color="0.5", ls=":", lw=1)
        ax.text(VelocityNetwork.BLOCK_ROWS / 1.08, 0.62, f"blocks of <= {VelocityNetwork.BLOCK_ROWS} rows\non two threads above",
                transform=ax.get_xaxis_transform(), fontsize=8, color="0.35", ha="right")
    ax.legend(loc="lower right", fontsize=9)
    ax.set(xlabel="number of points n", ylabel="seconds per solve (t = 0 to 1)",
           title="2. Sampling: integrate(VelocityNetwork, RK4), hidden (64, 64, 64)")

    ax = axes[1, 0]
    dims, times = div
    for (name, t), color in zip(times.items(), COLORS):
        p = _fit_line(ax, dims, t, upper_half(dims), color)
        ax.plot(dims, t, "o-", color=color, label=f"{name}: slope {p:.2f}")
        rows.append(("divergence vs d", name.split(" (")[0], _range(dims, upper_half(dims)), p))
    ax.legend(loc="upper left", fontsize=9)
    ax.set(xlabel="dimension d", ylabel="seconds per evaluation (batch 256)",
           title="3. Divergence of an MLP field on R^d, hidden (64, 64)")

    ax = axes[1, 1]
    pairs, t, peaks = marginal
    p = _fit_line(ax, pairs, t, upper_half(pairs), COLORS[0])
    ax.plot(pairs, t, "o-", color=COLORS[0], label=f"time: slope {p:.2f}")
    rows.append(("marginal velocity vs n_x n_z", "time", _range(pairs, upper_half(pairs)), p))
    ax.set(xlabel="pairs n_x * n_z  (n_x = n_z)", ylabel="seconds per evaluation",
           title=f"4. Monte Carlo marginal velocity (conical path, d = 2, blocks of {DEFAULT_CHUNK})")
    ax_mem = ax.twinx()
    ax_mem.set_yscale("log")
    p_mem = fit_slope(pairs[upper_half(pairs)], peaks[upper_half(pairs)])
    ax_mem.plot(pairs, peaks, "s-", color=COLORS[1], label=f"peak memory: slope {p_mem:.2f}, "
                f"at most {peaks.max():.1f} MB")
    ax_mem.plot(pairs, 8 * pairs / 2**20, ":", color="0.4", label="one n_x x n_z float64 array (unchunked)")
    ax_mem.set_ylabel("peak memory, MB (tracemalloc)", color=COLORS[1])
    if pairs[0] < DEFAULT_CHUNK**2 < pairs[-1]:
        ax.axvline(DEFAULT_CHUNK**2, color="0.5", ls=":", lw=1)
        ax.text(DEFAULT_CHUNK**2 * 1.1, 0.03, f"one block:\n{DEFAULT_CHUNK} x {DEFAULT_CHUNK} pairs",
                transform=ax.get_xaxis_transform(), fontsize=8, color="0.35")
    rows.append(("marginal velocity vs n_x n_z", "peak memory", _range(pairs, upper_half(pairs)), p_mem))
    handles = ax.get_legend_handles_labels()
    handles_mem = ax_mem.get_legend_handles_labels()
    ax.legend(handles[0] + handles_mem[0], handles[1] + handles_mem[1], loc="upper left", fontsize=9)

    for ax in axes.flat:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.25)
    fig.suptitle("How cost grows: medians of repeated timings, log-log; dashed lines are power laws "
                 "fitted to the upper half of each range\n" + header, fontsize=11)
    fig.tight_layout()
    return fig, rows


def _num(v):
    if v < 1e5:
        return f"{v:.0f}"
    mantissa, exponent = f"{v:.1e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _range(x, mask):
    x = np.asarray(x)[mask]
    return f"{_num(x.min())}..{_num(x.max())}"


def format_slopes(rows):
    table = [("measurement", "series", "fitted on", "slope")] + [(a, b, c, f"{p:.2f}") for a, b, c, p in rows]
    widths = [max(len(r[j]) for r in table) for j in range(4)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in table]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=IMAGES, help=f"output folder (default {IMAGES})")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check that everything runs")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    start = time.perf_counter()
    measured = []
    for name, measure in (("training", measure_training), ("sampling", measure_sampling),
                          ("divergence", measure_divergence), ("marginal", measure_marginal)):
        started = time.perf_counter()
        measured.append(measure(cfg))
        print(f"measured {name} in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    header = f"{time.strftime('%Y-%m-%d')}; {machine_description()}"
    fig, rows = draw(*measured, header)
    path = save(fig, args.out, "scale.png")
    print(header)
    print(format_slopes(rows))
    print(f"\n{path}; measured in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

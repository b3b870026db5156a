"""Samples of trained flow-matching models on every 2-D toy data set, Euler against RK4.

Step 4 of "Flow Matching In Practice" trains one velocity network per data set (linear
path, CFM loss, Adam); step 5 pushes ``x0 ~ N(0, I)`` through ``dx/dt = v_theta(x, t)``
with the lecture's Euler scheme ``x_{k+1} = x_k + (1/N) v_theta(x_k, k/N)`` and with
RK4, both with the same N steps. Each panel gives the energy distance (V-statistic) to
fresh data divided by its noise floor: the same distance between two draws of the data
of the same size (1 = indistinguishable from data at this sample size).
"""

import functools
import sys

import matplotlib.pyplot as plt
import numpy as onp

from figures._cli import run_figure
from figures._models import steps_for, trained_model
from reference.distributions import DATASETS, make_dataset
from reference.metrics import energy_distance, noise_floor
from reference.plot import BLUE, GREY, RED, samples, save
from reference.train import sample_model

N_ODE = 8
N_SAMPLES, QUICK_SAMPLES = 1000, 200
EXTENT = 5.5


def main(out_dir, quick=False):
    n = QUICK_SAMPLES if quick else N_SAMPLES
    energy_v = functools.partial(energy_distance, unbiased=False)
    names = list(DATASETS)
    fig, axes = plt.subplots(3, len(names), figsize=(2.6 * len(names), 8.0), sharex=True, sharey=True)
    rows = [("data", None), (f"Euler, {N_ODE} steps ({N_ODE} evaluations)", "euler"),
            (f"RK4, {N_ODE} steps ({4 * N_ODE} evaluations)", "rk4")]
    for j, name in enumerate(names):
        rng = onp.random.default_rng(15 + j)
        params = trained_model(name, steps_for(name, quick)).params
        sampler = lambda k, r, name=name: make_dataset(name, k, r)  # noqa: E731
        floor = noise_floor(energy_v, sampler, n, rng, n_repeats=3 if quick else 5)
        reference_data = make_dataset(name, n, rng)
        x0_seed = int(rng.integers(2**31))
        for i, (label, method) in enumerate(rows):
            ax = axes[i, j]
            if method is None:
                samples(ax, make_dataset(name, n, rng), color=GREY, size=2.5, alpha=0.6)
                ax.set_title(name, fontsize=11)
            else:
                x = sample_model(params, n, onp.random.default_rng(x0_seed), method=method, n_steps=N_ODE)
                ratio = energy_v(x, reference_data) / floor.mean
                samples(ax, x, color=RED if method == "euler" else BLUE, size=2.5, alpha=0.6)
                ax.text(0.03, 0.97, f"E / floor = {ratio:.1f}", transform=ax.transAxes, va="top", fontsize=8,
                        bbox={"facecolor": "white", "alpha": 0.7, "lw": 0})
            ax.set_xlim(-EXTENT, EXTENT)
            ax.set_ylim(-EXTENT, EXTENT)
            ax.set_aspect("equal")
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.set_ylabel(label, fontsize=9)
    fig.suptitle(f"Samples of trained CFM models, Euler against RK4 (lecture: Flow Matching In Practice, step 5) - "
                 f"linear path, {steps_for('moons', quick)} Adam steps ({steps_for('rings', quick)} for "
                 f"{', '.join(n for n in names if steps_for(n, quick) != steps_for('moons', quick)) or '-'}), "
                 f"{n} samples;\nE = energy distance (V-statistic) "
                 "to fresh data, floor = E between two draws of the data", fontsize=10)
    fig.tight_layout()
    return [save(fig, out_dir, "fig_15_samples.png")]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

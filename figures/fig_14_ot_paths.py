"""Minibatch optimal-transport pairing straightens the learned trajectories.

Two velocity networks are trained on ``8gaussians`` with the linear-interpolation path,
identical but for the coupling of ``z = (x0, x1)``: independent (the lecture's
``p0 x p_data``) or re-paired in every minibatch by exact optimal transport
(``ot.ot_pair``). The same starting points ``x0 ~ N(0, I)`` are pushed through both
learned ODEs (RK4). Straightness is measured by the ratio of each trajectory's length
to its chord (``metrics.path_length_ratio``, 1 for a straight line), and by what one
Euler step produces: a straight field is integrated exactly by a single step.
"""

import sys

import matplotlib.pyplot as plt
import numpy as onp

from figures._cli import run_figure
from figures._style import projected
from figures._models import OT_BATCH, OT_STEPS, QUICK_STEPS, trained_model
from reference.distributions import make_dataset
from reference.metrics import path_length_ratio
from reference.ode import integrate
from reference.plot import BLUE, RED, samples, save, trajectories
from reference.train import model_velocity

DATASET = "8gaussians"
EXTENT = (-6.0, 6.0, -6.0, 6.0)
PURPLE, GREEN = "#8e44ad", "#2ca02c"
"""Colours of the independent and the OT-coupled model (panels 3 and 4, and the titles of panels 1 and 2)."""
SHORT = {"independent coupling": "independent", "minibatch OT coupling": "minibatch OT"}


@projected
def main(out_dir, quick=False):
    n_steps = QUICK_STEPS if quick else OT_STEPS
    n_samples, n_ode = (200, 10) if quick else (1000, 40)
    rng = onp.random.default_rng(14)
    x0 = rng.standard_normal((n_samples, 2))
    data = make_dataset(DATASET, n_samples, rng)
    models = {"independent coupling": trained_model(DATASET, n_steps, batch_size=OT_BATCH),
              "minibatch OT coupling": trained_model(DATASET, n_steps, ot_pairing=True, batch_size=OT_BATCH)}
    colours = dict(zip(models, (PURPLE, GREEN)))

    fig, axes = plt.subplots(1, 4, figsize=(15, 4.9), layout="constrained")
    ratios = {}
    for ax, (label, model) in zip(axes[:2], models.items()):
        u = model_velocity(model.params)
        path, _ = integrate(u, x0, 0.0, 1.0, n_ode, "rk4", return_path=True)
        ratios[label] = path_length_ratio(path)
        trajectories(ax, path, n_show=150, alpha=0.5)
        samples(ax, path[0, :150], color=BLUE, size=8, alpha=0.8, label="x(0) ~ p0")
        samples(ax, path[-1, :150], color=RED, size=8, alpha=0.8, label="x(1)")
        ax.set_title(f"{label}:\nmean length / chord = {ratios[label].mean():.4f}", color=colours[label])
        ax.set_xlim(EXTENT[:2])
        ax.set_ylim(EXTENT[2:])
        ax.set_aspect("equal")
        ax.set_xlabel("x_1")
    axes[0].set_ylabel("x_2")
    axes[0].legend(loc="upper left", markerscale=2, handletextpad=0.2, borderpad=0.3)

    ax = axes[2]
    excess = {k: onp.maximum(r - 1.0, 1e-8) for k, r in ratios.items()}
    bins = onp.geomspace(1e-6, max(v.max() for v in excess.values()) * 1.5, 40)
    for label, e in excess.items():
        ax.hist(e, bins=bins, color=colours[label], alpha=0.6, label=f"{SHORT[label]}: median {onp.median(e):.1e}")
    ax.set_xscale("log")
    ax.set_xlabel("length / chord - 1 (log scale;\na straight trajectory has 0)")
    ax.set_ylabel("number of trajectories")
    ax.set_title("how far each trajectory bends")
    ax.legend(loc="upper left")

    ax = axes[3]
    samples(ax, data, color="0.6", size=4, alpha=0.5, label="data")
    for label, model in models.items():
        one_step = integrate(model_velocity(model.params), x0, 0.0, 1.0, 1, "euler")
        samples(ax, one_step, color=colours[label], size=4, alpha=0.6, label=SHORT[label])
    ax.set_xlim(EXTENT[:2])
    ax.set_ylim(EXTENT[2:])
    ax.set_aspect("equal")
    ax.set_xlabel("x_1")
    ax.set_title("samples after ONE Euler step")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower right", ncols=3, markerscale=3)
    fig.suptitle(f"Minibatch OT pairing straightens the flow (lecture: Flow Matching In Practice, steps 4-5): "
                 f"{DATASET}, {n_steps} Adam steps each, RK4 with {n_ode} steps")
    return [save(fig, out_dir, "fig_14_ot_paths.png")]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

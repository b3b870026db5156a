"""Figure 9: conditional probability paths as shrinking conical Gaussians, and their empirical average.

Left: p(x | t, z_i = x1) = N(t x1, (1 - t)^2) for six data points x1: each is the base
N(0, 1) translated towards x1 and shrunk to a Dirac at t = 1. Right: the empirical
average (1/N) sum_i p(x | t, z_i) for growing N, next to the exact p(x | t) (the closed
form for Gaussian-mixture data). The averages stop at t = 0.995: at t = 1 each
conditional path is a Dirac and has no density.
"""

import sys

import matplotlib.pyplot as plt
import numpy as onp

from figures._cli import run_figure
from reference.distributions import GaussianMixture
from reference.marginal import marginal_logpdf
from reference.oracles import GaussianMixtureOracle
from reference.paths import ConicalGaussianPath
from reference.plot import RED, save, time_space_image, time_space_values

DATA = GaussianMixture([0.35, 0.65], onp.array([[-1.6], [1.8]]), onp.array([0.35**2, 0.55**2]))
T_MAX = 0.995


def main(out_dir, quick=False):
    rng = onp.random.default_rng(9)
    path = ConicalGaussianPath()
    n_t, n_x = (40, 60) if quick else (160, 220)
    t = onp.linspace(0.0, T_MAX, n_t)
    x = onp.linspace(-4.0, 4.0, n_x)
    sizes = (10, 100) if quick else (10, 100, 2000)

    z_all = path.sample_z(max(sizes), DATA.sample(max(sizes), rng), rng)
    panels = [("six conditional paths", z_all[:6])] + [(f"average of N = {n}", z_all[:n]) for n in sizes]

    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(3.1 * (len(panels) + 1), 3.4), sharey=True)
    for ax, (title, z) in zip(axes, panels):
        p = onp.exp(time_space_values(lambda pts, s: marginal_logpdf(path, pts, s, z), t, x))
        time_space_image(ax, p, t, x)
        ax.set_title(title, fontsize=10)
    axes[0].scatter(onp.full(6, T_MAX), z_all[:6, 0], s=18, color=RED, zorder=3, clip_on=False, label="x1 ~ p_data")
    axes[0].legend(loc="lower left", fontsize=7, framealpha=0.6)
    oracle = GaussianMixtureOracle(DATA, path)
    time_space_image(axes[-1], onp.exp(time_space_values(oracle.logpdf, t, x)), t, x)
    axes[-1].set_title("exact p(x | t)", fontsize=10)
    for ax in axes[1:]:
        ax.set_ylabel("")
    fig.suptitle("Figure 9: conical Gaussian paths N(t x1, (1 - t)^2); (1/N) sum_i p(x | t, z_i) -> p(x | t)", fontsize=11)
    fig.tight_layout()
    return [save(fig, out_dir, "fig_09_conical_paths.png")]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

"""Figure 9: conditional probability paths as shrinking conical Gaussians, and their empirical average.

Left: p(x | t, z_i = x1) = N(t x1, (1 - t)^2) for six data points x1: each is the base
N(0, 1) translated towards x1 and shrunk to a Dirac at t = 1. Right: the empirical
average (1/N) sum_i p(x | t, z_i) for growing N, next to the exact p(x | t) (the closed
form for Gaussian-mixture data). The densities are drawn up to t = T_MAX = 0.97, where
a conditional path's width 1 - t is about the spacing of the x grid (beyond, the grid no longer
resolves it); the rest of the axis up to t = 1 is hatched: at t = 1 each conditional
path is a Dirac at x1 and has no density.
"""

import sys

import matplotlib.pyplot as plt
import numpy as onp

from figures._cli import run_figure
from figures._style import projected
from reference.distributions import GaussianMixture
from reference.marginal import marginal_logpdf
from reference.oracles import GaussianMixtureOracle
from reference.paths import ConicalGaussianPath
from reference.plot import RED, save, time_space_image, time_space_values

DATA = GaussianMixture([0.35, 0.65], onp.array([[-1.6], [1.8]]), onp.array([0.35**2, 0.55**2]))
T_MAX = 0.97
"""The last time drawn: there the conditional paths' width 1 - t = 0.03 is about the x grid's spacing (0.027)."""


@projected
def main(out_dir, quick=False):
    rng = onp.random.default_rng(9)
    path = ConicalGaussianPath()
    n_t, n_x = (40, 80) if quick else (120, 300)
    t = onp.linspace(0.0, T_MAX, n_t)
    x = onp.linspace(-4.0, 4.0, n_x)
    sizes = (10, 100) if quick else (10, 100, 2000)

    z_all = path.sample_z(max(sizes), DATA.sample(max(sizes), rng), rng)
    panels = [("six conditional paths", z_all[:6])] + [(f"average of N = {n}", z_all[:n]) for n in sizes]
    exact = onp.exp(time_space_values(GaussianMixtureOracle(DATA, path).logpdf, t, x))
    vmax = float(exact.max())  # one colour scale: the exact density's peak; higher values saturate

    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(15, 3.9), sharey=True, layout="constrained")
    for ax, (title, z) in zip(axes, panels):
        p = onp.exp(time_space_values(lambda pts, s: marginal_logpdf(path, pts, s, z), t, x))
        time_space_image(ax, p, t, x, vmax=vmax)
        ax.set_title(title)
    time_space_image(axes[-1], exact, t, x, vmax=vmax)
    axes[-1].set_title("exact p(x | t)")
    for ax in axes:
        # beyond T_MAX each conditional path is narrower than the x grid; at t = 1 it is a Dirac (no density)
        ax.axvspan(T_MAX, 1.0, color="0.8", hatch="////", ec="0.5", lw=0)
        ax.set_xlim(0.0, 1.0)
    axes[0].scatter(onp.ones(6), z_all[:6, 0], s=30, color=RED, zorder=3, clip_on=False, label="x1 ~ p_data (t = 1)")
    axes[0].legend(loc="lower left", framealpha=0.8)
    for ax in axes[1:]:
        ax.set_ylabel("")
    fig.colorbar(axes[0].images[0], ax=list(axes), extend="max", label="density (one scale)")
    fig.suptitle("Figure 9: conical Gaussian paths p(x | t, z_i) = N(t x1, (1 - t)^2); (1/N) sum_i p(x | t, z_i) -> p(x | t)\n"
                 f"hatched: t > {T_MAX}, where the conditional paths (width 1 - t) are narrower than the x grid; "
                 "at t = 1 each is a Dirac at x1 and has no density")
    return [save(fig, out_dir, "fig_09_conical_paths.png")]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

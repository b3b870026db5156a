"""Figure 4: the probability path p_t, the velocity field u and the flow f^u, for one 2-D example.

p0 = N(0, I) to a three-component Gaussian mixture along the lecture's conical path
(the linear path with sigma = 0 has the same marginal), with the closed-form marginal
density p_t and velocity u (``reference.oracles``). Top row: p_t as a heat map at four
times, the velocity u(., t) as arrows, and samples of p0 pushed to time t by solving
eq. (4) with RK4 (``reference.ode.push_samples``): the pushed samples land where p_t has
its mass, p_t = f^u(., t) # p0. Bottom: trajectories t -> f^u(x, t) over p1, and the
residual of the continuity equation (5) along the way, which vanishes.
"""

import sys

import matplotlib.pyplot as plt
import numpy as onp

from figures._cli import run_figure
from reference.continuity import continuity_terms
from reference.distributions import GaussianMixture
from reference.ode import integrate, push_samples
from reference.oracles import GaussianMixtureOracle
from reference.paths import ConicalGaussianPath
from reference.plot import BLUE, RED, density_image, samples, save, trajectories, velocity_arrows

DATA = GaussianMixture(
    [0.35, 0.35, 0.3],
    onp.array([[2.2, 1.2], [-2.0, 1.6], [0.3, -2.3]]),
    onp.array([[[0.25, 0.1], [0.1, 0.2]], [[0.3, -0.12], [-0.12, 0.2]], [[0.35, 0.0], [0.0, 0.15]]]),
)
EXTENT = (-4.0, 4.0, -4.0, 4.0)
TIMES = (0.0, 0.35, 0.7, 1.0)


def main(out_dir, quick=False):
    oracle = GaussianMixtureOracle(DATA, ConicalGaussianPath())
    rng = onp.random.default_rng(4)
    n_grid, n_samples, n_steps, n_arrows = (60, 150, 20, 11) if quick else (160, 600, 100, 15)
    x0 = rng.standard_normal((n_samples, 2))
    pushed = push_samples(oracle.velocity, x0, onp.array(TIMES), n_steps=n_steps, method="rk4")

    fig = plt.figure(figsize=(16, 8.6), layout="constrained")
    grid = fig.add_gridspec(2, 4, height_ratios=[1.0, 1.05])
    for j, t in enumerate(TIMES):
        ax = fig.add_subplot(grid[0, j])
        density_image(ax, lambda p: oracle.logpdf(p, t), EXTENT, n=n_grid, cmap="Blues")
        velocity_arrows(ax, oracle.velocity, t, EXTENT, n=n_arrows, color="0.25", width=0.004)
        samples(ax, pushed[j], color=RED, size=4.0, alpha=0.7)
        ax.set_title(f"t = {t:g}: p_t (heat), u(., t) (arrows),\nf^u(x0, t) for x0 ~ p0 (red)", fontsize=9)
        ax.set_xlabel("x_1")
        ax.set_ylabel("x_2" if j == 0 else "")
        ax.set_aspect("equal")

    ax = fig.add_subplot(grid[1, :2])
    density_image(ax, lambda p: oracle.logpdf(p, 1.0), EXTENT, n=n_grid, cmap="Reds")
    path, _ = integrate(oracle.velocity, x0[:80], 0.0, 1.0, n_steps=n_steps, method="rk4", return_path=True)
    trajectories(ax, path, n_show=80, color="0.3", alpha=0.7, lw=0.8)
    samples(ax, path[0], color=BLUE, size=10, alpha=0.9, label="x0 ~ p0")
    samples(ax, path[-1], color=RED, size=10, alpha=0.9, label="f^u(x0, 1)")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("the flow: trajectories t -> f^u(x0, t) of eq. (4), over p1 = p_data", fontsize=9)
    ax.set_xlabel("x_1")
    ax.set_ylabel("x_2")
    ax.set_aspect("equal")

    ax = fig.add_subplot(grid[1, 2:])
    n_res = 200 if quick else 2000
    t_res = rng.uniform(0.0, 1.0, n_res)
    x_res = pushed[-1][rng.integers(0, n_samples, n_res)] * t_res[:, None] + rng.standard_normal((n_res, 2)) * (1 - t_res[:, None])
    dlogp, transport, div_u = continuity_terms(oracle.logpdf, oracle.velocity, x_res, t_res)
    scale = onp.abs(dlogp) + onp.abs(transport) + onp.abs(div_u)
    ax.semilogy(t_res, onp.maximum(onp.abs(dlogp + transport + div_u) / scale, 1e-17), ".", ms=3, color="k", alpha=0.6,
                label="|residual| / (|d/dt log p| + |u . grad log p| + |div u|) (exact zeros at 1e-17)")
    ax.semilogy(t_res, onp.abs(dlogp - transport - div_u) / scale, ".", ms=3, color=RED, alpha=0.4,
                label="the same with -u (negative control)")
    ax.set_ylim(1e-18, 10)
    ax.set_xlabel("t")
    ax.set_ylabel("relative residual")
    ax.legend(loc="center right", fontsize=8)
    ax.set_title("the continuity equation (5) divided by p_t: d/dt log p_t + u . grad log p_t + div u = 0", fontsize=9)

    fig.suptitle("Figure 4: the probability path p_t, the velocity field u and the flow f^u "
                 "(p0 = N(0, I) to a Gaussian mixture, conical path)", fontsize=12)
    return [save(fig, out_dir, "fig_04_continuity.png")]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

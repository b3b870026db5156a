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
from figures._style import projected
from reference.continuity import continuity_terms
from reference.distributions import GaussianMixture
from reference.ode import integrate, push_samples
from reference.oracles import GaussianMixtureOracle
from reference.paths import ConicalGaussianPath
from reference.plot import BLUE, RED, density_image, grid_points, samples, save, trajectories, velocity_arrows

DATA = GaussianMixture(
    [0.35, 0.35, 0.3],
    onp.array([[2.2, 1.2], [-2.0, 1.6], [0.3, -2.3]]),
    onp.array([[[0.25, 0.1], [0.1, 0.2]], [[0.3, -0.12], [-0.12, 0.2]], [[0.35, 0.0], [0.0, 0.15]]]),
)
EXTENT = (-4.0, 4.0, -4.0, 4.0)
TIMES = (0.0, 0.35, 0.7, 1.0)
ORANGE = "#e67e22"


@projected
def main(out_dir, quick=False):
    oracle = GaussianMixtureOracle(DATA, ConicalGaussianPath())
    rng = onp.random.default_rng(4)
    n_grid, n_samples, n_steps, n_arrows = (60, 150, 20, 11) if quick else (160, 600, 100, 13)
    x0 = rng.standard_normal((n_samples, 2))
    pushed = push_samples(oracle.velocity, x0, onp.array(TIMES), n_steps=n_steps, method="rk4")

    fig = plt.figure(figsize=(15, 9.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.0, 1.08])
    axes = top.subplots(1, len(TIMES), sharey=True)
    _, _, grid_pts = grid_points(EXTENT, n_arrows)
    speed = max(float(onp.max(onp.linalg.norm(oracle.velocity(grid_pts, t), axis=1))) for t in TIMES)
    arrow_scale = speed / (0.9 * (EXTENT[1] - EXTENT[0]) / n_arrows)  # the fastest arrow spans 0.9 grid cells
    densities = [onp.exp(oracle.logpdf(grid_points(EXTENT, n_grid)[2], t)) for t in TIMES]
    vmax = max(float(p.max()) for p in densities)
    for ax, t, x_t in zip(axes, TIMES, pushed):
        density_image(ax, lambda p, t=t: oracle.logpdf(p, t), EXTENT, n=n_grid, cmap="Blues", vmin=0.0, vmax=vmax)
        quiver = velocity_arrows(ax, oracle.velocity, t, EXTENT, n=n_arrows, color="0.2", width=0.005,
                                 angles="xy", scale_units="xy", scale=arrow_scale)
        samples(ax, x_t, color=RED, size=5.0, alpha=0.7)
        ax.set_title(f"t = {t:g}")
        ax.set_xlabel("x_1")
        ax.set_aspect("equal")
    axes[0].set_ylabel("x_2")
    ax.quiverkey(quiver, 0.72, 1.045, 5.0, "|u| = 5", labelpos="E", coordinates="axes")
    top.colorbar(axes[0].images[0], ax=list(axes), shrink=0.85, label="p_t(x) (one scale for the four times)")
    top.suptitle(f"p_t (heat map), u(., t) (arrows, one scale), and f^u(x0, t) for {n_samples} x0 ~ p0 (red): "
                 "the pushed samples fall where p_t has its mass")

    ax_flow, ax_res = bottom.subplots(1, 2, width_ratios=[1.0, 1.45])
    density_image(ax_flow, lambda p: oracle.logpdf(p, 1.0), EXTENT, n=n_grid, cmap="Greys", vmin=0.0, vmax=vmax)
    path, _ = integrate(oracle.velocity, x0[:80], 0.0, 1.0, n_steps=n_steps, method="rk4", return_path=True)
    trajectories(ax_flow, path, n_show=80, color="0.35", alpha=0.8, lw=0.8)
    samples(ax_flow, path[0], color=BLUE, size=14, alpha=0.9, label="x0 ~ p0")
    samples(ax_flow, path[-1], color=ORANGE, size=14, alpha=0.9, label="f^u(x0, 1)")
    ax_flow.legend(loc="upper center", markerscale=1.5, ncols=2, framealpha=0.9)
    ax_flow.set_title("the flow: t -> f^u(x0, t), eq. (4), over p1 = p_data (grey)")
    ax_flow.set_xlabel("x_1")
    ax_flow.set_ylabel("x_2")
    ax_flow.set_xlim(EXTENT[:2])
    ax_flow.set_ylim(EXTENT[2] - 0.6, EXTENT[3] + 0.8)  # room for the legend above the modes
    ax_flow.set_aspect("equal")

    n_res = 200 if quick else 2000
    t_res = rng.uniform(0.0, 1.0, n_res)
    x_res = pushed[-1][rng.integers(0, n_samples, n_res)] * t_res[:, None] + rng.standard_normal((n_res, 2)) * (1 - t_res[:, None])
    dlogp, transport, div_u = continuity_terms(oracle.logpdf, oracle.velocity, x_res, t_res)
    scale = onp.abs(dlogp) + onp.abs(transport) + onp.abs(div_u)
    ax_res.semilogy(t_res, onp.maximum(onp.abs(dlogp + transport + div_u) / scale, 1e-17), ".", ms=3, color="k",
                    alpha=0.6, label="with u (exact zeros drawn at 1e-17)")
    ax_res.semilogy(t_res, onp.abs(dlogp - transport - div_u) / scale, ".", ms=3, color=RED, alpha=0.4,
                    label="with -u (negative control)")
    ax_res.set_ylim(1e-18, 1e3)
    ax_res.set_xlabel("t")
    ax_res.set_ylabel("|residual| / sum of |terms|")
    ax_res.legend(loc="upper center", ncols=2, markerscale=4)
    ax_res.set_title("continuity equation (5) divided by p_t:  d/dt log p_t + u . grad log p_t + div u = 0")

    fig.suptitle("Figure 4: the probability path p_t, the velocity field u and the flow f^u "
                 "(p0 = N(0, I) to a Gaussian mixture, conical path, closed forms)")
    return [save(fig, out_dir, "fig_04_continuity.png")]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

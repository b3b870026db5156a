"""A CNF's density by the trace of its Jacobian, next to samples pushed through the same flow.

The CNF is the flow of Figure 4 (p0 = N(0, I) to a Gaussian mixture along the conical
path, closed-form velocity from ``reference.oracles``). Left: log p1(x) on a grid by
``reference.cnf.cnf_logpdf``, integrating d/dt [x, l] = [u, -div u] from t = 1 back to 0
with RK4 and the exact divergence; the mass on the grid is printed. Centre: samples
x(1) = f^u(x0, 1) of x0 ~ N(0, I) (``cnf_sample``), coloured by the log-density computed
along their way (forwards). Right: the error of the CNF log-density against the
mixture's closed form, at the integrator's accuracy.
"""

import sys

import matplotlib.pyplot as plt
import numpy as onp

from figures._cli import run_figure
from figures._style import projected
from figures.fig_04_continuity import DATA
from reference.cnf import cnf_logpdf, cnf_sample
from reference.oracles import GaussianMixtureOracle
from reference.paths import ConicalGaussianPath
from reference.plot import grid_points, save

EXTENT = (-4.0, 4.0, -4.0, 4.0)


@projected
def main(out_dir, quick=False):
    oracle = GaussianMixtureOracle(DATA, ConicalGaussianPath())
    n_grid, n_steps, n_samples = (40, 10, 300) if quick else (110, 32, 3000)
    X, Y, pts = grid_points(EXTENT, n_grid)
    log_p = onp.asarray(cnf_logpdf(oracle.velocity, pts, n_steps=n_steps, method="rk4"))
    cell = (X[0, 1] - X[0, 0]) * (Y[1, 0] - Y[0, 0])
    mass = float(onp.sum(onp.exp(log_p)) * cell)
    error = onp.abs(log_p - onp.asarray(DATA.logpdf(pts)))

    x0 = onp.random.default_rng(6).standard_normal((n_samples, 2))
    x1, log_p_samples = cnf_sample(oracle.velocity, x0, n_steps=n_steps, method="rk4", return_logpdf=True)

    fig, axes = plt.subplots(1, 3, figsize=(15, 5.0), layout="constrained")
    ax = axes[0]
    im = ax.imshow(onp.exp(log_p).reshape(X.shape), origin="lower", extent=EXTENT, cmap="magma")
    ax.contour(X, Y, log_p.reshape(X.shape), levels=onp.arange(-12, 1, 2), colors="w", linewidths=0.5, alpha=0.6)
    fig.colorbar(im, ax=ax, shrink=0.8, label="p1(x); white: log p1 = -12, -10, ..., 0")
    ax.set_title(f"(a) p1 by the CNF\n(mass on the grid {mass:.4f})")

    ax = axes[1]
    sc = ax.scatter(x1[:, 0], x1[:, 1], c=log_p_samples, s=3, cmap="magma", vmin=-8, vmax=float(log_p.max()))
    fig.colorbar(sc, ax=ax, shrink=0.8, label="log p1 integrated along the trajectory")
    ax.set_xlim(EXTENT[:2])
    ax.set_ylim(EXTENT[2:])
    ax.set_title(f"(b) {n_samples} samples x(1) = f^u(x0, 1)\nand their log-density")

    ax = axes[2]
    im = ax.imshow(onp.log10(onp.maximum(error, 1e-16)).reshape(X.shape), origin="lower", extent=EXTENT,
                   cmap="viridis")
    fig.colorbar(im, ax=ax, shrink=0.8, label="log10 |CNF log p1 - closed-form log p_data|")
    ax.set_title(f"(c) error of the CNF log-density\n(max {error.max():.1e}, in the tails)")
    for ax in axes:
        ax.set_xlabel("x_1")
        ax.set_ylabel("x_2")
        ax.set_aspect("equal")
    fig.suptitle("Continuous normalizing flow: the likelihood by the trace of the Jacobian "
                 "(the flow of Figure 4; lecture: Continuous Normalizing Flows, CNF Pros)\n"
                 f"log p1(x) = log p0(x(0)) - int_0^1 div u(x(t), t) dt, RK4 with {n_steps} steps, exact trace; "
                 "(b) x0 ~ N(0, I), log p1 integrated forwards while sampling")
    return [save(fig, out_dir, "fig_06_cnf_density.png")]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

"""Figure 0: the lecture's first slide, "can we go beyond the mean field for q_phi(z | x)?", answered by flows.

(a) Probabilistic PCA (``reference.variational.PPCA``), whose posterior p(z | x) is an exact,
correlated Gaussian: the best mean field (closed form), a mean field fitted by the ELBO and a
planar flow of 8 layers fitted by the ELBO, drawn over it, with the gap log p(x) - ELBO of each.

(b) Rezende and Mohamed's (2015) four 2-D energies fitted by the mean field and by planar flows
of K = 2, 8 and 32 layers; every panel carries its KL(q || p) = log Z - ELBO (log Z by
quadrature). A flow's density is drawn exactly on the image of a grid of base points,
log q(z_K) = log q0(z_0) - sum_k log |det J_k| (no inverse needed).
"""

import sys

import matplotlib.pyplot as plt
import numpy as onp

from figures._cli import run_figure
from figures._variational import energy_fits, kl_star, log_normalisers, ppca_fits, ppca_model
from reference.plot import density_image, save
from reference.variational import ENERGIES, energy, mean_field_optimum

EXTENT = (-5.0, 5.0, -5.0, 5.0)
"""The square the energies are drawn on (the paper's plots show [-4, 4]^2)."""

ORANGE, BLUE, WHITE = "#e67e22", "#5dade2", "white"
CMAP = "magma"


def base_grid(mu, log_sigma, n, half_width=4.5):
    """Base points z_0 = mu + sigma eps for eps on an ``n x n`` grid over [-4.5, 4.5]^2, every row: ``(n^2, rows, 2)``."""
    g = onp.linspace(-half_width, half_width, n)
    E1, E2 = onp.meshgrid(g, g)
    eps = onp.stack([E1.ravel(), E2.ravel()], axis=1)  # (n^2, 2)
    return onp.asarray(mu)[None] + onp.exp(onp.asarray(log_sigma))[None] * eps[:, None, :]


def pushed_density(fits, n, half_width=4.5):
    """Every fitted q on the image of a base grid: cell corners ``(Z1, Z2)`` of shape ``(rows, n + 1, n + 1)`` and
    the density at the cells' centres ``q`` of shape ``(rows, n, n)`` (the image of a grid by a diffeomorphism
    is a grid of cells that do not overlap)."""
    h = half_width / n
    corners, _ = fits.q.transform(fits.x, base_grid(fits.params["mu"], fits.params["log_sigma"], n + 1, half_width))
    _, log_q = fits.q.transform(fits.x, base_grid(fits.params["mu"], fits.params["log_sigma"], n, half_width - h))
    Z1 = onp.moveaxis(corners[..., 0].reshape(n + 1, n + 1, -1), -1, 0)
    Z2 = onp.moveaxis(corners[..., 1].reshape(n + 1, n + 1, -1), -1, 0)
    return Z1, Z2, onp.moveaxis(onp.exp(log_q).reshape(n, n, -1), -1, 0)


def contour_at_levels(ax, X, Y, P, color, **kwargs):
    """Lines where P is exp(-1/2) and exp(-2) of its maximum (1 and 2 standard deviations for a Gaussian)."""
    top = P.max()
    return ax.contour(X, Y, P, levels=[top * onp.exp(-2.0), top * onp.exp(-0.5)], colors=color, **kwargs)


def draw_ppca(ax, cax, quick):
    result = ppca_fits(quick)
    model, x0 = ppca_model()
    m, S = model.posterior_mean(x0)[0], model.posterior_covariance()
    half = 4.0 * onp.sqrt(onp.diag(S))
    extent = (m[0] - half[0], m[0] + half[0], m[1] - half[1], m[1] + half[1])
    n = 100 if quick else 240
    G1, G2 = onp.meshgrid(onp.linspace(*extent[:2], n), onp.linspace(*extent[2:], n))
    pts = onp.stack([G1.ravel(), G2.ravel()], axis=1)
    P = onp.exp(model.posterior(x0).log_prob(x0, pts[:, None, :])[:, 0]).reshape(G1.shape)
    im = ax.imshow(P, origin="lower", extent=extent, cmap=CMAP, aspect="auto")
    ax.figure.colorbar(im, cax=cax, orientation="horizontal", label="exact posterior density p(z | x)")
    v = mean_field_optimum(S)
    Q_best = onp.exp(-0.5 * ((G1 - m[0]) ** 2 / v[0] + (G2 - m[1]) ** 2 / v[1]))
    contour_at_levels(ax, G1, G2, Q_best, WHITE, linestyles="--", linewidths=1.5)
    n_base = 60 if quick else 160
    zK, log_q = result.fits.q.transform(result.fits.x, base_grid(result.fits.params["mu"], result.fits.params["log_sigma"],
                                                                 n_base))
    for row, color in ((0, ORANGE), (1, BLUE)):  # contours on the image of the base grid (a curvilinear grid)
        shape = (n_base, n_base)
        contour_at_levels(ax, zK[:, row, 0].reshape(shape), zK[:, row, 1].reshape(shape),
                          onp.exp(log_q[:, row]).reshape(shape), color, linewidths=2.0)
    gap, se = result.gap[0], result.stderr[0]
    handles = [plt.Line2D([], [], color=c, ls=ls, lw=2) for c, ls in ((WHITE, "--"), (ORANGE, "-"), (BLUE, "-"))]
    labels = [f"best mean field (closed form): gap KL* = {kl_star():.3f}",
              f"mean field fitted by the ELBO: gap {gap[0]:.3f} ± {se[0]:.3f}",
              f"planar flow, K = 8, fitted: gap {gap[1]:.3f} ± {se[1]:.3f}"]
    legend = ax.legend(handles, labels, loc="lower left", fontsize=8.5, facecolor="0.25", edgecolor="none",
                       labelcolor=WHITE)
    legend.get_frame().set_alpha(0.85)
    ax.set_xlim(extent[:2])
    ax.set_ylim(extent[2:])
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title("(a) pPCA, one x: p(z | x) and q(z | x)\n(lines: 1 and 2 standard deviations; gap = log p(x) - ELBO)",
                 fontsize=10)


def draw_energies(fig, grid, quick):
    result = energy_fits(quick)
    depths = result.depths
    inner = grid.subgridspec(len(ENERGIES), len(depths) + 2, width_ratios=[1] * (len(depths) + 1) + [0.07],
                             wspace=0.08, hspace=0.12)
    Z1, Z2, Q = pushed_density(result.fits, 60 if quick else 110)
    n_grid = 100 if quick else 200
    ticks = [-4, 0, 4]
    cmap = plt.get_cmap(CMAP)
    for i, name in enumerate(ENERGIES):
        log_z = log_normalisers()[i]
        axes = [fig.add_subplot(inner[i, j]) for j in range(len(depths) + 1)]
        p = density_image(axes[0], lambda z: -energy(name, z) - log_z, EXTENT, n=n_grid, cmap=CMAP)
        vmax = p.max()
        axes[0].images[0].set_clim(0.0, vmax)
        axes[0].set_ylabel(f"{name}:  $z_2$", fontsize=9)
        for j, K in enumerate(depths):
            ax, row = axes[j + 1], i * len(depths) + j
            ax.set_facecolor(cmap(0.0))
            ax.pcolormesh(Z1[row], Z2[row], Q[row], shading="flat", cmap=CMAP, vmin=0.0, vmax=vmax)
            ax.text(0.04, 0.95, f"KL {result.gap[i, j]:.2f}", transform=ax.transAxes, color=WHITE, fontsize=9, va="top")
        for j, ax in enumerate(axes):
            ax.set_xlim(EXTENT[:2])
            ax.set_ylim(EXTENT[2:])
            ax.set_aspect("equal")
            ax.set_xticks(ticks)
            ax.set_yticks(ticks)
            ax.tick_params(labelsize=7, length=2)
            if j > 0:
                ax.set_yticklabels([])
            if i < len(ENERGIES) - 1:
                ax.set_xticklabels([])
            else:
                ax.set_xlabel("$z_1$", fontsize=9)
            if i == 0:
                ax.set_title("target p(z) ∝ exp(-U)" if j == 0 else
                             ("mean field" if depths[j - 1] == 0 else f"planar, K = {depths[j - 1]}"), fontsize=9)
        fig.colorbar(axes[0].images[0], cax=fig.add_subplot(inner[i, -1])).ax.tick_params(labelsize=7)
    fig.text(0.655, 0.925, "(b) Rezende & Mohamed's energies by unamortised VI (colour: density on the target's "
             "scale; KL(q || p) = log Z - ELBO, nats)", ha="center", fontsize=10)


def main(out_dir, quick=False):
    fig = plt.figure(figsize=(12.8, 7.2))
    outer = fig.add_gridspec(1, 2, width_ratios=[1.0, 1.9], left=0.055, right=0.975, bottom=0.08, top=0.87,
                             wspace=0.12)
    left = outer[0].subgridspec(2, 1, height_ratios=[1.0, 0.035], hspace=0.22)
    draw_ppca(fig.add_subplot(left[0]), fig.add_subplot(left[1]), quick)
    draw_energies(fig, outer[1], quick)
    fig.suptitle("Figure 0. Can we go beyond the mean field for $q_\\phi(z | x)$? A normalizing flow as the "
                 "variational posterior", fontsize=12, y=0.985)
    return [save(fig, out_dir, "fig_00_variational.png")]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

"""Figure 1: a map T pushes the base p0 = N(0, I) towards the data distribution (two moons).

T is a RealNVP (6 affine couplings) fitted by maximum likelihood, eq. (1). (a) p0 with
a polar grid and samples coloured by angle; (b) the same grid and samples carried by T;
(c) the density of T # p0 by the change of variables, eq. (2), with the Jacobian of
T^{-1} taken by autograd; (d) samples of T # p0 against samples of p_data.
"""

import sys

import matplotlib.pyplot as plt
import numpy as onp

from figures._cli import run_figure
from figures._style import projected
from figures._flows import MOONS, moons_realnvp
from reference.change_of_variables import pushforward_logpdf
from reference.distributions import standard_normal_logpdf
from reference.flows.chain import realnvp_forward, realnvp_inverse, realnvp_logpdf
from reference.plot import BLUE, RED, density_image, grid_points, save

EXTENT = (-3.5, 3.5, -3.0, 3.0)


def polar_grid(n_points):
    """Circles of radius 0.5..2 and 12 rays out to radius 2.5, each a polyline (m, 2)."""
    s = onp.linspace(0.0, 1.0, n_points)
    circles = [r * onp.stack([onp.cos(2 * onp.pi * s), onp.sin(2 * onp.pi * s)], axis=1) for r in (0.5, 1.0, 1.5, 2.0)]
    rays = [2.5 * s[:, None] * onp.array([[onp.cos(a), onp.sin(a)]]) for a in onp.arange(12) * onp.pi / 6]
    return circles, rays


def draw_lines(ax, lines, **kwargs):
    for line in lines:
        ax.plot(line[:, 0], line[:, 1], **kwargs)


@projected
def main(out_dir, quick=False):
    params, data, _ = moons_realnvp(quick)
    rng = onp.random.default_rng(11)
    n_grid, n_line, n_samples = (40, 40, 300) if quick else (150, 200, 1500)

    z = rng.standard_normal((n_samples, 2))
    colour = onp.arctan2(z[:, 1], z[:, 0])
    x, _ = realnvp_forward(params, z)
    circles, rays = polar_grid(n_line)
    push = lambda lines: [realnvp_forward(params, line)[0] for line in lines]  # noqa: E731

    def log_p1(pts):
        """eq. (2): log p0(T^{-1}(x)) + log |det J_{T^{-1}}(x)|, the Jacobian by autograd."""
        return pushforward_logpdf(lambda v: realnvp_inverse(params, v)[0], standard_normal_logpdf, pts)

    fig, axes = plt.subplots(1, 4, figsize=(15, 4.3), layout="constrained")
    ax = axes[0]
    density_image(ax, standard_normal_logpdf, EXTENT, n=n_grid, cmap="Blues", colorbar="p0(x)")
    draw_lines(ax, circles + rays, color="k", lw=0.6, alpha=0.6)
    ax.scatter(z[:, 0], z[:, 1], c=colour, cmap="hsv", s=4, linewidths=0)
    ax.set_title("(a) p0 = N(0, I), samples z")

    idx = rng.permutation(data.shape[0])[:n_samples]  # the data are ordered by moon
    ax = axes[1]
    ax.scatter(data[idx, 0], data[idx, 1], s=2, color="0.75", linewidths=0)
    draw_lines(ax, push(circles + rays), color="k", lw=0.6, alpha=0.6)
    ax.scatter(x[:, 0], x[:, 1], c=colour, cmap="hsv", s=4, linewidths=0)
    ax.set_title("(b) T carries grid and samples")

    ax = axes[2]
    _, _, pts = grid_points(EXTENT, n_grid)
    log_density = log_p1(pts)
    density_image(ax, lambda _: log_density, EXTENT, n=n_grid, cmap="Blues", colorbar="(T # p0)(x)")
    # the same density with the flow's closed-form log-det (sum of s), as a check of eq. (2)
    gap = onp.max(onp.abs(log_density - realnvp_logpdf(params, pts)))
    ax.set_title("(c) T # p0 by eq. (2)")
    ax.text(0.02, 0.02, f"Jacobian by autograd;\nmax |autograd - closed form|\nof log-det: {gap:.1e}", transform=ax.transAxes,
            fontsize=10, color="k")

    ax = axes[3]
    ax.scatter(data[idx, 0], data[idx, 1], s=3, color=RED, alpha=0.6, linewidths=0, label="p_data")
    ax.scatter(x[:, 0], x[:, 1], s=3, color=BLUE, alpha=0.6, linewidths=0, label="T # p0")
    ax.legend(loc="lower right", markerscale=4)
    ax.set_title("(d) T # p0 against p_data")

    for ax in axes:
        ax.set_xlim(EXTENT[:2])
        ax.set_ylim(EXTENT[2:])
        ax.set_aspect("equal")
        ax.set_xlabel("x_1")
    axes[0].set_ylabel("x_2")
    fig.suptitle(f"Figure 1: a map T sends p0 = N(0, I) as close as possible to p_data (two moons)\n"
                 f"T = RealNVP, {MOONS['n_layers']} affine couplings, fitted by maximum likelihood (eq. (1)); "
                 "colour of a sample = the angle of its z")
    return [save(fig, out_dir, "fig_01_pushforward.png")]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

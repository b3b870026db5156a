"""Figure 10: conditional paths and velocities for three z, and the marginal path and velocity built from them.

Top: p(x | t, z_i) = N((1 - t) x0 + t x1, sigma^2) for three pairs z_i = (x0, x1), and
(right) their average p(x | t) = (1/3) sum_i p(x | t, z_i). Bottom: the conditional
velocities u_cond(x, t, z_i) = x1 - x0 (one constant per path), and (right) the
marginal velocity of Theorem 1, eq. (10): u(x, t) = sum_i p(z_i | x, t) u_cond(x, t, z_i),
a posterior-weighted blend that switches from one path's velocity to another's where
the paths cross. Arrows show the direction (1, u) of motion in the (t, x) plane; colour
is u, shown where the density is visible.
"""

import sys

import matplotlib.pyplot as plt
import numpy as onp

from figures._cli import run_figure
from figures._style import projected
from reference.marginal import marginal_logpdf, marginal_velocity
from reference.paths import LinearInterpolationPath
from reference.plot import save, time_space_image, time_space_values

SIGMA = 0.3
Z = (onp.array([[-1.2], [1.0], [0.3]]), onp.array([[1.8], [-1.6], [2.4]]))  # three (x0, x1), crossing paths


def draw_velocity(ax, u, p, t, x, arrows_t, arrows_x, vlim):
    """Colour ``u`` where ``p`` is visible, with arrows (1, u) normalised in the (t, x) plane."""
    shown = onp.ma.masked_where(p < 0.02 * p.max(), u)
    im = ax.imshow(shown, origin="lower", extent=(t[0], t[-1], x[0], x[-1]), aspect="auto",
              cmap="coolwarm", vmin=-vlim, vmax=vlim)
    ti = onp.linspace(0, len(t) - 1, arrows_t).astype(int)
    xi = onp.linspace(0, len(x) - 1, arrows_x).astype(int)
    U = u[onp.ix_(xi, ti)]
    P = p[onp.ix_(xi, ti)]
    scale_t = (x[-1] - x[0]) / (t[-1] - t[0])  # one unit of t is this many units of x on screen
    norm = onp.hypot(1.0, U / scale_t)  # about the on-screen length of (1, u): arrows of one length
    keep = P >= 0.02 * p.max()
    Tg, Xg = onp.meshgrid(t[ti], x[xi])
    ax.quiver(Tg[keep], Xg[keep], (1.0 / norm)[keep], (U / norm)[keep], angles="xy", color="k",
              scale=34, width=0.006, headwidth=3.5)
    ax.set_facecolor("#f2f2f2")
    ax.set_xlabel("t")
    return im


@projected
def main(out_dir, quick=False):
    path = LinearInterpolationPath(SIGMA)
    n_t, n_x = (50, 60) if quick else (200, 240)
    t = onp.linspace(0.0, 1.0, n_t)
    x = onp.linspace(-3.5, 3.5, n_x)
    arrows = (8, 10) if quick else (11, 13)
    u_cond = (Z[1] - Z[0])[:, 0]
    vlim = onp.abs(u_cond).max()

    fig, axes = plt.subplots(2, 4, figsize=(15, 7.4), sharex=True, sharey=True, layout="constrained")
    densities = [onp.exp(time_space_values(lambda pts, s, i=i: marginal_logpdf(path, pts, s, (Z[0][i : i + 1], Z[1][i : i + 1])), t, x))
                 for i in range(3)]
    p = onp.exp(time_space_values(lambda pts, s: marginal_logpdf(path, pts, s, Z), t, x))
    vmax = max(float(d.max()) for d in densities + [p])  # one colour scale for the four densities
    for i, p_i in enumerate(densities):
        time_space_image(axes[0, i], p_i, t, x, vmax=vmax)
        axes[0, i].set_title(f"p(x | t, z{i + 1}): x0 = {Z[0][i, 0]:g}, x1 = {Z[1][i, 0]:g}")
        draw_velocity(axes[1, i], onp.full_like(p_i, u_cond[i]), p_i, t, x, *arrows, vlim)
        axes[1, i].set_title(f"u_cond(x, t, z{i + 1}) = {u_cond[i]:g}")
    time_space_image(axes[0, 3], p, t, x, vmax=vmax)
    axes[0, 3].set_title("p(x | t) = (1/3) sum_i p(x | t, z_i)")
    u = time_space_values(lambda pts, s: marginal_velocity(path, pts, s, Z), t, x)[..., 0]
    im = draw_velocity(axes[1, 3], u, p, t, x, *arrows, vlim)
    axes[1, 3].set_title("u(x, t), eq. (10)")
    for ax in axes[:, 0]:
        ax.set_ylabel("x")
    for ax in axes[0]:
        ax.set_xlabel("")
    fig.suptitle(f"Figure 10: conditional paths and velocities (linear interpolation, sigma = {SIGMA}) "
                 "and the marginal path and velocity they define\n"
                 "u_cond(x, t, z_i) = x1 - x0;   u(x, t) = sum_i p(z_i | x, t) u_cond(x, t, z_i)\n"
                 "arrows: the direction (1, u) of motion in the (t, x) plane; velocities shown where the density is "
                 "above 2% of its peak")
    fig.colorbar(axes[0, 0].images[0], ax=list(axes[0]), label="density (one scale)")
    fig.colorbar(im, ax=list(axes[1]), label="velocity u (one scale)")
    return [save(fig, out_dir, "fig_10_marginal.png")]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

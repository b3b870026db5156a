"""Figure 3: RealNVP on the two moons, (a) forward propagation (data to latent), (b) inverse propagation (latent to data).

In the RealNVP paper's naming, which the lecture's figure follows, the network f maps
data to latent ("forward", inference) and its inverse maps latent to data ("inverse",
generation); here that f is T^{-1}. Every coupling moves one coordinate given the other,
so the intermediate points x_k are shown every two layers. Row (a): data points x = x_K
pulled back layer by layer, each inverted in closed form, to z = x_0, which should look
like N(0, I); row (b): z ~ N(0, I) pushed forward to x = T(z), which should look like the
data. Colours follow the points through the layers.
"""

import sys

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle
import numpy as onp

from figures._cli import run_figure
from figures._style import projected
from figures._flows import moons_realnvp
from reference.distributions import standard_normal_logpdf
from reference.flows.chain import realnvp_forward, realnvp_inverse
from reference.plot import grid_points, save

EXTENT = (-3.5, 3.5, -3.5, 3.5)


def base_contours(ax):
    """Contours of N(0, I) at 1, 2 and 3 standard deviations."""
    X, Y, pts = grid_points(EXTENT, 120)
    p = onp.exp(standard_normal_logpdf(pts)).reshape(X.shape)
    levels = onp.exp(-0.5 * onp.array([3.0, 2.0, 1.0]) ** 2) / (2 * onp.pi)
    ax.contour(X, Y, p, levels=levels, colors="0.5", linewidths=0.7)


def common_limit(paths):
    """Half-width of one square holding 99.5% of the points of every panel (rounded up to a whole number)."""
    bulk = max(float(onp.percentile(onp.abs(p), 99.5)) for p in paths)
    return float(onp.ceil(max(bulk, EXTENT[1])))


@projected
def main(out_dir, quick=False):
    params, data, losses = moons_realnvp(quick)
    rng = onp.random.default_rng(3)
    n = 400 if quick else 2500
    K = len(params)
    shown = list(range(K, -1, -2))  # x_K, x_{K-2}, ..., x_0

    x = data[rng.permutation(data.shape[0])[:n]]
    _, _, path_a = realnvp_inverse(params, x, return_path=True)  # path[k] = x_k
    z = rng.standard_normal((n, 2))
    _, _, path_b = realnvp_forward(params, z, return_path=True)
    inner = [k for k in shown if k not in (0, K)]
    limit = common_limit([path_a[k] for k in inner] + [path_b[k] for k in inner])

    fig, axes = plt.subplots(2, len(shown), figsize=(14, 8.2), layout="constrained")
    colour_a = x[:, 0]
    colour_b = onp.arctan2(z[:, 1], z[:, 0])
    for j, k in enumerate(shown):
        ax = axes[0, j]
        ax.scatter(path_a[k, :, 0], path_a[k, :, 1], c=colour_a, cmap="coolwarm", s=3, linewidths=0)
        label = "x = x_K ~ p_data" if k == K else ("z = x_0 = T^-1(x)" if k == 0 else f"x_{k}")
        ax.set_title(f"(a) {label}")
    for j, k in enumerate(shown[::-1]):
        ax = axes[1, j]
        ax.scatter(path_b[k, :, 0], path_b[k, :, 1], c=colour_b, cmap="hsv", s=3, linewidths=0)
        label = "z = x_0 ~ N(0, I)" if k == 0 else ("x = x_K = T(z)" if k == K else f"x_{k}")
        ax.set_title(f"(b) {label}")
    base_contours(axes[0, -1])
    base_contours(axes[1, 0])
    for row in axes:
        for j, ax in enumerate(row):
            if j in (0, len(shown) - 1):  # data and latent space, on the square of EXTENT
                ax.set_xlim(EXTENT[:2])
                ax.set_ylim(EXTENT[2:])
            else:  # the intermediate spaces, on one larger square, with the end panels' square dashed
                ax.add_patch(Rectangle((EXTENT[0], EXTENT[2]), EXTENT[1] - EXTENT[0], EXTENT[3] - EXTENT[2],
                                       fill=False, ls="--", lw=1.0, ec="0.4"))
                ax.set_xlim(-limit, limit)
                ax.set_ylim(-limit, limit)
            ax.set_aspect("equal")
    for ax in axes[1]:
        ax.set_xlabel("first coordinate")
    axes[0, 0].set_ylabel("(a) forward: data to latent\nsecond coordinate")
    axes[1, 0].set_ylabel("(b) inverse: latent to data\nsecond coordinate")
    nll = float(onp.mean(losses[-50:]))
    fig.suptitle(f"Figure 3: RealNVP, K = {K} affine couplings (eq. (3), halves alternating), on the two moons; every "
                 f"second layer (training NLL {nll:.2f})\n(a) colour = first coordinate of the data point; (b) colour = angle of z; "
                 f"grey circles: N(0, I) at 1, 2, 3 sd;\nmiddle panels on one scale of +-{limit:g}; dashed: the square "
                 f"[-3.5, 3.5]^2 of the outer panels")
    return [save(fig, out_dir, "fig_03_realnvp.png")]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

"""Figure 8: conditional probability paths as linear interpolation, and their empirical average.

Left: p(x | t, z_i) = N((1 - t) x0 + t x1, sigma^2) for six pairs z_i = (x0, x1), with
a small sigma so the paths can be drawn as densities. Right: the empirical average
(1/N) sum_i p(x | t, z_i) for growing N, next to the exact p(x | t) (the closed form for
Gaussian-mixture data), which it approaches.
"""

import sys

import matplotlib.pyplot as plt
import numpy as onp

from figures._cli import run_figure
from figures._style import projected
from reference.distributions import GaussianMixture
from reference.marginal import marginal_logpdf
from reference.oracles import GaussianMixtureOracle
from reference.paths import LinearInterpolationPath
from reference.plot import BLUE, RED, save, time_space_image, time_space_values

SIGMA = 0.08
DATA = GaussianMixture([0.35, 0.65], onp.array([[-1.6], [1.8]]), onp.array([0.35**2, 0.55**2]))


@projected
def main(out_dir, quick=False):
    rng = onp.random.default_rng(8)
    path = LinearInterpolationPath(SIGMA)
    n_t, n_x = (40, 60) if quick else (160, 220)
    t = onp.linspace(0.0, 1.0, n_t)
    x = onp.linspace(-4.0, 4.0, n_x)
    sizes = (10, 100) if quick else (10, 100, 2000)

    z_all = path.sample_z(max(sizes), DATA.sample(max(sizes), rng), rng)
    six = tuple(c[:6] for c in z_all)
    panels = [("six conditional paths", six)] + [(f"average of N = {n}", tuple(c[:n] for c in z_all)) for n in sizes]
    exact = onp.exp(time_space_values(GaussianMixtureOracle(DATA, path).logpdf, t, x))
    vmax = float(exact.max())  # one colour scale: the exact density's peak; higher values saturate

    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(15, 3.9), sharey=True, layout="constrained")
    for ax, (title, z) in zip(axes, panels):
        p = onp.exp(time_space_values(lambda pts, s: marginal_logpdf(path, pts, s, z), t, x))
        time_space_image(ax, p, t, x, vmax=vmax)
        ax.set_title(title)
    axes[0].scatter(onp.zeros(6), six[0][:, 0], s=30, color=BLUE, zorder=3, clip_on=False, label="x0 ~ p0")
    axes[0].scatter(onp.ones(6), six[1][:, 0], s=30, color=RED, zorder=3, clip_on=False, label="x1 ~ p_data")
    axes[0].legend(loc="lower left", framealpha=0.8)
    time_space_image(axes[-1], exact, t, x, vmax=vmax)
    axes[-1].set_title("exact p(x | t)")
    for ax in axes[1:]:
        ax.set_ylabel("")
    fig.colorbar(axes[0].images[0], ax=list(axes), extend="max", label="density (one scale)")
    fig.suptitle(f"Figure 8: linear-interpolation paths p(x | t, z_i) = N((1 - t) x0 + t x1, sigma^2), sigma = {SIGMA}; "
                 "(1/N) sum_i p(x | t, z_i) -> p(x | t)")
    return [save(fig, out_dir, "fig_08_linear_paths.png")]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

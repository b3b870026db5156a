"""The flow-matching triptych: samples flowing from p0 to the data, the path p(x | t), its velocity u(x, t).

1-D Gaussian-mixture data, the lecture's paths (linear interpolation with sigma = 0, or
conical: the same marginal), and the closed-form marginal path and velocity (oracle).
Left: samples of p0 = N(0, 1) (blue) carried by the ODE dx/dt = u(x, t) (RK4) to the data
distribution (red), with p(x | t) at intermediate times (dashed). Centre: p(x | t) as a
heat map over (t, x), with p0 and p_data in grey at the ends. Right: u(x, t) in colour,
with arrows along (1, u), the direction of motion in the (t, x) plane.
"""

import sys

import matplotlib.pyplot as plt
import numpy as onp

from figures._cli import run_figure
from figures._style import projected
from reference.distributions import GaussianMixture, standard_normal_logpdf
from reference.ode import integrate
from reference.oracles import GaussianMixtureOracle
from reference.paths import ConicalGaussianPath
from reference.plot import BLUE, GREY, RED, save, time_space_image, time_space_values

DATA = GaussianMixture([0.3, 0.2, 0.5], onp.array([[-2.0], [0.3], [2.0]]), onp.array([0.3**2, 0.25**2, 0.45**2]))
X_LIM = (-4.0, 4.0)


def density_profile(ax, t, x, p, scale, **kwargs):
    """Draw a density ``p(x)`` as a curve hanging from the vertical line at time ``t``."""
    ax.plot(t + scale * p, x, **kwargs)


@projected
def main(out_dir, quick=False):
    oracle = GaussianMixtureOracle(DATA, ConicalGaussianPath())  # = the linear path with sigma = 0
    rng = onp.random.default_rng(11)
    n_t, n_x = (50, 60) if quick else (200, 240)
    t = onp.linspace(0.0, 1.0, n_t)
    x = onp.linspace(*X_LIM, n_x)
    n_samples, n_steps = (40, 20) if quick else (150, 100)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.9), sharey=True, layout="constrained")

    # left: samples of p0 following the velocity field
    ax = axes[0]
    x0 = onp.sort(rng.standard_normal((n_samples, 1)), axis=0)
    path, times = integrate(oracle.velocity, x0, 0.0, 1.0, n_steps=n_steps, method="rk4", return_path=True)
    ax.plot(times, path[:, :, 0], color=GREY, lw=0.6, alpha=0.7)
    ax.scatter(onp.zeros(n_samples), x0[:, 0], s=8, color=BLUE, zorder=3, clip_on=False)
    ax.scatter(onp.ones(n_samples), path[-1, :, 0], s=8, color=RED, zorder=3, clip_on=False)
    xs = x[:, None]
    density_profile(ax, 0.0, x, onp.exp(standard_normal_logpdf(xs)), -0.25, color=BLUE, lw=2, clip_on=False)
    density_profile(ax, 1.0, x, onp.exp(DATA.logpdf(xs)), 0.25, color=RED, lw=2, clip_on=False)
    for s in (0.25, 0.5, 0.75):
        density_profile(ax, s, x, onp.exp(oracle.logpdf(xs, s)), 0.25, color="k", lw=1, ls="--")
    ax.set_xlim(-0.12, 1.12)
    ax.set_title("samples of p0 (blue) flow to p_data (red);\np(x | t) at t = 0.25, 0.5, 0.75 dashed")
    ax.set_xlabel("t")
    ax.set_ylabel("x")

    # centre: the probability path as a heat map
    ax = axes[1]
    time_space_image(ax, onp.exp(time_space_values(oracle.logpdf, t, x)), t, x, colorbar="p(x | t)")
    density_profile(ax, 0.0, x, onp.exp(standard_normal_logpdf(xs)), 0.25, color="0.8", lw=1.5)
    density_profile(ax, 1.0, x, onp.exp(DATA.logpdf(xs)), -0.25, color="0.8", lw=1.5)
    ax.set_title("the probability path p(x | t);\np0 and p_data in grey")
    ax.set_ylabel("")

    # right: the velocity field
    ax = axes[2]
    u = time_space_values(oracle.velocity, t, x)[..., 0]
    vlim = onp.quantile(onp.abs(u), 0.98)
    im = ax.imshow(u, origin="lower", extent=(0, 1, *X_LIM), aspect="auto", cmap="coolwarm", vmin=-vlim, vmax=vlim)
    ta, xa = onp.linspace(0.03, 0.97, 12 if quick else 16), onp.linspace(X_LIM[0] + 0.25, X_LIM[1] - 0.25, 14 if quick else 19)
    Ta, Xa = onp.meshgrid(ta, xa)
    Ua = time_space_values(oracle.velocity, ta, xa)[..., 0]
    norm = onp.hypot(1.0, Ua / (X_LIM[1] - X_LIM[0]))  # arrows of about one on-screen length
    ax.quiver(Ta, Xa, 1.0 / norm, Ua / norm, angles="xy", color="k", scale=34, width=0.004, headwidth=3.5)
    fig.colorbar(im, ax=ax, label="u(x, t)")
    ax.set_title("the velocity field u(x, t) (colour);\narrows: direction (1, u) of motion in (t, x)")
    ax.set_xlabel("t")

    fig.suptitle("Flow matching (the lecture's unnumbered triptych): 1-D Gaussian-mixture data, "
                 "closed-form p(x | t) and u(x, t) of the linear / conical path")
    return [save(fig, out_dir, "fig_11_flow_matching.png")]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

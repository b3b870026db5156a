"""Figure 12: the z whose trajectories pass close to a point (t, x), and their average velocity.

Each pair z_i = (x0, x1) is the straight trajectory (1 - t) x0 + t x1, drawn faintly.
For a point (t, x) the posterior weights p(z_i | x, t) of eq. (9)-(10) (linear path
with a small sigma, so that "close" has a width) pick out the trajectories passing near
it; they are drawn with opacity proportional to their weight, and the marginal velocity
u(x, t) = sum_i p(z_i | x, t) (x1_i - x0_i), the average of their directions, is the
arrow at the point. The PNG shows a grid of points; run the script with a GUI backend
(e.g. ``MPLBACKEND=TkAgg python -m figures.fig_12_posterior``) and moving the mouse
moves the point.
"""

import sys

import matplotlib
import matplotlib.pyplot as plt
import numpy as onp
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap, Normalize

from figures._cli import run_figure
from figures._style import projected
from reference.distributions import GaussianMixture
from reference.marginal import marginal_velocity, posterior_weights
from reference.paths import LinearInterpolationPath
from reference.plot import RED, save

SIGMA = 0.08
DATA = GaussianMixture([0.35, 0.65], onp.array([[-1.6], [1.8]]), onp.array([0.35**2, 0.55**2]))
POINTS = [(0.2, -0.6), (0.5, 0.4), (0.5, -1.2), (0.8, 1.4)]
ORANGE = "#e67e22"


def sample_pairs(n, rng):
    path = LinearInterpolationPath(SIGMA)
    return path, path.sample_z(n, DATA.sample(n, rng), rng)


class PosteriorView:
    """One panel: all trajectories, the posterior-weighted ones, and the average velocity at (t, x)."""

    def __init__(self, ax, path, z):
        self.ax, self.path, self.z = ax, path, z
        x0, x1 = z[0][:, 0], z[1][:, 0]
        segments = onp.stack([onp.stack([onp.zeros_like(x0), x0], 1), onp.stack([onp.ones_like(x1), x1], 1)], axis=1)
        ax.add_collection(LineCollection(segments, colors="0.75", linewidths=0.5, alpha=0.5))
        self.weighted = LineCollection(segments, linewidths=1.4)
        ax.add_collection(self.weighted)
        (self.dot,) = ax.plot([], [], "o", color="k", ms=6, zorder=5)
        (self.arrow,) = ax.plot([], [], "-", color=ORANGE, lw=2.5, zorder=4, solid_capstyle="round")
        ax.set_xlim(0, 1)
        ax.set_ylim(-3.5, 3.5)
        ax.set_xlabel("t")
        ax.set_ylabel("x")

    def move_to(self, t, x):
        point = onp.array([[x]])
        w = posterior_weights(self.path, point, t, self.z)[0]  # p(z_i | x, t), shape (N,)
        u = marginal_velocity(self.path, point, t, self.z)[0, 0]  # sum_i w_i (x1_i - x0_i)
        rgba = onp.zeros((len(w), 4))
        rgba[:, :3] = matplotlib.colors.to_rgb(RED)
        rgba[:, 3] = onp.clip(w / w.max(), 0.0, 1.0)
        self.weighted.set_colors(rgba)
        self.dot.set_data([t], [x])
        h = 0.12  # the velocity as a short segment of slope u through the point
        self.arrow.set_data([t - h, t + h], [x - h * u, x + h * u])
        ess = 1.0 / onp.sum(w**2)
        self.ax.set_title(f"(t, x) = ({t:.2f}, {x:.2f}): u = {u:.2f}\neffective number of z: {ess:.0f}")
        return u


def interactive(quick):
    """Whether to open the mouse-driven view: not in quick mode, and only with a GUI backend."""
    from matplotlib.backends import BackendFilter, backend_registry

    return not quick and matplotlib.get_backend().lower() in backend_registry.list_builtin(BackendFilter.INTERACTIVE)


def connect_mouse(fig, view):
    """Move the point with the mouse: a motion_notify_event handler, returned for tests."""
    def on_move(event):
        if event.inaxes is view.ax and event.xdata is not None and 0.0 <= event.xdata < 1.0:
            view.move_to(float(event.xdata), float(event.ydata))
            fig.canvas.draw_idle()
    fig.canvas.mpl_connect("motion_notify_event", on_move)
    return on_move


@projected
def main(out_dir, quick=False):
    rng = onp.random.default_rng(12)
    path, z = sample_pairs(120 if quick else 400, rng)
    fig, axes = plt.subplots(1, len(POINTS), figsize=(15, 4.4), sharey=True, layout="constrained")
    for ax, (t, x) in zip(axes, POINTS):
        PosteriorView(ax, path, z).move_to(t, x)
    for ax in axes[1:]:
        ax.set_ylabel("")
    weight_scale = ListedColormap(onp.linspace([1.0, 1.0, 1.0], matplotlib.colors.to_rgb(RED), 256))
    fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), weight_scale), ax=list(axes), shrink=0.9,
                 label="p(z_i | x, t) / max_i p(z_i | x, t)\n(opacity of trajectory i)")
    fig.suptitle(f"Figure 12: {len(z[0])} trajectories z = (x0, x1) (grey), weighted by p(z | x, t) (red, sigma = {SIGMA}), "
                 "at four points (t, x) (black)\nand their average velocity u(x, t) = sum_i p(z_i | x, t) (x1_i - x0_i) "
                 "(orange segment of slope u); effective number of z = 1 / sum_i p(z_i | x, t)^2")
    paths = [save(fig, out_dir, "fig_12_posterior.png")]
    if interactive(quick):
        fig, ax = plt.subplots(figsize=(6, 4.5))
        view = PosteriorView(ax, path, z)
        view.move_to(*POINTS[1])
        connect_mouse(fig, view)
        plt.show()
    return paths


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

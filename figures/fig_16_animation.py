"""Animation: samples of p0 = N(0, I) following the learned velocity field to the data.

The flow-matching model of ``8gaussians`` (linear path, CFM loss, Adam) is integrated
with RK4 from t = 0 to t = 1; each frame shows the samples x(t) over the learned field
v_theta(., t) (arrows, one scale for all frames), as in the right panel of the lecture's
flow-matching triptych, with the data in red on the last frame, which is held. Written as
an animated GIF of 800 x 840 pixels with Pillow (which matplotlib depends on).
"""

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as onp
from PIL import Image

from figures._cli import run_figure
from figures._style import QUICK_DPI, projected
from figures._models import N_STEPS, QUICK_STEPS, trained_model
from reference.distributions import make_dataset
from reference.ode import integrate
from reference.plot import BLUE, RED, grid_points, velocity_arrows
from reference.train import model_velocity

DATASET = "8gaussians"
EXTENT = (-5.5, 5.5, -5.5, 5.5)
N_ARROWS = 15
FPS = 10


@projected
def main(out_dir, quick=False):
    n_steps = QUICK_STEPS if quick else N_STEPS
    n_samples, n_frames, hold = (200, 5, 1) if quick else (800, 41, 10)
    rng = onp.random.default_rng(16)
    u = model_velocity(trained_model(DATASET, n_steps).params)
    states, times = integrate(u, rng.standard_normal((n_samples, 2)), 0.0, 1.0, n_frames - 1, "rk4",
                              return_path=True)
    data = make_dataset(DATASET, n_samples, rng)
    _, _, grid = grid_points(EXTENT, N_ARROWS)
    speed = max(float(onp.max(onp.linalg.norm(u(grid, float(t)), axis=1))) for t in times)
    arrow_scale = speed / (0.9 * (EXTENT[1] - EXTENT[0]) / N_ARROWS)  # one scale for every frame

    fig, ax = plt.subplots(figsize=(8.0, 8.4))
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.07, top=0.86)  # fixed: no layout work per frame

    # the artists are made once and moved at each frame (no new axes, ticks or legend per frame)
    arrows = velocity_arrows(ax, u, float(times[0]), EXTENT, n=N_ARROWS, color="0.55", alpha=0.8, width=0.003,
                             angles="xy", scale_units="xy", scale=arrow_scale)
    shown_data = ax.scatter(data[:, 0], data[:, 1], s=8, c=RED, alpha=0.6, linewidths=0, label="data (at t = 1)")
    moving = ax.scatter(states[0, :, 0], states[0, :, 1], s=8, c=BLUE, linewidths=0, label="samples x(t)")
    ax.legend(loc="upper right", markerscale=2, framealpha=1.0)
    ax.set_xlim(EXTENT[:2])
    ax.set_ylim(EXTENT[2:])
    ax.set_aspect("equal")
    ax.set_xlabel("x_1")
    ax.set_ylabel("x_2")
    clock = ax.set_title("", fontsize=20, loc="left")
    ax.set_title(f"{DATASET}, RK4", loc="right")

    def draw(k):
        t = float(times[k])
        v = onp.asarray(u(grid, t))
        arrows.set_UVC(v[:, 0], v[:, 1])
        shown_data.set_visible(k == n_frames - 1)
        moving.set_offsets(states[k])
        clock.set_text(f"t = {t:.2f}")
        return arrows, shown_data, moving, clock

    fig.suptitle("x0 ~ N(0, I) following the learned field v_theta(x, t)\n(grey arrows, one scale; "
                 "lecture: Flow Matching)", fontsize=15)
    # each frame drawn once and reduced to a small palette (Pillow's fast octree: the default
    # median cut costs more than the drawing at 800 x 840 pixels); the last frame is held longer
    fig.set_dpi(QUICK_DPI if quick else 100)
    images = []
    for k in range(n_frames):
        draw(k)
        fig.canvas.draw()
        rgb = Image.frombuffer("RGBA", fig.canvas.get_width_height(), fig.canvas.buffer_rgba()).convert("RGB")
        images.append(rgb.quantize(colors=64, method=Image.Quantize.FASTOCTREE))
    plt.close(fig)
    path = Path(out_dir) / "fig_16_animation.gif"
    path.parent.mkdir(parents=True, exist_ok=True)
    durations = [1000 // FPS] * (n_frames - 1) + [(1 + hold) * 1000 // FPS]
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0)
    return [path]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

"""Animation: samples of p0 = N(0, I) following the learned velocity field to the data.

The flow-matching model of ``8gaussians`` (linear path, CFM loss, Adam) is integrated
with RK4 from t = 0 to t = 1; each frame shows the samples x(t) over the learned field
v_theta(., t) (arrows), as in the right panel of the lecture's flow-matching triptych,
with the data in grey at the last frames. Written as an animated GIF with matplotlib's
``PillowWriter``.
"""

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as onp
from matplotlib.animation import FuncAnimation, PillowWriter

from figures._cli import run_figure
from figures._models import N_STEPS, QUICK_STEPS, trained_model
from reference.distributions import make_dataset
from reference.ode import integrate
from reference.plot import BLUE, velocity_arrows
from reference.train import model_velocity

DATASET = "8gaussians"
EXTENT = (-5.5, 5.5, -5.5, 5.5)


def main(out_dir, quick=False):
    n_steps = QUICK_STEPS if quick else N_STEPS
    n_samples, n_frames, hold = (200, 5, 1) if quick else (600, 41, 8)
    rng = onp.random.default_rng(16)
    u = model_velocity(trained_model(DATASET, n_steps).params)
    states, times = integrate(u, rng.standard_normal((n_samples, 2)), 0.0, 1.0, n_frames - 1, "rk4",
                              return_path=True)
    data = make_dataset(DATASET, n_samples, rng)

    fig, ax = plt.subplots(figsize=(4.0, 4.2))
    frames = list(range(n_frames)) + [n_frames - 1] * hold  # hold the last frame

    def draw(k):
        ax.clear()
        t = float(times[k])
        velocity_arrows(ax, u, t, EXTENT, n=13, color="0.55", alpha=0.7, width=0.004)
        if k == n_frames - 1:
            ax.scatter(data[:, 0], data[:, 1], s=3, c="0.65", linewidths=0, label="data")
        ax.scatter(states[k, :, 0], states[k, :, 1], s=4, c=BLUE, linewidths=0, label="x(t)")
        ax.set_xlim(EXTENT[:2])
        ax.set_ylim(EXTENT[2:])
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"samples following v_theta (lecture: Flow Matching)\nt = {t:.3f}", fontsize=9)

    animation = FuncAnimation(fig, draw, frames=frames)
    path = Path(out_dir) / "fig_16_animation.gif"
    path.parent.mkdir(parents=True, exist_ok=True)
    animation.save(path, writer=PillowWriter(fps=12), dpi=60 if quick else 80)
    plt.close(fig)
    return [path]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

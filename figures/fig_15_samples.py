"""Samples of trained flow-matching models on every 2-D toy data set, Euler against RK4, with a sample-quality measure.

Step 4 of "Flow Matching In Practice" trains one velocity network per data set (linear
path, CFM loss, Adam; budgets in ``figures._models.BUDGETS``); step 5 pushes
``x0 ~ N(0, I)`` through ``dx/dt = v_theta(x, t)`` with the lecture's Euler scheme
``x_{k+1} = x_k + (1/N) v_theta(x_k, k/N)`` and with RK4, both with the same N steps.

Each panel's quality is the squared maximum mean discrepancy to fresh data,
``MMD^2 = E k(X, X') + E k(Y, Y') - 2 E k(X, Y)`` with a Gaussian kernel of bandwidth
``H`` (``reference.metrics.mmd2``, the unbiased U-statistic), averaged over ``R``
independent blocks of samples, with its standard error. The noise floor is the same
measure between two independent draws of the data (mean and standard error over ``R``
pairs): a perfect model scores it. The panel says "at the floor" when the two are within
``K_SE`` standard errors of their difference, and otherwise by how many standard errors
it lies above (a value below the floor is within the noise, so it reads "at the floor").
The bandwidth is small, the width of the data's finest structure (spiral arms, rings),
so that the measure sees what the eye sees: the energy distance and a median-heuristic
bandwidth are dominated by the data's large-scale shape and barely tell a blurred
checkerboard from a sharp one.
"""

import sys
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as onp

from figures._cli import run_figure
from figures._style import projected
from figures._models import budget, budget_model
from reference.distributions import DATASETS, make_dataset
from reference.metrics import mmd2
from reference.plot import BLUE, GREY, RED, samples, save
from reference.train import sample_model

N_ODE = 8
"""Steps of both integrators (Euler: N evaluations of v_theta; RK4: 4N)."""

H = 0.2
"""Bandwidth of the Gaussian kernel of the MMD: about the width of the spiral arms and rings."""

N_BLOCK, N_BLOCKS = 1000, 8
QUICK_BLOCK, QUICK_BLOCKS = 200, 4
"""Points per block and blocks of the MMD estimate (full and quick mode). The standard error of
the mean over blocks depends on the total kernel evaluations, about ``N_BLOCKS * N_BLOCK^2``;
eight blocks give it from seven degrees of freedom."""

N_SHOW = 2000
"""Points drawn per panel (full mode; the first blocks)."""

K_SE = 3.0
"""A model is "at the floor" when its MMD^2 is within K_SE standard errors of the floor's."""

UNIT = 1e-4
"""MMD^2 values are printed in units of 1e-4."""

EXTENT = 5.5


class Quality(NamedTuple):
    """A sample set's MMD^2 to the data and the data's noise floor, each a mean over blocks with its standard error."""

    mmd2: float
    se: float
    floor: float
    floor_se: float

    @property
    def excess_se(self):
        """Standard errors of the difference by which ``mmd2`` exceeds the floor (negative: below)."""
        return (self.mmd2 - self.floor) / onp.hypot(self.se, self.floor_se)

    @property
    def at_floor(self):
        """Whether ``mmd2`` is within ``K_SE`` standard errors of the floor (or below it)."""
        return self.excess_se <= K_SE

    def verdict(self):
        """``"at the floor"`` or ``"<k> SE above the floor"``: never a value below the floor."""
        if self.at_floor:
            return "at the floor"
        return f"{self.excess_se:.1f} SE above the floor" if self.excess_se < 10 else f"{self.excess_se:.0f} SE above the floor"


def _mean_se(values):
    values = onp.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1) / onp.sqrt(values.size))


def noise_floor_blocks(name, n, n_blocks, rng):
    """The noise floor: MMD^2 between two independent draws of ``n`` data points, ``n_blocks`` times: ``(mean, se)``."""
    return _mean_se([mmd2(make_dataset(name, n, rng), make_dataset(name, n, rng), bandwidth=H)
                     for _ in range(n_blocks)])


def sample_quality(x, name, n_blocks, rng, floor):
    """MMD^2 of ``x`` (``n_blocks`` blocks of equal size) to fresh data of ``name``, against ``floor = (mean, se)``.

    Args:
        x: independent samples of the model, shape ``(n_blocks * n, 2)``, cut into blocks in order.
        name: the data set.
        n_blocks: the number of blocks ``x`` is cut into (at least 2, for a standard error).
        rng: draws a fresh block of data for each block of ``x``.
        floor: ``(mean, se)`` of ``noise_floor_blocks`` with the same block size.

    Returns:
        a ``Quality``.
    """
    blocks = onp.split(onp.asarray(x), n_blocks)
    value, se = _mean_se([mmd2(b, make_dataset(name, b.shape[0], rng), bandwidth=H) for b in blocks])
    return Quality(value, se, *floor)


def _schedule_text(schedules):
    """Adam's step sizes of ``{(name, lr, lr_decay)}`` in a few words: the common lr, the exceptions by name, the fall."""
    lrs = [lr for _, lr, _ in schedules]
    common = max(set(lrs), key=lrs.count)
    others = sorted((name, lr) for name, lr, _ in schedules if lr != common)
    text = f"lr {common:g}" + (" (" + ", ".join(f"{name} {lr:g}" for name, lr in others) + ")" if others else "")
    decays = sorted({decay for _, _, decay in schedules if decay})
    return text + "".join(f"; * falling to 0 over the last {decay:.0%} of the steps" for decay in decays)


@projected
def main(out_dir, quick=False):
    n, n_blocks = (QUICK_BLOCK, QUICK_BLOCKS) if quick else (N_BLOCK, N_BLOCKS)
    names = list(DATASETS)
    fig, axes = plt.subplots(3, len(names), figsize=(15, 9.4), sharex=True, sharey=True, layout="constrained")
    fig.get_layout_engine().set(h_pad=0.08)  # room below the x_1 labels' subscripts at the canvas's edge
    lrs = set()
    rows = [("data", None), (f"Euler, {N_ODE} steps\n({N_ODE} evaluations)", "euler"),
            (f"RK4, {N_ODE} steps\n({4 * N_ODE} evaluations)", "rk4")]
    for j, name in enumerate(names):
        rng = onp.random.default_rng(15 + j)
        b = budget(name, quick)
        params = budget_model(name, quick).params
        floor = noise_floor_blocks(name, n, n_blocks, rng)
        n_show = min(N_SHOW, n * n_blocks)
        x0_seed = int(rng.integers(2**31))
        for i, (label, method) in enumerate(rows):
            ax = axes[i, j]
            if method is None:
                samples(ax, make_dataset(name, n_show, rng), color=GREY, size=2.5, alpha=0.5)
                ax.set_title(f"{name}\n{b.n_steps} steps{' *' if b.lr_decay else ''}, batch {b.batch_size}\n"
                             f"floor {floor[0] / UNIT:.1f} ± "
                             f"{floor[1] / UNIT:.1f}")
                lrs.add((name, b.lr, b.lr_decay))
            else:
                x = sample_model(params, n * n_blocks, onp.random.default_rng(x0_seed), method=method, n_steps=N_ODE)
                q = sample_quality(x, name, n_blocks, rng, floor)
                samples(ax, x[:n_show], color=RED if method == "euler" else BLUE, size=2.5, alpha=0.5)
                ax.set_title(f"MMD² {q.mmd2 / UNIT:.1f} ± {q.se / UNIT:.1f}\n{q.verdict()}", fontsize=12)
            ax.set_xlim(-EXTENT, EXTENT)
            ax.set_ylim(-EXTENT, EXTENT)
            ax.set_aspect("equal")
            ax.set_xticks([-4, 0, 4])
            ax.set_yticks([-4, 0, 4])
            if j == 0:
                ax.set_ylabel(label)
            if i == len(rows) - 1:
                ax.set_xlabel("$x_1$")
    fig.suptitle(f"Samples of CFM models (linear path; Adam, {_schedule_text(lrs)}"
                 f"{'; quick mode: untrained' if quick else ''}), "
                 f"Euler against RK4 with {N_ODE} steps\n(lecture: Flow Matching In Practice, step 5); "
                 f"{min(N_SHOW, n * n_blocks)} samples per panel. "
                 f"MMD² (units of {UNIT:.0e}, Gaussian kernel h = {H}) to fresh data,\nmean ± SE over {n_blocks} blocks "
                 f"of {n}; floor = the same between two draws of the data; at the floor = within {K_SE:g} SE",
                 fontsize=12)
    return [save(fig, out_dir, "fig_15_samples.png")]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

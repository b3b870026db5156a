"""Velocity fields trained by conditional flow matching, shared by the figure scripts and the claims.

``trained_model`` trains once per process, set of arguments and mode (``cached_per_mode``),
so that figures 13 to 16 and the claims of part 4 reuse the same few models within
``python -m figures``. Every model uses the lecture's linear-interpolation path
(sigma = 0) and an MLP of ``HIDDEN`` widths; the data set, the training budget (steps,
batch size, Adam's step size), the seed and minibatch OT pairing vary. Trainings that
last more than a few seconds report their progress on stderr (``figures._progress``).
"""

from typing import NamedTuple

import numpy as onp

from figures import cached_per_mode
from figures._progress import Progress
from reference.distributions import make_dataset
from reference.paths import LinearInterpolationPath
from reference.train import train_cfm

HIDDEN = (64, 64, 64)
"""Hidden widths of every shared model's MLP ``[x, t] -> v``."""

SETTINGS = {"batch_size": 256, "hidden": HIDDEN, "lr": 2e-3}
"""Default training settings (those of figures 13, 14, 16 and the claims of part 4)."""

N_STEPS, QUICK_STEPS = 5000, 40
"""Adam steps of the shared ``8gaussians`` model in full and quick mode (figures 13 to 16 and the claims share it)."""


class Budget(NamedTuple):
    """What a model's training costs: Adam steps, minibatch size, Adam's step size and the fraction of the
    last steps over which that step size falls linearly towards 0 (``reference.train.step_size``)."""

    n_steps: int
    batch_size: int
    lr: float
    lr_decay: float = 0.0


BUDGETS = {
    "moons": Budget(4000, 256, 2e-3, 0.4),
    "8gaussians": Budget(4000, 256, 2e-3, 0.4),
    "checkerboard": Budget(20_000, 256, 3e-3, 0.4),
    "cross": Budget(3500, 256, 2e-3, 0.4),
    "spirals": Budget(20_000, 256, 3e-3, 0.4),
    "rings": Budget(13_000, 256, 3e-3, 0.0),
}
"""Training budget of each data set's model in figure 15 (full mode): about 65,000 steps of
batch 256 in all, about 2 minutes on one core, which ``python -m figures`` spends in a
second process while the first makes the other figures.

Measured with figure 15's MMD^2 (Gaussian kernel h = 0.2, units of 1e-4; 8 blocks of 1000
samples by RK4 with 8 steps; the noise floor is 0 +- 1.5 there) along the training of this seed:

- with a constant step size, the quality of the noise-limited data sets jumps from step to
  step (moons at batch 256, lr 2e-3: 17.4, 14.0, 29.5, 18.9 after 3k, 4k, 5k, 6k steps;
  8gaussians: 10.3, 30.9, 9.6, 13.3; cross: 4.3, 2.4, 1.7, 4.5 after 2k to 5k), because
  Adam's constant step keeps the parameters moving; the step size falling over the last
  40% of the steps settles them (moons 10.4, 8gaussians 7.9 after 4k steps; 7.6 for
  8gaussians after 6000 steps of batch 1024 at a constant step, six times the cost). An
  average of the parameters (decay 0.999) did not help (20.0 and 12.7);
- checkerboard and spirals are limited by the optimisation rather than by noise, and the
  fall helps them too: with lr 2e-3, 8.3 and 6.0 after 16k steps (constant: 11.6 and 10.8
  after 15k); with lr 3e-3, 7.2 and 7.5 after 14k, 2.9 and 3.6 after 20k (the squares'
  corners and the arms' centre resolved). Batch 1024 reaches 2.5 for both after 20k
  steps, at four times the cost per step; at equal cost batch 256 is ahead (batch 1024
  after 6k steps: 13.2 and 16.6);
- rings change late (constant lr 2e-3: 45.7, 27.9, 16.3, 7.4 after 10k, 12k, 13.5k, 15k
  steps), and a fall from 9k on stops that change (23.1 after 15k); a constant lr 3e-3
  gets there sooner: 13.2, 10.8, 4.9 after 10k, 11.5k, 13k."""

QUICK_BUDGET = Budget(QUICK_STEPS, SETTINGS["batch_size"], SETTINGS["lr"], 0.0)
"""The budget of every model in quick mode (a smoke test, not a trained model)."""


def budget(name, quick=False):
    """The training ``Budget`` of the model of data set ``name`` (``QUICK_BUDGET`` in quick mode)."""
    if name not in BUDGETS:
        raise ValueError(f"name must be one of {list(BUDGETS)}, got {name!r}")
    return QUICK_BUDGET if quick else BUDGETS[name]


N_DATA = 20_000
"""Size of the training set drawn from ``make_dataset``."""

N_CHECKPOINTS = 24
"""Parameters are kept at about this many log-spaced steps (for learning curves)."""

N_TAIL = 50
"""Parameters are also kept at each of the last ``N_TAIL`` steps (for the plateau of the loss)."""


class TrainedModel(NamedTuple):
    """A trained field: final parameters, minibatch losses, ``(step, params)`` checkpoints and the last steps' params."""

    params: list
    losses: onp.ndarray
    checkpoints: tuple
    tail: tuple


def checkpoint_steps(n_steps):
    """Log-spaced steps ``0 = s_0 < s_1 < ... < n_steps - 1`` at which parameters are kept."""
    steps = onp.unique(onp.round(onp.geomspace(1, n_steps, N_CHECKPOINTS)).astype(int) - 1)
    return tuple(int(s) for s in steps)


OT_STEPS, OT_BATCH = 2000, 128
"""Steps and batch of the pair of models compared with and without minibatch OT (figure 14):
exact OT costs O(batch^3) per step (about 20 ms at 256, 3 ms at 128)."""


def trained_model(name, n_steps, seed=0, ot_pairing=False, batch_size=SETTINGS["batch_size"], lr=SETTINGS["lr"],
                  lr_decay=0.0):
    """Train (once per process) a CFM velocity field on the toy data set ``name``.

    Args:
        name: a data set of ``reference.distributions.make_dataset``.
        n_steps: Adam steps.
        seed: seeds the data, the initial parameters and the minibatches.
        ot_pairing: pair each minibatch by exact OT.
        batch_size: minibatch size (default that of ``SETTINGS``).
        lr: Adam's step size (default that of ``SETTINGS``).
        lr_decay: the fraction of the last steps over which it falls towards 0 (default 0: constant).

    Returns:
        a ``TrainedModel`` (shared between callers: do not modify its arrays). Its
        checkpoints hold the parameters before the update of each step of
        ``checkpoint_steps(n_steps)``, ``tail`` those of each of the last ``N_TAIL``
        steps (``losses[-len(tail):]`` were taken at them); the final parameters are ``params``.
    """
    # one cache key per model, however the arguments were passed
    return _trained_model(name, int(n_steps), int(seed), bool(ot_pairing), int(batch_size), float(lr), float(lr_decay))


@cached_per_mode
def _trained_model(name, n_steps, seed, ot_pairing, batch_size, lr, lr_decay):
    rng = onp.random.default_rng(seed)
    data = make_dataset(name, N_DATA, rng)
    keep = set(checkpoint_steps(n_steps))
    checkpoints, tail = [], []
    label = (f"CFM on {name} ({n_steps} steps, batch {batch_size}, lr {lr:g}"
             f"{f', falling over the last {lr_decay:.0%}' if lr_decay else ''}{', OT pairing' if ot_pairing else ''})")
    progress = Progress(label, n_steps, enabled=n_steps > QUICK_STEPS)  # quick-mode models stay silent

    def record(params, step, loss):
        if step in keep:
            checkpoints.append((step, params))
        if step >= n_steps - N_TAIL:
            tail.append(params)
        progress.update(step + 1, loss)

    params, losses = train_cfm(data, LinearInterpolationPath(), n_steps, batch_size=batch_size, hidden=HIDDEN,
                               lr=lr, rng=rng, ot_pairing=ot_pairing, callback=record, lr_decay=lr_decay)
    progress.close()
    return TrainedModel(params, losses, tuple(checkpoints), tuple(tail))


def budget_model(name, quick=False):
    """The model of data set ``name`` trained with its ``budget(name, quick)`` (seed 0)."""
    b = budget(name, quick)
    return trained_model(name, b.n_steps, batch_size=b.batch_size, lr=b.lr, lr_decay=b.lr_decay)

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
    """What a model's training costs: Adam steps, minibatch size and Adam's (constant) step size."""

    n_steps: int
    batch_size: int
    lr: float


BUDGETS = {
    "moons": Budget(8000, 256, 2e-3),
    "8gaussians": Budget(6000, 1024, 2e-3),
    "checkerboard": Budget(20_000, 1024, 2e-3),
    "cross": Budget(5000, 256, 2e-3),
    "spirals": Budget(20_000, 1024, 2e-3),
    "rings": Budget(15_000, 1024, 2e-3),
}
"""Training budget of each data set's model in figure 15 (full mode), enough to resolve its
structure (the checkerboard's squares, the spiral arms, the rings).

Measured with figure 15's MMD^2 (Gaussian kernel h = 0.2, units of 1e-4; 4 blocks of 1500
samples by RK4 with 8 steps; the noise floor is 0 +- 1.4 there) along the training of this seed:

- checkerboard: batch 256 reaches 16, 11.6, 11.5 after 10k, 15k, 20k steps (rounded squares);
  batch 1024 reaches 7.2, 5.1, 2.5 (square corners); lr 5e-3 at batch 256: 9.6 after 20k;
  hidden widths 128 at batch 256: 6.0 after 20k (2.5 times the cost per step); lr 4e-3 at
  batch 1024: 5.9, 5.4, 2.2 after 10k, 15k, 20k;
- spirals: batch 256: 14.9, 10.8, 9.6 after 10k, 15k, 20k (the centre filled in); batch 1024:
  9.4, 6.5, 2.5;
- rings: batch 256: 45.6, 8.0, 5.0 after 10k, 15k, 20k; batch 1024: 4.8, 1.9, 1.7 (floor 1.1 +- 0.3);
- moons: batch 256: 11.9, 12.3, 7.9 after 4k, 6k, 8k; batch 1024: 4.5, 5.7, 7.0 after 5k, 7.5k, 10k
  (a plateau: Adam's constant step size keeps the parameters moving);
- 8gaussians: batch 256: 27, 16, 18 after 4k, 6k, 8k; batch 1024: 9.9, 6.0, 10.9 (the same
  plateau, lower with the larger batch; the floor is 0 +- 0.4 there);
- cross: batch 256: 3.1, 3.4, 2.9 after 4k, 6k, 8k.

A step decay of the learning rate did not help the checkerboard (batch 256, 10k steps at
2e-3 then 5k at 2e-4: 13.3, against 11.6 at a constant 2e-3): the larger batch did."""

QUICK_BUDGET = Budget(QUICK_STEPS, SETTINGS["batch_size"], SETTINGS["lr"])
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


def trained_model(name, n_steps, seed=0, ot_pairing=False, batch_size=SETTINGS["batch_size"], lr=SETTINGS["lr"]):
    """Train (once per process) a CFM velocity field on the toy data set ``name``.

    Args:
        name: a data set of ``reference.distributions.make_dataset``.
        n_steps: Adam steps.
        seed: seeds the data, the initial parameters and the minibatches.
        ot_pairing: pair each minibatch by exact OT.
        batch_size: minibatch size (default that of ``SETTINGS``).
        lr: Adam's step size (default that of ``SETTINGS``).

    Returns:
        a ``TrainedModel`` (shared between callers: do not modify its arrays). Its
        checkpoints hold the parameters before the update of each step of
        ``checkpoint_steps(n_steps)``, ``tail`` those of each of the last ``N_TAIL``
        steps (``losses[-len(tail):]`` were taken at them); the final parameters are ``params``.
    """
    # one cache key per model, however the arguments were passed
    return _trained_model(name, int(n_steps), int(seed), bool(ot_pairing), int(batch_size), float(lr))


@cached_per_mode
def _trained_model(name, n_steps, seed, ot_pairing, batch_size, lr):
    rng = onp.random.default_rng(seed)
    data = make_dataset(name, N_DATA, rng)
    keep = set(checkpoint_steps(n_steps))
    checkpoints, tail = [], []
    label = f"CFM on {name} ({n_steps} steps, batch {batch_size}, lr {lr:g}{', OT pairing' if ot_pairing else ''})"
    progress = Progress(label, n_steps, enabled=n_steps > QUICK_STEPS)  # quick-mode models stay silent

    def record(params, step, loss):
        if step in keep:
            checkpoints.append((step, params))
        if step >= n_steps - N_TAIL:
            tail.append(params)
        progress.update(step + 1, loss)

    params, losses = train_cfm(data, LinearInterpolationPath(), n_steps, batch_size=batch_size, hidden=HIDDEN,
                               lr=lr, rng=rng, ot_pairing=ot_pairing, callback=record)
    progress.close()
    return TrainedModel(params, losses, tuple(checkpoints), tuple(tail))


def budget_model(name, quick=False):
    """The model of data set ``name`` trained with its ``budget(name, quick)`` (seed 0)."""
    b = budget(name, quick)
    return trained_model(name, b.n_steps, batch_size=b.batch_size, lr=b.lr)

"""Velocity fields trained by conditional flow matching, shared by the figure scripts and the claims.

``trained_model`` trains once per process, set of arguments and mode (``cached_per_mode``),
so that figures 13 to 16 and the claims of part 4 reuse the same few models within
``python -m figures``. Every model uses the lecture's linear-interpolation path
(sigma = 0) and the settings below; only the data set, the number of steps, the seed
and minibatch OT pairing vary.
"""

import sys
from typing import NamedTuple

import numpy as onp

from figures import cached_per_mode
from reference.distributions import make_dataset
from reference.paths import LinearInterpolationPath
from reference.train import train_cfm

SETTINGS = {"batch_size": 256, "hidden": (64, 64, 64), "lr": 2e-3}
"""Training settings of every shared model (small, so that a model trains in a few seconds)."""

N_STEPS, QUICK_STEPS = 5000, 40
"""Adam steps of the shared models in full and quick mode (one value, so that the figures share models)."""

HARD_STEPS = {"checkerboard": 15_000, "spirals": 15_000, "rings": 15_000}
"""Data sets whose thin, nested structure takes more steps to learn (full mode)."""


def steps_for(name, quick=False):
    """Adam steps for the model of data set ``name``: ``QUICK_STEPS``, or ``N_STEPS`` and more for the hard sets."""
    return QUICK_STEPS if quick else HARD_STEPS.get(name, N_STEPS)

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


@cached_per_mode
def trained_model(name, n_steps, seed=0, ot_pairing=False, batch_size=SETTINGS["batch_size"]):
    """Train (once per process) a CFM velocity field on the toy data set ``name``.

    Args:
        name: a data set of ``reference.distributions.make_dataset``.
        n_steps: Adam steps.
        seed: seeds the data, the initial parameters and the minibatches.
        ot_pairing: pair each minibatch by exact OT.
        batch_size: minibatch size (default that of ``SETTINGS``).

    Returns:
        a ``TrainedModel`` (shared between callers: do not modify its arrays). Its
        checkpoints hold the parameters before the update of each step of
        ``checkpoint_steps(n_steps)``, ``tail`` those of each of the last ``N_TAIL``
        steps (``losses[-len(tail):]`` were taken at them); the final parameters are ``params``.
    """
    if n_steps > QUICK_STEPS:  # long work shows progress (on stderr: the figures write nothing else)
        print(f"    training a CFM model on {name}: {n_steps} Adam steps{' with OT pairing' if ot_pairing else ''}",
              file=sys.stderr, flush=True)
    rng = onp.random.default_rng(seed)
    data = make_dataset(name, N_DATA, rng)
    keep = set(checkpoint_steps(n_steps))
    checkpoints, tail = [], []

    def record(params, step, _loss):
        if step in keep:
            checkpoints.append((step, params))
        if step >= n_steps - N_TAIL:
            tail.append(params)

    settings = dict(SETTINGS, batch_size=batch_size)
    params, losses = train_cfm(data, LinearInterpolationPath(), n_steps, rng=rng, ot_pairing=ot_pairing,
                               callback=record, **settings)
    return TrainedModel(params, losses, tuple(checkpoints), tuple(tail))

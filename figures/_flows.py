"""Normalizing flows trained for the figures of the lecture's first part (Figures 1, 2 and 3).

Training is the slow part of a figure, and Figures 1 and 3 show the same trained
RealNVP on the two moons: it is trained once per process (``functools.lru_cache``) and
shared, so ``python -m figures`` pays for it once. Trainings report their progress on
stderr (``figures._progress``) when they last more than a few seconds, never in quick mode.
"""

from functools import lru_cache

import numpy as onp

from figures._progress import Progress
from reference.distributions import make_dataset
from reference.flows.chain import realnvp_init, realnvp_logpdf
from reference.train import train_mle

MOONS = {"n_data": 8000, "n_layers": 6, "hidden": (64,), "lr": 5e-3, "batch_size": 256, "n_steps": 800}
"""The RealNVP of Figures 1 and 3: 6 affine couplings with one hidden layer of 64 tanh units."""


def fit_realnvp(data, n_steps, n_layers, hidden, batch_size, lr, rng, label, quick=False):
    """``reference.train.train_realnvp`` (the same initial parameters, batches and Adam steps), with progress on stderr.

    Args:
        data: shape ``(n, d)``.
        n_steps, n_layers, hidden, batch_size, lr, rng: as for ``train_realnvp``.
        label: what is trained, for the progress lines.
        quick: quick mode (no progress lines).

    Returns:
        ``(params, losses)`` as ``train_realnvp``.
    """
    params = realnvp_init(data.shape[1], n_layers, hidden, rng, identity=True)
    progress = Progress(f"{label} ({n_steps} steps)", n_steps, enabled=not quick)
    params, losses = train_mle(realnvp_logpdf, params, data, n_steps, batch_size, lr, rng,
                               callback=lambda _params, step, loss: progress.update(step + 1, loss))
    progress.close()
    return params, losses


@lru_cache(maxsize=2)
def moons_realnvp(quick=False):
    """A RealNVP fitted to the two moons by maximum likelihood (eq. (1)).

    Returns:
        ``(params, data, losses)``: the trained parameters, the training data (shape
        ``(n, 2)``) and the minibatch NLL of every step.
    """
    n_steps = 20 if quick else MOONS["n_steps"]
    data = make_dataset("moons", MOONS["n_data"], onp.random.default_rng(1))
    params, losses = fit_realnvp(data, n_steps, MOONS["n_layers"], MOONS["hidden"], MOONS["batch_size"], MOONS["lr"],
                                 onp.random.default_rng(2), "RealNVP (maximum likelihood) on the two moons", quick)
    return params, data, losses

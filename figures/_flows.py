"""Normalizing flows trained for the figures of the lecture's first part (Figures 1 and 3).

Training is the slow part of a figure, and Figures 1 and 3 show the same trained
RealNVP on the two moons: it is trained once per process (``functools.lru_cache``) and
shared, so ``python -m figures`` pays for it once.
"""

from functools import lru_cache

import numpy as onp

from reference.distributions import make_dataset
from reference.train import train_realnvp

MOONS = {"n_data": 8000, "n_layers": 6, "hidden": (64,), "lr": 5e-3, "batch_size": 256, "n_steps": 800}
"""The RealNVP of Figures 1 and 3: 6 affine couplings with one hidden layer of 64 tanh units."""


@lru_cache(maxsize=2)
def moons_realnvp(quick=False):
    """A RealNVP fitted to the two moons by maximum likelihood (eq. (1)).

    Returns:
        ``(params, data, losses)``: the trained parameters, the training data (shape
        ``(n, 2)``) and the minibatch NLL of every step.
    """
    n_steps = 20 if quick else MOONS["n_steps"]
    data = make_dataset("moons", MOONS["n_data"], onp.random.default_rng(1))
    params, losses = train_realnvp(data, n_steps, n_layers=MOONS["n_layers"], hidden=MOONS["hidden"],
                                   batch_size=MOONS["batch_size"], lr=MOONS["lr"], rng=onp.random.default_rng(2))
    return params, data, losses

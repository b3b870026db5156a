"""Variational fits shared by figure 0 and the claims of part 0 (the lecture's first slide).

Each fit runs once per process and mode (``figures.cached_per_mode``), so ``python -m figures``
pays for it once. Both are unamortised VI by ``reference.variational.fit_planar_vi``:

- ``energy_fits``: the four 2-D energies of Rezende and Mohamed (2015) by the mean field
  and planar flows of ``K = 2, 8, 32`` layers, with the KL of every fit,
  ``log Z - ELBO`` (``log Z`` by quadrature);
- ``ppca_fits``: the pPCA posterior of one datum by the mean field and a planar flow of
  ``K = 8`` layers, with the gap of each, ``log p(x) - ELBO``, and the closed-form gap
  of the best mean field.

Settings (full mode): 200 Adam steps for the mean field (4 random starts per target, the
best kept), then 200 for the flows, 256 samples per step, the step size decaying from 0.03
(0.05 for the narrow pPCA posterior) to 0.001; quick mode: 40 steps per stage, 64 samples,
0.05 to 0.005. More steps would lower every KL further (Rezende and Mohamed trained for
hundreds of thousands): these are the few seconds a figure can spend.
"""

from functools import lru_cache
from typing import NamedTuple

import numpy as onp

from figures import cached_per_mode

from reference.variational import (
    ENERGIES,
    PPCA,
    elbo,
    energy_log_joint,
    energy_log_normaliser,
    fit_planar_vi,
    mean_field_gap,
)

PPCA_W = onp.array([[1.0, 0.8], [0.9, 1.1], [0.5, 0.2], [-0.3, -0.5]])
PPCA_B = onp.array([0.5, -0.3, 0.2, 0.0])
PPCA_NOISE = 0.5
"""The pPCA model: D = 4, d = 2; its posterior has correlation -0.85 and the best mean field a gap KL* = 0.65."""

DEPTHS = (0, 2, 8, 32)
"""Depths ``K`` of the planar flows on the energies (0: the mean field)."""

SETTINGS = {False: {"n_steps": 200, "n_samples": 256, "lr": 0.03, "lr_final": 1e-3},
            True: {"n_steps": 40, "n_samples": 64, "lr": 0.05, "lr_final": 5e-3}}
"""``fit_planar_vi`` settings, full mode (False) and quick mode (True)."""

N_EVAL = {False: 20_000, True: 5_000}
"""Samples per fit for the final ELBO, full and quick mode (standard errors about 0.002-0.02 nats)."""


class Fits(NamedTuple):
    """Fitted posteriors and their gaps: ``gap[i, j]`` and its standard error for datum/target ``i``, depth ``depths[j]``."""

    fits: object
    depths: tuple
    gap: onp.ndarray
    stderr: onp.ndarray


def _gaps(log_joint, q, x, log_evidence, n_rows, seed, quick):
    e = elbo(log_joint, q, x, N_EVAL[quick], onp.random.default_rng(seed))
    return (log_evidence - e.value).reshape(n_rows, -1), e.stderr.reshape(n_rows, -1)


@lru_cache(maxsize=1)
def log_normalisers():
    """``log Z`` of each energy by quadrature (``energy_log_normaliser``), shape ``(4,)``."""
    return onp.array([energy_log_normaliser(name) for name in ENERGIES])


@cached_per_mode
def energy_fits(quick=False):
    """The four energies, each by the mean field and planar flows of ``DEPTHS``: KL = log Z - ELBO."""
    log_joint = energy_log_joint(ENERGIES)
    fits = fit_planar_vi(log_joint, onp.arange(len(ENERGIES), dtype=float)[:, None], 2, DEPTHS,
                         rng=onp.random.default_rng(0), **SETTINGS[quick])
    gap, se = _gaps(log_joint, fits.q, fits.x, onp.repeat(log_normalisers(), len(DEPTHS)), len(ENERGIES), 1, quick)
    return Fits(fits, DEPTHS, gap, se)


@cached_per_mode
def energy_fits_untrained(quick=False):
    """The same posteriors before the flows' training (mean field fitted, layers near the identity)."""
    result = energy_fits(quick)
    q0 = result.fits.build(result.fits.params0)
    gap, se = _gaps(energy_log_joint(ENERGIES), q0, result.fits.x, onp.repeat(log_normalisers(), len(DEPTHS)),
                    len(ENERGIES), 1, True)  # the quick mode's samples: a negative control needs no more
    return Fits(result.fits, DEPTHS, gap, se)


def ppca_model():
    """The pPCA model of figure 0 and one datum from it: ``(model, x0)`` with ``x0`` of shape ``(1, 4)``."""
    model = PPCA(PPCA_W, PPCA_B, PPCA_NOISE)
    return model, model.sample(1, onp.random.default_rng(7))[0]


@cached_per_mode
def ppca_fits(quick=False):
    """One pPCA posterior by the mean field and a planar flow of 8 layers: gap = log p(x) - ELBO."""
    model, x0 = ppca_model()
    settings = dict(SETTINGS[quick], lr=0.05)  # the posterior is narrow (std 0.3): a larger first step
    fits = fit_planar_vi(model.log_joint, x0, 2, (0, 8), rng=onp.random.default_rng(1), **settings)
    gap, se = _gaps(model.log_joint, fits.q, fits.x, model.log_marginal(x0)[0], 1, 2, quick)
    return Fits(fits, (0, 8), gap, se)


def kl_star():
    """The closed-form gap of the best mean field for the pPCA posterior."""
    return mean_field_gap(ppca_model()[0].posterior_covariance())

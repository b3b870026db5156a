"""The marginal path and the marginal velocity from a finite set of z  [lecture: Theorem 1, eq. (9), (10); Fig. 10, Fig. 12]

For a finite set ``z_1, ..., z_m`` (samples of p(z), or a whole empirical data set) the
marginal path is the mixture ``p(x | t) = (1/m) sum_j p(x | t, z_j)`` and Theorem 1
gives its velocity:

    u(x, t) = sum_j w_j(x, t) u_cond(x, t, z_j),   w_j(x, t) = p(x | t, z_j) / sum_k p(x | t, z_k),

the posterior ``p(z_j | x, t)`` of eq. (9) written as the ratio of eq. (10). For samples
of p(z) this is the Monte Carlo estimate of eq. (9); for any finite set it is the exact
velocity of the mixture (it solves the continuity equation with it exactly).

Everything is computed in log space: with ``l_ij = log p(x_i | t_i, z_j)``,
``w_ij = exp(l_ij - max_k l_ik) / sum_k exp(l_ik - max_k l_ik)``, so a point far from every z (where every
``p(x | t, z_j)`` underflows to 0) still gets finite weights. The sums run over blocks of
points, each block with every z, so that a block holds at most about ``chunk_size^2``
pairs: memory ``O(max(chunk_size^2, m) d + (n + m) d)`` whatever ``n``.

These are the formulas a student reads and edits, and what autograd differentiates.
For plain arrays (not being differentiated) the three functions hand their work to
``reference.engines.marginal``, which computes the same numbers through the posterior
mean of z without any ``(n, m, d)`` array, and exactly for points too far out for the
float64 differences below; under ``reference.readable()`` these formulas run instead,
and they refuse such far points by name.
"""

import autograd.numpy as np
import numpy as onp
from autograd.scipy.special import logsumexp
from autograd.tracer import getval

from ._validate import as_points, as_time, check_count, check_instance, refuse_non_finite
from .engines import engines_on
from .paths import GaussianPath, _gaussian_logpdf, _gaussian_path_velocity

__all__ = ["posterior_weights", "marginal_logpdf", "marginal_velocity", "DEFAULT_CHUNK"]

DEFAULT_CHUNK = 512
"""Default block size: a block holds about ``chunk_size^2`` pairs ``(x_i, z_j)`` (4 MB per array for d = 2)."""


def _check_inputs(path, x, t, z, chunk_size):
    check_instance(path, GaussianPath, "path", "reference.paths.GaussianPath")
    x = as_points(x)
    n, d = np.shape(x)
    x0, x1 = path.split_z(z, d=d, like="x")
    t_vec = np.ones(n) * as_time(t, n, low=0.0, high=1.0, like="x")
    if chunk_size is not None:
        chunk_size = check_count(chunk_size, "chunk_size")
    return x, t_vec, x0, x1, chunk_size


def _schedules(path, t_vec, need_velocity):
    """``(alpha_t, beta_t, sigma_t)`` and their time derivatives, for ``mu_t(z) = alpha_t x1 + beta_t x0``."""
    (alpha, beta, sigma), (dalpha, dbeta, dsigma) = path.schedules(t_vec)
    path._refuse_dirac(t_vec, sigma, "the marginal of Dirac deltas has no density (eq. (10) needs sigma_t > 0)")
    if need_velocity and not onp.all(onp.isfinite(getval(dsigma))):
        bad = ~onp.isfinite(getval(dsigma))
        raise ValueError(f"{path.name}: d/dt sigma_t is not finite at t = {onp.unique(getval(t_vec)[bad])[:5]}")
    return alpha, beta, sigma, dalpha, dbeta, dsigma


def _blocks(n, chunk_size, m):
    """Slices of the ``n`` points, each holding about ``chunk_size^2`` pairs with the ``m`` values of z."""
    step = n if chunk_size is None else max(1, chunk_size * chunk_size // m)
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def _take(sched, rows):
    return tuple(s[rows] for s in sched)


def _means(sched, x0, x1):
    """``mu_t(z_j) = alpha_t x1_j + beta_t x0_j`` and its time derivative, shape ``(n, m, d)``: each point's time, each z."""
    alpha, beta, _, dalpha, dbeta, _ = sched
    mean = alpha[:, None, None] * x1[None]
    dmean = dalpha[:, None, None] * x1[None]
    if x0 is not None:
        mean = mean + beta[:, None, None] * x0[None]
        dmean = dmean + dbeta[:, None, None] * x0[None]
    return mean, dmean


def _log_likelihoods(x, sched, x0, x1):
    """``l_ij = log p(x_i | t_i, z_j) = log N(x_i; mu_{t_i}(z_j), sigma_{t_i}^2 I)``, shape ``(n, m)``."""
    mean, _ = _means(sched, x0, x1)
    return _gaussian_logpdf(x[:, None, :], mean, sched[2][:, None])


def _conditional_velocities(x, sched, x0, x1):
    """``u_cond(x_i, t_i, z_j) = mu'_t(z_j) + (sigma'_t / sigma_t)(x_i - mu_t(z_j))``, shape ``(n, m, d)``."""
    mean, dmean = _means(sched, x0, x1)
    return _gaussian_path_velocity(x[:, None, :], mean, dmean, sched[2][:, None], sched[5][:, None])


def _imprecise_rows(x, alpha, beta, sigma, x0, x1):
    """Rows whose ``l_ij`` the float64 differences cannot give to 1e-6: ``eps |x_i - mu_ij|^2 / (2 sigma_i^2) > 1e-6``.

    ``|x - mu|^2`` is computed with a relative error of about ``eps``, so ``l_ij`` with an
    absolute error of about ``eps |x - mu|^2 / (2 sigma^2)``, and the weights
    ``exp(l_ij - max_k l_ik)`` with that relative error; it is bounded here by
    ``|x - mu| <= |x| + max_j |mu_j|``.
    """
    with onp.errstate(over="ignore"):
        mu_max = onp.abs(alpha) * float(onp.max(onp.abs(x1))) + (0.0 if x0 is None else onp.abs(beta) * float(onp.max(onp.abs(x0))))
        reach = (onp.sqrt(onp.sum(x * x, axis=1)) + onp.sqrt(x.shape[1]) * mu_max) / sigma
        return onp.finfo(onp.float64).eps * reach * reach / 2.0 > 1e-6


def _culprits(x, x0, x1):
    return {"x": x, "z": x1 if x0 is None else np.concatenate([x0, x1])}


def _traced(*values):
    return any(getval(v) is not v for v in values)


def _prepare(path, x, t, z, chunk_size, need_velocity):
    """Checked inputs and schedules; points too far out for the float64 differences are refused by name."""
    x, t_vec, x0, x1, chunk_size = _check_inputs(path, x, t, z, chunk_size)
    sched = _schedules(path, t_vec, need_velocity)
    x_value = getval(x)
    imprecise = _imprecise_rows(x_value, *(getval(v) for v in sched[:3]), x0, x1)
    if onp.any(imprecise):
        i = int(onp.flatnonzero(imprecise)[0])
        raise ValueError(
            f"x: point {i} (|x| up to {onp.max(onp.abs(x_value[i])):.3g}) is too far from the means mu_t(z), in units of "
            f"sigma_t = {float(getval(sched[2])[i]):.3g}, for the float64 differences x - mu_t(z) to give its weights "
            f"to 1e-6; the fast engine computes such points exactly (outside reference.readable(), when x and t are "
            f"not differentiated)")
    return x, t_vec, x0, x1, chunk_size, sched


def posterior_weights(path, x, t, z, chunk_size=DEFAULT_CHUNK):
    """Posterior weights  p(z_j | x, t) = p(x | t, z_j) / sum_k p(x | t, z_k)  [lecture: Theorem 1, eq. (9), (10)]

    Computed in log space, ``w_ij = exp(l_ij - max_k l_ik) / sum_k exp(l_ik - max_k l_ik)``
    with ``l_ij = log p(x_i | t_i, z_j)`` (the log-sum-exp shift): every row sums to one
    and is finite even where all ``p(x | t, z_j)`` underflow.

    Args:
        path: a ``GaussianPath`` (``sigma_t > 0`` at the given times).
        x: points, shape ``(n, d)``.
        t: a float or an array of shape ``(n,)``.
        z: ``m`` values of z: ``x1`` of shape ``(m, d)`` or ``(x0, x1)``.
        chunk_size: points are taken in blocks of about ``chunk_size^2`` pairs, or all at once (None).

    Returns:
        shape ``(n, m)``.
    """
    if engines_on() and not _traced(x, t):
        from .engines import marginal as engine

        return engine.posterior_weights(path, x, t, z, chunk_size)
    x, t_vec, x0, x1, chunk_size, sched = _prepare(path, x, t, z, chunk_size, need_velocity=False)
    blocks = []
    with onp.errstate(all="ignore"):  # an overflow is refused below, by name
        for rows in _blocks(np.shape(x)[0], chunk_size, np.shape(x1)[0]):
            l = _log_likelihoods(x[rows], _take(sched, rows), x0, x1)
            e = np.exp(l - np.max(l, axis=1, keepdims=True))  # p(x | t, z_j) up to a factor of the row: the largest is 1
            blocks.append(e / np.sum(e, axis=1, keepdims=True))
    w = np.concatenate(blocks, axis=0)
    return refuse_non_finite(w, "p(z | x, t)", large=_culprits(getval(x), x0, x1), small={"sigma_t": sched[2]})


def marginal_logpdf(path, x, t, z, chunk_size=DEFAULT_CHUNK):
    """Marginal log-density  log p(x | t) = log (1/m) sum_j p(x | t, z_j)  [lecture: From Conditional to Unconditional Velocity; Fig. 8, 9]

        log p(x_i | t_i) = logsumexp_j l_ij - log m,   l_ij = log p(x_i | t_i, z_j)

    Args:
        path: a ``GaussianPath`` (``sigma_t > 0`` at the given times).
        x: points, shape ``(n, d)``.
        t: a float or an array of shape ``(n,)``.
        z: ``m`` values of z: ``x1`` of shape ``(m, d)`` or ``(x0, x1)``.
        chunk_size: points are taken in blocks of about ``chunk_size^2`` pairs, or all at once (None).

    Returns:
        shape ``(n,)``.
    """
    if engines_on() and not _traced(x, t):
        from .engines import marginal as engine

        return engine.marginal_logpdf(path, x, t, z, chunk_size)
    x, t_vec, x0, x1, chunk_size, sched = _prepare(path, x, t, z, chunk_size, need_velocity=False)
    m = np.shape(x1)[0]
    blocks = []
    with onp.errstate(all="ignore"):  # an overflow is refused below, by name
        for rows in _blocks(np.shape(x)[0], chunk_size, m):
            blocks.append(logsumexp(_log_likelihoods(x[rows], _take(sched, rows), x0, x1), axis=1) - np.log(m))
    log_p = np.concatenate(blocks)
    return refuse_non_finite(log_p, "log p(x | t)", large=_culprits(getval(x), x0, x1), small={"sigma_t": sched[2]})


def marginal_velocity(path, x, t, z, chunk_size=DEFAULT_CHUNK):
    """Marginal velocity  u(x, t) = sum_j p(z_j | x, t) u_cond(x, t, z_j)  [lecture: Theorem 1, eq. (9), (10)]

    The Monte Carlo estimate of ``E_{z | x, t}[u_cond(x, t, z)]`` when ``z`` are samples
    of p(z); the exact velocity of the mixture ``(1/m) sum_j p(x | t, z_j)`` for any set.
    The weights are those of ``posterior_weights``.

    Args:
        path: a ``GaussianPath`` (``sigma_t > 0`` at the given times).
        x: points, shape ``(n, d)``.
        t: a float or an array of shape ``(n,)``.
        z: ``m`` values of z: ``x1`` of shape ``(m, d)`` or ``(x0, x1)``.
        chunk_size: points are taken in blocks of about ``chunk_size^2`` pairs, or all at once (None).

    Returns:
        shape ``(n, d)``.
    """
    if engines_on() and not _traced(x, t):
        from .engines import marginal as engine

        return engine.marginal_velocity(path, x, t, z, chunk_size)
    x, t_vec, x0, x1, chunk_size, sched = _prepare(path, x, t, z, chunk_size, need_velocity=True)
    blocks = []
    with onp.errstate(all="ignore"):  # an overflow is refused below, by name
        for rows in _blocks(np.shape(x)[0], chunk_size, np.shape(x1)[0]):
            xs, ss = x[rows], _take(sched, rows)
            w = posterior_weights(path, xs, t_vec[rows], z, chunk_size=None)  # p(z_j | x_i, t_i): (n_c, m)
            u_cond = _conditional_velocities(xs, ss, x0, x1)  # u_cond(x_i, t_i, z_j): (n_c, m, d)
            blocks.append(np.einsum("nm,nmd->nd", w, u_cond))
    u = np.concatenate(blocks, axis=0)
    return refuse_non_finite(u, "u(x, t)", large=_culprits(getval(x), x0, x1), small={"sigma_t": sched[2]})

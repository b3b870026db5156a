"""The fast engine of Theorem 1: the marginal through the posterior mean of z  [lecture: Theorem 1, eq. (9), (10)]

``reference.marginal`` computes eq. (9)/(10) as written: the weights ``p(z_j | x, t)`` of
every pair ``(x_i, z_j)`` and the weighted sum of the conditional velocities. This engine
computes the same numbers, for arrays that are not being differentiated, without ever
forming an ``(n, m, d)`` array, and also for points too far out for the readable
formula's float64 differences:

Every path here has a mean affine in z, mu_t(z) = alpha_t x1 + beta_t x0, so the
weighted sum of Theorem 1 collapses onto the posterior mean of z:

    u(x, t) = sum_j w_j [mu'_t(z_j) + r_t (x - mu_t(z_j))]            (r_t = sigma'_t / sigma_t)
            = mu'_t(zbar) + r_t (x - mu_t(zbar)),   zbar = sum_j w_j z_j = E[z | x, t],

that is, u(x, t) = u_cond(x, t, E[z | x, t]) (the weights sum to one). Only the (n, m)
matrix of log-densities is ever formed, block by block and in place; blocks of x run on
two threads (``engines.parallel``: NumPy releases the GIL). The squared distances are
taken coordinate by coordinate as differences, not expanded as
|x|^2 - 2 x.mu + |mu|^2, which would lose digits when sigma_t is small. Rows whose
squared distances overflow, or where the point and the means differ in size by a factor
1e12 or more, are redone one by one from scaled differences or from the cross term
(``_scaled_row``). Memory ``O(64 chunk_size + (n + m) d)``.
"""

import numpy as onp

from .._validate import refuse_non_finite
from ..marginal import DEFAULT_CHUNK, _blocks, _check_inputs, _culprits, _log_likelihoods, _schedules, _take
from ..paths import _gaussian_path_velocity
from .parallel import parallel_map

__all__ = ["posterior_weights", "marginal_logpdf", "marginal_velocity"]


_FAST_ROWS = 64  # rows of x per block: a (64, chunk_size) block stays in the CPU's cache


def _posterior_sums(x, alpha, beta, sigma, x0, x1, chunk_size):
    """``(logsumexp_j l_ij, E[x1 | x_i, t_i], E[x0 | x_i, t_i])`` for plain arrays, blockwise in place.

    ``l_ij = log p(x_i | t_i, z_j)``; ``E[x0 | ...]`` is None when ``z = x1``. Blocks hold
    at most ``min(64, chunk_size)`` points and ``chunk_size`` values of z (everything
    at once when ``chunk_size`` is None).
    """
    n, d = x.shape
    m = x1.shape[0]
    rows_per_block = n if chunk_size is None else min(_FAST_ROWS, chunk_size)
    cols_per_block = m if chunk_size is None else chunk_size
    lse = onp.empty(n)
    mean_x1 = onp.empty((n, d))
    mean_x0 = None if x0 is None else onp.empty((n, d))

    x1_cols = onp.ascontiguousarray(x1.T)  # (d, m): coordinate k of every z, contiguous
    x0_cols = None if x0 is None else onp.ascontiguousarray(x0.T)

    def run_rows(rows):
        xs, a, b, s = x[rows], alpha[rows], beta[rows], sigma[rows]
        nr = xs.shape[0]
        M = onp.full(nr, -onp.inf)  # running max of l_ij over the z seen so far
        S = onp.zeros(nr)  # sum_j exp(l_ij - M)
        V1 = onp.zeros((nr, d))  # sum_j exp(l_ij - M) x1_j
        V0 = None if x0 is None else onp.zeros((nr, d))
        buffers = onp.empty((2, nr, min(cols_per_block, m)))
        if x0 is None:
            # |x - a x1|^2 = a^2 |x / a - x1|^2: one subtraction per coordinate. Rows with
            # |a| < 1e-150 (a = 0 at t = 0 on the lecture's paths) take every l_ij equal to
            # -|x|^2 / (2 sigma^2), exact to rounding there, where x / a could overflow
            safe = onp.abs(a) >= 1e-150
            y = onp.where(safe[:, None], xs / onp.where(safe, a, 1.0)[:, None], 0.0)
            scale = -0.5 * a**2 / s**2
            offset = onp.where(safe, 0.0, -0.5 * onp.sum(xs**2, axis=1) / s**2)  # l_ij at a = 0
        else:
            scale, offset = -0.5 / s**2, 0.0
        for c0 in range(0, m, cols_per_block):
            cols = slice(c0, min(c0 + cols_per_block, m))
            mc = cols.stop - cols.start
            D, T = buffers[0, :, :mc], buffers[1, :, :mc]
            for k in range(d):
                if x0 is None:
                    onp.subtract(y[:, k, None], x1_cols[k, cols], out=T)  # x_i / a_i - x1_j
                else:
                    onp.multiply(a[:, None], x1_cols[k, cols], out=T)
                    T += b[:, None] * x0_cols[k, cols]
                    onp.subtract(xs[:, k, None], T, out=T)  # x_i - a_i x1_j - b_i x0_j
                if k == 0:
                    onp.multiply(T, T, out=D)
                else:
                    T *= T
                    D += T
            D *= scale[:, None]  # l_ij up to a term of i alone: -|x_i - mu_ij|^2 / (2 sigma_i^2)
            M_new = onp.maximum(M, D.max(axis=1))
            D -= M_new[:, None]
            onp.exp(D, out=D)
            rescale = onp.exp(M - M_new)
            S *= rescale
            S += D.sum(axis=1)
            V1 *= rescale[:, None]
            V1 += D @ x1[cols]
            if x0 is not None:
                V0 *= rescale[:, None]
                V0 += D @ x0[cols]
            M = M_new
        lse[rows] = M + offset + onp.log(S) - d * onp.log(s) - 0.5 * d * onp.log(2 * onp.pi)
        mean_x1[rows] = V1 / S[:, None]
        if x0 is not None:
            mean_x0[rows] = V0 / S[:, None]

    def run_rows_quietly(rows):
        with onp.errstate(all="ignore"):  # rows that overflow are redone by _scaled_rows
            run_rows(rows)

    parallel_map(run_rows_quietly, [slice(i, min(i + rows_per_block, n)) for i in range(0, n, rows_per_block)])
    bad = ~onp.isfinite(lse) | ~onp.all(onp.isfinite(mean_x1), axis=1) | _far_rows(x, alpha, beta, x0, x1)
    if mean_x0 is not None:
        bad |= ~onp.all(onp.isfinite(mean_x0), axis=1)
    for i in onp.flatnonzero(bad):
        lse[i], mean_x1[i], m0, _ = _scaled_row(x[i], alpha[i], beta[i], sigma[i], x0, x1)
        if mean_x0 is not None:
            mean_x0[i] = m0
    return lse, mean_x1, mean_x0


def _scaled_row(xi, a, b, s, x0, x1):
    """One point's ``(logsumexp_j l_j, E[x1 | x, t], E[x0 | x, t], weights)``, for points far out.

    ``l_j = -|x - mu_j|^2 / (2 s^2) - d log s - d/2 log(2 pi)``. Two regimes:

    - ``|x|`` and the ``|mu_j|`` of very different sizes (a factor 1e12 or more): then
      ``x - mu_j`` rounds to ``x`` (or to ``-mu_j``) and the differences between the
      ``l_j``, which decide the weights, are in the cross term:
      ``l_j = (x . mu_j - (|mu_j|^2 - q) / 2) / s^2 - (|x|^2 + q) / (2 s^2) + const`` with
      ``q = min_k |mu_k|^2`` (so that equal ``|mu_j|`` cancel exactly before the cross term is
      added), the first part computed as it is and the second (common to all j) in logs.
    - otherwise the differences ``x - mu_j`` are scaled by ``c = max |x|, |mu_j|`` (so their
      squares ``r_j <= 4 d`` cannot overflow) and the log-weights ``-(r_j - r_min) K`` with
      ``log K = 2 log c - log 2 - 2 log s`` are taken in logs.

    The heaviest ``z`` gets weight ``exp(0) = 1``, so the weights are finite whenever the
    means are; ``logsumexp`` is ``-inf`` where it is below the float64 range (callers
    refuse that, by name).
    """
    d = xi.shape[0]
    log_norm = -0.5 * d * onp.log(2 * onp.pi) - d * onp.log(s)
    with onp.errstate(all="ignore"):
        mu = a * x1 + (0.0 if x0 is None else b * x0)  # (m, d)
        if not onp.all(onp.isfinite(mu)):  # the means themselves overflow: nothing is representable
            nan = onp.full(d, onp.nan)
            return onp.nan, nan, nan, None
        x_max, mu_max = float(onp.max(onp.abs(xi))), float(onp.max(onp.abs(mu)))
        if x_max * 1e-12 > mu_max or mu_max * 1e-12 > x_max:
            c = max(x_max, mu_max)  # |x|^2 + q in logs: log c^2 + log(|x / c|^2 + min_k |mu_k / c|^2)
            sq = onp.sum(mu * mu, axis=1)
            q = sq.min()
            num = mu @ xi - 0.5 * (sq - q)  # x . mu_j - (|mu_j|^2 - q) / 2: equal |mu_j| cancel exactly
            top = num.max()
            e = onp.exp((num - top) / (s * s))  # the largest term is exp(0) = 1; the others may underflow to 0
            log_common = 2.0 * onp.log(c) + onp.log(onp.sum((xi / c) ** 2) + onp.min(onp.sum((mu / c) ** 2, axis=1)))
            lse = top / (s * s) - 0.5 * onp.exp(log_common - 2.0 * onp.log(s)) + onp.log(e.sum()) + log_norm
        else:
            c = max(x_max, mu_max)
            if c == 0.0:
                r = onp.zeros(x1.shape[0])
            else:
                diff = xi / c - mu / c
                r = onp.sum(diff * diff, axis=1)
            r_min = r.min()
            log_k = 2.0 * onp.log(c) - onp.log(2.0) - 2.0 * onp.log(s) if c > 0.0 else -onp.inf
            e = onp.exp(-onp.exp(log_k + onp.log(r - r_min)))  # log(0) = -inf: the nearest z gets exp(0) = 1
            lse = -onp.exp(log_k + onp.log(r_min)) + onp.log(e.sum()) + log_norm
        w = e / e.sum()
        return lse, w @ x1, (None if x0 is None else w @ x0), w


def _far_rows(x, alpha, beta, x0, x1):
    """Rows where the point and the means differ in size by 1e12 or more: ``x - mu_j`` rounds to ``x`` or ``-mu_j``."""
    with onp.errstate(over="ignore"):
        mu_max = onp.abs(alpha) * float(onp.max(onp.abs(x1))) + (0.0 if x0 is None else onp.abs(beta) * float(onp.max(onp.abs(x0))))
        x_max = onp.max(onp.abs(x), axis=1)
        return (x_max * 1e-12 > mu_max) | (mu_max * 1e-12 > x_max)


def _fast_marginal(path, x, t, z, chunk_size, need_velocity):
    """The fast path: ``(log p(x | t), u(x, t) or None)`` with ``u = u_cond(x, t, E[z | x, t])``."""
    x, t_vec, x0, x1, chunk_size = _check_inputs(path, x, t, z, chunk_size)
    alpha, beta, sigma, dalpha, dbeta, dsigma = _schedules(path, t_vec, need_velocity)
    lse, x1_bar, x0_bar = _posterior_sums(x, alpha, beta, sigma, x0, x1, chunk_size)
    culprits = dict(large=_culprits(x, x0, x1), small={"sigma_t": sigma})
    if not need_velocity:
        return refuse_non_finite(lse - onp.log(x1.shape[0]), "log p(x | t)", **culprits), None
    refuse_non_finite(x1_bar, "E[z | x, t]", **culprits)
    with onp.errstate(all="ignore"):
        mean = alpha[:, None] * x1_bar + (0.0 if x0 is None else beta[:, None] * x0_bar)  # mu_t(E[z | x, t])
        dmean = dalpha[:, None] * x1_bar + (0.0 if x0 is None else dbeta[:, None] * x0_bar)
        u = _gaussian_path_velocity(x, mean, dmean, sigma, dsigma)
    return None, refuse_non_finite(u, "u(x, t)", **culprits)


def posterior_weights(path, x, t, z, chunk_size=DEFAULT_CHUNK):
    """``marginal.posterior_weights`` for plain arrays, with far points computed exactly  [lecture: Theorem 1, eq. (9), (10)]

    The arguments are those of ``reference.marginal.posterior_weights`` (checked the same
    way); that function hands plain arrays to this one unless ``reference.readable()``.
    """
    x, t_vec, x0, x1, chunk_size = _check_inputs(path, x, t, z, chunk_size)
    sched = _schedules(path, t_vec, need_velocity=False)
    alpha, beta, sigma = sched[:3]
    w = onp.empty((x.shape[0], x1.shape[0]))
    with onp.errstate(all="ignore"):  # rows that overflow are redone below
        for rows in _blocks(x.shape[0], chunk_size, x1.shape[0]):
            log_p = _log_likelihoods(x[rows], _take(sched, rows), x0, x1)
            e = onp.exp(log_p - onp.max(log_p, axis=1, keepdims=True))
            w[rows] = e / onp.sum(e, axis=1, keepdims=True)
    for i in onp.flatnonzero(~onp.all(onp.isfinite(w), axis=1) | _far_rows(x, alpha, beta, x0, x1)):
        w[i] = _scaled_row(x[i], alpha[i], beta[i], sigma[i], x0, x1)[3]
    return refuse_non_finite(w, "p(z | x, t)", large=_culprits(x, x0, x1), small={"sigma_t": sigma})


def marginal_logpdf(path, x, t, z, chunk_size=DEFAULT_CHUNK):
    """``marginal.marginal_logpdf`` for plain arrays, by ``_posterior_sums``  [lecture: From Conditional to Unconditional Velocity]"""
    return _fast_marginal(path, x, t, z, chunk_size, need_velocity=False)[0]


def marginal_velocity(path, x, t, z, chunk_size=DEFAULT_CHUNK):
    """``marginal.marginal_velocity`` for plain arrays: ``u_cond(x, t, E[z | x, t])``  [lecture: Theorem 1, eq. (9), (10)]"""
    return _fast_marginal(path, x, t, z, chunk_size, need_velocity=True)[1]

"""The marginal path and the marginal velocity from a finite set of z  [lecture: Theorem 1, eq. (9), (10); Fig. 10, Fig. 12]

For a finite set ``z_1, ..., z_m`` (samples of p(z), or a whole empirical data set) the
marginal path is the mixture ``p(x | t) = (1/m) sum_j p(x | t, z_j)`` and Theorem 1
gives its velocity:

    u(x, t) = sum_j w_j(x, t) u_cond(x, t, z_j),   w_j(x, t) = p(x | t, z_j) / sum_k p(x | t, z_k),

the posterior ``p(z_j | x, t)`` of eq. (9) written as the ratio of eq. (10). For samples
of p(z) this is the Monte Carlo estimate of eq. (9); for any finite set it is the exact
velocity of the mixture (it solves the continuity equation with it exactly).

Everything is computed in log space: ``log w_j = l_j - logsumexp_k l_k`` with
``l_j = log p(x | t, z_j)``, so a point far from every z (where every ``p(x | t, z_j)``
underflows to 0) still gets finite weights. ``marginal_logpdf`` and
``marginal_velocity`` run over blocks of at most ``chunk_size`` points and
``chunk_size`` values of z with an online (streaming) log-sum-exp, so their memory is
``O(chunk_size^2 d + (n + m) d)`` whatever ``n`` and ``m``. All three functions are
autograd-differentiable in ``x`` and ``t``. When ``x`` and ``t`` are plain arrays (not
being differentiated), ``marginal_logpdf`` and ``marginal_velocity`` take a faster path
that never forms an ``(n, m, d)`` array (see "The fast path" below): its memory is
``O(64 chunk_size + (n + m) d)``, and it gives the same numbers to rounding (tested).
"""

import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

from ._parallel import parallel_map
from ._validate import as_points, as_time, check_instance, check_count, refuse_non_finite
from .paths import GaussianPath, _gaussian_logpdf, _gaussian_path_velocity

__all__ = ["posterior_weights", "marginal_logpdf", "marginal_velocity", "DEFAULT_CHUNK"]

DEFAULT_CHUNK = 512
"""Default block size: a block holds ``chunk_size^2 * d`` floats (4 MB per array for d = 2)."""


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
    (alpha, beta, sigma), (dalpha, dbeta, dsigma) = path.schedules(t_vec)
    path._refuse_dirac(t_vec, sigma, "the marginal of Dirac deltas has no density (eq. (10) needs sigma_t > 0)")
    if need_velocity and not onp.all(onp.isfinite(getval(dsigma))):
        bad = ~onp.isfinite(getval(dsigma))
        raise ValueError(f"{path.name}: d/dt sigma_t is not finite at t = {onp.unique(getval(t_vec)[bad])[:5]}")
    return alpha, beta, sigma, dalpha, dbeta, dsigma


def _blocks(size, chunk_size):
    step = size if chunk_size is None else chunk_size
    return [slice(i, min(i + step, size)) for i in range(0, size, step)]


def _pair_terms(x, sched, x0, x1, need_velocity):
    """log p(x_i | t_i, z_j), shape (n_c, m_c), and u_cond(x_i, t_i, z_j), shape (n_c, m_c, d)."""
    alpha, beta, sigma, dalpha, dbeta, dsigma = sched
    mean = alpha[:, None, None] * x1[None]  # mu_{t_i}(z_j): (n_c, m_c, d)
    if x0 is not None:
        mean = mean + beta[:, None, None] * x0[None]
    xi = x[:, None, :]
    log_p = _gaussian_logpdf(xi, mean, sigma[:, None])
    if not need_velocity:
        return log_p, None
    dmean = dalpha[:, None, None] * x1[None]
    if x0 is not None:
        dmean = dmean + dbeta[:, None, None] * x0[None]
    return log_p, _gaussian_path_velocity(xi, mean, dmean, sigma[:, None], dsigma[:, None])


def _take(sched, rows):
    return tuple(s[rows] for s in sched)


def _streamed(path, x, t, z, chunk_size, need_velocity):
    """Online log-sum-exp over blocks of z, for blocks of x: (logsumexp_j l_ij, sum_j w_ij u_ij).

    Overflows (points too far out for float64) are refused by the callers, by name.
    """
    x, t_vec, x0, x1, chunk_size = _check_inputs(path, x, t, z, chunk_size)
    sched = _schedules(path, t_vec, need_velocity)
    with onp.errstate(all="ignore"):
        return _streamed_sums(x, sched, x0, x1, chunk_size, need_velocity)


def _streamed_sums(x, sched, x0, x1, chunk_size, need_velocity):
    m = np.shape(x1)[0]
    lse_parts, u_parts = [], []
    for rows in _blocks(np.shape(x)[0], chunk_size):
        xs, ss = x[rows], _take(sched, rows)
        M = S = V = None  # running max, sum of exp(l - M), sum of exp(l - M) u
        for cols in _blocks(m, chunk_size):
            log_p, u = _pair_terms(xs, ss, None if x0 is None else x0[cols], x1[cols], need_velocity)
            block_max = np.max(log_p, axis=1)
            M_new = block_max if M is None else np.maximum(M, block_max)
            e = np.exp(log_p - M_new[:, None])
            if M is None:
                S = np.sum(e, axis=1)
                V = np.einsum("nm,nmd->nd", e, u) if need_velocity else None
            else:
                rescale = np.exp(M - M_new)
                S = S * rescale + np.sum(e, axis=1)
                if need_velocity:
                    V = V * rescale[:, None] + np.einsum("nm,nmd->nd", e, u)
            M = M_new
        lse_parts.append(M + np.log(S))
        if need_velocity:
            u_parts.append(V / S[:, None])
    lse = np.concatenate(lse_parts) if len(lse_parts) > 1 else lse_parts[0]
    if not need_velocity:
        return lse, m, None
    return lse, m, (np.concatenate(u_parts, axis=0) if len(u_parts) > 1 else u_parts[0])


# --------------------------------------------------------------------------------------
# The fast path, for arrays that are not being differentiated.
#
# Every path here has a mean affine in z, mu_t(z) = alpha_t x1 + beta_t x0, so the
# weighted sum of Theorem 1 collapses onto the posterior mean of z:
#
#     u(x, t) = sum_j w_j [mu'_t(z_j) + r_t (x - mu_t(z_j))]            (r_t = sigma'_t / sigma_t)
#             = mu'_t(zbar) + r_t (x - mu_t(zbar)),   zbar = sum_j w_j z_j = E[z | x, t],
#
# that is, u(x, t) = u_cond(x, t, E[z | x, t]) (the weights sum to one). Only the
# (n, m) matrix of log-densities is ever formed, block by block and in place, never an
# (n, m, d) array; blocks of x run on two threads (``_parallel``: NumPy releases the GIL).
# The squared distances are taken coordinate by coordinate as differences, not
# expanded as |x|^2 - 2 x.mu + |mu|^2, which would lose digits when sigma_t is small.
# --------------------------------------------------------------------------------------

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


def _traced(*values):
    return any(getval(v) is not v for v in values)


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


def _culprits(x, x0, x1):
    return {"x": x, "z": x1 if x0 is None else np.concatenate([x0, x1])}


def posterior_weights(path, x, t, z, chunk_size=DEFAULT_CHUNK):
    """Posterior weights  p(z_j | x, t) = p(x | t, z_j) / sum_k p(x | t, z_k)  [lecture: Theorem 1, eq. (9), (10)]

    Computed in log space as ``exp(l_j - max_k l_k) / sum_i exp(l_i - max_k l_k)`` with
    ``l_j = log p(x | t, z_j)`` (the log-sum-exp shift): every row sums to one and is
    finite even where all ``p(x | t, z_j)`` underflow.

    Args:
        path: a ``GaussianPath`` (``sigma_t > 0`` at the given times).
        x: points, shape ``(n, d)``.
        t: a float or an array of shape ``(n,)``.
        z: ``m`` values of z: ``x1`` of shape ``(m, d)`` or ``(x0, x1)``.
        chunk_size: rows of ``x`` and of ``z`` per block, or None for one block.

    Returns:
        shape ``(n, m)``.
    """
    x, t_vec, x0, x1, chunk_size = _check_inputs(path, x, t, z, chunk_size)
    sched = _schedules(path, t_vec, need_velocity=False)
    rows_out = []
    with onp.errstate(all="ignore"):  # rows that overflow are redone below (or refused when traced)
        for rows in _blocks(np.shape(x)[0], chunk_size):
            xs, ss = x[rows], _take(sched, rows)
            cols_out = [_pair_terms(xs, ss, None if x0 is None else x0[c], x1[c], False)[0]
                        for c in _blocks(np.shape(x1)[0], chunk_size)]
            log_p = np.concatenate(cols_out, axis=1) if len(cols_out) > 1 else cols_out[0]
            e = np.exp(log_p - np.max(log_p, axis=1, keepdims=True))  # the largest term is exp(0) = 1
            rows_out.append(e / np.sum(e, axis=1, keepdims=True))
    w = np.concatenate(rows_out, axis=0) if len(rows_out) > 1 else rows_out[0]
    if _traced(x, t_vec):
        return refuse_non_finite(w, "p(z | x, t)", large=_culprits(getval(x), x0, x1), small={"sigma_t": sched[2]})
    alpha, beta, sigma = sched[:3]
    bad = onp.flatnonzero(~onp.all(onp.isfinite(w), axis=1) | _far_rows(x, alpha, beta, x0, x1))
    if bad.size:
        w = onp.array(w)
        for i in bad:
            w[i] = _scaled_row(x[i], alpha[i], beta[i], sigma[i], x0, x1)[3]
    return refuse_non_finite(w, "p(z | x, t)", large=_culprits(x, x0, x1), small={"sigma_t": sched[2]})


def marginal_logpdf(path, x, t, z, chunk_size=DEFAULT_CHUNK):
    """Marginal log-density  log p(x | t) = log (1/m) sum_j p(x | t, z_j)  [lecture: From Conditional to Unconditional Velocity; Fig. 8, 9]

    Args:
        path: a ``GaussianPath`` (``sigma_t > 0`` at the given times).
        x: points, shape ``(n, d)``.
        t: a float or an array of shape ``(n,)``.
        z: ``m`` values of z: ``x1`` of shape ``(m, d)`` or ``(x0, x1)``.
        chunk_size: rows of ``x`` and of ``z`` per block, or None for one block.

    Returns:
        shape ``(n,)``.
    """
    if not _traced(x, t):
        return _fast_marginal(path, x, t, z, chunk_size, need_velocity=False)[0]
    lse, m, _ = _streamed(path, x, t, z, chunk_size, need_velocity=False)
    return refuse_non_finite(lse - onp.log(m), "log p(x | t)", large={"x": x, "z": z[1] if isinstance(z, (tuple, list)) else z})


def marginal_velocity(path, x, t, z, chunk_size=DEFAULT_CHUNK):
    """Marginal velocity  u(x, t) = sum_j p(z_j | x, t) u_cond(x, t, z_j)  [lecture: Theorem 1, eq. (9), (10)]

    The Monte Carlo estimate of ``E_{z | x, t}[u_cond(x, t, z)]`` when ``z`` are samples
    of p(z); the exact velocity of the mixture ``(1/m) sum_j p(x | t, z_j)`` for any set.

    Args:
        path: a ``GaussianPath`` (``sigma_t > 0`` at the given times).
        x: points, shape ``(n, d)``.
        t: a float or an array of shape ``(n,)``.
        z: ``m`` values of z: ``x1`` of shape ``(m, d)`` or ``(x0, x1)``.
        chunk_size: rows of ``x`` and of ``z`` per block, or None for one block.

    Returns:
        shape ``(n, d)``.
    """
    if not _traced(x, t):
        return _fast_marginal(path, x, t, z, chunk_size, need_velocity=True)[1]
    u = _streamed(path, x, t, z, chunk_size, need_velocity=True)[2]
    return refuse_non_finite(u, "u(x, t)", large={"x": x, "z": z[1] if isinstance(z, (tuple, list)) else z})

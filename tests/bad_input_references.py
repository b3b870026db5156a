"""Independent references for the battery's documented acceptances at extreme values.

An acceptance of a far point (|x| ~ 1e154 or 1e300), large parameters or a tiny standard
deviation is a claim that the returned result is right. The references here recompute
each result from its formula, written again (not calling the function under test), in
long double: an 80-bit float on x86-64, with exponents up to 1e4932, so |x| ~ 1e300
squares without overflow. The package's float64 result must equal the reference rounded
to float64 within a relative 1e-9 (a few hundred roundings), unless a check says why it
allows more. Where long double is no wider than float64, a check raises
``NeedsExtended`` and the probe is counted as skipped, not passed.

Checks take ``(result, value, call_with)``: the probe's result, the probe's value, and a
function that calls the case again with another value in its place.
"""

import itertools

import numpy as np

from tests.bad_input import NeedsExtended

LD = np.longdouble
EXTENDED = np.finfo(LD).maxexp > 1024


def ld(a):
    """``a`` in long double (a check that needs the wider range cannot run without it)."""
    if not EXTENDED:
        raise NeedsExtended
    return np.asarray(a, dtype=LD)


def close(a, b, rtol=1e-9, atol=0.0):
    """``a`` (float64, from the package) equals the reference ``b`` (rounded to float64) to ``rtol``."""
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(close(u, v, rtol, atol) for u, v in zip(a, b))
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=LD).astype(float)
    return a.shape == b.shape and bool(np.all(np.isfinite(b))) and bool(np.allclose(a, b, rtol=rtol, atol=atol))


def pi():
    return LD(np.pi) if EXTENDED else np.pi


# -- networks, flows, fields ----------------------------------------------------------------------


def activation(name):
    return {"silu": lambda a: a / (1 + np.exp(-a)), "tanh": np.tanh, "relu": lambda a: np.maximum(a, 0)}[name]


def mlp(params, h, act="silu"):
    """h -> act(... act(h W_1 + b_1) ...) W_L + b_L."""
    h = ld(h)
    for k, (W, b) in enumerate(params):
        h = h @ ld(W) + ld(b)
        if k < len(params) - 1:
            h = activation(act)(h)
    return h


def velocity(params, x, t, act="silu"):
    """v_theta(x, t) = MLP([x, t])."""
    x = ld(x)
    t_col = np.ones((x.shape[0], 1), dtype=LD) * ld(t).reshape(-1, 1)
    return mlp(params, np.concatenate([x, t_col], axis=1), act)


def gauss_logpdf(x, mean, std):
    """log N(x; mean, std^2 I)."""
    x, mean, std = ld(x), ld(mean), ld(std)
    d = x.shape[-1]
    return -0.5 * d * np.log(2 * pi()) - d * np.log(std) - 0.5 * np.sum((x - mean) ** 2, axis=-1) / std**2


def std_normal_logpdf(z):
    z = ld(z)
    return -0.5 * z.shape[1] * np.log(2 * pi()) - 0.5 * np.sum(z**2, axis=1)


def planar_layer(layer, x):
    """phi(x) = x + tanh(b^T x + c) a and log |1 + tanh'(s) a^T b|."""
    a, b, c = (ld(layer[k]) for k in ("a", "b", "c"))
    x = ld(x)
    s = x @ b + c
    return x + np.tanh(s)[:, None] * a, np.log(np.abs(1 + (1 - np.tanh(s) ** 2) * (a @ b)))


def planar_chain(layers, z):
    total = 0
    for layer in layers:
        z, log_det = planar_layer(layer, z)
        total = total + log_det
    return z, total


def coupling(params, x, inverse=False, perm=None):
    """Eq. (3) with s = 2 tanh(MLP_s / 2), t = MLP_t (tanh hidden layers), or its inverse."""
    x = ld(x)
    xp = x if perm is None else x[:, perm]
    d1 = np.shape(params["s"][0][0])[0]
    x1, x2 = xp[:, :d1], xp[:, d1:]
    s = 2 * np.tanh(mlp(params["s"], x1, "tanh") / 2)
    t = mlp(params["t"], x1, "tanh")
    y2 = (x2 - t) * np.exp(-s) if inverse else x2 * np.exp(s) + t
    y = np.concatenate([x1, y2], axis=1)
    if perm is not None:
        y = y[:, np.argsort(perm)]
    return y, (-1 if inverse else 1) * np.sum(s, axis=1)


def realnvp(params, x, inverse=False):
    """The composition of the coupling layers, alternating halves (identity order first)."""
    d = np.shape(params[0]["s"][0][0])[0] + np.shape(params[0]["s"][-1][0])[1]
    perms = [np.arange(d) if k % 2 == 0 else np.arange(d)[::-1] for k in range(len(params))]
    total = 0
    for k in (range(len(params) - 1, -1, -1) if inverse else range(len(params))):
        x, log_det = coupling(params[k], x, inverse, perms[k])
        total = total + log_det
    return x, total


def planar_field(params, x, t):
    """u(x, t) = tanh(b(t)^T x + c(t)) a(t) and div u = tanh'(s) a(t)^T b(t), coefficients affine in t."""
    a, b, c = (ld(params[k]) for k in ("a", "b", "c"))
    t = ld(t).reshape(-1, 1)
    a_t, b_t, c_t = a[0] + t * a[1], b[0] + t * b[1], c[0] + t[:, 0] * c[1]
    s = np.sum(ld(x) * b_t, axis=1) + c_t
    return np.tanh(s)[:, None] * a_t, (1 - np.tanh(s) ** 2) * np.sum(a_t * b_t, axis=1)


def rk4(field, x, t0, t1, n_steps):
    """The classic RK4 on an augmented state, step for step (for fields that give (u, -div u))."""
    h = (ld(t1) - ld(t0)) / n_steps
    t = ld(t0)
    for _ in range(n_steps):
        k1 = field(x, t)
        k2 = field(x + h / 2 * k1, t + h / 2)
        k3 = field(x + h / 2 * k2, t + h / 2)
        k4 = field(x + h * k3, t + h)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        t = t + h
    return x


def sin_field(x, t):
    """The battery's field u = sin(x) / 2 - x t / 5 and its divergence."""
    x = ld(x)
    return 0.5 * np.sin(x) - 0.2 * x * ld(t).reshape(-1, 1), np.sum(0.5 * np.cos(x) - 0.2 * ld(t).reshape(-1, 1), axis=1)


# -- paths and marginals --------------------------------------------------------------------------


def marginal(path, x, t, z):
    """Posterior weights, marginal log-density and marginal velocity over a finite set of z (Theorem 1)."""
    x = ld(x)
    n = x.shape[0]
    (a, b, s), (da, db, ds) = path.schedules(np.broadcast_to(np.asarray(t, dtype=float), (n,)).copy())
    a, b, s, da, db, ds = (ld(v)[:, None, None] for v in (a, b, s, da, db, ds))
    x0, x1 = (None, ld(z)) if not isinstance(z, tuple) else (ld(z[0]), ld(z[1]))
    mean = a * x1[None] + (0 if x0 is None else b * x0[None])  # (n, m, d)
    dmean = da * x1[None] + (0 if x0 is None else db * x0[None])
    d = x.shape[1]
    s2 = s[:, :, 0] ** 2
    # -|x - mu|^2 / (2 s^2) expanded: the cross term keeps the differences between the z when |x| >> |mu|
    sq = np.sum(mean**2, axis=2)
    q = np.min(sq, axis=1, keepdims=True)  # equal |mu_j| cancel exactly before the cross term is added
    cross = (np.einsum("nd,nmd->nm", x, mean) - 0.5 * (sq - q)) / s2  # l_j up to a term common to all j
    top = np.max(cross, axis=1, keepdims=True)
    w = np.exp(cross - top)
    w = w / np.sum(w, axis=1, keepdims=True)
    u_cond = dmean + np.where(ds == 0, 0, ds / s) * (x[:, None] - mean)
    common = -0.5 * (np.sum(x**2, axis=1) + q[:, 0]) / s2[:, 0] - d * np.log(s[:, 0, 0]) - 0.5 * d * np.log(2 * pi())
    log_marginal = common + top[:, 0] + np.log(np.sum(np.exp(cross - top), axis=1)) - np.log(LD(cross.shape[1]))
    return {"posterior_weights": w, "marginal_logpdf": log_marginal, "marginal_velocity": np.einsum("nm,nmd->nd", w, u_cond)}


def empirical_oracle(method, data, sigma, x, t):
    """The linear path's marginal over data points, x0 integrated out (oracles.EmpiricalOracle)."""
    x, y = ld(x), ld(data)
    var = (1 - ld(t)) ** 2 + ld(sigma) ** 2
    diff = x[:, None] - ld(t) * y[None]
    logn = -0.5 * x.shape[1] * np.log(2 * pi() * var) - 0.5 * np.sum(diff**2, axis=2) / var
    top = np.max(logn, axis=1, keepdims=True)
    if method == "logpdf":
        return top[:, 0] + np.log(np.sum(np.exp(logn - top), axis=1)) - np.log(LD(y.shape[0]))
    w = np.exp(logn - top)
    w = w / np.sum(w, axis=1, keepdims=True)
    return np.einsum("nj,njd->nd", w, y[None] - (1 - ld(t)) / var * diff)


def mixture_logpdf(mixture, x):
    """log sum_k w_k N(x; mu_k, Sigma_k)."""
    x = ld(x)
    out = []
    for w, m, cov in zip(mixture.weights, mixture.means, mixture.covs):
        diff = x - ld(m)
        inv = np.linalg.inv(np.asarray(cov, dtype=float)).astype(LD)
        maha = np.einsum("ni,ij,nj->n", diff, inv, diff)
        out.append(np.log(ld(w)) - 0.5 * (x.shape[1] * np.log(2 * pi()) + LD(np.linalg.slogdet(cov)[1]) + maha))
    out = np.stack(out, axis=1)
    top = np.max(out, axis=1, keepdims=True)
    return top[:, 0] + np.log(np.sum(np.exp(out - top), axis=1))


# -- metrics and pairings --------------------------------------------------------------------------


def distances(x, y):
    x, y = ld(x), ld(y)
    return np.sqrt(np.sum((x[:, None] - y[None]) ** 2, axis=2))


def energy_distance(x, y):
    n, m = len(x), len(y)
    return 2 * distances(x, y).mean() - distances(x, x).sum() / (n * (n - 1)) - distances(y, y).sum() / (m * (m - 1))


def median_distance(x, y):
    pooled = np.concatenate([ld(x), ld(y)])
    return np.median(distances(pooled, pooled)[np.triu_indices(len(pooled), 1)])


def kernel(x, y, h):
    return np.exp(-0.5 * (distances(x, y) / ld(h)) ** 2)


def mmd2(x, y, h, unbiased):
    kxx, kyy, kxy = kernel(x, x, h), kernel(y, y, h), kernel(x, y, h)

    def within(K, q):
        return (K.sum() - np.trace(K)) / (q * (q - 1)) if unbiased else K.mean()
    return within(kxx, len(x)) + within(kyy, len(y)) - 2 * kxy.mean()


def best_permutation(x0, x1):
    """The pairing of minimal total squared cost, by trying every permutation (n! of them: small n only)."""
    x0, x1 = ld(x0), ld(x1)
    costs = {p: np.sum((x0 - x1[list(p)]) ** 2) for p in itertools.permutations(range(len(x0)))}
    return list(min(costs, key=costs.get))


# -- generic checks ------------------------------------------------------------------------------


def _scale_of(v):
    parts = v if isinstance(v, tuple) else (v,)
    return max(float(np.max(np.abs(np.asarray(p, dtype=float)))) for p in parts)


def affine(result, value, call_with):
    """For a map affine in the probed argument v: f(v) = c (f(v / c) - f(0)) + f(0), with c = max |v|.

    For a pair z = (x0, x1) only the far member is scaled (the map is affine in each).
    """
    c = _scale_of(value)

    def parts(fn):
        if isinstance(value, tuple):
            return tuple(fn(p) if _scale_of(p) > 1e100 else p for p in value)
        return fn(value)

    small, zero = call_with(parts(lambda p: np.asarray(p) / c)), call_with(parts(lambda p: 0 * np.asarray(p)))

    def combine(s, z):
        return ld(c) * (ld(s) - ld(z)) + ld(z)

    def same(r, s, z):
        if r is None:
            return s is None and z is None
        if isinstance(r, tuple):
            return all(same(*parts) for parts in zip(r, s, z))
        return close(r, combine(s, z), atol=1e-280 * c)

    return same(result, small, zero)


def ode_decay(t0, t1, rtol):
    """dx/dt = sin(x) / 2 - x t / 5 from |x| ~ 1e154 or more: x(t1) = x(t0) exp(-(t1^2 - t0^2) / 10) up to 1e-150.

    ``rtol`` allows the integrator's own error on that linear ODE.
    """
    def check(result, value, call_with):
        x = getattr(result, "x", result)
        t1_ = ld(t1).reshape(-1, 1) if np.ndim(t1) else ld(t1)
        t0_ = ld(t0).reshape(-1, 1) if np.ndim(t0) else ld(t0)
        return close(x, ld(value) * np.exp(-(t1_**2 - t0_**2) / 10), rtol=rtol)
    return check

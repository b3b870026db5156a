"""A catalogue of implementations, correct and broken, with the verdict each checker must give.

Each ``Case`` is one implementation written the way people write them in NumPy, the
checker that judges it, and what the checker must say: ``expected = None`` for a correct
implementation (it must pass), otherwise the exact set of mistakes it must name (an
empty set: rejected, but no name fits). The broken ones are modelled on mistakes found
in the field's code: side effects and aliasing, state kept between calls, code that is
right only in 2-D, chunking that is right only for small data sets, loops one step
short, a clamped ``1 - t``, sign and time-convention slips. The tests run every case
(``tests/test_testing_catalogue.py``); the README's list of what the checkers catch is
this catalogue; ``figures/claims/part5_verification.py`` counts the cases named.
The PyTorch and JAX catalogues are in ``tests/interop``.
"""

import itertools
import math
from dataclasses import dataclass

import numpy as onp
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp

__all__ = ["Case", "CATALOGUE", "cases_for"]


@dataclass(frozen=True)
class Case:
    """One implementation and the verdict it must get.

    Attributes:
        checker: the checker's name (``"check_bijection"``, ...).
        kind: the class of mistake (``"correct"``, ``"side effects"``, ``"state"``,
            ``"dimension"``, ``"size"``, ``"boundary"``, ``"convention"``, ``"formula"``).
        title: what the implementation is, in words.
        expected: None (must pass), or the set of diagnoses it must get (exactly).
        run: ``run() -> CheckReport``.
        precision: the precision the implementation computes in.
        variant: for a mistake already in the catalogue written another way (the same
            names expected), what differs: the method's order, a term that cancels
            elsewhere, ...; empty otherwise.
    """

    checker: str
    kind: str
    title: str
    expected: frozenset | None
    run: object
    precision: str = "float64"
    variant: str = ""


# ----------------------------------------------------------------------------- bijections

_COUPLING_RNG = onp.random.default_rng(3)
_W1 = 0.6 * _COUPLING_RNG.standard_normal((2, 16))
_W2 = 0.4 * _COUPLING_RNG.standard_normal((16, 4))
_X_BIJ = onp.random.default_rng(4).normal(size=(8, 4))


def _coupling_st(x1, dtype):
    h = onp.tanh(x1 @ _W1.astype(dtype))
    out = h @ _W2.astype(dtype)
    return onp.tanh(out[:, :2]), out[:, 2:]  # scale bounded by tanh, translation


def coupling(dtype=onp.float64, sign=1.0, inv_sign=-1.0, sum_log_det=True, in_place=False, log_det=True):
    """A RealNVP affine coupling layer on d = 4 (eq. (3)), with switches for the usual slips."""
    def forward(x):
        x = onp.asarray(x).astype(dtype, copy=not in_place)
        s, t = _coupling_st(x[:, :2], dtype)
        if in_place:
            x[:, 2:] = x[:, 2:] * onp.exp(s) + t  # overwrites the caller's array
            y = x
        else:
            y = onp.concatenate([x[:, :2], x[:, 2:] * onp.exp(s) + t], axis=1)
        ld = s.sum(axis=1) if sum_log_det else s
        return y, (sign * ld if log_det else onp.zeros(len(x), dtype=dtype))

    def inverse(y):
        y = onp.asarray(y).astype(dtype)
        s, t = _coupling_st(y[:, :2], dtype)
        return onp.concatenate([y[:, :2], (y[:, 2:] - t) * onp.exp(-s)], axis=1), inv_sign * s.sum(axis=1)
    return forward, inverse


def _cached_inverse():
    forward, inverse = coupling()
    cache = {}

    def fwd(x):
        y, ld = forward(x)
        cache["log_det"] = ld  # kept for the inverse
        return y, ld

    def inv(y):
        return inverse(y)[0], -cache["log_det"]
    return fwd, inv


def _batch_normalised():
    """An ActNorm-like layer initialised on the batch it sees: each row depends on the others."""
    def forward(x):
        m, s = x.mean(axis=0), x.std(axis=0) + 0.5
        return (x - m) / s, onp.full(len(x), -onp.sum(onp.log(s)))

    def inverse(y):
        m, s = onp.zeros(y.shape[1]), onp.ones(y.shape[1]) * 1.5
        return y * s + m, onp.full(len(y), onp.sum(onp.log(s)))
    return forward, inverse


def _reverse_layer():
    """A permutation layer that reverses the coordinates with a view: right values, aliased result."""
    def forward(x):
        return x[:, ::-1], onp.zeros(len(x))

    def inverse(y):
        return onp.ascontiguousarray(y[:, ::-1]), onp.zeros(len(y))
    return forward, inverse


def _planar_at_output():
    from ..flows.planar import planar_constrain, planar_forward, planar_init, planar_inverse, planar_log_det

    params = planar_constrain(planar_init(3, onp.random.default_rng(11), scale=2.0))

    def forward(x):
        y, _ = planar_forward(params, x)
        return y, planar_log_det(params, y)
    return forward, (lambda y: planar_inverse(params, y))


def _bijection(make, x=None):
    from .bijection import check_bijection

    def run():
        fwd, inv = make()
        return check_bijection(fwd, inv, _X_BIJ if x is None else x)
    return run


# ----------------------------------------------------------------------------- conditional paths


def linear_path(dtype=onp.float64):
    def sample(x0, x1, t):
        x0, x1, t = (onp.asarray(v).astype(dtype) for v in (x0, x1, t))
        tc = t[:, None]
        return (1 - tc) * x0 + tc * x1, x1 - x0
    return sample


def conical_path(dtype=onp.float64, clamp=None, sign=1.0):
    """The summary table's conical path: x_t = t x1 + (1 - t) x0, u = (x1 - x_t) / (1 - t)."""
    def sample(x0, x1, t):
        x0, x1, t = (onp.asarray(v).astype(dtype) for v in (x0, x1, t))
        tc = t[:, None]
        x_t = tc * x1 + (1 - tc) * x0
        one_minus_t = onp.maximum(1 - tc, clamp) if clamp else 1 - tc
        return x_t, sign * (x1 - x_t) / one_minus_t
    return sample


def _data_first(x0, x1, t):
    tc = t[:, None]
    return tc * x0 + (1 - tc) * x1, x0 - x1


def _noisy_path():
    noise = onp.random.default_rng(3)

    def sample(x0, x1, t):
        tc = t[:, None]
        return (1 - tc) * x0 + tc * x1 + 0.1 * noise.normal(size=x0.shape), x1 - x0
    return sample


def _sigma_min_with_linear_velocity(sigma_min=1e-2):
    def sample(x0, x1, t):
        tc = t[:, None]
        return tc * x1 + (1 - (1 - sigma_min) * tc) * x0, x1 - x0
    return sample


def _in_place_path(x0, x1, t):
    tc = t[:, None]
    u = x1 - x0
    x0 *= 1 - tc  # x_t built in the caller's x0
    x0 += tc * x1
    return x0, u


def _squeezing_path(x0, x1, t):
    x0, x1 = onp.squeeze(x0), onp.squeeze(x1)  # drops the d = 1 axis
    tc = t[:, None] if x0.ndim == 2 else t
    return (1 - tc) * x0 + tc * x1, x1 - x0


def _path(sample, **kwargs):
    from .conditional_path import check_conditional_path

    return lambda: check_conditional_path(sample, **kwargs)


# ----------------------------------------------------------------------------- ODE solvers

RK4 = ([0.0, 0.5, 0.5, 1.0], [[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6])
EULER = ([0.0], [[]], [1.0])
HEUN = ([0.0, 1.0], [[], [1.0]], [0.5, 0.5])


def rk_solver(tableau, dtype=onp.float64, time_of=None):
    """A fixed-step explicit Runge-Kutta solver from its tableau, computing in ``dtype``."""
    c, a, b = tableau

    def solve(u, x0, t0, t1, n):
        x = onp.array(x0, dtype=dtype)
        h = (t1 - t0) / n
        for k in range(n):
            t = t0 + k * h
            ks = []
            for ci, row in zip(c, a):
                xi = x + sum((dtype(h * aij) * kj for aij, kj in zip(row, ks)), onp.zeros_like(x))
                s = t + ci * h
                ks.append(u(xi, time_of(s, t0, t1) if time_of else s))
            x = x + sum(dtype(h * bi) * ki for bi, ki in zip(b, ks))
        return x
    return solve


def _linspace_rk4(u, x0, t0, t1, n):
    ts = onp.linspace(t0, t1, n)  # n points: n - 1 steps
    x = onp.array(x0, dtype=float)
    for s, s_next in zip(ts[:-1], ts[1:]):
        h = s_next - s
        k1 = u(x, s)
        k2 = u(x + h / 2 * k1, s + h / 2)
        k3 = u(x + h / 2 * k2, s + h / 2)
        k4 = u(x + h * k3, s_next)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def _in_place_euler(u, x0, t0, t1, n):
    h = (t1 - t0) / n
    x = x0
    for k in range(n):
        x += h * u(x, t0 + k * h)  # integrates in the caller's array
    return x


def _forward_only(u, x0, t0, t1, n):
    return rk_solver(RK4)(u, x0, min(t0, t1), max(t0, t1), n)


def _solver(solve, order):
    from .solvers import check_ode_solver

    return lambda: check_ode_solver(solve, order)


# ----------------------------------------------------------------------------- likelihoods


def _step(dtype):
    return float(onp.finfo(dtype).eps) ** (1 / 3)  # balances truncation and round-off


def _fd_divergence(u, x, t, terms=None):
    """tr J_u(x, t) by central differences: all 2d shifted batches in one call of u."""
    n, d = x.shape
    h = _step(x.dtype)
    q = d if terms is None else min(terms, d)
    shifts = onp.concatenate([x + h * onp.eye(d)[j] for j in range(q)] + [x - h * onp.eye(d)[j] for j in range(q)])
    t_all = onp.tile(t, 2 * q) if onp.ndim(t) else t
    out = onp.asarray(u(shifts.astype(x.dtype), t_all)).reshape(2, q, n, d)
    return sum((out[0, j, :, j] - out[1, j, :, j]) / (2 * h) for j in range(q))


def cnf(dtype=onp.float64, n_steps=16, div_sign=-1.0, backwards=True, constant="d", terms=None, probes=None,
        rng=None):
    """log p1(x) = log p0(x(0)) - int_0^1 div u, by RK4 on d/dt [x, l] = [u, div u] (NumPy).

    ``probes``: None (exact divergence by finite differences), ``"point"`` (a Rademacher
    probe per point, drawn once per solve) or ``"batch"`` (one probe for the whole batch).
    """
    def log_likelihood(u, x):
        x = onp.asarray(x).astype(dtype)
        n, d = x.shape
        if probes is None:
            def div(y, t):
                return _fd_divergence(u, y, t, terms)
        else:
            eps = rng.choice([-1.0, 1.0], size=(n if probes == "point" else 1, d)).astype(dtype)

            def div(y, t):
                h = _step(dtype)
                return onp.sum(eps * (onp.asarray(u(y + h * eps, t)) - onp.asarray(u(y - h * eps, t))) / (2 * h),
                               axis=1)

        def rhs(state, t):
            y = state[:, :d]
            return onp.concatenate([onp.asarray(u(y, t)), onp.asarray(div(y, t))[:, None]], axis=1).astype(dtype)

        t0, t1 = (1.0, 0.0) if backwards else (0.0, 1.0)
        h = (t1 - t0) / n_steps
        state = onp.concatenate([x, onp.zeros((n, 1), dtype=dtype)], axis=1)
        for k in range(n_steps):
            t = t0 + k * h
            k1 = rhs(state, t)
            k2 = rhs(state + dtype(h / 2) * k1, t + h / 2)
            k3 = rhs(state + dtype(h / 2) * k2, t + h / 2)
            k4 = rhs(state + dtype(h) * k3, t + h)
            state = state + dtype(h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
        z = state[:, :d]
        integral = -state[:, d] if backwards else state[:, d]
        const = {"d": 0.5 * d * math.log(2 * math.pi), "2d": math.log(2 * math.pi), None: 0.0}[constant]
        return -0.5 * onp.sum(z**2, axis=1) - const + div_sign * integral
    return log_likelihood


def _shape_cached_cnf():
    inner = cnf()
    cache = {}

    def log_likelihood(u, x):
        key = x.shape  # the trajectory is memoised by the batch's shape, not by (u, x)
        if key not in cache:
            cache[key] = inner(u, x)
        return cache[key]
    return log_likelihood


def _likelihood(fn, fresh=False, **kwargs):
    from .likelihood import check_log_likelihood

    def run():
        return check_log_likelihood(fn() if fresh else fn, **kwargs)
    return run


# ----------------------------------------------------------------------------- divergence estimators


def hutchinson(noise="rademacher", dtype=onp.float64, shared=False, scale=1.0, terms=None, sign=1.0,
               time_reversed=False, in_place=False, left=True):
    """eps^T J eps by a central difference along eps; ``left=False`` leaves out the left eps^T (1^T J eps)."""
    def estimate(u, x, t, rng):
        h = _step(dtype)
        x = onp.asarray(x).astype(dtype, copy=not in_place)
        n, d = x.shape
        shape = (1, d) if shared else (n, d)
        eps = (rng.choice([-1.0, 1.0], size=shape) if noise == "rademacher" else
               rng.standard_normal(shape) if noise == "gaussian" else
               rng.uniform(-1.0, 1.0, shape) if noise == "uniform" else onp.ones(shape)).astype(dtype)
        if terms is not None:
            eps[:, terms:] = 0.0
        eps = onp.broadcast_to(eps, (n, d))
        s = 1.0 - t if time_reversed else t
        if in_place:
            x += h * eps
            up = onp.asarray(u(x, s))
            x -= 2 * h * eps
            down = onp.asarray(u(x, s))
        else:
            up, down = onp.asarray(u(x + h * eps, s)), onp.asarray(u(x - h * eps, s))
        return sign * scale * onp.sum((eps if left else 1.0) * (up - down) / (2 * h), axis=1)
    return estimate


def _diagonal_two_terms(u, x, t, rng):
    return _fd_divergence(u, x, t, terms=2)  # a trace written for 2-D fields


def _divergence(fn, **kwargs):
    from .likelihood import check_divergence_estimator

    return lambda: check_divergence_estimator(fn, **kwargs)


# ----------------------------------------------------------------------------- OT pairing


def _brute_force_pair(x0, x1):
    n = len(x0)
    best = min(itertools.permutations(range(n)), key=lambda p: onp.sum((x0 - x1[list(p)]) ** 2))
    return x0.copy(), x1[list(best)]


def assignment_pair(cost, dtype=onp.float64, copy=True):
    def pair(x0, x1):
        a, b = onp.asarray(x0).astype(dtype), onp.asarray(x1).astype(dtype)
        _, cols = linear_sum_assignment(cost(a, b))
        return (a.copy() if copy else x0), b[cols]
    return pair


def _sq(a, b):
    return ((a[:, None] - b[None]) ** 2).sum(-1)


def _with_replacement(x0, x1):
    i = onp.random.default_rng(0).integers(0, len(x0), len(x0))
    a, b = assignment_pair(_sq)(x0, x1)
    return a[i], b[i]


def _standardised(a, b):
    s = onp.concatenate([a, b]).std(axis=0)  # each coordinate divided by its spread over the batch
    return _sq(a / s, b / s)


def _pairing(fn, **kwargs):
    from .pairing import check_ot_pairing

    return lambda: check_ot_pairing(fn, **kwargs)


# ----------------------------------------------------------------------------- marginal velocity


def marginal(dtype=onp.float64, normalise="data", stable=True, chunk=None, chunk_weighting="share", clamp=None,
             in_place=False, constant=True):
    """u(x, t) = sum_i w_i (y_i - x) / (1 - t), w_i proportional to N(x; t y_i, (1 - t)^2 I), by chunks of data.

    ``constant=False`` drops the Gaussian's constant -d/2 log(2 pi (1 - t)^2) from the
    log-weights (it cancels in weights normalised over the data, not elsewhere).
    """
    def estimate(x, t, data):
        xs, t, data = (onp.asarray(v).astype(dtype) for v in (x, t, data))
        one_minus_t = onp.maximum(1 - t, clamp) if clamp else 1 - t
        var = one_minus_t**2
        size = chunk or len(data)
        num, log_den, parts = None, None, []
        for start in range(0, len(data), size):
            y = data[start:start + size]
            diff = xs[:, None, :] - t[:, None, None] * y[None]
            log_n = -(diff**2).sum(-1) / (2 * var[:, None])
            if constant:
                log_n = log_n - xs.shape[1] / 2 * onp.log(2 * onp.pi * var)[:, None]
            u_i = (y[None] - xs[:, None]) / one_minus_t[:, None, None]
            if normalise is None:  # p_t(x) u(x, t) instead of u
                parts.append(onp.einsum("nj,njd->nd", onp.exp(log_n) / len(data), u_i))
                continue
            axis = 1 if normalise == "data" else 0
            if stable:
                lse = logsumexp(log_n, axis=axis, keepdims=True)
                w = onp.exp(log_n - lse)
            else:
                n_i = onp.exp(log_n)
                lse = onp.log(n_i.sum(axis=axis, keepdims=True))
                w = n_i / n_i.sum(axis=axis, keepdims=True)
            part = onp.einsum("nj,njd->nd", w, u_i)
            if chunk_weighting != "share" or normalise != "data":
                parts.append(part)
            elif num is None:
                num, log_den = part, lse[:, 0]
            else:  # combine with the chunks so far, each weighted by its share of the total weight
                new = onp.logaddexp(log_den, lse[:, 0])
                num = num * onp.exp(log_den - new)[:, None] + part * onp.exp(lse[:, 0] - new)[:, None]
                log_den = new
        if in_place:
            x *= 0.0  # the caller's x used as a scratch buffer
        if num is not None:
            return num
        return onp.sum(parts, axis=0) if normalise is None else onp.mean(parts, axis=0)
    return estimate


def _uniform_weights(x, t, data):
    return (data.mean(0) - x) / (1 - t)[:, None]


def _marginal(fn, **kwargs):
    from .marginal import check_marginal_velocity

    kwargs.setdefault("dims", (1, 3))  # the default dimensions, 1, 2, 3, 5, for the first case only: time
    return lambda: check_marginal_velocity(fn, **kwargs)


# ----------------------------------------------------------------------------- learned fields


def _field(wrong=None, data="cross", **kwargs):
    from ..distributions import dataset_mixture
    from ..oracles import GaussianMixtureOracle
    from .marginal import check_velocity_field

    def run():
        oracle = GaussianMixtureOracle(dataset_mixture(data))
        v = oracle.velocity if wrong is None else wrong(oracle.velocity)
        return check_velocity_field(v, data, **kwargs)
    return run


# ----------------------------------------------------------------------------- the catalogue


def _names(*labels):
    return frozenset(labels)


OK = None

CATALOGUE = (
    # bijections
    Case("check_bijection", "correct", "RealNVP affine coupling layer (d = 4)", OK, _bijection(coupling)),
    Case("check_bijection", "correct", "the same layer in float32", OK,
         _bijection(lambda: coupling(onp.float32)), "float32"),
    Case("check_bijection", "correct", "the same layer in float16", OK,
         _bijection(lambda: coupling(onp.float16)), "float16"),
    Case("check_bijection", "formula", "forward log-det with the wrong sign", _names("log-det sign flipped"),
         _bijection(lambda: coupling(sign=-1.0))),
    Case("check_bijection", "formula", "inverse log-det with the forward's sign", _names("inverse log-det sign flipped"),
         _bijection(lambda: coupling(inv_sign=1.0))),
    Case("check_bijection", "formula", "forward log-det left out (0)", _names("log-det missing"),
         _bijection(lambda: coupling(log_det=False))),
    Case("check_bijection", "formula", "log-scales returned per coordinate, not summed",
         _names("log-det not summed over coordinates"), _bijection(lambda: coupling(sum_log_det=False))),
    Case("check_bijection", "formula", "planar layer whose log-det is evaluated at y = forward(x)",
         _names("log-det evaluated at the output"),
         _bijection(_planar_at_output, x=onp.random.default_rng(12).normal(size=(6, 3)))),
    Case("check_bijection", "side effects", "coupling layer that updates x[:, 2:] in place and returns x",
         _names("writes into its input x", "returns a view of its input x"), _bijection(lambda: coupling(in_place=True))),
    Case("check_bijection", "side effects", "coordinate reversal returned as a view x[:, ::-1]",
         _names("returns a view of its input x"), _bijection(_reverse_layer)),
    Case("check_bijection", "state", "inverse that reuses the log-det cached by the last forward call",
         _names("inverse reuses the log-det of the last forward call"), _bijection(_cached_inverse)),
    Case("check_bijection", "state", "ActNorm-like layer normalised by the statistics of its batch",
         _names("rows depend on the batch"), _bijection(_batch_normalised)),
    # conditional paths
    Case("check_conditional_path", "correct", "linear interpolation path", OK, _path(linear_path())),
    Case("check_conditional_path", "correct", "conical path (summary table)", OK, _path(conical_path())),
    Case("check_conditional_path", "correct", "conical path in float32", OK, _path(conical_path(onp.float32)),
         "float32"),
    Case("check_conditional_path", "correct", "linear path in float16", OK, _path(linear_path(onp.float16)),
         "float16"),
    Case("check_conditional_path", "convention", "conical velocity as Example 2's text writes it, (x - x1)/(1 - t)",
         _names("velocity sign flipped"), _path(conical_path(sign=-1.0))),
    Case("check_conditional_path", "convention", "path written with the data at t = 0",
         _names("reversed time convention"), _path(_data_first)),
    Case("check_conditional_path", "boundary", "conical velocity with 1 - t clamped at 0.01",
         _names("velocity wrong only near t = 1"), _path(conical_path(clamp=0.01))),
    Case("check_conditional_path", "formula", "noise drawn inside sample", _names("noise drawn inside sample"),
         _path(_noisy_path())),
    Case("check_conditional_path", "formula", "sigma_min path with the linear path's velocity x1 - x0",
         _names("linear path's velocity"), _path(_sigma_min_with_linear_velocity())),
    Case("check_conditional_path", "side effects", "x_t built in place in the caller's x0",
         _names("writes into its input x0", "returns a view of its input x0"), _path(_in_place_path)),
    Case("check_conditional_path", "dimension", "points squeezed (drops the axis of d = 1)",
         _names("wrong shape in d = 1"), _path(_squeezing_path)),
    # ODE solvers
    Case("check_ode_solver", "correct", "classic RK4", OK, _solver(rk_solver(RK4), 4)),
    Case("check_ode_solver", "correct", "Euler", OK, _solver(rk_solver(EULER), 1)),
    Case("check_ode_solver", "correct", "Heun", OK, _solver(rk_solver(HEUN), 2)),
    Case("check_ode_solver", "correct", "classic RK4 in float32", OK, _solver(rk_solver(RK4, onp.float32), 4),
         "float32"),
    Case("check_ode_solver", "correct", "classic RK4 in float16", OK, _solver(rk_solver(RK4, onp.float16), 4),
         "float16"),
    Case("check_ode_solver", "boundary", "RK4 loop over linspace(t0, t1, n_steps): n_steps - 1 steps",
         _names("takes n_steps - 1 steps"), _solver(_linspace_rk4, 4)),
    Case("check_ode_solver", "side effects", "Euler integrating in place in the caller's x0 (x += h u)",
         _names("writes into its input x0", "returns a view of its input x0"), _solver(_in_place_euler, 1)),
    Case("check_ode_solver", "formula", "RK4 with its last stage at t + h/2", _names("stage at the wrong time"),
         _solver(rk_solver(([0.0, 0.5, 0.5, 0.5], RK4[1], RK4[2])), 4)),
    Case("check_ode_solver", "formula", "RK4 with its last stage at t + h/2, in float32", _names(
        "stage at the wrong time"), _solver(rk_solver(([0.0, 0.5, 0.5, 0.5], RK4[1], RK4[2]), onp.float32), 4),
        "float32"),
    Case("check_ode_solver", "convention", "RK4 calling u at t0 + t1 - t", _names("time runs the wrong way"),
         _solver(rk_solver(RK4, time_of=lambda s, t0, t1: t0 + t1 - s), 4)),
    Case("check_ode_solver", "convention", "Euler calling u at t1 - k h, i.e. at t0 + t1 - t",
         _names("time runs the wrong way"), _solver(rk_solver(EULER, time_of=lambda s, t0, t1: t0 + t1 - s), 1),
         variant="first order: a few per cent from the reversed-time solution at 48 steps"),
    Case("check_ode_solver", "formula", "RK4 that never advances t", _names("time not advanced"),
         _solver(rk_solver(RK4, time_of=lambda s, t0, t1: t0), 4)),
    Case("check_ode_solver", "boundary", "RK4 that integrates from min(t0, t1) to max(t0, t1)",
         _names("no reverse-time integration"), _solver(_forward_only, 4)),
    Case("check_ode_solver", "formula", "Heun claimed as fourth order", _names("order 2, not 4"),
         _solver(rk_solver(HEUN), 4)),
    # log-likelihoods
    Case("check_log_likelihood", "correct", "RK4 CNF, exact divergence by finite differences", OK,
         _likelihood(cnf(), atol=1e-4)),
    Case("check_log_likelihood", "correct", "the same in float32", OK, _likelihood(cnf(onp.float32), atol=1e-3),
         "float32"),
    Case("check_log_likelihood", "correct", "the same in float16 (atol 0.01)", OK,
         _likelihood(cnf(onp.float16), atol=1e-2), "float16"),
    Case("check_log_likelihood", "correct", "Hutchinson, one Rademacher probe per point per solve", OK,
         _likelihood(lambda: cnf(probes="point", rng=onp.random.default_rng(1)), fresh=True, atol=1e-3,
                     stochastic=True, n=4, n_repeats=64, dims=(2, 5))),
    Case("check_log_likelihood", "correct", "Hutchinson, one probe shared by the whole batch per solve", OK,
         _likelihood(lambda: cnf(probes="batch", rng=onp.random.default_rng(2)), fresh=True, atol=1e-3,
                     stochastic=True, n=4, n_repeats=8, dims=(2, 5), n_calls=24)),
    Case("check_log_likelihood", "formula", "integrated divergence added instead of subtracted",
         _names("divergence sign flipped"), _likelihood(cnf(div_sign=1.0))),
    Case("check_log_likelihood", "formula", "divergence left out", _names("divergence missing"),
         _likelihood(cnf(div_sign=0.0))),
    Case("check_log_likelihood", "convention", "x pushed forwards from t = 0 to 1", _names(
        "time reversed (x pushed forwards to t = 1)"), _likelihood(cnf(backwards=False))),
    Case("check_log_likelihood", "formula", "base log-density without -d/2 log(2 pi)", _names(
        "base log-density without its constant -d/2 log(2 pi)"), _likelihood(cnf(constant=None))),
    Case("check_log_likelihood", "dimension", "base log-density constant -log(2 pi), right for d = 2 only", _names(
        "base log-density constant of d = 2 (-log(2 pi) for every d)"), _likelihood(cnf(constant="2d"))),
    Case("check_log_likelihood", "dimension", "divergence summing the first two diagonal terms only", _names(
        "divergence sums only the first 2 diagonal terms"), _likelihood(cnf(terms=2))),
    Case("check_log_likelihood", "state", "trajectories memoised by the batch's shape", _names(
        "returns the result of an earlier call"), _likelihood(_shape_cached_cnf, fresh=True)),
    # divergence estimators
    Case("check_divergence_estimator", "correct", "Hutchinson, Rademacher probe per point", OK,
         _divergence(hutchinson())),
    Case("check_divergence_estimator", "correct", "Hutchinson, Gaussian probe per point", OK,
         _divergence(hutchinson("gaussian"))),
    Case("check_divergence_estimator", "correct", "Hutchinson, one probe shared by the batch", OK,
         _divergence(hutchinson(shared=True), n_calls=64)),
    Case("check_divergence_estimator", "correct", "exact trace by finite differences", OK,
         _divergence(lambda u, x, t, rng: _fd_divergence(u, x, t))),
    Case("check_divergence_estimator", "correct", "Hutchinson in float32", OK,
         _divergence(hutchinson(dtype=onp.float32)), "float32"),
    Case("check_divergence_estimator", "correct", "Hutchinson in float16", OK,
         _divergence(hutchinson(dtype=onp.float16)), "float16"),
    Case("check_divergence_estimator", "formula", "estimate with the wrong sign", _names("sign flipped"),
         _divergence(hutchinson(sign=-1.0))),
    Case("check_divergence_estimator", "convention", "field evaluated at 1 - t", _names("time reversed"),
         _divergence(hutchinson(time_reversed=True))),
    Case("check_divergence_estimator", "formula", "a probe of ones", _names("sums all Jacobian entries"),
         _divergence(hutchinson("ones"))),
    Case("check_divergence_estimator", "formula", "uniform probes on [-1, 1] (variance 1/3)",
         _names("probes not normalised"), _divergence(hutchinson("uniform"))),
    Case("check_divergence_estimator", "formula", "sum(J eps): the left eps^T left out (mean 0)",
         _names("mean 0 instead of the trace"), _divergence(hutchinson(left=False))),
    Case("check_divergence_estimator", "dimension", "exact trace summing the first two diagonal terms",
         _names("sums only the first 2 diagonal terms"), _divergence(_diagonal_two_terms)),
    Case("check_divergence_estimator", "side effects", "probe shifts applied in place to x",
         _names("writes into its input x"), _divergence(hutchinson(in_place=True))),
    # OT pairing
    Case("check_ot_pairing", "correct", "brute force over permutations", OK, _pairing(_brute_force_pair)),
    Case("check_ot_pairing", "correct", "scipy linear_sum_assignment", OK, _pairing(assignment_pair(_sq))),
    Case("check_ot_pairing", "correct", "linear_sum_assignment in float32", OK,
         _pairing(assignment_pair(_sq, onp.float32)), "float32"),
    Case("check_ot_pairing", "correct", "linear_sum_assignment in float16", OK,
         _pairing(assignment_pair(_sq, onp.float16)), "float16"),
    Case("check_ot_pairing", "formula", "batch returned as it came", _names("no re-pairing"),
         _pairing(lambda x0, x1: (x0.copy(), x1.copy()))),
    Case("check_ot_pairing", "formula", "x1 reordered by the inverse permutation", _names("inverse permutation applied"),
         _pairing(lambda x0, x1: (x0.copy(), x1[onp.argsort(linear_sum_assignment(_sq(x0, x1))[1])]))),
    Case("check_ot_pairing", "formula", "pairs sampled from the plan with replacement", _names(
        "pairs drawn with replacement"), _pairing(_with_replacement)),
    Case("check_ot_pairing", "formula", "cost |x0 - x1| instead of its square", _names("cost not squared"),
         _pairing(assignment_pair(lambda a, b: onp.sqrt(_sq(a, b))))),
    Case("check_ot_pairing", "formula", "cost maximised", _names("cost maximised"),
         _pairing(assignment_pair(lambda a, b: -_sq(a, b)))),
    Case("check_ot_pairing", "convention", "returns (x1_paired, x0_paired)", _names("x0 and x1 swapped"),
         _pairing(lambda x0, x1: assignment_pair(_sq)(x0, x1)[::-1])),
    Case("check_ot_pairing", "dimension", "cost on the first two coordinates (written for 2-D points)", _names(
        "cost on the first 2 coordinates only"), _pairing(assignment_pair(lambda a, b: _sq(a[:, :2], b[:, :2])))),
    Case("check_ot_pairing", "formula", "cost on standardised coordinates (no name fits)", _names(),
         _pairing(assignment_pair(_standardised))),
    Case("check_ot_pairing", "side effects", "returns the caller's x0 itself", _names(
        "returns a view of its input x0"), _pairing(assignment_pair(_sq, copy=False))),
    # marginal velocity
    Case("check_marginal_velocity", "correct", "log-sum-exp weights over the whole data set", OK,
         _marginal(marginal(), dims=None)),
    Case("check_marginal_velocity", "correct", "the same by chunks of 1024, chunks weighted by their share", OK,
         _marginal(marginal(chunk=1024))),
    Case("check_marginal_velocity", "correct", "log-sum-exp weights in float32", OK, _marginal(marginal(onp.float32)),
         "float32"),
    Case("check_marginal_velocity", "formula", "weights not normalised", _names("weights not normalised"),
         _marginal(marginal(normalise=None, stable=False))),
    Case("check_marginal_velocity", "formula", "weights not normalised, the Gaussian's constant dropped",
         _names("weights not normalised"), _marginal(marginal(normalise=None, stable=False, constant=False)),
         variant="the constant -d/2 log(2 pi (1 - t)^2) dropped (it cancels only in normalised weights)"),
    Case("check_marginal_velocity", "formula", "normalised without log-sum-exp",
         _names("weights underflow far from the data"), _marginal(marginal(stable=False))),
    Case("check_marginal_velocity", "formula", "weights normalised over the points x",
         _names("weights normalised over the wrong axis"), _marginal(marginal(normalise="points"))),
    Case("check_marginal_velocity", "formula", "weights normalised over the points x, the Gaussian's constant dropped",
         _names("weights normalised over the wrong axis"), _marginal(marginal(normalise="points", constant=False)),
         variant="the constant -d/2 log(2 pi (1 - t)^2) dropped (it cancels only in normalised weights)"),
    Case("check_marginal_velocity", "formula", "uniform weights", _names("uniform weights"), _marginal(_uniform_weights)),
    Case("check_marginal_velocity", "convention", "the field with the sign flipped", _names("sign flipped"),
         _marginal(lambda x, t, d: -marginal()(x, t, d))),
    Case("check_marginal_velocity", "convention", "the field of the data-at-t = 0 convention", _names(
        "reversed time convention"), _marginal(lambda x, t, d: -marginal()(x, 1 - t, d))),
    Case("check_marginal_velocity", "size", "softmax per chunk of 1024 data points, chunks averaged", _names(
        "weights normalised per chunk of the data"), _marginal(marginal(chunk=1024, chunk_weighting="mean"))),
    Case("check_marginal_velocity", "boundary", "1 - t clamped at 0.01", _names("wrong only near t = 1"),
         _marginal(marginal(clamp=0.01))),
    Case("check_marginal_velocity", "side effects", "scratch buffer that overwrites the caller's x", _names(
        "writes into its input x"), _marginal(marginal(in_place=True))),
    # learned fields
    Case("check_velocity_field", "correct", "the true field (closed form)", OK, _field()),
    Case("check_velocity_field", "correct", "1.1 times the true field (relative loss 0.01)", OK,
         _field(lambda u: (lambda x, t: 1.1 * u(x, t)))),
    Case("check_velocity_field", "correct", "the true field in float32", OK,
         _field(lambda u: (lambda x, t: u(x, t).astype(onp.float32))), "float32"),
    Case("check_velocity_field", "correct", "the true field in float16", OK,
         _field(lambda u: (lambda x, t: u(x, t).astype(onp.float16))), "float16"),
    Case("check_velocity_field", "convention", "the field with the sign flipped", _names("sign flipped"),
         _field(lambda u: (lambda x, t: -u(x, t)))),
    Case("check_velocity_field", "convention", "a field trained with the data at t = 0", _names(
        "reversed time convention"), _field(lambda u: (lambda x, t: -u(x, 1 - t)))),
)
"""Every case of the catalogue, by checker."""


def cases_for(checker):
    """The catalogue's cases for one checker."""
    return tuple(c for c in CATALOGUE if c.checker == checker)

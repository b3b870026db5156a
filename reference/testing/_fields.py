"""Test velocity fields with known flows, in any dimension, for NumPy, PyTorch and JAX.

A checker hands these to the implementation under test: as NumPy callables written with
``autograd.numpy`` (so the reference can differentiate them), or, with
``framework="torch"`` or ``"jax"``, as PyTorch or JAX callables (so an implementation
that differentiates the field itself, as an exact divergence by autograd does, can be
checked). All accept ``u(x, t)`` and ``u(x=..., t=...)`` with ``t`` a float, a 0-d
array/tensor or one time per point, and compute in the dtype of ``x`` (a float32 or
bfloat16 implementation gets a float32 or bfloat16 field).

Three kinds, each defined for every ``d >= 1``:

- ``gaussian_path``: ``u = (x - t mu) / (1 + t) + mu``; its flow carries ``N(0, I)`` to
  ``N(mu, 4 I)`` (the Gaussian path ``N(t mu, (1 + t)^2 I)``); ``div u = d / (1 + t)``;
- ``linear``: ``u = A x`` with a non-symmetric ``A`` whose diagonal entries are all
  positive (so a divergence that drops a diagonal term is off); flow ``expm(t A)``;
- ``nonlinear``: ``(1 + t) tanh(x W^T + b) V^T + sin(pi t) x M^T``, a Jacobian that is not
  symmetric and changes with ``t``, with its divergence in closed form.
"""

import functools
import math

import autograd.numpy as anp
import numpy as onp
from autograd.tracer import getval
from scipy.linalg import expm

from .adapters import _jax, _torch, jax_native, torch_native

__all__ = ["FIELD_KINDS", "make_field", "log_p0", "field_params", "closed_forms", "nonlinear_divergence",
           "nonlinear_jacobian", "reference_log_likelihood", "points_for"]

FIELD_KINDS = ("gaussian_path", "linear", "nonlinear")

_MU_PATTERN = onp.array([1.0, -0.5, 0.75, -0.25, 0.5, -1.0, 0.25, 0.6])
_DIAG_PATTERN = onp.array([0.4, 0.6, 0.5, 0.35, 0.45, 0.3, 0.55, 0.25])


@functools.lru_cache(maxsize=None)
def field_params(d):
    """The parameters of the test fields in dimension ``d`` (fixed; the 2-D ones are hand-picked)."""
    if d == 2:
        mu = onp.array([1.0, -0.5])
        A = onp.array([[0.4, -1.0], [0.8, 0.6]])  # trace 1: a missing divergence is 1 nat off
        W = onp.array([[1.2, -0.7], [0.5, 0.9], [-0.8, 0.4]])
        b = onp.array([0.3, -0.2, 0.1])
        V = onp.array([[0.9, -0.4, 0.6], [0.3, 0.8, -0.7]])
        M = onp.array([[-0.6, 0.9], [-0.4, 0.2]])
    else:
        rng = onp.random.default_rng(1000 + d)
        mu = onp.resize(_MU_PATTERN, d)
        off = rng.uniform(-0.8, 0.8, (d, d)) / math.sqrt(d)
        A = onp.triu(off, 1) - 0.6 * onp.tril(off, -1) + onp.diag(onp.resize(_DIAG_PATTERN, d))
        h = max(3, d + 1)
        W = rng.uniform(-1.0, 1.0, (h, d)) * 1.2 / math.sqrt(d)
        b = rng.uniform(-0.3, 0.3, h)
        V = rng.uniform(-0.8, 0.8, (d, h)) / math.sqrt(h / 3)
        M = rng.uniform(-0.7, 0.7, (d, d)) / math.sqrt(d)
    for a in (mu, A, W, b, V, M):
        a.setflags(write=False)
    return {"mu": mu, "A": A, "W": W, "b": b, "V": V, "M": M}


def _plain_or_traced(plain, traced):
    """NumPy's function, or autograd's when the argument is being traced (autograd's has an overhead)."""
    def f(v):
        return plain(v) if getval(v) is v else traced(v)
    return f


class _NumpyOps:
    tanh = staticmethod(_plain_or_traced(onp.tanh, anp.tanh))
    exp = staticmethod(_plain_or_traced(onp.exp, anp.exp))
    sin = staticmethod(_plain_or_traced(onp.sin, anp.sin))
    cos = staticmethod(_plain_or_traced(onp.cos, anp.cos))

    @staticmethod
    def const(a, like):
        dt = getval(like).dtype
        return a if dt == onp.float64 or dt.kind != "f" else a.astype(dt)

    @staticmethod
    def tcol(t, like):
        dt = getval(like).dtype
        if onp.ndim(getval(t)):
            t = anp.reshape(t, (-1, 1)) if getval(t) is not t else onp.reshape(t, (-1, 1))
            return t if dt == onp.float64 or dt.kind != "f" else onp.asarray(getval(t), dtype=dt)
        return float(getval(t)) if dt != onp.float64 else t

    @staticmethod
    def finish(out, like):
        dt = getval(like).dtype
        return out if dt == onp.float64 or dt.kind != "f" else out.astype(dt)


class _TorchOps:
    def __init__(self):
        torch = _torch()
        self.torch = torch
        self.tanh, self.exp = torch.tanh, torch.exp

    def sin(self, v):
        return self.torch.sin(v) if isinstance(v, self.torch.Tensor) else math.sin(v)

    def cos(self, v):
        return self.torch.cos(v) if isinstance(v, self.torch.Tensor) else math.cos(v)

    def const(self, a, like):
        return self.torch.tensor(onp.array(a), dtype=like.dtype, device=like.device)

    def tcol(self, t, like):
        if isinstance(t, self.torch.Tensor):
            t = t.to(dtype=like.dtype, device=like.device)
            return t.reshape(-1, 1) if t.ndim else t
        if isinstance(t, onp.ndarray) and t.ndim:
            return self.torch.tensor(onp.array(t), dtype=like.dtype, device=like.device).reshape(-1, 1)
        return float(t)

    @staticmethod
    def finish(out, like):
        return out


class _JaxOps:
    def __init__(self):
        _, jnp = _jax()
        self.jnp = jnp
        self.tanh, self.exp, self.sin, self.cos = jnp.tanh, jnp.exp, jnp.sin, jnp.cos

    def const(self, a, like):
        return self.jnp.asarray(a, dtype=like.dtype)

    def tcol(self, t, like):
        if self.jnp.ndim(t):
            return self.jnp.reshape(self.jnp.asarray(t, dtype=like.dtype), (-1, 1))
        return self.jnp.asarray(t, dtype=like.dtype)

    @staticmethod
    def finish(out, like):
        return out


def _formula(kind, ops, d):
    p = field_params(d)
    if kind == "gaussian_path":
        def u(x, t):
            tc, mu = ops.tcol(t, x), ops.const(p["mu"], x)
            return ops.finish((x - tc * mu) / (1.0 + tc) + mu, x)
    elif kind == "linear":
        def u(x, t):
            return ops.finish(x @ ops.const(p["A"], x).T, x)
    elif kind == "nonlinear":
        def u(x, t):
            tc = ops.tcol(t, x)
            h = ops.tanh(x @ ops.const(p["W"], x).T + ops.const(p["b"], x))
            out = (1.0 + tc) * (h @ ops.const(p["V"], x).T) + ops.sin(math.pi * tc) * (x @ ops.const(p["M"], x).T)
            return ops.finish(out, x)
    else:
        raise ValueError(f"kind must be one of {FIELD_KINDS}, got {kind!r}")
    return u


@functools.lru_cache(maxsize=None)
def make_field(kind, framework="numpy", d=2):
    """The test field ``kind`` in dimension ``d`` as a NumPy (autograd), PyTorch or JAX callable ``u(x, t)``.

    The same object for the same arguments, so an implementation that compiles per field
    (``jax.jit``, ``torch.compile``) compiles each field once.
    """
    if framework == "numpy":
        f = _formula(kind, _NumpyOps, d)

        def u(x, t):
            return f(x, t)
        u.__name__ = f"{kind}_field_{d}d"
        return u
    if framework == "torch":
        f = _formula(kind, _TorchOps(), d)

        def u_torch(x, t):
            return f(x, t)
        u_torch.__name__ = f"{kind}_field_{d}d_torch"
        return torch_native(u_torch)
    if framework == "jax":
        f = _formula(kind, _JaxOps(), d)

        def u_jax(x, t):
            return f(x, t)
        u_jax.__name__ = f"{kind}_field_{d}d_jax"
        return jax_native(u_jax)
    raise ValueError(f"framework must be 'numpy', 'torch' or 'jax', got {framework!r}")


def log_p0(x, constant=True):
    """``log N(x; 0, I)`` row by row (without ``-d/2 log(2 pi)`` if ``constant`` is False)."""
    d = x.shape[1]
    return -(0.5 * d * math.log(2 * math.pi) if constant else 0.0) - 0.5 * onp.sum(x**2, axis=1)


def nonlinear_jacobian(x, t, d):
    """``J_u(x, t)`` of the nonlinear field, ``(n, d, d)``; ``t`` of shape ``(n,)``."""
    p = field_params(d)
    t = onp.broadcast_to(onp.asarray(t, dtype=onp.float64), (x.shape[0],))
    s = 1.0 - onp.tanh(x @ p["W"].T + p["b"]) ** 2  # (n, h)
    J = (1.0 + t)[:, None, None] * onp.einsum("ik,nk,kj->nij", p["V"], s, p["W"])
    return J + onp.sin(math.pi * t)[:, None, None] * p["M"][None]


def nonlinear_divergence(x, t, d):
    """``div u = (1 + t) sum_k (1 - tanh(z_k)^2) (W V)_kk + sin(pi t) tr M``, shape ``(n,)``."""
    p = field_params(d)
    s = 1.0 - onp.tanh(x @ p["W"].T + p["b"]) ** 2
    return (1.0 + t) * (s @ onp.diag(p["W"] @ p["V"])) + onp.sin(math.pi * t) * onp.trace(p["M"])


def _nonlinear_velocity(x, t, d):
    p = field_params(d)
    return (1.0 + t) * (onp.tanh(x @ p["W"].T + p["b"]) @ p["V"].T) + math.sin(math.pi * t) * (x @ p["M"].T)


@functools.lru_cache(maxsize=64)
def _reference_nonlinear(x_bytes, shape, n_steps):
    x = onp.frombuffer(x_bytes, dtype=onp.float64).reshape(shape)
    d = shape[1]

    def rhs(state, t):
        y = state[:, :d]
        return onp.concatenate([_nonlinear_velocity(y, t, d), nonlinear_divergence(y, t, d)[:, None]], axis=1)

    h = -1.0 / n_steps
    state = onp.concatenate([x, onp.zeros((shape[0], 1))], axis=1)
    for k in range(n_steps):
        t = 1.0 + k * h
        k1 = rhs(state, t)
        k2 = rhs(state + h / 2 * k1, t + h / 2)
        k3 = rhs(state + h / 2 * k2, t + h / 2)
        k4 = rhs(state + h * k3, t + h)
        state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    z, integral = state[:, :d], -state[:, d]  # integral = int_0^1 div u along the trajectory
    return onp.concatenate([z, integral[:, None]], axis=1)


def reference_log_likelihood(x, n_steps=256):
    """``log p1(x)`` of the nonlinear field's flow, and the integrated divergence, by RK4 in float64.

    ``d/dt [x, l] = [u, div u]`` from ``t = 1`` back to ``0`` with the divergence in closed
    form (``tests`` check it against ``reference.cnf.cnf_logpdf`` with autograd's trace).
    With 256 steps its error is below 1e-9 on the checkers' points.

    Returns:
        ``(log_p1, x0, integral)``, shapes ``(n,)``, ``(n, d)``, ``(n,)``.
    """
    x = onp.ascontiguousarray(x, dtype=onp.float64)
    out = _reference_nonlinear(x.tobytes(), x.shape, n_steps)
    z, integral = out[:, :-1], out[:, -1]
    return log_p0(z) - integral, z.copy(), integral.copy()


@functools.lru_cache(maxsize=None)
def _expm(d, sign):
    out = expm(sign * field_params(d)["A"])
    out.setflags(write=False)
    return out


def points_for(kind, n, d, rng):
    """Points where ``p1`` has most of its mass, for each test field."""
    z = rng.standard_normal((n, d))
    p = field_params(d)
    if kind == "gaussian_path":
        return p["mu"] + 2.0 * z
    if kind == "linear":
        return z @ _expm(d, 1.0).T
    return 1.5 * z


def closed_forms(kind, x):
    """The true ``log p1(x)`` of a field's flow, and the values typical mistakes give.

    Returns:
        ``(truth, alternatives)``: ``alternatives`` maps a mistake's name to the log-likelihood
        an implementation with that mistake would return, each of shape ``(n,)``. For the
        nonlinear field (no closed form) only the mistakes that need no flow are listed.
    """
    n, d = x.shape
    p = field_params(d)
    const_d = 0.5 * d * math.log(2 * math.pi)
    if kind == "nonlinear":
        truth, back, integral = reference_log_likelihood(x)
        partial = {}
    else:
        if kind == "gaussian_path":
            back = (x - p["mu"]) / 2.0  # T^{-1}(x), T(x0) = mu + 2 x0
            fwd = p["mu"] + 2.0 * x  # T(x): integrating forwards from x instead of backwards
            integral = onp.full(n, d * math.log(2.0))  # int_0^1 div u = int d / (1 + t) dt
            partial = {k: k * math.log(2.0) for k in range(1, d)}
        else:
            back = x @ _expm(d, -1.0).T
            fwd = x @ _expm(d, 1.0).T
            integral = onp.full(n, float(onp.trace(p["A"])))
            partial = {k: float(onp.sum(onp.diag(p["A"])[:k])) for k in range(1, d)}
        truth = log_p0(back) - integral
    alternatives = {
        "divergence sign flipped": log_p0(back) + integral,
        "divergence missing": log_p0(back),
        "base log-density without its constant -d/2 log(2 pi)": truth + const_d,
        "no flow (log p0(x))": log_p0(x),
    }
    if d != 2:
        alternatives["base log-density constant of d = 2 (-log(2 pi) for every d)"] = truth + const_d - math.log(
            2 * math.pi)
    if kind != "nonlinear":
        alternatives["time reversed (x pushed forwards to t = 1)"] = log_p0(fwd) - integral
        alternatives["time reversed and divergence sign flipped"] = log_p0(fwd) + integral
        for k, value in partial.items():
            alternatives[f"divergence sums only the first {k} diagonal term{'s' if k > 1 else ''}"] = \
                log_p0(back) - value
    return truth, alternatives

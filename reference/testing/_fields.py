"""Test velocity fields with known flows, written once for autograd.numpy and for PyTorch.

A checker hands these to the implementation under test: as NumPy callables written with
``autograd.numpy`` (so the reference can differentiate them), or, with
``framework="torch"``, as PyTorch callables (so an implementation that differentiates the
field itself, as an exact divergence in PyTorch does, can be checked). Both accept
``u(x, t)`` and ``u(x=..., t=...)`` with ``t`` a float, a 0-d array/tensor or one time
per point.
"""

import math

import autograd.numpy as anp
import numpy as onp

from .adapters import _torch, torch_native

__all__ = ["FIELD_KINDS", "make_field", "log_p0", "GAUSSIAN_MU", "LINEAR_A"]

D = 2
GAUSSIAN_MU = onp.array([1.0, -0.5])
LINEAR_A = onp.array([[0.4, -1.0], [0.8, 0.6]])  # trace 1: a missing divergence is 1 nat off
_W = onp.array([[1.2, -0.7], [0.5, 0.9], [-0.8, 0.4]])
_B = onp.array([0.3, -0.2, 0.1])
_V = onp.array([[0.9, -0.4, 0.6], [0.3, 0.8, -0.7]])
_M = onp.array([[-0.6, 0.9], [-0.4, 0.2]])

FIELD_KINDS = ("gaussian_path", "linear", "nonlinear")


class _NumpyOps:
    tanh, exp, sin, cos = anp.tanh, anp.exp, anp.sin, anp.cos

    @staticmethod
    def const(a, like):
        return a

    @staticmethod
    def tcol(t, like):
        return anp.reshape(t, (-1, 1)) if anp.ndim(t) else t


class _TorchOps:
    def __init__(self):
        torch = _torch()
        self.torch = torch
        self.tanh, self.exp, self.sin, self.cos = torch.tanh, torch.exp, torch.sin, torch.cos

    def const(self, a, like):
        return self.torch.as_tensor(a, dtype=like.dtype, device=like.device)

    def tcol(self, t, like):
        if isinstance(t, self.torch.Tensor):
            t = t.to(dtype=like.dtype)
            return t.reshape(-1, 1) if t.ndim else t
        return self.torch.tensor(float(t), dtype=like.dtype, device=like.device)


def _formula(kind, ops):
    if kind == "gaussian_path":
        # p_t = N(t mu, (1 + t)^2 I): u = (x - t mu) / (1 + t) + mu
        def u(x, t):
            tc, mu = ops.tcol(t, x), ops.const(GAUSSIAN_MU, x)
            return (x - tc * mu) / (1.0 + tc) + mu
    elif kind == "linear":
        def u(x, t):
            return x @ ops.const(LINEAR_A, x).T
    elif kind == "nonlinear":
        # (1 + t) tanh(x W^T + b) V^T + sin(pi t) x M^T: a non-symmetric Jacobian that changes with t
        def u(x, t):
            tc = ops.tcol(t, x)
            h = ops.tanh(x @ ops.const(_W, x).T + ops.const(_B, x))
            return (1.0 + tc) * (h @ ops.const(_V, x).T) + ops.sin(math.pi * tc) * (x @ ops.const(_M, x).T)
    else:
        raise ValueError(f"kind must be one of {FIELD_KINDS}, got {kind!r}")
    return u


def make_field(kind, framework="numpy"):
    """The test field ``kind`` as a NumPy (autograd) or a PyTorch callable ``u(x, t)``."""
    if framework == "numpy":
        f = _formula(kind, _NumpyOps)

        def u(x, t):
            return f(x, t)
        u.__name__ = f"{kind}_field"
        return u
    if framework == "torch":
        f = _formula(kind, _TorchOps())

        def u_torch(x, t):
            return f(x, t)
        u_torch.__name__ = f"{kind}_field_torch"
        return torch_native(u_torch)
    raise ValueError(f"framework must be 'numpy' or 'torch', got {framework!r}")


def log_p0(x):
    """``log N(x; 0, I)`` row by row."""
    d = x.shape[1]
    return -0.5 * d * math.log(2 * math.pi) - 0.5 * onp.sum(x**2, axis=1)


def closed_forms(kind, x):
    """The true ``log p1(x)`` of the flow of a linear field, and the values typical mistakes give.

    Returns:
        ``(truth, alternatives)``: ``alternatives`` maps a mistake's name to the log-likelihood
        an implementation with that mistake would return, each of shape ``(n,)``.
    """
    d = x.shape[1]
    if kind == "gaussian_path":
        back = (x - GAUSSIAN_MU) / 2.0  # T^{-1}(x), T(x0) = mu + 2 x0
        fwd = GAUSSIAN_MU + 2.0 * x  # T(x): integrating forwards from x instead of backwards
        div = d * math.log(2.0)  # integral of div u over [0, 1]
    elif kind == "linear":
        from scipy.linalg import expm
        back = x @ expm(-LINEAR_A).T
        fwd = x @ expm(LINEAR_A).T
        div = float(onp.trace(LINEAR_A))
    else:
        raise ValueError(f"no closed form for {kind!r}")
    truth = log_p0(back) - div
    alternatives = {
        "divergence sign flipped": log_p0(back) + div,
        "divergence missing": log_p0(back),
        "time reversed (x pushed forwards to t = 1)": log_p0(fwd) - div,
        "time reversed and divergence sign flipped": log_p0(fwd) + div,
        "base log-density without its constant -d/2 log(2 pi)": truth + 0.5 * d * math.log(2 * math.pi),
        "no flow (log p0(x))": log_p0(x),
    }
    return truth, alternatives

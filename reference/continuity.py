"""The continuity equation  d/dt p_t + div(u p_t) = 0  [lecture: eq. (5), The Continuity Equation; Fig. 4]

Divided by ``p_t > 0``, and with ``div(u p) = p div u + u . grad p``, eq. (5) reads

    d/dt log p_t(x) + u(x, t) . grad_x log p_t(x) + div u(x, t) = 0,

which is what ``continuity_residual`` evaluates, every derivative by autograd. Working
with ``log p`` keeps the residual on the scale of one (a density can be 1e-30 where
its log-density is an ordinary number), so a tolerance means the same everywhere.
"""

import autograd.numpy as np
from autograd import elementwise_grad
from autograd.tracer import getval

from ._validate import as_points, as_time, check_callable
from .autodiff import divergence

__all__ = ["continuity_residual", "continuity_terms"]


def _log_p_values(log_p, x, t, n):
    out = log_p(x, t)
    shape = np.shape(getval(out))
    if shape != (n,):
        raise ValueError(f"log_p(x, t) must return shape ({n},) (one log-density per point), got {shape}")
    return out


def continuity_terms(log_p, u, x, t):
    """The three terms of the continuity equation divided by ``p_t``  [lecture: eq. (5)]

    Args:
        log_p: ``log_p(x, t) -> (n,)``, the log-density of ``p_t``, in ``autograd.numpy``.
        u: ``u(x, t) -> (n, d)``, the velocity field, in ``autograd.numpy``.
        x: points, shape ``(n, d)``.
        t: a float or an array of shape ``(n,)``.

    Returns:
        ``(dlogp_dt, u_dot_grad_logp, div_u)``, each of shape ``(n,)``.
    """
    check_callable(log_p, "log_p")
    check_callable(u, "u")
    x = as_points(x)
    n, d = x.shape
    t = as_time(t, n)
    t_vec = np.ones(n) * t  # one time per point, so d/dt is taken point by point
    _log_p_values(log_p, x, t_vec, n)
    dlogp_dt = elementwise_grad(lambda s: log_p(x, s))(t_vec)
    grad_logp = elementwise_grad(lambda y: log_p(y, t_vec))(x)  # rows are independent
    u_val = u(x, t_vec)
    if np.shape(u_val) != (n, d):
        raise ValueError(f"u(x, t) must return shape {(n, d)} like x, got {np.shape(u_val)}")
    return dlogp_dt, np.sum(u_val * grad_logp, axis=1), divergence(u, x, t_vec)


def continuity_residual(log_p, u, x, t):
    """Residual of the continuity equation divided by p_t  [lecture: eq. (5)]

        r(x, t) = d/dt log p_t(x) + u(x, t) . grad_x log p_t(x) + div u(x, t)

    It vanishes for every ``(x, t)`` exactly when ``(p_t, u)`` solve eq. (5) (where
    ``p_t > 0``). Works for any pair of autograd-differentiable callables: a conditional
    path with its conditional velocity, a Monte Carlo marginal with its velocity, a CNF.

    Args:
        log_p: ``log_p(x, t) -> (n,)``; called with ``t`` an array of shape ``(n,)``.
        u: ``u(x, t) -> (n, d)``; called with ``t`` an array of shape ``(n,)``.
        x: points, shape ``(n, d)``.
        t: a float or an array of shape ``(n,)``.

    Returns:
        shape ``(n,)``.
    """
    dlogp_dt, transport, div_u = continuity_terms(log_p, u, x, t)
    return dlogp_dt + transport + div_u

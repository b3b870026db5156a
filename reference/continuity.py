"""The continuity equation  d/dt p_t + div(u p_t) = 0  [lecture: eq. (5), The Continuity Equation; Fig. 4]

Divided by ``p_t > 0``, and with ``div(u p) = p div u + u . grad p``, eq. (5) reads

    d/dt log p_t(x) + u(x, t) . grad_x log p_t(x) + div u(x, t) = 0,

which is what ``continuity_residual`` evaluates, every derivative by autograd. Working
with ``log p`` keeps the residual on the scale of one (a density can be 1e-30 where
its log-density is an ordinary number), so a tolerance means the same everywhere.
``continuity_terms`` returns the three terms separately, so that a residual can be
judged relative to the size of the terms it cancels.

Along a trajectory ``x(t)`` of ``u`` the first two terms are the total derivative
``d/dt log p_t(x(t))``, so the same equation says ``d/dt log p_t(x(t)) = -div u``: the
instantaneous change of variables that ``reference.cnf`` integrates.

Both callables must act on each row separately (row ``i`` of the output depends on row
``i`` of ``x`` and on ``t_i`` only), as every density and field of the lecture does.
"""

import autograd.numpy as np
from autograd import elementwise_grad

from ._validate import as_points, as_time, check_callable, check_log_density
from .autodiff import value_and_divergence

__all__ = ["continuity_residual", "continuity_terms"]


def _check_log_p_values(out, n):
    try:
        return check_log_density(out, n, "log_p(x, t)", allow_minus_inf=False)
    except ValueError as err:
        raise ValueError(f"{err}; the residual divided by p_t is undefined where p_t(x) = 0 (log p = -inf)") from None


def continuity_terms(log_p, u, x, t):
    """The three terms of the continuity equation divided by p_t  [lecture: eq. (5)]

        d/dt log p_t(x),   u(x, t) . grad_x log p_t(x),   div u(x, t)

    Args:
        log_p: ``log_p(x, t) -> (n,)``, the log-density of ``p_t``, in ``autograd.numpy``;
            called with ``t`` an array of shape ``(n,)``.
        u: ``u(x, t) -> (n, d)``, the velocity field, in ``autograd.numpy``; called with
            ``t`` an array of shape ``(n,)``.
        x: points, shape ``(n, d)``.
        t: a float or an array of shape ``(n,)``.

    Returns:
        ``(dlogp_dt, u_dot_grad_logp, div_u)``, each of shape ``(n,)``.

    Raises:
        TypeError: ``log_p`` or ``u`` is not callable.
        ValueError: bad ``x`` or ``t``; ``log_p`` or ``u`` returns the wrong shape or a
            non-finite value.
    """
    check_callable(log_p, "log_p")
    check_callable(u, "u")
    x = as_points(x)
    n, d = np.shape(x)
    t = as_time(t, n, like="x")
    t_vec = np.ones(n) * t  # one time per point, so d/dt is taken point by point
    _check_log_p_values(log_p(x, t_vec), n)
    # the "+ 0 * s" terms keep autograd quiet (and the derivative exactly 0) for a
    # log_p that does not depend on t or x
    dlogp_dt = elementwise_grad(lambda s: log_p(x, s) + 0.0 * s)(t_vec)
    grad_logp = elementwise_grad(lambda y: log_p(y, t_vec) + 0.0 * np.sum(y, axis=1))(x)
    u_val, div_u = value_and_divergence(u, x, t_vec)
    return dlogp_dt, np.sum(u_val * grad_logp, axis=1), div_u


def continuity_residual(log_p, u, x, t):
    """Residual of the continuity equation divided by p_t  [lecture: eq. (5)]

        r(x, t) = d/dt log p_t(x) + u(x, t) . grad_x log p_t(x) + div u(x, t)
                = (d/dt p_t + div(u p_t)) / p_t

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

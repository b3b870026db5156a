"""The change-of-variables formula and the maximum-likelihood objective  [lecture: eq. (1), eq. (2)]

A map ``T`` pushes the base ``p0`` forward to ``p1 = T # p0``: the law of ``T(z)`` for
``z ~ p0``. When ``T`` is a diffeomorphism its density is, at every point ``x``,

    log p1(x) = log p0(T^{-1}(x)) + log |det J_{T^{-1}}(x)|             (eq. (2))

and a model ``T_theta`` is fitted to data ``x^(1), ..., x^(n)`` by maximising the
log-likelihood ``sum_i log (T_theta # p0)(x^(i))`` (eq. (1)), i.e. by minimising the mean
negative log-likelihood. Here the Jacobian is computed by autograd for any inverse map
(``d`` backward passes per batch); the flows of ``reference.flows`` compute the same
log-determinant in closed form, and the tests check that the two agree.
"""

import autograd.numpy as np
from autograd.tracer import getval

from ._validate import as_points, check_callable, check_log_density
from .autodiff import log_abs_det_jacobian

__all__ = ["pushforward_logpdf", "negative_log_likelihood"]


def _log_density_values(log_p, x, name):
    """``log_p(x)`` with its shape checked: one finite-or-``-inf`` value per point."""
    return check_log_density(log_p(x), x.shape[0], f"{name}(x)")


def pushforward_logpdf(inverse_map, base_logpdf, x):
    """Log-density of the pushforward T # p0 by the change of variables  [lecture: eq. (2)]

        log p1(x) = log p0(T^{-1}(x)) + log |det J_{T^{-1}}(x)|

    with the Jacobian ``J_{T^{-1}}`` computed by autograd (``reference.autodiff``).
    Differentiable with respect to anything ``inverse_map`` closes over (and to ``x``).

    Args:
        inverse_map: ``T^{-1}``, a row-wise map ``(n, d) -> (n, d)`` written with
            ``autograd.numpy``.
        base_logpdf: ``log p0``, a map ``(n, d) -> (n,)`` (e.g.
            ``reference.distributions.standard_normal_logpdf``).
        x: points, shape ``(n, d)``.

    Returns:
        ``log p1(x)``, shape ``(n,)``; ``-inf`` where ``J_{T^{-1}}`` is singular.
    """
    check_callable(inverse_map, "inverse_map")
    check_callable(base_logpdf, "base_logpdf")
    x = as_points(x)
    z = inverse_map(x)
    if np.shape(getval(z)) != x.shape:
        raise ValueError(f"inverse_map(x) must return shape {x.shape} like x, got {np.shape(getval(z))}")
    z = as_points(z, "inverse_map(x)")
    return _log_density_values(base_logpdf, z, "base_logpdf") + log_abs_det_jacobian(inverse_map, x)


def negative_log_likelihood(log_p1, x):
    """Mean negative log-likelihood, the objective of eq. (1)  [lecture: eq. (1)]

        NLL(theta) = -(1/n) sum_i log (T_theta # p0)(x^(i))

    Minimising it is maximising eq. (1)'s sum (divided by the constant ``n``). Its
    expectation over data ``x ~ p_data`` is ``H(p_data) + KL(p_data || p1)``, so it is
    bounded below by the entropy of the data distribution.

    Args:
        log_p1: the model's log-density ``log (T_theta # p0)``, a map ``(n, d) -> (n,)``
            (e.g. ``lambda x: pushforward_logpdf(T_inv, standard_normal_logpdf, x)`` or
            ``lambda x: realnvp_logpdf(params, x)``).
        x: the data ``x^(1), ..., x^(n)``, shape ``(n, d)``.

    Returns:
        a scalar (differentiable with respect to what ``log_p1`` closes over).
    """
    check_callable(log_p1, "log_p1")
    x = as_points(x)
    return -np.mean(_log_density_values(log_p1, x, "log_p1"))

"""From planar layers to an ODE: K layers are K Euler steps  [lecture: Continuous Normalizing Flows]

The lecture rewrites a stack of planar layers ``x_k = x_{k-1} + sigma(b_k^T x_{k-1} + c_k) a_k``
as ``x_k = x_{k-1} + (1/K) u_{k-1}(x_{k-1})``: forward Euler with step ``1/K`` on eq. (4).
Here it is made exact in both directions. Take the time-dependent planar field

    u(x, t) = tanh(b(t)^T x + c(t)) a(t),   a(t) = a0 + t a1,  b(t) = b0 + t b1,  c(t) = c0 + t c1,

and the layers ``a_k = a(t_{k-1}) / K``, ``b_k = b(t_{k-1})``, ``c_k = c(t_{k-1})`` with
``t_{k-1} = (k - 1) / K``. Then layer ``k`` is exactly the Euler step from ``t_{k-1}``,
and its log-determinant is

    log |det J_phi_k(x_{k-1})| = log |1 + tanh'(s) a_k^T b_k| = log |1 + (1/K) div u(x_{k-1}, t_{k-1})|,

because ``div u = tr(tanh'(s) a b^T) = tanh'(s) a^T b``. So the summed log-dets are a
left Riemann sum (up to ``O(1/K^2)`` per layer) of the integrated divergence, and

    sum_k log |det J_phi_k| -> int_0^1 div u(x(t), t) dt = log |det J_{f^u(., 1)}(x0)|

at the rate ``1/K`` (Euler's order). The inverse log-dets that enter eq. (2),
``log |det J_{phi_k^{-1}}(x_k)| = -log |det J_phi_k(x_{k-1})|``, therefore converge to
``-int_0^1 div u``: eq. (2) for the stack becomes the CNF formula of ``reference.cnf``.

Parameters are a dict ``{"a": (2, d), "b": (2, d), "c": (2,)}`` holding
``(a0, a1)``, ``(b0, b1)``, ``(c0, c1)``.
"""

import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

from ._validate import (
    as_points, as_real_array, as_time, check_finite_number, check_count, check_rng, refuse_non_finite,
)
from .cnf import _augmented_field
from .flows.chain import planar_chain_forward
from .ode import integrate

__all__ = [
    "planar_field_init",
    "planar_coefficients",
    "planar_velocity",
    "planar_divergence",
    "planar_layers",
    "planar_layers_forward",
    "planar_ode_forward",
]


def planar_field_init(d, rng, scale=1.0):
    """Random coefficients of a time-dependent planar field, entries ``N(0, scale^2 / d)``  [lecture: Continuous Normalizing Flows]

    Returns:
        ``{"a": (2, d), "b": (2, d), "c": (2,)}``.
    """
    d = check_count(d, "d")
    rng = check_rng(rng)
    std = float(check_finite_number(scale, "scale", positive=True)) / onp.sqrt(d)
    return {"a": rng.normal(0, std, (2, d)), "b": rng.normal(0, std, (2, d)), "c": rng.normal(0, std, 2)}


def _check_params(params, d=None, x_name="x"):
    raw = getval(params)
    if not isinstance(raw, dict) or set(raw) != {"a", "b", "c"}:
        keys = f" with keys {sorted(map(str, raw))}" if isinstance(raw, dict) else ""
        raise TypeError(f"params must be a dict with keys 'a', 'b', 'c' (as made by planar_field_init), got "
                        f"{type(raw).__name__}{keys}")
    a, b, c = (as_real_array(params[k], f"params[{k!r}]") for k in ("a", "b", "c"))
    if np.ndim(a) != 2 or np.shape(a)[0] != 2 or np.shape(a)[1] < 1 or np.shape(b) != np.shape(a) or np.shape(c) != (2,):
        raise ValueError(
            f"params must hold a and b of shape (2, d) and c of shape (2,), got "
            f"{np.shape(a)}, {np.shape(b)}, {np.shape(c)}"
        )
    if d is not None and np.shape(a)[1] != d:
        raise ValueError(f"params are for d = {np.shape(a)[1]}, {x_name} has d = {d}")
    return a, b, c


def _coefficients(a, b, c, t):
    if np.ndim(t) == 0:
        return a[0] + t * a[1], b[0] + t * b[1], c[0] + t * c[1]
    t_col = np.reshape(t, (-1, 1))
    return a[0] + t_col * a[1], b[0] + t_col * b[1], c[0] + t * c[1]


def _velocity(a, b, c, x, t):
    a_t, b_t, c_t = _coefficients(a, b, c, t)
    s = np.sum(x * b_t, axis=1) + c_t  # (n,)
    return np.reshape(np.tanh(s), (-1, 1)) * a_t


def _divergence(a, b, c, x, t):
    a_t, b_t, c_t = _coefficients(a, b, c, t)
    s = np.sum(x * b_t, axis=1) + c_t
    return (1.0 - np.tanh(s) ** 2) * np.sum(a_t * b_t, axis=-1)


def _finite(value, what, params, **points):
    """``value``, or a ValueError naming the argument that made it overflow."""
    return refuse_non_finite(value, what, large=dict(points, params=np.concatenate(
        [np.ravel(getval(params[k])) for k in ("a", "b", "c")])))


def planar_coefficients(params, t):
    """The coefficients at time t  a(t) = a0 + t a1, b(t) = b0 + t b1, c(t) = c0 + t c1  [lecture: Continuous Normalizing Flows]

    Args:
        params: ``{"a": (2, d), "b": (2, d), "c": (2,)}``.
        t: a float, or an array of shape ``(n,)``; any real time (the coefficients are
            affine in t).

    Returns:
        ``(a_t, b_t, c_t)``: shapes ``(d,), (d,), ()`` for a float ``t``, else
        ``(n, d), (n, d), (n,)``.
    """
    a, b, c = _check_params(params)
    value = as_real_array(t, "t", ndim=(0, 1), what="a float or a 1-D array of times")
    t = as_time(t, onp.size(getval(value)) if onp.ndim(getval(value)) == 1 else 1)
    with onp.errstate(over="ignore", invalid="ignore"):
        out = _coefficients(a, b, c, t)
    for v in out:
        _finite(v, "a coefficient a(t), b(t) or c(t)", params, t=onp.atleast_1d(getval(t)))
    return out


def planar_velocity(params, x, t):
    """Planar velocity field  u(x, t) = tanh(b(t)^T x + c(t)) a(t)  [lecture: Continuous Normalizing Flows]

    Args:
        params: the field's coefficients.
        x: points, shape ``(n, d)``.
        t: a float or an array of shape ``(n,)``; any real time.

    Returns:
        shape ``(n, d)``.
    """
    x = as_points(x)
    n, d = np.shape(x)
    a, b, c = _check_params(params, d)
    t = as_time(t, n, like="x")
    with onp.errstate(over="ignore", invalid="ignore"):
        u = _velocity(a, b, c, x, t)
    return _finite(u, "u(x, t)", params, x=x)


def planar_divergence(params, x, t):
    """Divergence of the planar field  div u = tanh'(b(t)^T x + c(t)) a(t)^T b(t)  [lecture: Continuous Normalizing Flows]

    The Jacobian ``tanh'(s) a b^T`` has rank one; its trace is ``tanh'(s) a^T b``.

    Args:
        params: the field's coefficients.
        x: points, shape ``(n, d)``.
        t: a float or an array of shape ``(n,)``; any real time.

    Returns:
        shape ``(n,)``.
    """
    x = as_points(x)
    n, d = np.shape(x)
    a, b, c = _check_params(params, d)
    t = as_time(t, n, like="x")
    with onp.errstate(over="ignore", invalid="ignore"):
        div = _divergence(a, b, c, x, t)
    return _finite(div, "div u(x, t)", params, x=x)


def planar_layers(params, K):
    """The K planar layers that are Euler steps of the field  [lecture: Continuous Normalizing Flows]

        a_k = a(t_{k-1}) / K,  b_k = b(t_{k-1}),  c_k = c(t_{k-1}),  t_{k-1} = (k - 1) / K

    Returns:
        a list of ``K`` dicts ``{"a": (d,), "b": (d,), "c": ()}`` for ``flows.planar``,
        layer 1 first.
    """
    K = check_count(K, "K")
    a, b, c = _check_params(params)
    layers = []
    with onp.errstate(over="ignore", invalid="ignore"):
        for k in range(1, K + 1):
            a_t, b_t, c_t = _coefficients(a, b, c, (k - 1) / K)
            layers.append({"a": a_t / K, "b": b_t, "c": c_t})
    for layer in layers:
        for v in layer.values():
            _finite(v, "a layer's coefficient", params)
    return layers


def planar_layers_forward(params, x0, K):
    """K planar layers and their summed log-dets  x_K = phi_K o ... o phi_1(x0)  [lecture: Normalizing Flows; Continuous Normalizing Flows]

        sum_k log |det J_phi_k(x_{k-1})| = sum_k log |1 + tanh'(b_k^T x_{k-1} + c_k) a_k^T b_k|

    Returns:
        ``(x_K, sum_log_det)``: shapes ``(n, d)`` and ``(n,)``. The summed inverse
        log-dets of eq. (2) are ``-sum_log_det``.
    """
    x0 = as_points(x0, "x0")
    _check_params(params, np.shape(x0)[1], "x0")
    with onp.errstate(over="ignore", invalid="ignore"):
        x_K, log_det = planar_chain_forward(planar_layers(params, K), x0)
    return _finite(x_K, "x_K", params, x0=x0), _finite(log_det, "the summed log-determinant", params, x0=x0)


def planar_ode_forward(params, x0, n_steps=200, method="rk4"):
    """The flow of the planar field and its integrated divergence  [lecture: eq. (4); Continuous Normalizing Flows]

        x(1) = f^u(x0, 1),   int_0^1 div u(x(t), t) dt = log |det J_{f^u(., 1)}(x0)|

    by integrating the augmented system of ``cnf.augmented_field``,
    ``d/dt [x, l] = [u, -div u]`` from ``[x0, 0]``; the integrated divergence is ``-l(1)``.

    Returns:
        ``(x(1), integrated_divergence)``: shapes ``(n, d)`` and ``(n,)``.
    """
    x0 = as_points(x0, "x0")
    n, d = np.shape(x0)
    a, b, c = _check_params(params, d, "x0")
    field = _augmented_field(lambda x, t: (_velocity(a, b, c, x, t), _divergence(a, b, c, x, t)), d)
    z1 = integrate(field, np.concatenate([x0, np.zeros((n, 1))], axis=1), 0.0, 1.0, n_steps, method)
    return z1[:, :d], -z1[:, d]

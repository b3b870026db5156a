"""The flow-matching and conditional flow-matching losses, and Theorem 2's constant  [lecture: Flow Matching eq. (5); Theorem 2]

    L_FM(theta)  = E_{t, x ~ p_t} || v_theta(x, t) - u(x, t) ||^2                  (eq. (5), u known)
    L_CFM(theta) = E_{t, z, x ~ p(x | t, z)} || v_theta(x, t) - u_cond(x, t, z) ||^2   (Theorem 2)

Expanding both squares, the terms in ``v_theta`` agree because
``E[u_cond | x, t] = u(x, t)`` (Theorem 1), so

    L_CFM(theta) - L_FM(theta) = C = E || u_cond ||^2 - E || u ||^2 = E || u_cond - u ||^2,

independent of theta: the same gradients, and a floor ``C > 0`` under which the CFM
loss never falls. ``cfm_constant`` computes C for Gaussian-mixture data: the first term
in closed form, the second in closed form for one Gaussian and by Gauss-Hermite
quadrature in x for a mixture, both integrated in t by Gauss-Legendre.

Both losses take the samples (or quadrature nodes) as arguments, so the same function
gives a Monte Carlo estimate (``weights=None``: the mean) or a quadrature
(``weights``: the nodes' weights, summing to one).
"""

import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

from ._validate import (
    as_points,
    as_real_array,
    as_time,
    as_time_array,
    check_callable,
    check_choice,
    check_field_output,
    check_finite_number,
    check_instance,
    check_count,
    refuse_non_finite,
)
from .oracles import GaussianMixtureOracle, _gauss_legendre_01, path_quadrature
from .paths import GaussianPath

__all__ = [
    "fm_loss",
    "cfm_loss",
    "conditional_velocity_second_moment",
    "cfm_constant",
]


def _check_weights(weights, n):
    if weights is None:
        return None
    w = getval(as_real_array(weights, "weights", shape=(n,), what=f"an array of shape ({n},) (one weight per sample)"))
    if onp.any(w < 0) or not onp.any(w > 0):
        raise ValueError("weights must be >= 0, and not all 0")
    return weights


def _average(sq, weights, culprits):
    with onp.errstate(over="ignore", invalid="ignore"):  # an overflow is refused below, by name
        loss = np.mean(sq) if weights is None else np.sum(weights * sq)
    return refuse_non_finite(loss, "the loss", large=culprits)


def _check_path(path):
    return check_instance(path, GaussianPath, "path", "reference.paths.GaussianPath")


def fm_loss(v, u, t, x, weights=None):
    """Flow-matching loss  L_FM = E_{t, x ~ p_t} || v(x, t) - u(x, t) ||^2  [lecture: Flow Matching, eq. (5)]

    Args:
        v: the model field ``v(x, t) -> (n, d)`` (e.g. ``lambda x, t: velocity_apply(params, x, t)``).
        u: the target field ``u(x, t) -> (n, d)`` that generates ``p_t`` (e.g. an oracle's velocity).
        t: times, a float or an array of shape ``(n,)`` (``t ~ U[0, 1]``).
        x: points, shape ``(n, d)`` (``x ~ p_t``).
        weights: None for the sample mean, or quadrature weights of shape ``(n,)``.

    Returns:
        a scalar (differentiable in whatever ``v`` closes over).
    """
    check_callable(v, "v")
    check_callable(u, "u")
    x = as_points(x)
    n, d = np.shape(x)
    t = as_time(t, n, low=0.0, high=1.0, like="x")
    weights = _check_weights(weights, n)
    diff = check_field_output(v(x, t), n, d, "v") - check_field_output(u(x, t), n, d, "u")
    with onp.errstate(over="ignore", invalid="ignore"):
        sq = np.sum(diff**2, axis=1)
    return _average(sq, weights, {"x": x})


def cfm_loss(v, path, t, z, x, weights=None):
    """Conditional flow-matching loss  L_CFM = E_{t, z, x ~ p(x|t,z)} || v(x, t) - u_cond(x, t, z) ||^2  [lecture: Theorem 2]

    Args:
        v: the model field ``v(x, t) -> (n, d)``.
        path: a ``GaussianPath`` (its ``velocity`` is ``u_cond``).
        t: times, a float or an array of shape ``(n,)``.
        z: ``x1`` or ``(x0, x1)`` with ``n`` rows (row i conditions sample i).
        x: samples of ``p(x | t, z)``, shape ``(n, d)``.
        weights: None for the sample mean, or quadrature weights of shape ``(n,)``.

    Returns:
        a scalar.
    """
    check_callable(v, "v")
    _check_path(path)
    x = as_points(x)
    n, d = np.shape(x)
    x0, x1 = path.split_z(z, d=d, like="x")
    if np.shape(x1)[0] != n:
        raise ValueError(f"x and z must have the same number of rows, got {n} and {np.shape(x1)[0]}")
    t = as_time(t, n, low=0.0, high=1.0, like="x")
    weights = _check_weights(weights, n)
    diff = check_field_output(v(x, t), n, d, "v") - path.velocity(x, t, z)
    with onp.errstate(over="ignore", invalid="ignore"):
        sq = np.sum(diff**2, axis=1)
    return _average(sq, weights, {"x": x, "z": x1 if x0 is None else np.concatenate([x0, x1])})


def conditional_velocity_second_moment(path, second_moment, d, t):
    """E || u_cond ||^2 given t  [lecture: Theorem 2 (C)]

    With ``x = alpha_t x1 + beta_t x0 + sigma_t eps`` the conditional velocity at x is
    ``u_cond = alpha_t' x1 + beta_t' x0 + sigma_t' eps``, so, x0 and eps ~ N(0, I)
    independent of x1,

        E || u_cond ||^2 = alpha_t'^2 E|x1|^2 + (beta_t'^2 + sigma_t'^2) d.

    Args:
        path: a ``GaussianPath``.
        second_moment: ``E |x1|^2`` of the data.
        d: the dimension.
        t: times, an array of shape ``(n,)``.

    Returns:
        shape ``(n,)``.
    """
    _check_path(path)
    d = check_count(d, "d")
    second_moment = float(check_finite_number(second_moment, "second_moment", nonnegative=True))
    t = as_time_array(t)
    _, (da, db, ds) = path.schedules(t)
    with onp.errstate(over="ignore", invalid="ignore"):
        moment = da**2 * second_moment + (db**2 + ds**2) * d
    return refuse_non_finite(moment, "E || u_cond ||^2 (the path's sigma_t' is infinite there, or the moment too large)",
                             large={"second_moment": onp.array([second_moment]), "t": t})


def cfm_constant(oracle, n_t=64, n_x=None, rule=None):
    """Theorem 2's constant  C = L_CFM - L_FM = E || u_cond ||^2 - E || u ||^2  [lecture: Theorem 2]

    ``E || u_cond ||^2`` in closed form (``conditional_velocity_second_moment``);
    ``E || u ||^2`` in closed form for one Gaussian component
    (``C = int_0^1 E || u_cond - u ||^2 dt`` with the integrand of
    ``GaussianMixtureOracle.conditional_variance``), else by Gauss-Hermite quadrature in
    x (``oracles.path_quadrature``: the trapezoidal ``"grid"`` rule in 1-D, Gauss-Hermite
    otherwise); Gauss-Legendre with ``n_t`` nodes in t.

    Args:
        oracle: a ``GaussianMixtureOracle`` (the data mixture and the path).
        n_t: Gauss-Legendre nodes in t.
        n_x: nodes per axis in x (default 400 for the grid rule, 32 for Gauss-Hermite).
        rule: ``"grid"`` or ``"hermite"`` (default: grid in 1-D, hermite otherwise).

    Returns:
        a float.
    """
    check_instance(oracle, GaussianMixtureOracle, "oracle", "reference.oracles.GaussianMixtureOracle")
    n_t = check_count(n_t, "n_t")
    if n_x is not None:
        n_x = check_count(n_x, "n_x")
    if rule is not None:
        check_choice(rule, "rule", ("grid", "hermite"))
    t, w = _gauss_legendre_01(n_t)
    if oracle.mixture.n_components == 1:
        return float(w @ oracle.conditional_variance(t))
    gm = oracle.mixture
    second_moment = float(onp.trace(gm.covariance()) + gm.mean() @ gm.mean())
    e_cond = float(w @ conditional_velocity_second_moment(oracle.path, second_moment, gm.dim, t))
    rule = ("grid" if gm.dim == 1 else "hermite") if rule is None else rule
    n_x = (400 if rule == "grid" else 32) if n_x is None else n_x
    t_q, x_q, w_q = path_quadrature(oracle, n_t=n_t, n_x=n_x, rule=rule)
    e_u = float(w_q @ onp.sum(oracle.velocity(x_q, t_q) ** 2, axis=1))
    return e_cond - e_u

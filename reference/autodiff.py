"""Jacobians, log-determinants and divergences by autograd  [lecture: eq. (2); CNF Pros]

Every function here acts on a batch ``x`` of shape ``(n, d)`` and assumes that the map
it differentiates acts on each row separately (row ``i`` of the output depends on row
``i`` of the input only), as every flow and velocity field of the lecture does. Then
one vector-Jacobian product with the same cotangent on every row gives one row of
every point's Jacobian at once, so a ``d x d`` Jacobian of the whole batch costs ``d``
backward passes, not ``n * d``.
"""

import warnings

import autograd.numpy as np
import numpy as onp
from autograd import make_vjp
from autograd.tracer import getval

from ._validate import (
    as_points,
    as_time,
    check_callable,
    check_field_output,
    check_positive_int,
    check_rng,
)

__all__ = [
    "jacobian",
    "log_abs_det_jacobian",
    "divergence",
    "value_and_divergence",
    "NOISES",
    "sample_probes",
    "hutchinson_divergence",
    "hutchinson_variance",
]

NOISES = ("rademacher", "gaussian")


def _row_vjp(f, x, name):
    """The vector-Jacobian product of a row-wise map at ``x`` and its value."""
    with warnings.catch_warnings():
        # a map that does not depend on x (a constant field) has a zero Jacobian: say nothing
        warnings.filterwarnings("ignore", message="Output seems independent of input")
        vjp, out = make_vjp(f)(x)
    value = getval(out)
    if value.ndim != 2 or value.shape[0] != x.shape[0]:
        raise ValueError(f"{name}(x) must return shape (n, d_out) with n = {x.shape[0]}, got {value.shape}")
    if not onp.all(onp.isfinite(value)):
        raise ValueError(f"{name}(x) returned non-finite values (NaN or inf)")
    return vjp, out


def jacobian(f, x):
    """Batched Jacobian  J_f(x)_ij = d f_i / d x_j  [lecture: eq. (2)]

    Args:
        f: a row-wise map, ``(n, d) -> (n, d_out)``, written with ``autograd.numpy``.
        x: points, shape ``(n, d)``.

    Returns:
        shape ``(n, d_out, d)``: the Jacobian of ``f`` at each point.
    """
    check_callable(f, "f")
    x = as_points(x)
    vjp, out = _row_vjp(f, x, "f")
    n, d_out = out.shape
    rows = [vjp(_unit_rows(n, d_out, i)) for i in range(d_out)]  # row i of every J, (n, d)
    return np.stack(rows, axis=1)


def log_abs_det_jacobian(f, x):
    """log |det J_f(x)|  [lecture: eq. (2)]

    Args:
        f: a row-wise map ``(n, d) -> (n, d)``.
        x: points, shape ``(n, d)``.

    Returns:
        shape ``(n,)``; ``-inf`` where the Jacobian is singular.
    """
    J = jacobian(f, x)
    if J.shape[1] != J.shape[2]:
        raise ValueError(f"f must map R^d to R^d for a determinant, got Jacobians of shape {J.shape[1:]}")
    return np.linalg.slogdet(J)[1]


def _unit_rows(n, d, i):
    """The cotangent ``e_i`` repeated on every row, shape ``(n, d)``."""
    e_i = onp.zeros((n, d))
    e_i[:, i] = 1.0
    return e_i


def _field_at(u, t, n, d):
    """``x -> u(x, t)`` with its output shape checked."""
    def u_t(x):
        return check_field_output(u(x, t), n, d)
    return u_t


def value_and_divergence(u, x, t):
    """u(x, t) and its exact divergence  div u = tr J_u = sum_i d u_i / d x_i, in one forward pass  [lecture: CNF Pros]

    One forward pass and one backward pass per dimension: ``d`` backward passes for the
    whole batch.

    Args:
        u: velocity field ``u(x, t) -> (n, d)``, written with ``autograd.numpy``.
        x: points, shape ``(n, d)``.
        t: a float or an array of shape ``(n,)``.

    Returns:
        ``(u(x, t), div u(x, t))``: shapes ``(n, d)`` and ``(n,)``.
    """
    check_callable(u, "u")
    x = as_points(x)
    n, d = x.shape
    t = as_time(t, n)
    vjp, value = _row_vjp(_field_at(u, t, n, d), x, "u")
    return value, sum(vjp(_unit_rows(n, d, i))[:, i] for i in range(d))


def divergence(u, x, t):
    """Exact divergence  div u(x, t) = tr J_u(x, t) = sum_i d u_i / d x_i  [lecture: CNF Pros]

    Args:
        u: velocity field ``u(x, t) -> (n, d)``, written with ``autograd.numpy``.
        x: points, shape ``(n, d)``.
        t: a float or an array of shape ``(n,)``.

    Returns:
        shape ``(n,)``.
    """
    return value_and_divergence(u, x, t)[1]


def sample_probes(rng, shape, noise="rademacher"):
    """Probe vectors ``eps`` with ``E[eps] = 0`` and ``E[eps eps^T] = I``  [lecture: CNF Pros (Hutchinson)]

    Args:
        rng: ``numpy.random.Generator``.
        shape: e.g. ``(n_probes, n, d)``; every entry is independent.
        noise: ``"rademacher"`` (entries +-1 with probability 1/2) or ``"gaussian"``.
    """
    rng = check_rng(rng)
    if noise == "rademacher":
        return rng.choice(onp.array([-1.0, 1.0]), size=shape)
    if noise == "gaussian":
        return rng.standard_normal(shape)
    raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")


def hutchinson_divergence(u, x, t, rng=None, n_probes=1, noise="rademacher", probes=None, return_value=False):
    """Hutchinson's estimator  div u ~ (1/M) sum_m eps_m^T J_u eps_m  [lecture: CNF Pros]

    Unbiased because ``E[eps^T J eps] = tr(J E[eps eps^T]) = tr J``. Each point of the
    batch has its own independent probes; each probe costs one vector-Jacobian product
    for the whole batch, whatever ``d``.

    Args:
        u: velocity field ``u(x, t) -> (n, d)``.
        x: points, shape ``(n, d)``.
        t: a float or an array of shape ``(n,)``.
        rng: ``numpy.random.Generator`` to draw the probes (unless ``probes`` is given).
        n_probes: ``M``, the number of probes averaged per point.
        noise: ``"rademacher"`` or ``"gaussian"``.
        probes: optional fixed probes of shape ``(M, n, d)`` (as FFJORD draws once per
            solve); then ``rng``, ``n_probes`` and ``noise`` are not used.
        return_value: also return ``u(x, t)``, from the same forward pass.

    Returns:
        shape ``(n,)``, or ``(u(x, t), estimate)`` with ``return_value``.
    """
    check_callable(u, "u")
    x = as_points(x)
    n, d = x.shape
    t = as_time(t, n)
    if probes is None:
        n_probes = check_positive_int(n_probes, "n_probes")
        if noise not in NOISES:
            raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")
        if rng is None:
            raise TypeError("rng must be a numpy.random.Generator when probes is not given")
        probes = sample_probes(rng, (n_probes, n, d), noise)
    else:
        probes = onp.asarray(probes, dtype=onp.float64)
        if probes.ndim != 3 or probes.shape[1:] != (n, d):
            raise ValueError(f"probes must have shape (M, {n}, {d}), got {probes.shape}")
        if not onp.all(onp.isfinite(probes)):
            raise ValueError("probes must be finite")
    vjp, value = _row_vjp(_field_at(u, t, n, d), x, "u")
    estimates = [np.sum(vjp(eps) * eps, axis=1) for eps in probes]  # eps^T J eps per point
    estimate = sum(estimates) / len(estimates)
    return (value, estimate) if return_value else estimate


def hutchinson_variance(J, noise="rademacher"):
    """Variance of one Hutchinson sample ``eps^T J eps``  [lecture: CNF Pros (Hutchinson)]

    With ``S = (J + J^T) / 2`` (only the symmetric part enters ``eps^T J eps``):

        gaussian:    Var = 2 ||S||_F^2
        rademacher:  Var = 2 (||S||_F^2 - sum_i S_ii^2)

    Args:
        J: Jacobians, shape ``(n, d, d)`` (or ``(d, d)``).
        noise: ``"rademacher"`` or ``"gaussian"``.

    Returns:
        shape ``(n,)`` (or a float).
    """
    J = onp.asarray(J, dtype=onp.float64)
    if J.ndim < 2 or J.shape[-1] != J.shape[-2]:
        raise ValueError(f"J must have shape (n, d, d) or (d, d), got {J.shape}")
    S = 0.5 * (J + onp.swapaxes(J, -1, -2))
    frob2 = onp.sum(S**2, axis=(-2, -1))
    if noise == "gaussian":
        return 2.0 * frob2
    if noise == "rademacher":
        return 2.0 * (frob2 - onp.sum(onp.diagonal(S, axis1=-2, axis2=-1) ** 2, axis=-1))
    raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")

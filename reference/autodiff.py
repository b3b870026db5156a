"""Jacobians, log-determinants and divergences by autograd  [lecture: eq. (2); CNF Pros]

Every function here acts on a batch ``x`` of shape ``(n, d)`` and assumes that the map
it differentiates acts on each row separately (row ``i`` of the output depends on row
``i`` of the input only), as every flow and velocity field of the lecture does. Then
one vector-Jacobian product with the same cotangent on every row gives one row of
every point's Jacobian at once, so a ``d x d`` Jacobian of the whole batch costs ``d``
backward passes, not ``n * d``.
"""

import numbers
import warnings

import autograd.numpy as np
import numpy as onp
from autograd import make_vjp
from autograd.tracer import getval

from ._validate import (
    MAX_COUNT,
    as_points,
    as_real_array,
    as_time,
    check_bool,
    check_callable,
    check_choice,
    check_field_output,
    check_count,
    check_rng,
    refuse_non_finite,
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
    if not isinstance(value, onp.ndarray):
        raise TypeError(f"{name}(x) must return a NumPy array of shape (n, d_out), got {type(value).__name__}")
    if value.dtype.kind not in "iuf":
        raise TypeError(f"{name}(x) must return real numbers, got dtype {value.dtype}")
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
    t = as_time(t, n, like="x")
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
    shape = _check_shape(shape)
    noise = check_choice(noise, "noise", NOISES)
    if noise == "rademacher":
        return rng.choice(onp.array([-1.0, 1.0]), size=shape)
    return rng.standard_normal(shape)


def _check_shape(shape):
    """``shape`` as a tuple of integers ``>= 0`` (an integer ``k`` is ``(k,)``)."""
    entries = (shape,) if isinstance(shape, numbers.Integral) and not isinstance(shape, bool) else shape
    if not isinstance(entries, (tuple, list)) or not all(
            isinstance(k, numbers.Integral) and not isinstance(k, bool) for k in entries):
        raise TypeError(f"shape must be a tuple of integers >= 0, e.g. (n_probes, n, d), got {shape!r}")
    if not all(0 <= k <= MAX_COUNT for k in entries) or int(onp.prod([float(k) for k in entries])) > MAX_COUNT:
        raise ValueError(f"shape must be a tuple of integers >= 0 with at most {MAX_COUNT} entries in all, got {shape!r}")
    return tuple(int(k) for k in entries)


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
    t = as_time(t, n, like="x")
    n_probes = check_count(n_probes, "n_probes")
    noise = check_choice(noise, "noise", NOISES)
    return_value = check_bool(return_value, "return_value")
    if rng is not None:
        check_rng(rng)
    if probes is None:
        if rng is None:
            raise TypeError("rng must be a numpy.random.Generator when probes is not given")
        probes = sample_probes(rng, (n_probes, n, d), noise)
    else:
        probes = as_real_array(probes, "probes", shape=(None, n, d), allow_traced=False,
                               what=f"an array of shape (M, {n}, {d}) (M probes for the points of x)")
        if probes.shape[0] < 1:
            raise ValueError(f"probes must hold at least one probe, got shape {probes.shape}")
    vjp, value = _row_vjp(_field_at(u, t, n, d), x, "u")
    with onp.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, by name
        estimates = [np.sum(vjp(eps) * eps, axis=1) for eps in probes]  # eps^T J eps per point
        estimate = sum(estimates) / len(estimates)
    refuse_non_finite(estimate, "the Hutchinson estimate eps^T J eps", large={"probes": probes, "u(x, t)": value})
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
    J = as_real_array(J, "J", ndim=(2, 3), what="an array of shape (n, d, d) or (d, d)", allow_traced=False)
    if J.shape[-1] != J.shape[-2] or J.shape[-1] < 1:
        raise ValueError(f"J must have shape (n, d, d) or (d, d) (square Jacobians), got {J.shape}")
    noise = check_choice(noise, "noise", NOISES)
    S = 0.5 * (J + onp.swapaxes(J, -1, -2))
    with onp.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, by name
        frob2 = onp.sum(S**2, axis=(-2, -1))
        if noise == "gaussian":
            variance = 2.0 * frob2
        else:
            variance = 2.0 * (frob2 - onp.sum(onp.diagonal(S, axis1=-2, axis2=-1) ** 2, axis=-1))
    return refuse_non_finite(variance, "the variance", large={"J": J})

"""Continuous normalizing flows: the likelihood by the trace  [lecture: Continuous Normalizing Flows; CNF Pros and Cons]

The instantaneous change of variables. Along a trajectory ``dx/dt = u(x(t), t)``, the
continuity equation (5) divided by ``p_t`` (``reference.continuity``) says

    d/dt log p_t(x(t)) = d/dt log p_t + u . grad log p_t = -div u(x(t), t),

so integrating from 0 to 1:

    log p1(x(1)) = log p0(x(0)) - int_0^1 div u(x(t), t) dt.

No inverse map and no determinant: only the trace of the Jacobian of ``u`` (exact, by
``d`` backward passes, or Hutchinson's unbiased estimate ``eps^T J eps``).

To evaluate ``log p1`` at a given ``x``, ``cnf_logpdf`` solves the augmented system

    d/dt [x, l] = [u(x, t), -div u(x, t)],   x(1) = x,  l(1) = 0,

from ``t = 1`` back to ``t = 0`` (the reverse-time ODE). Then
``l(t) = log p_t(x(t)) - log p1(x)``, so ``l(0) = log p0(x(0)) - log p1(x)`` and

    log p1(x) = log p0(x(0)) - l(0).

Sampling runs the same system forwards from ``x(0) ~ p0`` with ``l(0) = log p0(x(0))``,
so that ``l(1) = log p1(x(1))``: the log-density of each sample, computed while sampling.

The augmented state is one array ``[x, l]`` of shape ``(n, d + 1)`` integrated by the
tableaus of ``reference.ode``, so the divergence at every stage is taken at that stage's
state and time.
"""

import autograd.numpy as np
from autograd.tracer import getval

from ._validate import (
    as_points,
    check_field_output,
    check_bool,
    check_callable,
    check_choice,
    check_log_density,
    check_count,
    check_real,
    check_rng,
)
from .autodiff import NOISES, hutchinson_divergence, sample_probes, value_and_divergence
from .distributions import standard_normal_logpdf
from .ode import TABLEAUS, integrate, integrate_adaptive

__all__ = [
    "DIVERGENCES",
    "augmented_field",
    "cnf_logpdf",
    "cnf_sample",
]

DIVERGENCES = ("exact", "hutchinson")
METHODS = tuple(sorted(TABLEAUS)) + ("adaptive",)


def _velocity_and_divergence_fn(u, n, d, divergence, rng, noise, n_probes, resample_probes, adaptive):
    """``(x, t) -> (u(x, t), div u(x, t))`` from one evaluation of ``u``: exact, or Hutchinson.

    For the exact divergence, a field that offers its own ``velocity_and_divergence(x, t)``
    (``engines.mlp.VelocityNetwork``: forward mode through the network) is asked for it; any
    other field gets ``autodiff.value_and_divergence`` (``d`` backward passes).
    """
    if divergence == "exact":
        own = getattr(u, "velocity_and_divergence", None)
        return own if callable(own) else (lambda x, t: value_and_divergence(u, x, t))
    if rng is None:
        raise TypeError("rng must be a numpy.random.Generator when divergence='hutchinson'")
    if resample_probes:
        if adaptive:
            raise ValueError(
                "resample_probes=True cannot be used with method='adaptive': the step-size "
                "controller would chase the probes' noise; draw the probes once per solve"
            )
        return lambda x, t: hutchinson_divergence(u, x, t, rng, n_probes=n_probes, noise=noise, return_value=True)
    probes = sample_probes(rng, (n_probes, n, d), noise)  # once per solve, as in FFJORD
    return lambda x, t: hutchinson_divergence(u, x, t, probes=probes, return_value=True)


def augmented_field(u_and_div, d):
    """The instantaneous change of variables  d/dt [x, l] = [u(x, t), -div u(x, t)]  [lecture: Continuous Normalizing Flows]

    Args:
        u_and_div: ``(x, t) -> (u(x, t), div u(x, t))`` with shapes ``(n, d)`` and ``(n,)``
            (the divergence exact or an estimate; one evaluation of ``u`` serves both).
        d: the dimension of ``x``.

    Returns:
        a field ``(z, t) -> (n, d + 1)`` on the augmented state ``z = [x, l]`` of shape
        ``(n, d + 1)``; it refuses a ``z`` of another width, and outputs of ``u_and_div``
        of the wrong shape or with NaN or inf.
    """
    check_callable(u_and_div, "u_and_div")
    d = check_count(d, "d")
    inner = _augmented_field(u_and_div, d)

    def field(z, t):
        z = as_points(z, "z", d=d + 1)
        out = u_and_div(z[:, :d], t)
        if not isinstance(out, tuple) or len(out) != 2:
            raise TypeError(f"u_and_div(x, t) must return a pair (u, div u), got {type(getval(out)).__name__}")
        n = np.shape(z)[0]
        check_field_output(out[0], n, d, "u_and_div: u")
        check_log_density(out[1], n, "u_and_div(x, t): div u", allow_minus_inf=False)
        return inner(z, t)
    return field


def _augmented_field(u_and_div, d):
    """``augmented_field`` without its checks, for the solvers (which check every stage's output)."""
    def field(z, t):
        v, div = u_and_div(z[:, :d], t)
        return np.concatenate([v, -np.reshape(div, (-1, 1))], axis=1)
    return field


def _solve(field, z0, t0, t1, n_steps, method, rtol, atol):
    if method == "adaptive":
        return integrate_adaptive(field, z0, t0, t1, rtol=rtol, atol=atol).x
    return integrate(field, z0, t0, t1, n_steps, method)


def _check_options(method, log_p0, n_steps, divergence, rng, noise, n_probes, resample_probes, rtol, atol):
    """Every option checked, used or not (an option given by mistake is not silently ignored)."""
    check_choice(method, "method", METHODS)
    check_callable(log_p0, "log_p0")
    check_count(n_steps, "n_steps")
    check_choice(divergence, "divergence", DIVERGENCES)
    if rng is not None:
        check_rng(rng)
    check_choice(noise, "noise", NOISES)
    check_count(n_probes, "n_probes")
    check_bool(resample_probes, "resample_probes")
    check_real(rtol, "rtol", low=0.0)
    check_real(atol, "atol", low=0.0, low_open=True)


def cnf_logpdf(u, x, n_steps=100, method="rk4", divergence="exact", rng=None, t=1.0,
               noise="rademacher", n_probes=1, resample_probes=False, log_p0=standard_normal_logpdf,
               rtol=1e-7, atol=1e-9, return_x0=False):
    """CNF log-density by the instantaneous change of variables  [lecture: Continuous Normalizing Flows; CNF Pros]

        log p_t(x) = log p0(x(0)) - int_0^t div u(x(s), s) ds,   x(.) the trajectory with x(t) = x

    computed by integrating ``d/ds [x, l] = [u, -div u]`` from ``s = t`` (``x(t) = x``,
    ``l = 0``) back to ``s = 0``: ``log p_t(x) = log p0(x(0)) - l(0)``.

    Args:
        u: velocity field ``u(x, t) -> (n, d)`` in ``autograd.numpy`` (it is differentiated).
        x: points, shape ``(n, d)``.
        n_steps: steps of the fixed-step methods.
        method: a method of ``reference.ode.integrate`` (``"euler"``, ``"midpoint"``,
            ``"rk4"``, ``"rk38"``, ``"dopri5"``), or ``"adaptive"`` (Dormand-Prince 5(4)
            with ``rtol``, ``atol``).
        divergence: ``"exact"`` (trace of the autograd Jacobian, ``d`` backward passes, or
            the field's own ``velocity_and_divergence`` when it has one, as
            ``engines.mlp.VelocityNetwork`` does) or ``"hutchinson"`` (``eps^T J eps``, one backward
            pass per probe; unbiased).
        rng: ``numpy.random.Generator`` for Hutchinson's probes.
        t: the time of the density, in ``[0, 1]``, default 1 (the data end).
        noise: Hutchinson probes, ``"rademacher"`` or ``"gaussian"``.
        n_probes: probes averaged at each evaluation.
        resample_probes: False (default): probes drawn once per solve and reused at every
            stage, as in FFJORD (the estimate is then an unbiased estimate of the
            discretised integral); True: fresh probes at every evaluation of the field.
        log_p0: the base log-density ``(n, d) -> (n,)``, default N(0, I).
        rtol, atol: tolerances of ``method="adaptive"``.
        return_x0: also return the starting points ``x(0)``.

    Returns:
        shape ``(n,)`` (and ``x(0)`` of shape ``(n, d)``).
    """
    check_callable(u, "u")
    x = as_points(x)
    n, d = np.shape(x)
    _check_options(method, log_p0, n_steps, divergence, rng, noise, n_probes, resample_probes, rtol, atol)
    return_x0 = check_bool(return_x0, "return_x0")
    t = check_real(t, "t", low=0.0, high=1.0)
    u_and_div = _velocity_and_divergence_fn(u, n, d, divergence, rng, noise, n_probes, resample_probes,
                                            method == "adaptive")
    z1 = np.concatenate([x, np.zeros((n, 1))], axis=1)
    z0 = _solve(_augmented_field(u_and_div, d), z1, t, 0.0, n_steps, method, rtol, atol)
    x0, l0 = z0[:, :d], z0[:, d]
    log_p = check_log_density(log_p0(x0), n, "log_p0(x)") - l0
    return (log_p, x0) if return_x0 else log_p


def cnf_sample(u, x0, n_steps=100, method="rk4", return_logpdf=False, divergence="exact", rng=None, t=1.0,
               noise="rademacher", n_probes=1, resample_probes=False, log_p0=standard_normal_logpdf,
               rtol=1e-7, atol=1e-9):
    """Samples of a CNF, optionally with their log-density computed while sampling  [lecture: Continuous Normalizing Flows]

        x(t) = f^u(x0, t),   log p_t(x(t)) = log p0(x0) - int_0^t div u(x(s), s) ds

    by integrating ``d/ds [x, l] = [u, -div u]`` forwards from ``x(0) = x0``,
    ``l(0) = log p0(x0)``.

    Args:
        u: velocity field.
        x0: samples of ``p0``, shape ``(n, d)`` (e.g. ``rng.standard_normal((n, d))``).
        n_steps, method: as in ``cnf_logpdf``.
        return_logpdf: also integrate the log-density along each trajectory.
        divergence, rng, noise, n_probes, resample_probes, log_p0, rtol, atol: as in
            ``cnf_logpdf`` (used only with ``return_logpdf``).
        t: the end time, in ``[0, 1]``, default 1.

    Returns:
        ``x(t)`` of shape ``(n, d)``, or ``(x(t), log p_t(x(t)))`` with the second of
        shape ``(n,)``.
    """
    check_callable(u, "u")
    x0 = as_points(x0, "x0")
    n, d = np.shape(x0)
    _check_options(method, log_p0, n_steps, divergence, rng, noise, n_probes, resample_probes, rtol, atol)
    return_logpdf = check_bool(return_logpdf, "return_logpdf")
    t = check_real(t, "t", low=0.0, high=1.0)
    if not return_logpdf:
        return _solve(u, x0, 0.0, t, n_steps, method, rtol, atol)
    u_and_div = _velocity_and_divergence_fn(u, n, d, divergence, rng, noise, n_probes, resample_probes,
                                            method == "adaptive")
    try:
        l0 = log_p0(x0)
    except ValueError as err:
        raise type(err)(f"x0: log_p0(x0) could not be computed: {err}") from err
    l0 = check_log_density(l0, n, "log_p0(x0)", allow_minus_inf=False)
    z0 = np.concatenate([x0, np.reshape(l0, (-1, 1))], axis=1)
    z1 = _solve(_augmented_field(u_and_div, d), z0, 0.0, t, n_steps, method, rtol, atol)
    return z1[:, :d], z1[:, d]

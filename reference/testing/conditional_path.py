"""``check_conditional_path``: a deterministic interpolant and its velocity  [lecture: Example 1; Example 2; summary table]"""

import numpy as onp

from .._validate import as_points, as_time, check_callable, check_finite_number
from ._numerics import fd_time_derivative
from ._report import K_SAFETY, Recorder, as_numpy, assert_twin, machine_eps, roundoff_tol

__all__ = ["check_conditional_path", "assert_conditional_path"]


def _call_sample(sample, x0, x1, t, rec, need_u=True):
    n, d = x0.shape
    out = sample(x0, x1, t)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        rec.fail(f"sample must return a pair (x_t, u_t), got {type(out).__name__}")
        return None
    x_t, u_t = as_numpy(out[0], "x_t"), as_numpy(out[1], "u_t")
    for name, v in (("x_t", x_t), ("u_t", u_t)):
        if name == "u_t" and not need_u:
            continue
        if v.shape != (n, d):
            rec.fail(f"sample returned {name} of shape {v.shape}, expected {(n, d)}")
            return None
        if not onp.all(onp.isfinite(v)):
            bad = onp.flatnonzero(~onp.all(onp.isfinite(v), axis=1))
            rec.fail(f"sample returned non-finite {name} at t = {onp.unique(t[bad])[:5]}")
            return None
    return x_t, u_t


def _boundary_weights(x_t, x0, x1):
    """Least-squares ``(a, b)`` with ``x_t ~ a x0 + b x1`` over every entry, and the relative residual."""
    A = onp.stack([x0.ravel(), x1.ravel()], axis=1)
    (a, b), *_ = onp.linalg.lstsq(A, x_t.ravel(), rcond=None)
    resid = onp.max(onp.abs(x_t - a * x0 - b * x1)) / (1.0 + onp.max(onp.abs(x_t)))
    return float(a), float(b), float(resid)


def _reference_x(path, x0, x1, t):
    """``(x_t, z)`` of a ``reference.paths`` path with ``x0`` the noise end."""
    if path.conditions_on_pairs:
        z = (x0, x1)
        return onp.asarray(path.flow(onp.zeros_like(x0), t, z)), z
    return onp.asarray(path.flow(x0, t, x1)), x1


def _reference_interpolant(path, x0, x1, t):
    """``(x_t, u_t)`` of a ``reference.paths`` path at interior times."""
    x_t, z = _reference_x(path, x0, x1, t)
    return x_t, onp.asarray(path.velocity(x_t, t, z))


def check_conditional_path(sample, x0, x1, *, t=None, path=None, sigma_min=1e-2, boundary_tol=None, k=K_SAFETY):
    """Check a conditional path's interpolant and velocity  [lecture: Example 1; Example 2]

    ``sample(x0, x1, t) -> (x_t, u_t)`` is the deterministic interpolant of a conditional
    path (``x0`` the noise end, ``x1`` the data end, ``t`` an array of shape ``(n,)``)
    and its conditional velocity at ``x_t``. Properties:

    - it is deterministic (two calls agree);
    - at ``t = 0``, ``x_t = x0``; at ``t = 1``, ``x_t = x1 + c x0`` with
      ``|c| <= sigma_min`` (paths with a ``sigma_min``); the weights of ``x0`` and
      ``x1`` at each end are fitted by least squares and reported;
    - ``u_t = d x_t / dt`` at interior times, by central differences, to ``k`` times
      the Richardson error estimate plus ``sqrt(eps)`` relative;
    - with ``path=`` (a ``reference.paths`` path), ``x_t`` and ``u_t`` equal the
      reference's (``x_t = mu_t(z) + sigma_t x0`` for ``z = x1``, the mean for
      ``z = (x0, x1)``).

    A path that is data at ``t = 0`` and noise at ``t = 1`` is reported as a reversed
    time convention; a velocity of the wrong sign, evaluated at ``1 - t``, equal to
    ``x1 - x0`` for a path that is not linear, or noise drawn inside ``sample`` are named.

    Args:
        sample: ``sample(x0, x1, t) -> (x_t, u_t)``, NumPy in and out.
        x0: noise points, shape ``(n, d)``.
        x1: data points, shape ``(n, d)``.
        t: interior times ``(n,)`` in ``(0, 1)`` for the velocity check (default: evenly
            spread over ``[0.05, 0.95]``).
        path: optional ``reference.paths`` path to compare against.
        sigma_min: the largest multiple of ``x0`` allowed in ``x_t`` at ``t = 1``.
        boundary_tol: tolerance on the other boundary weights (default ``sqrt(eps)``;
            raise it for paths that only approximately start at the noise, such as a
            variance-preserving path).
        k: safety factor on the finite-difference error estimate.

    Returns:
        ``CheckReport``.
    """
    check_callable(sample, "sample")
    x0 = as_points(x0, "x0")
    x1 = as_points(x1, "x1", d=x0.shape[1])
    n, d = x0.shape
    if x1.shape != x0.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {x0.shape} and {x1.shape}")
    if n * d < 2 or onp.linalg.matrix_rank(onp.stack([x0.ravel(), x1.ravel()], axis=1)) < 2:
        raise ValueError("x0 and x1 must not be proportional (their weights in x_t could not be told apart)")
    if t is None:
        t = 0.05 + 0.9 * (onp.arange(n) + 0.5) / n
    t = onp.asarray(as_time(t, n, low=0.0, high=1.0), dtype=onp.float64) * onp.ones(n)
    h_max = 2 * machine_eps(onp.float32(0)) ** (1 / 3)
    if onp.any(t < h_max) or onp.any(t > 1 - h_max):
        raise ValueError(f"t must lie in [{h_max:.3g}, {1 - h_max:.3g}] (interior, for central differences)")
    sigma_min = check_finite_number(sigma_min, "sigma_min", nonnegative=True)
    check_finite_number(k, "k", positive=True)
    rec = Recorder("check_conditional_path")

    first = _call_sample(sample, x0, x1, t, rec)
    if first is None:
        return rec.report()
    x_t, u_t = first
    eps = machine_eps(x_t, u_t)
    tol = roundoff_tol(eps)
    b_tol = tol if boundary_tol is None else check_finite_number(boundary_tol, "boundary_tol", positive=True)

    again = _call_sample(sample, x0, x1, t, rec)
    if again is None:
        return rec.report()
    spread = max(onp.max(onp.abs(again[0] - x_t)), onp.max(onp.abs(again[1] - u_t))) / (1 + onp.max(onp.abs(x_t)))
    if not rec.measure("repeatability", spread, tol, what="max difference between two calls with the same inputs"):
        rec.diagnose("noise drawn inside sample",
                     "sample must be the deterministic interpolant: pass the noise in as x0 "
                     "(e.g. torchcfm's sample_xt(x0, x1, t, epsilon=...)) or set sigma = 0")
        return rec.report()

    # boundary conditions
    ends = {}
    for label, s in (("start", 0.0), ("end", 1.0)):
        try:
            with onp.errstate(divide="ignore", invalid="ignore"):  # u_t may be singular at an end (conical path)
                out = _call_sample(sample, x0, x1, onp.full(n, s), rec, need_u=False)
        except (ValueError, ZeroDivisionError, FloatingPointError) as err:
            s_in = 1e-10 if s == 0 else 1.0 - 1e-10
            rec.note(f"sample raised at t = {s:g} ({type(err).__name__}: {err}); the {label} point was taken "
                     f"at t = {s_in:g}")
            out = _call_sample(sample, x0, x1, onp.full(n, s_in), rec, need_u=False)
        if out is None:
            return rec.report()
        ends[label] = _boundary_weights(out[0], x0, x1)
    a0, b0, r0 = ends["start"]
    a1, b1, r1 = ends["end"]
    rec.measure("start_residual", r0, tol, what="x_t at t = 0 minus its best fit a x0 + b x1 (relative)",
                fail=f"x_t at t = 0 is not a combination of x0 and x1 (residual {r0:.3g}): "
                     "a term that is neither, such as sigma * noise")
    rec.measure("end_residual", r1, tol, what="x_t at t = 1 minus its best fit a x0 + b x1 (relative)",
                fail=f"x_t at t = 1 is not a combination of x0 and x1 (residual {r1:.3g})")
    ok = rec.measure("start_x0_weight_error", abs(a0 - 1.0), b_tol, what=f"|a - 1| at t = 0 (x_t = a x0 + b x1; a = {a0:.4g})")
    ok &= rec.measure("start_x1_weight", abs(b0), b_tol, what=f"|b| at t = 0 (b = {b0:.4g})")
    ok &= rec.measure("end_x1_weight_error", abs(b1 - 1.0), b_tol, what=f"|b - 1| at t = 1 (b = {b1:.4g})")
    ok &= rec.measure("end_x0_weight", abs(a1), sigma_min + b_tol, what=f"|a| at t = 1, the path's sigma_min (a = {a1:.4g})")
    if not ok:
        loose = max(b_tol, sigma_min, 0.05)
        if abs(a0) <= loose and abs(b0 - 1) <= loose and abs(a1 - 1) <= loose and abs(b1) <= loose:
            rec.diagnose("reversed time convention",
                         "x_t is the data x1 at t = 0 and the noise x0 at t = 1; the lecture's t = 0 is the noise: "
                         "use t -> 1 - t and negate u (or x0 and x1 are swapped in the signature)")
        elif abs(a1 - 1) <= loose and abs(b1) <= loose:
            rec.diagnose("path ends at the noise", "x_t at t = 1 is x0; the data x1 must be the end point")

    # the velocity is the time derivative of the interpolant
    def x_of(s):
        out = sample(x0, x1, s)
        return as_numpy(out[0], "x_t")

    D, err = fd_time_derivative(x_of, t, eps, onp.max(onp.abs(x_t), axis=1))
    u_scale = 1.0 + onp.max(onp.abs(D), axis=1)
    vtol = k * onp.max(err, axis=1) + tol * u_scale

    def within(v):
        return bool(onp.all(onp.max(onp.abs(v - D), axis=1) <= vtol))

    ratio = onp.max(onp.abs(u_t - D), axis=1) / vtol
    if not rec.measure("velocity_error_over_tol", ratio.max(), 1.0,
                       what="|u_t - d x_t/dt (central differences)| in units of its tolerance",
                       fail=f"u_t is not d x_t / dt: off by {onp.max(onp.abs(u_t - D)):.3g} (at most "
                            f"{vtol[onp.argmax(ratio)]:.3g} allowed)"):
        D_rev, _ = fd_time_derivative(x_of, 1.0 - t, eps, onp.max(onp.abs(x_t), axis=1))
        if within(-u_t):
            rec.diagnose("velocity sign flipped",
                         "u_t = -d x_t/dt; e.g. the conical velocity written (x - x1)/(1 - t) instead of "
                         "(x1 - x)/(1 - t)")
        elif onp.all(onp.max(onp.abs(u_t - D_rev), axis=1) <= vtol) or onp.all(onp.max(onp.abs(u_t + D_rev), axis=1) <= vtol):
            rec.diagnose("velocity at the reversed time", "u_t is the path's velocity at 1 - t")
        elif onp.allclose(u_t, x1 - x0, rtol=0, atol=tol * (1 + onp.max(onp.abs(x1 - x0)))):
            rec.diagnose("linear path's velocity",
                         "u_t = x1 - x0 but x_t does not move along x1 - x0 (this path's velocity differs)")
        elif onp.max(onp.abs(u_t)) <= tol:
            rec.diagnose("velocity is zero", "u_t is 0 where x_t moves")

    if path is not None:
        ref_x, ref_u = _reference_interpolant(path, x0, x1, t)
        ex = onp.max(onp.abs(x_t - ref_x)) / (1 + onp.max(onp.abs(ref_x)))
        eu = onp.max(onp.abs(u_t - ref_u)) / (1 + onp.max(onp.abs(ref_u)))
        rec.measure("reference_x_t_error", ex, tol, what=f"max |x_t - {path!r}'s x_t| (relative)")
        rec.measure("reference_u_t_error", eu, tol, what=f"max |u_t - {path!r}'s u_t| (relative)")
        for label, s_end, (a, b, _) in (("start", 0.0, ends["start"]), ("end", 1.0, ends["end"])):
            ra, rb, _ = _boundary_weights(_reference_x(path, x0, x1, onp.full(n, s_end))[0], x0, x1)
            rec.measure(f"reference_weights_{label}", max(abs(a - ra), abs(b - rb)), max(tol, b_tol),
                        what=f"weights of x0, x1 at t = {s_end:g} against {path!r}'s ({ra:.4g}, {rb:.4g})")
    return rec.report(f"x_t runs from x0 (t = 0) to x1 (t = 1, sigma_min {abs(a1):.3g}) and u_t = d x_t/dt "
                      f"at {n} interior times" + (f"; matches {path!r}" if path is not None else "") + ".")


assert_conditional_path = assert_twin(check_conditional_path)

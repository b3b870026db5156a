"""``check_conditional_path``: a deterministic interpolant and its velocity  [lecture: Example 1; Example 2; summary table]"""

import numpy as onp

from .._validate import as_points, as_time, check_callable, check_finite_number
from ._args import check_dims, check_k, check_precision, check_seed
from ._guard import Impl, Raised, Stop, as_array, continuing, run_checker
from ._numerics import fd_time_derivative
from ._report import K_SAFETY, Recorder, assert_twin, roundoff_tol

__all__ = ["check_conditional_path", "assert_conditional_path"]


def _call_sample(impl, x0, x1, t, rec, need_u=True, where=""):
    n, d = x0.shape
    out = impl(x0, x1, t, where=where)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        rec.fail(f"sample must return a pair (x_t, u_t), got {type(out).__name__}")
        raise Stop
    x_t = as_array(out[0], "x_t", rec, shape=(n, d), finite=False, where=where)
    u_t = as_array(out[1], "u_t", rec, finite=False, where=where) if need_u else None
    for name, v in (("x_t", x_t), ("u_t", u_t)):
        if v is None:
            continue
        if v.shape != (n, d):
            rec.fail(f"sample returned {name} of shape {v.shape}, expected {(n, d)}{' ' + where if where else ''}")
            raise Stop
        if not onp.all(onp.isfinite(v)):
            bad = onp.flatnonzero(~onp.all(onp.isfinite(v), axis=1))
            rec.fail(f"sample returned non-finite {name} at t = {onp.unique(onp.asarray(t)[bad])[:5]}"
                     f"{' ' + where if where else ''}")
            raise Stop
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


def _default_times(n, prec):
    """Times spread over [0.05, 0.95] plus two close to each end (as close as the precision resolves)."""
    spread = 0.05 + 0.9 * (onp.arange(n) + 0.5) / n
    if n < 6:
        return prec.round(spread)
    delta = max(1e-3, 16 * prec.eps)
    near = min(10 * delta, 0.25)
    ends = onp.array([delta, near, 1 - near, 1 - delta])
    t = onp.concatenate([ends[:2], spread[2:n - 2], ends[2:]])
    return prec.round(t)


def _check_batch(rec, impl, x0, x1, t_user, path, sigma_min, boundary_tol, k, suffix, where):
    n, d = x0.shape
    first = _call_sample(impl, x0, x1, _default_times(n, rec.precision) if t_user is None else t_user, rec,
                         where=where)
    prec = rec.precision
    x0, x1 = prec.round(x0), prec.round(x1)
    t = _default_times(n, prec) if t_user is None else prec.round(t_user)
    if not (onp.all(t > 0) and onp.all(t < 1)):
        rec.fail(f"t rounded to {prec.name} reaches an end of [0, 1]: give interior times")
        raise Stop
    eps = prec.eps
    tol = roundoff_tol(eps)
    b_tol = tol if boundary_tol is None else boundary_tol
    del first

    x_t, u_t = _call_sample(impl, x0, x1, t, rec, where=where)
    again = _call_sample(impl, x0, x1, t, rec, where=where)
    spread = max(onp.max(onp.abs(again[0] - x_t)), onp.max(onp.abs(again[1] - u_t))) / (1 + onp.max(onp.abs(x_t)))
    if not rec.measure(f"repeatability{suffix}", spread, tol,
                       what="max difference between two calls with the same inputs"):
        rec.diagnose("noise drawn inside sample",
                     "sample must be the deterministic interpolant: pass the noise in as x0 "
                     "(e.g. torchcfm's sample_xt(x0, x1, t, epsilon=...)) or set sigma = 0")
        raise Stop

    # boundary conditions
    ends = {}
    for label, s in (("start", 0.0), ("end", 1.0)):
        out = impl(x0, x1, onp.full(n, s), where=where, allow=(ValueError, ZeroDivisionError, FloatingPointError))
        problem = None
        if isinstance(out, Raised):
            problem = f"{type(out.error).__name__}: {out.error}"
        elif not isinstance(out, (tuple, list)) or len(out) != 2:
            rec.fail(f"sample must return a pair (x_t, u_t), got {type(out).__name__}")
            raise Stop
        else:
            x_end = as_array(out[0], "x_t", rec, shape=(n, d), finite=False, where=where)
            if not onp.all(onp.isfinite(x_end)):
                problem = "non-finite x_t"
        if problem is not None:
            delta = prec.eps ** 0.75  # far below the sqrt(eps) allowance on the weights, resolved by the precision
            s_in = prec.round(delta if s == 0 else 1.0 - delta)
            rec.note(f"sample failed at t = {s:g} ({problem}); the {label} point was taken at t = {s_in:g}")
            x_end = _call_sample(impl, x0, x1, onp.full(n, s_in), rec, need_u=False, where=where)[0]
        ends[label] = _boundary_weights(x_end, x0, x1)
    a0, b0, r0 = ends["start"]
    a1, b1, r1 = ends["end"]
    rec.measure(f"start_residual{suffix}", r0, tol, what="x_t at t = 0 minus its best fit a x0 + b x1 (relative)",
                fail=f"x_t at t = 0 is not a combination of x0 and x1 (residual {r0:.3g}{' ' + where if where else ''}):"
                     " a term that is neither, such as sigma * noise")
    rec.measure(f"end_residual{suffix}", r1, tol, what="x_t at t = 1 minus its best fit a x0 + b x1 (relative)",
                fail=f"x_t at t = 1 is not a combination of x0 and x1 (residual {r1:.3g}{' ' + where if where else ''})")
    ok = rec.measure(f"start_x0_weight_error{suffix}", abs(a0 - 1.0), b_tol,
                     what=f"|a - 1| at t = 0 (x_t = a x0 + b x1; a = {a0:.4g})")
    ok &= rec.measure(f"start_x1_weight{suffix}", abs(b0), b_tol, what=f"|b| at t = 0 (b = {b0:.4g})")
    ok &= rec.measure(f"end_x1_weight_error{suffix}", abs(b1 - 1.0), b_tol, what=f"|b - 1| at t = 1 (b = {b1:.4g})")
    ok &= rec.measure(f"end_x0_weight{suffix}", abs(a1), sigma_min + b_tol,
                      what=f"|a| at t = 1, the path's sigma_min (a = {a1:.4g})")
    if not ok:
        loose = max(b_tol, sigma_min, 0.05)
        if abs(a0) <= loose and abs(b0 - 1) <= loose and abs(a1 - 1) <= loose and abs(b1) <= loose:
            rec.diagnose("reversed time convention",
                         "x_t is the data x1 at t = 0 and the noise x0 at t = 1; the lecture's t = 0 is the noise: "
                         "use t -> 1 - t and negate u (or x0 and x1 are swapped in the signature)")
        elif abs(a1 - 1) <= loose and abs(b1) <= loose:
            rec.diagnose("path ends at the noise", "x_t at t = 1 is x0; the data x1 must be the end point")

    # the velocity is the time derivative of the interpolant
    def x_of(grid):  # (4, n) times -> (4, n, d), in one call
        m = grid.shape[0]
        out = _call_sample(impl, onp.tile(x0, (m, 1)), onp.tile(x1, (m, 1)), grid.ravel(), rec, need_u=False,
                           where=where)
        return out[0].reshape(m, n, d)

    margin = onp.minimum(t, 1 - t)
    D, err = fd_time_derivative(x_of, t, prec, onp.max(onp.abs(x_t), axis=1), margin=margin)
    u_scale = 1.0 + onp.max(onp.abs(D), axis=1)
    vtol = k * onp.max(err, axis=1) + tol * u_scale

    def within(v):
        return bool(onp.all(onp.max(onp.abs(v - D), axis=1) <= vtol))

    ratio = onp.max(onp.abs(u_t - D), axis=1) / vtol
    worst = int(onp.argmax(ratio))
    if not rec.measure(f"velocity_error_over_tol{suffix}", ratio[worst], 1.0,
                       what=f"|u_t - d x_t/dt (central differences)| in units of its tolerance (worst at t = "
                            f"{t[worst]:.4g})",
                       fail=f"u_t is not d x_t / dt: off by {onp.max(onp.abs(u_t - D)[worst]):.3g} at t = "
                            f"{t[worst]:.4g} (at most {vtol[worst]:.3g} allowed){' ' + where if where else ''}"):
        bad = ratio > 1
        D_rev, _ = fd_time_derivative(x_of, prec.round(1.0 - t), prec, onp.max(onp.abs(x_t), axis=1), margin=margin)
        if within(-u_t):
            rec.diagnose("velocity sign flipped",
                         "u_t = -d x_t/dt; e.g. the conical velocity written (x - x1)/(1 - t) instead of "
                         "(x1 - x)/(1 - t)")
        elif onp.all(onp.max(onp.abs(u_t - D_rev), axis=1) <= vtol) or onp.all(
                onp.max(onp.abs(u_t + D_rev), axis=1) <= vtol):
            rec.diagnose("velocity at the reversed time", "u_t is the path's velocity at 1 - t")
        elif onp.allclose(u_t, x1 - x0, rtol=0, atol=tol * (1 + onp.max(onp.abs(x1 - x0)))):
            rec.diagnose("linear path's velocity",
                         "u_t = x1 - x0 but x_t does not move along x1 - x0 (this path's velocity differs)")
        elif onp.max(onp.abs(u_t)) <= tol:
            rec.diagnose("velocity is zero", "u_t is 0 where x_t moves")
        elif onp.all(t[bad] > 0.98) and onp.any(~bad):
            rec.diagnose("velocity wrong only near t = 1",
                         f"u_t is right for t <= 0.98 but not at t = {', '.join(f'{v:.4g}' for v in t[bad])}: "
                         "1 - t clamped, or an epsilon added to it, changes the velocity where the path is fast")
        elif onp.all(t[bad] < 0.02) and onp.any(~bad):
            rec.diagnose("velocity wrong only near t = 0",
                         f"u_t is right for t >= 0.02 but not at t = {', '.join(f'{v:.4g}' for v in t[bad])}: "
                         "t clamped, or an epsilon added to it?")

    if path is not None:
        ref_x, ref_u = _reference_interpolant(path, x0, x1, t)
        ex = onp.max(onp.abs(x_t - ref_x)) / (1 + onp.max(onp.abs(ref_x)))
        eu = onp.max(onp.abs(u_t - ref_u)) / (1 + onp.max(onp.abs(ref_u)))
        rec.measure(f"reference_x_t_error{suffix}", ex, tol, what=f"max |x_t - {path!r}'s x_t| (relative)")
        rec.measure(f"reference_u_t_error{suffix}", eu, tol, what=f"max |u_t - {path!r}'s u_t| (relative)")
        for label, s_end, (a, b, _) in (("start", 0.0, ends["start"]), ("end", 1.0, ends["end"])):
            ra, rb, _ = _boundary_weights(_reference_x(path, x0, x1, onp.full(n, s_end))[0], x0, x1)
            rec.measure(f"reference_weights_{label}{suffix}", max(abs(a - ra), abs(b - rb)), max(tol, b_tol),
                        what=f"weights of x0, x1 at t = {s_end:g} against {path!r}'s ({ra:.4g}, {rb:.4g})")
    return t, abs(a1)


def _body(rec, sample, batches, t_user, path, sigma_min, boundary_tol, k, declared):
    impl = Impl(sample, "sample", rec, ("x0", "x1", "t"), declared)
    times, sig = [], []
    for x0, x1 in batches:
        d = x0.shape[1]
        suffix = f"_d{d}" if len(batches) > 1 else ""
        where = f"in d = {d}" if len(batches) > 1 else ""
        with continuing(rec):
            t, a1 = _check_batch(rec, impl, x0, x1, t_user, path, sigma_min, boundary_tol, k, suffix, where)
            times.append(t)
            sig.append(a1)
    if not times:
        raise Stop
    dims = ", ".join(str(x0.shape[1]) for x0, _ in batches)
    all_t = onp.concatenate(times)
    rec.cover(f"d = {dims}; {sum(len(x0) for x0, _ in batches)} points; velocity at t from {all_t.min():.4g} to "
              f"{all_t.max():.4g}; x_t at t = 0 and t = 1")
    return (f"x_t runs from x0 (t = 0) to x1 (t = 1, sigma_min {max(sig):.3g}) and u_t = d x_t/dt at "
            f"t in [{all_t.min():.3g}, {all_t.max():.3g}], d = {dims}" + (f"; matches {path!r}" if path is not None
                                                                           else "") + ".")


def _default_batches(dims, seed):
    rng = onp.random.default_rng(seed)
    out = []
    for d in dims:
        x0 = rng.standard_normal((8, d))
        out.append((x0, 0.5 * rng.standard_normal((8, d)) + 2.0 + 0.3 * onp.arange(d)))
    return out


def check_conditional_path(sample, x0=None, x1=None, *, t=None, path=None, sigma_min=1e-2, boundary_tol=None,
                           k=K_SAFETY, precision=None, dims=None, seed=0):
    """Check a conditional path's interpolant and velocity  [lecture: Example 1; Example 2]

    ``sample(x0, x1, t) -> (x_t, u_t)`` is the deterministic interpolant of a conditional
    path (``x0`` the noise end, ``x1`` the data end, ``t`` an array of shape ``(n,)``)
    and its conditional velocity at ``x_t``. Properties:

    - it is deterministic (two calls agree) and has no side effects (it does not write
      into ``x0``, ``x1`` or ``t``, and returns no view of them);
    - at ``t = 0``, ``x_t = x0``; at ``t = 1``, ``x_t = x1 + c x0`` with
      ``|c| <= sigma_min`` (paths with a ``sigma_min``); the weights of ``x0`` and
      ``x1`` at each end are fitted by least squares and reported;
    - ``u_t = d x_t / dt`` at interior times, including two close to each end (``1e-3``
      and ``1e-2`` from it in float64/float32, as close as the precision resolves
      otherwise), by central differences with a step that stays inside ``(0, 1)``, to
      ``k`` times the Richardson error estimate plus ``sqrt(eps)`` relative;
    - with ``path=`` (a ``reference.paths`` path), ``x_t`` and ``u_t`` equal the
      reference's (``x_t = mu_t(z) + sigma_t x0`` for ``z = x1``, the mean for
      ``z = (x0, x1)``).

    Without ``x0`` and ``x1`` it runs on batches of 8 points in each of ``dims``
    (default ``d = 1, 2, 3, 5``); the figures then carry a suffix ``_d<d>``.

    A path that is data at ``t = 0`` and noise at ``t = 1`` is reported as a reversed
    time convention; a velocity of the wrong sign, evaluated at ``1 - t``, equal to
    ``x1 - x0`` for a path that is not linear, wrong only near an end (``1 - t``
    clamped), or noise drawn inside ``sample`` are named.

    Args:
        sample: ``sample(x0, x1, t) -> (x_t, u_t)``, NumPy in and out.
        x0: noise points, shape ``(n, d)`` (default: the batches described above).
        x1: data points, shape ``(n, d)`` (given together with ``x0``).
        t: interior times ``(n,)`` in ``[1e-6, 1 - 1e-6]`` for the velocity check (default:
            spread over ``[0.05, 0.95]`` plus two close to each end).
        path: optional ``reference.paths`` path to compare against.
        sigma_min: the largest multiple of ``x0`` allowed in ``x_t`` at ``t = 1``.
        boundary_tol: tolerance on the other boundary weights (default ``sqrt(eps)``;
            raise it for paths that only approximately start at the noise, such as a
            variance-preserving path).
        k: safety factor on the finite-difference error estimate.
        precision: the precision the implementation computes in, if lower than its
            outputs' dtype says.
        dims: dimensions of the default batches (only without ``x0`` and ``x1``).
        seed: seed of the default batches (an integer >= 0).

    Returns:
        ``CheckReport``.
    """
    check_callable(sample, "sample")
    seed = check_seed(seed)
    if (x0 is None) != (x1 is None):
        raise ValueError("x0 and x1 must be given together (or neither, for the default batches)")
    if x0 is None:
        batches = _default_batches(check_dims(dims), seed)
    else:
        if dims is not None:
            raise ValueError("dims applies to the default batches only: omit it when x0 and x1 are given")
        x0 = as_points(x0, "x0", allow_traced=False)
        x1 = as_points(x1, "x1", allow_traced=False)
        if x1.shape != x0.shape:
            raise ValueError(f"x0 and x1 must have the same shape, got {x0.shape} and {x1.shape}")
        if max(onp.max(onp.abs(x0)), onp.max(onp.abs(x1))) > 1e6:
            raise ValueError("x0 and x1 must have entries of moderate size (|x| <= 1e6)")
        n, d = x0.shape
        if n * d < 2 or onp.linalg.matrix_rank(onp.stack([x0.ravel(), x1.ravel()], axis=1)) < 2:
            raise ValueError("x0 and x1 must not be proportional (their weights in x_t could not be told apart)")
        batches = [(x0, x1)]
    if t is not None:
        n = batches[0][0].shape[0]
        if len(batches) > 1 and len({b[0].shape[0] for b in batches}) > 1:  # pragma: no cover - equal sizes
            raise ValueError("t needs batches of one size")
        t = onp.asarray(as_time(t, n, low=0.0, high=1.0), dtype=onp.float64) * onp.ones(n)
        if onp.any(t < 1e-6) or onp.any(t > 1 - 1e-6):
            raise ValueError("t must lie inside [1e-6, 1 - 1e-6] (interior times, for central differences)")
    sigma_min = float(check_finite_number(sigma_min, "sigma_min", nonnegative=True))
    if boundary_tol is not None:
        boundary_tol = float(check_finite_number(boundary_tol, "boundary_tol", positive=True))
    k = check_k(k)
    if path is not None and not (hasattr(path, "flow") and hasattr(path, "velocity")
                                 and hasattr(path, "conditions_on_pairs")):
        raise TypeError(f"path must be a reference.paths path (with flow, velocity, conditions_on_pairs), got "
                        f"{type(path).__name__}")
    declared = check_precision(precision)
    rec = Recorder("check_conditional_path")
    return run_checker(rec, _body, sample, batches, t, path, sigma_min, boundary_tol, k, declared)


assert_conditional_path = assert_twin(check_conditional_path)

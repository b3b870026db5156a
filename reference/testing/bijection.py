"""``check_bijection``: an invertible map and its log-determinants  [lecture: eq. (2); RealNVP, eq. (3)]"""

import numpy as onp

from .._validate import as_points, check_callable, check_finite_number
from ._numerics import fd_jacobian
from ._report import K_SAFETY, Recorder, as_numpy, assert_twin, machine_eps, roundoff_tol

__all__ = ["check_bijection", "assert_bijection"]


def _call_map(fn, arg, name, rec):
    """``fn(arg) -> (points, log_det)`` with its shapes checked; None (and a recorded failure) if wrong."""
    n, d = arg.shape
    out = fn(arg)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        rec.fail(f"{name} must return a pair (points, log_det), got {type(out).__name__}")
        return None
    pts, ld = as_numpy(out[0], f"{name}(...)[0]"), as_numpy(out[1], f"{name}(...)[1]")
    if pts.shape != (n, d):
        rec.fail(f"{name} returned points of shape {pts.shape}, expected {(n, d)}")
        return None
    if ld.shape == (n, d) and d > 1:
        rec.fail(f"{name} returned a log-det of shape {ld.shape}, expected ({n},)")
        rec.diagnose("log-det not summed over coordinates",
                     f"{name} returns one log-scale per coordinate: sum them over the last axis")
        return None
    if ld.shape in ((n, 1), (n, 1, 1)) or (ld.ndim == 0 and n == 1):
        ld = ld.reshape(n)
    if ld.shape != (n,):
        rec.fail(f"{name} returned a log-det of shape {ld.shape}, expected ({n},) (one per point)")
        return None
    if not (onp.all(onp.isfinite(pts)) and onp.all(onp.isfinite(ld))):
        rec.fail(f"{name} returned non-finite values (NaN or inf)")
        return None
    return pts, ld


def _logdet_tolerance(J, err, k, eps, value):
    """Tolerance on ``log |det J|`` from an entrywise error bound on ``J``.

    ``d log|det J| = tr(J^{-1} dJ)``, so ``|error| <= sum_ij |(J^{-1})_ji| err_ij``; times
    the safety factor ``k``, plus the round-off allowance of the value itself.
    """
    J_inv = onp.linalg.inv(J)
    propagated = onp.sum(onp.abs(onp.swapaxes(J_inv, 1, 2)) * err, axis=(1, 2))
    return k * propagated + roundoff_tol(eps) * (1.0 + onp.abs(value))


def _compare_logdet(rec, label, ld, J, err, k, eps, where):
    sign, logdet = onp.linalg.slogdet(J)
    if onp.any(sign == 0):
        rec.fail(f"the finite-difference Jacobian of {label} is singular at some points: not a bijection there")
        return None, None
    tol = _logdet_tolerance(J, err, k, eps, logdet)
    ratio = onp.abs(ld - logdet) / tol
    worst = int(onp.argmax(ratio))
    rec.measure(
        f"{label}_log_det_error_over_tol", ratio[worst], 1.0,
        what=(f"|log_det - slogdet(finite-difference Jacobian {where})| in units of its tolerance "
              f"(worst point: error {abs(ld[worst] - logdet[worst]):.3g}, tolerance {tol[worst]:.3g})"),
    )
    return logdet, tol


def check_bijection(forward, inverse, x, *, round_trip_tol=None, k=K_SAFETY):
    """Check a bijection and its log-determinants against finite differences  [lecture: eq. (2)]

    Properties, each with a bound derived from the arithmetic:

    - round trips: ``inverse(forward(x)) = x`` and ``forward(inverse(y)) = y`` (with
      ``y = x`` taken as points of the codomain), to ``sqrt(eps)`` relative;
    - ``log_det`` equals ``log |det J_forward(x)|`` of a central-difference Jacobian
      (the callables need not be differentiable by autograd), to ``k`` times the
      Richardson estimate of the finite-difference error propagated through
      ``d log|det J| = tr(J^{-1} dJ)``;
    - ``log_det_inv`` equals ``log |det J_inverse(y)|`` in the same way;
    - ``log_det(x) + log_det_inv(forward(x)) = 0``.

    On failure it names the mistakes it recognises: a log-det with the wrong sign,
    a missing log-det, a log-det evaluated at the output instead of the input, an
    inverse whose log-det has the forward's sign, per-coordinate log-dets not summed.

    Args:
        forward: ``forward(x) -> (y, log_det)`` with shapes ``(n, d)`` and ``(n,)``.
        inverse: ``inverse(y) -> (x, log_det_inv)``.
        x: points to check at, shape ``(n, d)``.
        round_trip_tol: relative tolerance of the round trips (default ``sqrt(eps)`` of
            the implementation's output precision).
        k: safety factor on the finite-difference error estimate (default 10).

    Returns:
        ``CheckReport``.
    """
    check_callable(forward, "forward")
    check_callable(inverse, "inverse")
    x = as_points(x)
    check_finite_number(k, "k", positive=True)
    rec = Recorder("check_bijection")
    n, d = x.shape

    fwd = _call_map(forward, x, "forward", rec)
    if fwd is None:
        return rec.report()
    y, ld = fwd
    inv = _call_map(inverse, onp.asarray(y, dtype=onp.float64), "inverse", rec)
    if inv is None:
        return rec.report()
    x_rt, ld_inv = inv
    eps = machine_eps(y, ld, x_rt, ld_inv)
    tol = roundoff_tol(eps) if round_trip_tol is None else check_finite_number(round_trip_tol, "round_trip_tol", positive=True)
    what_tol = "sqrt(eps) of the output precision" if round_trip_tol is None else "given"

    # round trips, both ways
    scale = 1.0 + onp.max(onp.abs(x), axis=1)
    err_x = onp.max(onp.abs(x_rt - x), axis=1) / scale
    rec.measure("round_trip_x", err_x.max(), tol,
                what=f"max |inverse(forward(x)) - x| / (1 + |x|) (tolerance {what_tol})",
                fail=f"inverse(forward(x)) does not return x: relative error {err_x.max():.3g} > {tol:.3g}")
    back = _call_map(inverse, x, "inverse", rec)
    if back is not None:
        x_b, _ = back
        again = _call_map(forward, onp.asarray(x_b, dtype=onp.float64), "forward", rec)
        if again is not None:
            err_y = onp.max(onp.abs(again[0] - x), axis=1) / scale
            rec.measure("round_trip_y", err_y.max(), tol,
                        what=f"max |forward(inverse(y)) - y| / (1 + |y|) (tolerance {what_tol})",
                        fail=f"forward(inverse(y)) does not return y: relative error {err_y.max():.3g} > {tol:.3g}")

    # log-dets against finite differences
    def f_fwd(z):
        return as_numpy(forward(z)[0], "forward(...)[0]")

    def f_inv(z):
        return as_numpy(inverse(z)[0], "inverse(...)[0]")

    ld64 = ld.astype(onp.float64)
    ld_inv64 = ld_inv.astype(onp.float64)
    J, err = fd_jacobian(f_fwd, x, eps)
    n_fail = len(rec.failures)
    logdet, ld_tol = _compare_logdet(rec, "forward", ld64, J, err, k, eps, "of forward at x")
    if logdet is not None and len(rec.failures) > n_fail:
        if onp.all(onp.abs(ld64 + logdet) <= ld_tol):
            rec.diagnose("log-det sign flipped",
                         "forward returns -log|det J_forward(x)| (the inverse's log-det): flip its sign")
        elif onp.all(onp.abs(ld64) <= ld_tol):
            rec.diagnose("log-det missing", "forward returns 0 where log|det J_forward(x)| is not 0")
        else:
            J_y, err_y = fd_jacobian(f_fwd, onp.asarray(y, dtype=onp.float64), eps)
            s_y, logdet_y = onp.linalg.slogdet(J_y)
            if onp.all(s_y != 0) and onp.all(onp.abs(ld64 - logdet_y) <= _logdet_tolerance(J_y, err_y, k, eps, logdet_y)):
                rec.diagnose("log-det evaluated at the output",
                             "forward's log-det is log|det J| at y = forward(x), not at x")

    y64 = onp.asarray(y, dtype=onp.float64)
    J_inv, err_inv = fd_jacobian(f_inv, y64, eps)
    n_fail = len(rec.failures)
    logdet_inv, inv_tol = _compare_logdet(rec, "inverse", ld_inv64, J_inv, err_inv, k, eps, "of inverse at y")
    if logdet_inv is not None and len(rec.failures) > n_fail:
        if onp.all(onp.abs(ld_inv64 + logdet_inv) <= inv_tol):
            rec.diagnose("inverse log-det sign flipped",
                         "inverse returns +log|det J_forward(x)|; it must return log|det J_inverse(y)| = -log_det")
        elif onp.all(onp.abs(ld_inv64) <= inv_tol):
            rec.diagnose("inverse log-det missing", "inverse returns 0 where log|det J_inverse(y)| is not 0")

    total = onp.abs(ld64 + ld_inv64) / (1.0 + onp.abs(ld64))
    rec.measure("log_det_sum", total.max(), roundoff_tol(eps),
                what="max |log_det(x) + log_det_inv(forward(x))| / (1 + |log_det|) (tolerance sqrt(eps))",
                fail=f"forward and inverse log-dets do not sum to zero: relative {total.max():.3g}")
    return rec.report(
        f"forward and inverse are mutual inverses and both log-dets match finite differences at {n} points in d = {d}."
    )


assert_bijection = assert_twin(check_bijection)

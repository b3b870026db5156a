"""``check_bijection``: an invertible map and its log-determinants  [lecture: eq. (2); RealNVP, eq. (3)]"""

import numpy as onp

from .._validate import as_points, check_callable, check_finite_number
from ._args import check_k, check_precision
from ._guard import Impl, Stop, as_array, run_checker
from ._numerics import fd_jacobian
from ._report import K_SAFETY, Recorder, assert_twin, roundoff_tol

__all__ = ["check_bijection", "assert_bijection"]


def _call_map(impl, arg, rec, where=""):
    """``impl(arg) -> (points, log_det)`` as float64 arrays with their shapes checked (``Stop`` if wrong)."""
    n, d = arg.shape
    name = impl.name
    out = impl(arg, where=where)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        rec.fail(f"{name} must return a pair (points, log_det), got {type(out).__name__}")
        raise Stop
    pts = as_array(out[0], f"{name}(...)[0]", rec, finite=False)
    ld = as_array(out[1], f"{name}(...)[1]", rec, finite=False)
    if pts.shape != (n, d):
        rec.fail(f"{name} returned points of shape {pts.shape}, expected {(n, d)}")
        raise Stop
    if ld.ndim == 2 and ld.shape[0] == n and 1 < ld.shape[1] <= d:
        rec.fail(f"{name} returned a log-det of shape {ld.shape}, expected ({n},)")
        rec.diagnose("log-det not summed over coordinates",
                     f"{name} returns one log-scale per coordinate: sum them over the last axis")
        raise Stop
    if ld.shape in ((n, 1), (n, 1, 1)) or (ld.size == 1 and n == 1):
        ld = ld.reshape(n)
    if ld.shape != (n,):
        rec.fail(f"{name} returned a log-det of shape {ld.shape}, expected ({n},) (one per point)")
        raise Stop
    if not (onp.all(onp.isfinite(pts)) and onp.all(onp.isfinite(ld))):
        rec.fail(f"{name} returned non-finite values (NaN or inf){' ' + where if where else ''}")
        raise Stop
    return pts, ld


def _logdet_tolerance(J, err, k, eps, value):
    """Tolerance on ``log |det J|`` from an entrywise error bound on ``J``.

    ``d log|det J| = tr(J^{-1} dJ)``, so ``|error| <= sum_ij |(J^{-1})_ji| err_ij``; times
    the safety factor ``k``, plus the round-off allowance of the value itself.
    """
    J_inv = onp.linalg.inv(J)
    propagated = onp.sum(onp.abs(onp.swapaxes(J_inv, 1, 2)) * err, axis=(1, 2))
    return k * propagated + roundoff_tol(eps) * (1.0 + onp.abs(value))


def _slogdet(J):
    sign, logdet = onp.linalg.slogdet(J)
    return sign, logdet


def _compare_logdet(rec, label, ld, J, err, k, eps, where):
    sign, logdet = _slogdet(J)
    if onp.any(sign == 0) or not onp.all(onp.isfinite(logdet)):
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


def _body(rec, forward, inverse, x, round_trip_tol, k, declared):
    n, d = x.shape
    fwd = Impl(forward, "forward", rec, ("x",), declared)
    inv = Impl(inverse, "inverse", rec, ("y",), declared)

    # the first call tells the precision; the points are then taken in that precision
    _call_map(fwd, x, rec)
    prec = rec.precision
    x = prec.round(x)
    eps = prec.eps
    tol = roundoff_tol(eps) if round_trip_tol is None else float(round_trip_tol)
    what_tol = f"sqrt(eps) of {prec.name}" if round_trip_tol is None else "given"
    scale = 1.0 + onp.max(onp.abs(x), axis=1)

    # order of calls that defeats caching: forward(x), forward(fresh), then inverse(y)
    y, ld = _call_map(fwd, x, rec)
    fresh = prec.round(x[::-1] * 0.75 + 0.1) if n > 1 else prec.round(0.75 * x + 0.1)
    _, ld_fresh = _call_map(fwd, fresh, rec, where="on a second batch")
    y_in = prec.round(y)
    x_rt, ld_inv = _call_map(inv, y_in, rec)
    err_x = onp.max(onp.abs(x_rt - x), axis=1) / scale
    rec.measure("round_trip_x", err_x.max(), tol,
                what=f"max |inverse(forward(x)) - x| / (1 + |x|) (tolerance {what_tol})",
                fail=f"inverse(forward(x)) does not return x: relative error {err_x.max():.3g} > {tol:.3g}")
    total = onp.abs(ld + ld_inv) / (1.0 + onp.abs(ld))
    sum_ok = rec.measure("log_det_sum", total.max(), roundoff_tol(eps),
                         what="max |log_det(x) + log_det_inv(forward(x))| / (1 + |log_det|) (tolerance sqrt(eps)), "
                              "with another batch pushed forward in between",
                         fail=f"forward and inverse log-dets do not sum to zero: relative {total.max():.3g}")
    if not sum_ok and onp.allclose(ld_inv, -ld_fresh, rtol=0, atol=roundoff_tol(eps) * (1 + onp.max(onp.abs(ld)))) \
            and not onp.allclose(ld_fresh, ld, rtol=0, atol=roundoff_tol(eps) * (1 + onp.max(onp.abs(ld)))):
        rec.diagnose("inverse reuses the log-det of the last forward call",
                     "inverse returned minus the log-det of the batch last pushed forward, not of the points it was "
                     "given: compute log|det J_inverse(y)| from y (a cached value is stale once another batch ran)")

    # the inverse on fresh points of the codomain, then the forward map back
    x_b, ld_inv_x = _call_map(inv, x, rec, where="on fresh points")
    y_b, ld_b = _call_map(fwd, prec.round(x_b), rec)
    err_y = onp.max(onp.abs(y_b - x), axis=1) / scale
    rec.measure("round_trip_y", err_y.max(), tol,
                what=f"max |forward(inverse(y)) - y| / (1 + |y|) at fresh points y (tolerance {what_tol})",
                fail=f"forward(inverse(y)) does not return y: relative error {err_y.max():.3g} > {tol:.3g}")

    # rows must not depend on the rest of the batch
    if n >= 2:
        half = max(1, n // 2 - 1) if n >= 4 else n // 2  # unequal halves: a cache keyed by shape cannot serve both
        y1, ld1 = _call_map(fwd, x[:half], rec, where=f"on the first {half} point(s) of the batch")
        y2, ld2 = _call_map(fwd, x[half:], rec, where=f"on the last {n - half} point(s) of the batch")
        split = max(onp.max(onp.abs(onp.concatenate([y1, y2]) - y) / scale[:, None]),
                    onp.max(onp.abs(onp.concatenate([ld1, ld2]) - ld) / (1 + onp.abs(ld))))
        if not rec.measure("batch_split", split, roundoff_tol(eps),
                           what="max difference between forward on the whole batch and on its two halves "
                                "(relative; sqrt(eps))",
                           fail=f"forward gives different rows when the batch is split in two ({split:.3g}): each "
                                "point's result depends on the other points of the batch"):
            rec.diagnose("rows depend on the batch",
                         "forward(x)[i] changes with the rest of the batch (batch statistics, e.g. BatchNorm in "
                         "training mode, ActNorm's data-dependent initialisation, a normalisation over the batch)")

    # log-dets against finite differences
    def f_fwd(z):
        return as_array(fwd(z, where="at the finite-difference points")[0], "forward(...)[0]", rec)

    def f_inv(z):
        return as_array(inv(z, where="at the finite-difference points")[0], "inverse(...)[0]", rec)

    J, err = fd_jacobian(f_fwd, x, prec)
    n_fail = len(rec.failures)
    logdet, ld_tol = _compare_logdet(rec, "forward", ld, J, err, k, eps, "of forward at x")
    if logdet is not None and len(rec.failures) > n_fail:
        if onp.all(onp.abs(ld + logdet) <= ld_tol):
            rec.diagnose("log-det sign flipped",
                         "forward returns -log|det J_forward(x)| (the inverse's log-det): flip its sign")
        elif onp.all(onp.abs(ld) <= ld_tol):
            rec.diagnose("log-det missing", "forward returns 0 where log|det J_forward(x)| is not 0")
        else:
            y64 = prec.round(y)
            J_y, err_y = fd_jacobian(f_fwd, y64, prec)
            s_y, logdet_y = _slogdet(J_y)
            if onp.all(s_y != 0) and onp.all(onp.abs(ld - logdet_y) <= _logdet_tolerance(J_y, err_y, k, eps, logdet_y)):
                rec.diagnose("log-det evaluated at the output",
                             "forward's log-det is log|det J| at y = forward(x), not at x")

    # the inverse's log-det at fresh points (not outputs of forward)
    J_inv, err_inv = fd_jacobian(f_inv, x, prec)
    n_fail = len(rec.failures)
    logdet_inv, inv_tol = _compare_logdet(rec, "inverse", ld_inv_x, J_inv, err_inv, k, eps, "of inverse at fresh y")
    if logdet_inv is not None and len(rec.failures) > n_fail:
        if onp.all(onp.abs(ld_inv_x + logdet_inv) <= inv_tol):
            rec.diagnose("inverse log-det sign flipped",
                         "inverse returns +log|det J_forward(x)|; it must return log|det J_inverse(y)| = -log_det")
        elif onp.all(onp.abs(ld_inv_x) <= inv_tol):
            rec.diagnose("inverse log-det missing", "inverse returns 0 where log|det J_inverse(y)| is not 0")
    rec.cover(f"{n} points in d = {d}; inverse called on outputs of forward (after another batch) and on fresh "
              "points; the batch split in two")
    return f"forward and inverse are mutual inverses and both log-dets match finite differences at {n} points in d = {d}."


def check_bijection(forward, inverse, x, *, round_trip_tol=None, k=K_SAFETY, precision=None):
    """Check a bijection and its log-determinants against finite differences  [lecture: eq. (2)]

    Properties, each with a bound derived from the arithmetic of the implementation's own
    precision (read from what it returns, or ``precision=``):

    - round trips: ``inverse(forward(x)) = x`` and ``forward(inverse(y)) = y`` at fresh
      points ``y`` (``y = x`` taken as points of the codomain), to ``sqrt(eps)`` relative;
    - ``log_det`` equals ``log |det J_forward(x)|`` of a central-difference Jacobian
      (the callables need not be differentiable by autograd), to ``k`` times the
      Richardson estimate of the finite-difference error propagated through
      ``d log|det J| = tr(J^{-1} dJ)``;
    - ``log_det_inv`` equals ``log |det J_inverse(y)|`` at fresh points in the same way;
    - ``log_det(x) + log_det_inv(forward(x)) = 0``, with another batch pushed forward in
      between (a log-det cached by the last forward call is caught);
    - rows do not depend on the batch: forward on the two halves of ``x`` gives the rows
      of forward on ``x``;
    - no side effects: the arrays handed over are not modified, no result shares memory
      with them.

    On failure it names the mistakes it recognises: a log-det with the wrong sign,
    a missing log-det, a log-det evaluated at the output instead of the input, an
    inverse whose log-det has the forward's sign, per-coordinate log-dets not summed, an
    inverse that reuses the last forward's log-det, rows that depend on the batch,
    writing into the input, returning a view of it.

    Args:
        forward: ``forward(x) -> (y, log_det)`` with shapes ``(n, d)`` and ``(n,)``.
        inverse: ``inverse(y) -> (x, log_det_inv)``.
        x: points to check at, shape ``(n, d)``, finite, ``|x| <= 1e6``.
        round_trip_tol: relative tolerance of the round trips (default ``sqrt(eps)`` of
            the implementation's precision).
        k: safety factor on the finite-difference error estimate (default 10).
        precision: the precision the implementation computes in, if lower than what its
            outputs' dtype says (``"float32"``, ``"float16"``, ``"bfloat16"``, a dtype).

    Returns:
        ``CheckReport``.
    """
    check_callable(forward, "forward")
    check_callable(inverse, "inverse")
    x = as_points(x, allow_traced=False)
    if onp.max(onp.abs(x)) > 1e6:
        raise ValueError(f"x must have entries of moderate size (|x| <= 1e6) for finite differences, got "
                         f"max |x| = {onp.max(onp.abs(x)):.3g}")
    if round_trip_tol is not None:
        check_finite_number(round_trip_tol, "round_trip_tol", positive=True)
    k = check_k(k)
    declared = check_precision(precision)
    rec = Recorder("check_bijection")
    return run_checker(rec, _body, forward, inverse, x, round_trip_tol, k, declared)


assert_bijection = assert_twin(check_bijection)

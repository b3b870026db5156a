"""``check_log_likelihood`` and ``check_divergence_estimator``  [lecture: Continuous Normalizing Flows; CNF Pros]

A CNF's log-likelihood is ``log p1(x) = log p0(x(0)) - integral_0^1 div u(x(t), t) dt``,
with ``x(t)`` solved backwards from ``x(1) = x``. Its divergence is the trace of the
Jacobian, exactly or by Hutchinson's estimator. The checkers hand the implementation
test fields whose answers are known: closed forms for linear fields (a Gaussian path,
a non-symmetric linear map), the reference CNF for a nonlinear one.
"""

import functools
import math

import numpy as onp

from .._validate import check_callable, check_finite_number, check_positive_int
from ..autodiff import divergence, hutchinson_variance, jacobian
from ._fields import FIELD_KINDS, GAUSSIAN_MU, LINEAR_A, closed_forms, make_field
from ._report import K_SE, Recorder, as_numpy, assert_twin, machine_eps, roundoff_tol
from .adapters import from_torch

__all__ = [
    "check_log_likelihood",
    "assert_log_likelihood",
    "check_divergence_estimator",
    "assert_divergence_estimator",
]

FRAMEWORKS = ("numpy", "torch")


def _check_framework(framework):
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")
    return framework


def _wrap(fn, framework, torch_dtype):
    return from_torch(fn, dtype=torch_dtype) if framework == "torch" else fn


def _points(kind, n, rng):
    """Points where ``p1`` has most of its mass, for each test field."""
    z = rng.standard_normal((n, 2))
    if kind == "gaussian_path":
        return GAUSSIAN_MU + 2.0 * z
    if kind == "linear":
        from scipy.linalg import expm
        return z @ expm(LINEAR_A).T
    return 1.5 * z


@functools.lru_cache(maxsize=16)
def _reference_nonlinear(x_bytes, shape):
    from ..cnf import cnf_logpdf
    x = onp.frombuffer(x_bytes, dtype=onp.float64).reshape(shape)
    return onp.asarray(cnf_logpdf(make_field("nonlinear", "numpy"), x, n_steps=256, method="rk4", divergence="exact"))


def _reference_log_likelihood(x):
    """The reference CNF on the nonlinear field, exact divergence and RK4 with 256 steps (error ~1e-9 here).

    Cached by the points: every check with the same ``seed`` and ``n`` uses the same ones.
    """
    x = onp.ascontiguousarray(x, dtype=onp.float64)
    return _reference_nonlinear(x.tobytes(), x.shape).copy()


def check_log_likelihood(log_likelihood, *, framework="numpy", atol=1e-3, n=16, seed=0,
                         stochastic=False, n_repeats=256, k=K_SE, torch_dtype="float64"):
    """Check a CNF log-likelihood against closed forms and the reference CNF  [lecture: Continuous Normalizing Flows]

    ``log_likelihood(u, x) -> log p1(x)`` for the flow of ``u`` from the base
    ``p0 = N(0, I)`` at ``t = 0`` to ``p1`` at ``t = 1``. Three test fields in ``d = 2``:

    - ``gaussian_path``: ``u = (x - t mu) / (1 + t) + mu``, whose flow carries
      ``N(0, I)`` to ``p1 = N(mu, 4 I)`` (the Gaussian path ``N(t mu, (1 + t)^2 I)``);
    - ``linear``: ``u = A x`` with a non-symmetric ``A`` of trace 1,
      ``log p1(x) = log p0(expm(-A) x) - tr A``;
    - ``nonlinear``: a tanh field with a time-dependent, non-symmetric Jacobian,
      against ``reference.cnf.cnf_logpdf`` (exact divergence, RK4, 256 steps).

    Each must agree to ``atol`` nats, the accuracy you claim for your solver (a missing
    or mis-signed divergence, a reversed time, a base density without its constant
    are all off by about a nat or more on these fields, and are named when the result
    matches one of them).

    Args:
        log_likelihood: ``log_likelihood(u, x) -> (n,)``; ``u(x, t)`` is the field and
            ``x`` the points. With ``framework="torch"`` it is a PyTorch function: it
            receives a PyTorch field (differentiable, for an exact divergence by
            autograd) and a float64 tensor, and returns a tensor.
        framework: ``"numpy"`` or ``"torch"``.
        atol: tolerance in nats (your solver's accuracy).
        n: number of points per field.
        seed: seed of the points.
        stochastic: the implementation uses a stochastic divergence (Hutchinson): each
            point is repeated ``n_repeats`` times and the mean must agree within ``k``
            standard errors plus ``atol``.
        n_repeats: repetitions per point when ``stochastic``.
        k: number of standard errors.
        torch_dtype: the dtype the points are given in with ``framework="torch"``.

    Returns:
        ``CheckReport``.
    """
    check_callable(log_likelihood, "log_likelihood")
    framework = _check_framework(framework)
    atol = check_finite_number(atol, "atol", positive=True)
    n = check_positive_int(n, "n")
    n_repeats = check_positive_int(n_repeats, "n_repeats", minimum=2)
    check_finite_number(k, "k", positive=True)
    ll_fn = _wrap(log_likelihood, framework, torch_dtype)
    rng = onp.random.default_rng(seed)
    rec = Recorder("check_log_likelihood")

    for kind in FIELD_KINDS:
        x = _points(kind, n, rng)
        u = make_field(kind, framework)
        x_in = onp.repeat(x, n_repeats, axis=0) if stochastic else x
        out = as_numpy(ll_fn(u, x_in), "log_likelihood(u, x)")
        if out.shape != (x_in.shape[0],):
            rec.fail(f"log_likelihood returned shape {out.shape} on the {kind} field, expected ({x_in.shape[0]},)")
            continue
        if not onp.all(onp.isfinite(out)):
            rec.fail(f"log_likelihood returned non-finite values on the {kind} field")
            continue
        out = out.astype(onp.float64)
        if stochastic:
            samples = out.reshape(n, n_repeats)
            value = samples.mean(axis=1)
            se = samples.std(axis=1, ddof=1) / math.sqrt(n_repeats)
        else:
            value, se = out, onp.zeros(n)
        tol = k * se + atol
        if kind == "nonlinear":
            truth, alternatives = _reference_log_likelihood(x), {}
            source = "reference.cnf (RK4, 256 steps)"
        else:
            truth, alternatives = closed_forms(kind, x)
            source = "closed form"
        err = onp.abs(value - truth)
        what = f"max |log p1 - {source}| on the {kind} field (nats)"
        fail = f"on the {kind} field log p1 is off by up to {err.max():.3g} nats"
        if stochastic:
            ratio = err / tol
            worst = int(onp.argmax(ratio))
            ok = rec.measure(f"{kind}_error_over_tol", ratio[worst], 1.0,
                             what=what + f" in units of {k:g} standard errors + atol (worst point: error "
                                         f"{err[worst]:.3g}, standard error {se[worst]:.2g})",
                             fail=fail + f" ({k:g} standard errors + atol = {tol[worst]:.3g} allowed)")
        else:
            ok = rec.measure(f"{kind}_error", err.max(), atol, what=what, fail=fail + f" (atol {atol:g})")
        if not ok:
            for label, alt in alternatives.items():
                if onp.all(onp.abs(value - alt) <= tol):
                    rec.diagnose(label, _ADVICE[label])
                    break
    return rec.report(f"log p1 agrees with the closed forms and the reference CNF to {atol:g} nats "
                      f"on {len(FIELD_KINDS)} fields ({framework}).")


_ADVICE = {
    "divergence sign flipped": "log p1(x) = log p0(x(0)) - integral of div u: subtract the integrated "
                               "divergence (or, integrating from t = 1 to 0, d/dt log p = -div u)",
    "divergence missing": "the change in log-density, minus the integrated divergence, is not added",
    "time reversed (x pushed forwards to t = 1)": "x must be carried backwards from t = 1 (data) to t = 0 "
                                                  "(noise), not forwards",
    "time reversed and divergence sign flipped": "x must be carried backwards from t = 1 to t = 0, and the "
                                                 "integrated divergence subtracted",
    "base log-density without its constant -d/2 log(2 pi)": "log p0(z) = -|z|^2/2 - d/2 log(2 pi)",
    "no flow (log p0(x))": "the result is the base log-density at x: the flow is not applied",
}


# ----------------------------------------------------------------------------- divergence

_DIV_X = onp.array([[0.3, -0.5], [1.0, 0.8], [-1.2, 0.4], [0.1, 1.5]])
_DIV_T = onp.array([0.1, 0.4, 0.7, 0.95])


def _estimates(estimate, u, X, T, seed):
    """The implementation's estimates at ``(X, T)`` with a generator seeded by ``seed``."""
    return as_numpy(estimate(u, X, T, onp.random.default_rng(seed)), "estimate(u, x, t, rng)")


def check_divergence_estimator(estimate, *, framework="numpy", n_repeats=2000, k=K_SE, seed=0, torch_dtype="float64"):
    """Check a divergence estimator for bias against the exact trace, and report its variance  [lecture: CNF Pros (Hutchinson)]

    ``estimate(u, x, t, rng) -> (n,)`` estimates ``div u(x, t) = tr J_u(x, t)`` (one value
    per point, the point's own probes drawn from ``rng``). Each of four points (with
    different times and traces of both signs) is repeated ``n_repeats`` times in one
    batch; the mean over the repeats must be within ``k`` standard errors (plus the
    round-off allowance) of the exact trace. An exact estimator (zero variance) must
    match to round-off. The variance is reported next to the closed forms for
    Rademacher and Gaussian probes.

    On failure it names: a flipped sign, a scale error (probes with ``E[eps eps^T] != I``),
    the trace at ``1 - t`` (reversed time), the sum of all Jacobian entries (a probe of
    ones).

    Args:
        estimate: ``estimate(u, x, t, rng) -> (n,)``; ``u(x, t)`` is the field (a PyTorch
            callable with ``framework="torch"``, x and t then float64 tensors).
        framework: ``"numpy"`` or ``"torch"``.
        n_repeats: repeats of each point.
        k: number of standard errors.
        seed: seed of the ``rng`` handed to ``estimate``.

    Returns:
        ``CheckReport``.
    """
    check_callable(estimate, "estimate")
    framework = _check_framework(framework)
    n_repeats = check_positive_int(n_repeats, "n_repeats", minimum=2)
    check_finite_number(k, "k", positive=True)
    est_fn = _wrap(estimate, framework, torch_dtype)
    rec = Recorder("check_divergence_estimator")
    u_np = make_field("nonlinear", "numpy")
    u = make_field("nonlinear", framework)
    n = _DIV_X.shape[0]
    trace = onp.asarray(divergence(u_np, _DIV_X, _DIV_T))
    J = onp.asarray(jacobian(lambda y: u_np(y, _DIV_T), _DIV_X))
    X, T = onp.repeat(_DIV_X, n_repeats, axis=0), onp.repeat(_DIV_T, n_repeats)

    out = _estimates(est_fn, u, X, T, seed)
    if out.shape != (X.shape[0],):
        rec.fail(f"estimate returned shape {out.shape}, expected ({X.shape[0]},) (one value per point)")
        return rec.report()
    if not onp.all(onp.isfinite(out)):
        rec.fail("estimate returned non-finite values")
        return rec.report()
    eps = machine_eps(out)
    samples = out.astype(onp.float64).reshape(n, n_repeats)
    if onp.all(samples.std(axis=1) == 0):
        other = _estimates(est_fn, u, X, T, seed + 1).astype(onp.float64).reshape(n, n_repeats)
        if not onp.array_equal(other, samples):
            rec.note("every repeat of a point gets the same value within a call: the probes are shared by the "
                     f"whole batch; the mean is taken over {min(n_repeats, 200)} calls instead")
            calls = [_estimates(est_fn, u, _DIV_X, _DIV_T, seed + 2 + r) for r in range(min(n_repeats, 200))]
            samples = onp.stack(calls, axis=1).astype(onp.float64)
    m = samples.shape[1]
    mean = samples.mean(axis=1)
    var = samples.var(axis=1, ddof=1)
    se = onp.sqrt(var / m)
    floor = roundoff_tol(eps) * (1.0 + onp.abs(trace))
    tol = k * se + floor

    def matches(target):
        return bool(onp.all(onp.abs(mean - target) <= tol))

    z = onp.abs(mean - trace) / tol
    worst = int(onp.argmax(z))
    ok = rec.measure("bias_over_tol", z[worst], 1.0,
                     what=(f"|mean - tr J| in units of {k:g} standard errors + round-off, worst of {n} points "
                           f"(mean {mean[worst]:.4g}, trace {trace[worst]:.4g}, standard error {se[worst]:.2g})"),
                     fail=f"the estimator is biased: mean {mean[worst]:.4g} against the trace {trace[worst]:.4g} "
                          f"(standard error {se[worst]:.2g}, {m} samples)")
    for i in range(n):
        rec.measure(f"variance_point{i}", var[i], None,
                    what=f"sample variance at point {i} (Rademacher closed form "
                         f"{hutchinson_variance(J[i], 'rademacher'):.4g}, Gaussian {hutchinson_variance(J[i], 'gaussian'):.4g})")
    rade, gauss = hutchinson_variance(J, "rademacher"), hutchinson_variance(J, "gaussian")
    # standard error of the sample variance (delta method) plus the error of the estimated mean
    var_se = onp.sqrt(onp.maximum(onp.mean((samples - mean[:, None]) ** 4, axis=1) - var**2, 0.0) / m)
    var_tol = k * var_se + (k * se) ** 2 + floor**2  # floor is in units of the trace, var_tol of its square
    if onp.all(var <= floor**2):
        rec.note("zero variance: an exact divergence")
    elif onp.all(onp.abs(var - rade) <= var_tol):
        rec.note("the variance matches Rademacher probes (2 (|S|_F^2 - sum S_ii^2), S the symmetric part of J)")
    elif onp.all(onp.abs(var - gauss) <= var_tol):
        rec.note("the variance matches Gaussian probes (2 |S|_F^2)")
    if not ok:
        trace_rev = onp.asarray(divergence(u_np, _DIV_X, 1.0 - _DIV_T))
        ratio = onp.sum(mean * trace) / onp.sum(trace**2)
        if matches(-trace):
            rec.diagnose("sign flipped", "the estimate is -tr J: use eps^T J eps, not its negative")
        elif matches(trace_rev):
            rec.diagnose("time reversed", "the estimate is the divergence at 1 - t")
        elif matches(J.sum(axis=(1, 2))):
            rec.diagnose("probe of ones", "the estimate is the sum of all Jacobian entries: the probes must be "
                                          "random with mean 0 and E[eps eps^T] = I")
        elif abs(ratio - 1) > 0.05 and matches(ratio * trace):
            rec.diagnose("probes not normalised", f"the estimate is {ratio:.3g} x the trace: probes need "
                                                  "E[eps eps^T] = I (Rademacher +-1, or standard normal)")
    again = _estimates(est_fn, u, _DIV_X, _DIV_T, seed)
    if not onp.array_equal(again, _estimates(est_fn, u, _DIV_X, _DIV_T, seed)):
        rec.note("two calls with generators of the same seed differ: the estimator does not draw (only) from rng")
    return rec.report(f"unbiased within {k:g} standard errors at {n} points ({m} samples each); "
                      f"variance {', '.join(f'{v:.3g}' for v in var)}.")


assert_log_likelihood = assert_twin(check_log_likelihood)
assert_divergence_estimator = assert_twin(check_divergence_estimator)

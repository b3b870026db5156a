"""``check_log_likelihood`` and ``check_divergence_estimator``  [lecture: Continuous Normalizing Flows; CNF Pros]

A CNF's log-likelihood is ``log p1(x) = log p0(x(0)) - integral_0^1 div u(x(t), t) dt``,
with ``x(t)`` solved backwards from ``x(1) = x``. Its divergence is the trace of the
Jacobian, exactly or by Hutchinson's estimator. The checkers hand the implementation
test fields whose answers are known, in d = 1, 2, 3 and 5 by default: closed forms for
a Gaussian path and a non-symmetric linear field, an accurate float64 solution (RK4,
256 steps, divergence in closed form) for a nonlinear one.
"""

import numpy as onp

from .._validate import check_callable, check_finite_number, check_positive_int
from ..autodiff import hutchinson_variance
from ._args import check_dims, check_framework, check_k, check_precision, check_seed
from ._fields import FIELD_KINDS, closed_forms, make_field, nonlinear_divergence, nonlinear_jacobian, points_for
from ._guard import Impl, Stop, as_array, continuing, run_checker
from ._precision import parse_precision
from ._report import K_SE, Recorder, assert_twin, roundoff_tol
from ._stats import locate_and_average
from .adapters import from_jax, from_torch

__all__ = [
    "check_log_likelihood",
    "assert_log_likelihood",
    "check_divergence_estimator",
    "assert_divergence_estimator",
]


def _framework_dtype(framework, dtype, torch_dtype):
    """The dtype the points are handed over in (torch/jax), and its precision."""
    try:
        parse_precision(torch_dtype, "torch_dtype")
    except (TypeError, ValueError) as err:
        raise type(err)(str(err)) from None
    if torch_dtype is None:
        raise TypeError("torch_dtype must be a floating dtype such as 'float64' or 'float32', got None")
    if framework != "torch" and parse_precision(torch_dtype) is not parse_precision("float64"):
        raise ValueError(f"torch_dtype applies to framework='torch' only (use dtype= with framework='jax'), got "
                         f"{torch_dtype!r} with framework={framework!r}")
    if framework == "numpy":
        if dtype is not None:
            raise ValueError("dtype applies to framework='torch' or 'jax' only (a NumPy implementation chooses its "
                             "own; declare it with precision=)")
        return None, None
    chosen = dtype if dtype is not None else (torch_dtype if framework == "torch" else "float64")
    if not isinstance(chosen, str) and not hasattr(chosen, "itemsize") and "dtype" not in type(chosen).__name__:
        raise TypeError(f"dtype must be a str such as 'float32' or a floating dtype, got {type(chosen).__name__}")
    try:
        prec = parse_precision(chosen, "dtype")
    except (TypeError, ValueError) as err:
        raise ValueError(f"dtype must be a floating dtype ('float64', 'float32', 'float16', 'bfloat16'), got "
                         f"{chosen!r}") from err
    return chosen, prec


def _wrap(fn, framework, dtype):
    if framework == "torch":
        return from_torch(fn, dtype=dtype)
    if framework == "jax":
        return from_jax(fn, dtype=dtype)
    return fn


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
    "base log-density constant of d = 2 (-log(2 pi) for every d)": "the constant of log N(z; 0, I) is "
                                                                   "-d/2 log(2 pi); -log(2 pi) is right for d = 2 only",
}


def _advice(label):
    if label.startswith("divergence sums only the first"):
        return ("the trace of the Jacobian must sum all d diagonal terms (a loop over range(2), or over the "
                "columns of a 2-D example, drops the others)")
    if label == "returns the result of an earlier call":
        return ("the value for a new (u, x) is the one an earlier call returned: a cache keyed by something "
                "other than the field and the points (the batch's shape, a jit compiled for the first field)")
    return _ADVICE.get(label, "")


def _name_from_alternatives(rec, cases, all_dims):
    """Name the mistakes that explain every failing case where they are defined."""
    failing = [c for c in cases if not c["ok"]]
    if not failing:
        return
    labels = {lab for c in failing for lab in c["matches"]}
    named = [lab for lab in sorted(labels)
             if all(lab in c["matches"] for c in failing if lab in c["defined"])]
    for lab in named:
        rec.diagnose(lab, _advice(lab))
    if not named:
        bad_dims = sorted({c["d"] for c in failing})
        good_dims = sorted(set(all_dims) - set(bad_dims))
        if good_dims:
            rec.diagnose(f"wrong only in d = {', '.join(map(str, bad_dims))}",
                         f"right in d = {', '.join(map(str, good_dims))}: something depends on the dimension "
                         "(a hard-coded 2, a squeeze that drops d = 1, a loop over the first coordinates)")


def _ll_body(rec, impl, framework, atol, n, seed, stochastic, n_repeats, k, dims, known, n_calls):
    rng = onp.random.default_rng(seed)
    prec = known or rec.precision
    cases = []
    first = None
    earlier = []  # (value, truth) of the cases so far

    def call(u, x, where, expect):
        out = impl(u, x, where=where)
        return as_array(out, "log_likelihood(u, x)", rec, shape=(expect,), where=where)

    for d in dims:
        for kind in FIELD_KINDS:
            where = f"in d = {d} (the {kind} field)"
            with continuing(rec):
                x = prec.round(points_for(kind, n, d, rng))
                u = make_field(kind, framework, d)
                if stochastic:
                    def rep(c, u=u, x=x, where=where):
                        return call(u, onp.tile(x, (n_repeats, 1)), where, n * n_repeats)

                    def single(c, u=u, x=x, where=where):
                        return call(u, x, where, n)
                    value, se, _, lives, m = locate_and_average(rep, single, n, n_repeats, n_calls,
                                                                lambda: rec.precision.eps)
                    if not (onp.all(onp.isfinite(value)) and onp.all(onp.isfinite(se))):
                        rec.fail(f"{where} the mean or the standard error of the estimates is not finite (they "
                                 "overflow)")
                        raise Stop
                    rec.note(f"{where}: randomness {lives} ({m} samples per point)" if lives != "none" else
                             f"{where}: the estimate does not vary (exact for this field, deterministic, or seeded the same "
                             "way at each call)")
                else:
                    value, se = call(u, x, where, n), onp.zeros(n)
                    if first is None:
                        first = (u, x, where, value)
                prec = rec.precision if known is None else known
                truth, alternatives = closed_forms(kind, x)
                allowance = atol + 8.0 * prec.eps * (d + onp.abs(truth) + onp.sum(x**2, axis=1))
                tol = k * se + allowance
                err = onp.abs(value - truth)
                ratio = err / tol
                worst = int(onp.argmax(ratio))
                source = "closed form" if kind != "nonlinear" else "float64 RK4 (256 steps)"
                ok = rec.measure(
                    f"{kind}_d{d}_error_over_tol", ratio[worst], 1.0,
                    what=(f"max |log p1 - {source}| {where} in units of atol"
                          + (f" + {k:g} standard errors" if stochastic else "")
                          + f" + round-off (error {err[worst]:.3g}, allowed {tol[worst]:.3g})"),
                    fail=f"{where} log p1 is off by up to {err.max():.3g} nats ({tol[worst]:.3g} allowed)")
                matches = {lab for lab, alt in alternatives.items() if onp.all(onp.abs(value - alt) <= tol)}
                if not ok and any(v.shape == value.shape and onp.allclose(v, value, rtol=0, atol=1e-12)
                                  and not onp.allclose(tr, truth, rtol=0, atol=onp.max(tol)) for v, tr in earlier):
                    matches.add("returns the result of an earlier call")
                earlier.append((value, truth))
                cases.append({"ok": ok, "matches": matches, "defined": set(alternatives) | {
                    "returns the result of an earlier call"}, "d": d})
    _name_from_alternatives(rec, cases, dims)

    if not stochastic and first is not None:
        u, x, where, value = first
        scale = roundoff_tol(rec.precision.eps) * (1 + onp.abs(value))
        again = call(u, x, where, n)
        if not rec.measure("repeatability", onp.max(onp.abs(again - value) / scale), 1.0,
                           what="max difference between the first call and the same call after all the others, "
                                "in units of sqrt(eps)(1 + |log p|)",
                           fail=f"{where} the result changed after other calls (by "
                                f"{onp.max(onp.abs(again - value)):.3g})"):
            rec.diagnose("result changes between calls",
                         "log_likelihood gives another value for the same (u, x) after other calls: it keeps state "
                         "(a cached field or trajectory), or it is stochastic (then pass stochastic=True)")
        elif n >= 2:
            half = max(1, n // 2 - 1) if n >= 4 else n // 2  # unequal halves: a shape-keyed cache cannot serve both
            parts = onp.concatenate([call(u, x[:half], where, half), call(u, x[half:], where, n - half)])
            if not rec.measure("batch_split", onp.max(onp.abs(parts - value) / scale), 1.0,
                               what="max difference between the whole batch and its two halves, in units of "
                                    "sqrt(eps)(1 + |log p|)",
                               fail=f"{where} splitting the batch in two changes the rows"):
                rec.diagnose("rows depend on the batch", "the log-likelihood of a point changes with the other points "
                                                        "of the batch (batch statistics, a shared step size?)")
    rec.cover(f"d = {', '.join(map(str, dims))}; fields {', '.join(FIELD_KINDS)}; {n} points each"
              + (f"; {n_repeats} repeats per point per call" if stochastic else ""))
    return (f"log p1 agrees with the closed forms and the reference CNF to {atol:g} nats (plus round-off) on "
            f"{len(FIELD_KINDS)} fields in d = {', '.join(map(str, dims))} ({framework}).")


def check_log_likelihood(log_likelihood, *, framework="numpy", atol=1e-3, n=16, seed=0, stochastic=False,
                         n_repeats=256, k=K_SE, torch_dtype="float64", dtype=None, dims=None, precision=None,
                         n_calls=32):
    """Check a CNF log-likelihood against closed forms and an accurate CNF  [lecture: Continuous Normalizing Flows]

    ``log_likelihood(u, x) -> log p1(x)`` for the flow of ``u`` from the base
    ``p0 = N(0, I)`` at ``t = 0`` to ``p1`` at ``t = 1``. Three test fields in each of
    ``dims`` (default ``d = 1, 2, 3, 5``):

    - ``gaussian_path``: ``u = (x - t mu) / (1 + t) + mu``, whose flow carries
      ``N(0, I)`` to ``p1 = N(mu, 4 I)`` (the Gaussian path ``N(t mu, (1 + t)^2 I)``);
    - ``linear``: ``u = A x`` with a non-symmetric ``A`` (positive diagonal),
      ``log p1(x) = log p0(expm(-A) x) - tr A``;
    - ``nonlinear``: a tanh field with a time-dependent, non-symmetric Jacobian, against
      a float64 RK4 solution with 256 steps and the divergence in closed form (checked
      against ``reference.cnf.cnf_logpdf`` in the tests).

    Each must agree to ``atol`` nats (the accuracy you claim for your solver) plus the
    round-off of the implementation's precision, ``8 eps (d + |log p1| + |x|^2)``. A
    missing or mis-signed divergence, a reversed time, a base density without its
    constant (or with the 2-D constant in every d), a divergence summing only some
    diagonal terms are named when the result matches them in every failing case. A
    deterministic implementation must give the same value after other calls (no state)
    and for a batch split in two.

    With ``stochastic=True`` (a Hutchinson divergence) each point is repeated
    ``n_repeats`` times per call and the mean must agree within ``k`` standard errors
    plus ``atol``. The checker finds where the randomness lives: one draw per point
    (rows independent), or one per call or per solve shared by the whole batch (then
    ``n_calls`` calls are the samples); either way an unbiased estimator passes.

    Args:
        log_likelihood: ``log_likelihood(u, x) -> (n,)``; ``u(x, t)`` is the field and
            ``x`` the points. With ``framework="torch"`` (``"jax"``) it is a PyTorch (JAX)
            function: it receives a PyTorch (JAX) field, differentiable, and a tensor
            (array) of ``dtype``, and returns a tensor (array).
        framework: ``"numpy"``, ``"torch"`` or ``"jax"``.
        atol: tolerance in nats (your solver's accuracy), > 0.
        n: number of points per field.
        seed: seed of the points (an integer >= 0).
        stochastic: the implementation uses a stochastic divergence.
        n_repeats: repetitions per point per call when ``stochastic`` (>= 2).
        k: number of standard errors.
        torch_dtype: the dtype of the points with ``framework="torch"`` (kept for
            compatibility; ``dtype`` takes precedence; another value than ``"float64"``
            with another framework is refused).
        dtype: the dtype of the points with ``framework="torch"`` or ``"jax"``
            (``"float64"``, ``"float32"``, ``"float16"``, ``"bfloat16"``).
        dims: the dimensions (default 1, 2, 3, 5).
        precision: the precision the implementation computes in, if lower than what it
            returns says.
        n_calls: calls averaged when the randomness is per call.

    Returns:
        ``CheckReport``.
    """
    check_callable(log_likelihood, "log_likelihood")
    framework = check_framework(framework)
    atol = float(check_finite_number(atol, "atol", positive=True))
    n = check_positive_int(n, "n")
    if n > 10_000:
        raise ValueError(f"n must be at most 10000, got {n}")
    seed = check_seed(seed)
    if not isinstance(stochastic, (bool, onp.bool_)):
        raise TypeError(f"stochastic must be a bool, got {type(stochastic).__name__}")
    n_repeats = check_positive_int(n_repeats, "n_repeats", minimum=2, maximum=10**6)
    n_calls = check_positive_int(n_calls, "n_calls", minimum=8, maximum=10**5)
    k = check_k(k)
    dims = check_dims(dims)
    dtype, known = _framework_dtype(framework, dtype, torch_dtype)
    declared = check_precision(precision)
    if declared is not None and (known is None or declared.eps > known.eps):
        known = declared
    rec = Recorder("check_log_likelihood")
    impl = Impl(_wrap(log_likelihood, framework, dtype), "log_likelihood", rec, ("u", "x"), declared)
    if known is not None:
        rec.precision = known
    return run_checker(rec, _ll_body, impl, framework, atol, n, seed, bool(stochastic), n_repeats, k, dims, known,
                       n_calls)


# ----------------------------------------------------------------------------- divergence

_DIV_T = onp.array([0.1, 0.4, 0.7, 0.95])


def _div_points(d):
    rng = onp.random.default_rng(500 + d)
    if d == 2:
        return onp.array([[0.3, -0.5], [1.0, 0.8], [-1.2, 0.4], [0.1, 1.5]])
    return rng.uniform(-1.2, 1.2, (4, d))


def _div_dimension(rec, impl, framework, n_repeats, k, seed, d, known, n_calls, cases, lives_seen):
    where = f"in d = {d}"
    X = _div_points(d)
    prec = known or rec.precision
    X = prec.round(X)
    n = X.shape[0]
    u = make_field("nonlinear", framework, d)
    trace = nonlinear_divergence(X, _DIV_T, d)
    J = nonlinear_jacobian(X, _DIV_T, d)

    def call(x, t, s, expect, where=where, u=u):
        out = impl(u, x, t, onp.random.default_rng(s), where=where)
        return as_array(out, "estimate(u, x, t, rng)", rec, shape=(expect,), where=where)

    def rep(c, X=X, n=n, call=call):
        return call(onp.tile(X, (n_repeats, 1)), onp.tile(_DIV_T, n_repeats), seed + c, n * n_repeats)

    def single(c, X=X, n=n, call=call):
        return call(X, _DIV_T, seed + 1000 + c, n)

    mean, se, samples, lives, m = locate_and_average(rep, single, n, n_repeats, n_calls, lambda: rec.precision.eps)
    if not (onp.all(onp.isfinite(mean)) and onp.all(onp.isfinite(se))):
        rec.fail(f"{where} the mean or the standard error of the estimates is not finite (the values overflow)")
        raise Stop
    lives_seen.add(lives)
    prec = known or rec.precision
    floor = roundoff_tol(prec.eps) * (1.0 + onp.abs(trace))
    tol = k * se + floor
    z = onp.abs(mean - trace) / tol
    worst = int(onp.argmax(z))
    ok = rec.measure(f"bias_over_tol_d{d}", z[worst], 1.0,
                     what=(f"|mean - tr J| in units of {k:g} standard errors + round-off {where}, worst of {n} "
                           f"points (mean {mean[worst]:.4g}, trace {trace[worst]:.4g}, standard error "
                           f"{se[worst]:.2g}, {m} samples)"),
                     fail=f"{where} the estimator is biased: mean {mean[worst]:.4g} against the trace "
                          f"{trace[worst]:.4g} (standard error {se[worst]:.2g}, {m} samples)")
    var = samples.var(axis=1, ddof=1) if samples.shape[1] > 1 else onp.zeros(n)
    rade = onp.array([hutchinson_variance(Ji, "rademacher") for Ji in J])
    gauss = onp.array([hutchinson_variance(Ji, "gaussian") for Ji in J])
    rec.measure(f"variance_d{d}", float(var.mean()), None,
                what=f"mean sample variance over the {n} points {where} (Rademacher closed form "
                     f"{rade.mean():.4g}, Gaussian {gauss.mean():.4g})")
    if lives in ("per point", "per call"):
        mean_s = samples.mean(axis=1)
        var_se = onp.sqrt(onp.maximum(onp.mean((samples - mean_s[:, None]) ** 4, axis=1) - var**2, 0.0) / m)
        var_tol = k * var_se + (k * se) ** 2 + floor**2
        if onp.all(onp.abs(var - rade) <= var_tol):
            rec.note(f"{where}: the variance matches Rademacher probes (2 (|S|_F^2 - sum S_ii^2), S the "
                     "symmetric part of J)")
        elif onp.all(onp.abs(var - gauss) <= var_tol):
            rec.note(f"{where}: the variance matches Gaussian probes (2 |S|_F^2)")
    matches, defined = set(), set()
    alternatives = {
        "sign flipped": -trace,
        "time reversed": nonlinear_divergence(X, 1.0 - _DIV_T, d),
    }
    if d > 1:
        alternatives["sums all Jacobian entries"] = J.sum(axis=(1, 2))
        for q in range(1, d):
            alternatives[f"sums only the first {q} diagonal term{'s' if q > 1 else ''}"] = onp.einsum(
                "nii->n", J[:, :q, :q])
    ratio = onp.sum(mean * trace) / onp.sum(trace**2)
    for lab, alt in alternatives.items():
        defined.add(lab)
        if onp.all(onp.abs(mean - alt) <= tol):
            matches.add(lab)
    # a mean of 0 where the trace is not is its own finding (the probe entering once: 1^T J eps, E[eps] = 0); a
    # multiple of the trace is "probes not normalised" only for a positive multiple that the mean tells from 0
    zero_mean = bool(onp.all(onp.abs(mean) <= tol) and onp.any(onp.abs(trace) > tol))
    if zero_mean and not matches:
        matches.add("mean 0 instead of the trace")
    elif (not zero_mean and ratio > 0 and abs(ratio - 1) > 0.05 and onp.all(onp.abs(mean - ratio * trace) <= tol)
          and not matches):
        matches.add("probes not normalised")
    defined |= {"probes not normalised", "mean 0 instead of the trace"}
    cases.append({"ok": ok, "matches": matches, "defined": defined, "d": d, "ratio": ratio, "z": float(z[worst])})


def _div_body(rec, impl, framework, n_repeats, k, seed, dims, known, n_calls):
    cases = []
    lives_seen = set()
    for d in dims:
        with continuing(rec):
            _div_dimension(rec, impl, framework, n_repeats, k, seed, d, known, n_calls, cases, lives_seen)
    worst_all = max([c["z"] for c in cases], default=float("nan"))
    failing = [c for c in cases if not c["ok"]]
    if failing:
        labels = {lab for c in failing for lab in c["matches"]}
        named = [lab for lab in sorted(labels) if all(lab in c["matches"] for c in failing if lab in c["defined"])]
        advice = {
            "sign flipped": "the estimate is -tr J: use eps^T J eps, not its negative",
            "time reversed": "the estimate is the divergence at 1 - t",
            "sums all Jacobian entries": "the estimate is the sum of all Jacobian entries, 1^T J 1: the probe is the "
                                         "same in every coordinate (a vector of ones, or one random sign per point "
                                         "instead of per coordinate); E[eps eps^T] must be I",
            "probes not normalised": "the estimate is a positive multiple of the trace, s tr J with s != 1: probes "
                                     "need E[eps eps^T] = I (Rademacher +-1, or standard normal), not s I",
            "mean 0 instead of the trace": "the estimates average to 0 where tr J does not: the probe enters only "
                                           "once (sum(J eps) = 1^T J eps leaves out the left eps^T, and E[eps] = 0); "
                                           "Hutchinson's estimate is eps^T (J eps), the same eps on both sides",
        }
        for lab in named:
            rec.diagnose(lab, advice.get(lab, "the trace must sum all d diagonal terms of the Jacobian"))
        if not named:
            bad = sorted({c["d"] for c in failing})
            good = sorted(set(dims) - set(bad))
            if good:
                rec.diagnose(f"wrong only in d = {', '.join(map(str, bad))}",
                             f"right in d = {', '.join(map(str, good))}: something depends on the dimension")
    rec.measure("bias_over_tol", worst_all, None, what="the worst of bias_over_tol_d* (reported)")
    if "per call" in lives_seen:
        rec.note(f"the probes are shared by the whole batch (every repeat of a point is equal within a call): "
                 f"the mean is taken over {n_calls + 2} calls")
    if "per point" in lives_seen:
        rec.note("the probes are drawn per point (repeats of a point differ within a call)")
    if "none" in lives_seen:
        rec.note("zero variance: an exact divergence (or the same probes at every call)")
    d0 = dims[0]
    X0 = (known or rec.precision).round(_div_points(d0))
    u0 = make_field("nonlinear", framework, d0)
    a = as_array(impl(u0, X0, _DIV_T, onp.random.default_rng(seed)), "estimate(u, x, t, rng)", rec, shape=(4,))
    b = as_array(impl(u0, X0, _DIV_T, onp.random.default_rng(seed)), "estimate(u, x, t, rng)", rec, shape=(4,))
    if not onp.array_equal(a, b):
        rec.note("two calls with generators of the same seed differ: the estimator does not draw (only) from rng")
    rec.cover(f"d = {', '.join(map(str, dims))}; 4 points each at t = 0.1, 0.4, 0.7, 0.95; {n_repeats} repeats "
              "per point per call")
    return f"unbiased within {k:g} standard errors at 4 points in each of d = {', '.join(map(str, dims))}."


def check_divergence_estimator(estimate, *, framework="numpy", n_repeats=2000, k=K_SE, seed=0, torch_dtype="float64",
                               dtype=None, dims=None, precision=None, n_calls=200):
    """Check a divergence estimator for bias against the exact trace, and report its variance  [lecture: CNF Pros (Hutchinson)]

    ``estimate(u, x, t, rng) -> (n,)`` estimates ``div u(x, t) = tr J_u(x, t)`` (one value
    per point, its probes drawn from ``rng``). In each of ``dims`` (default 1, 2, 3, 5)
    four points (different times, traces of both signs) are tiled ``n_repeats`` times in
    one batch; the mean over the samples must be within ``k`` standard errors (plus the
    round-off allowance ``sqrt(eps)``) of the exact trace. The samples are the repeats
    when each point gets its own probe, the calls (``n_calls`` of them) when one probe
    is shared by the whole batch: either estimator is judged unbiased when it is. An
    exact estimator (zero variance) must match to round-off. The variance is reported
    next to the closed forms for Rademacher and Gaussian probes.

    On failure it names, when the mean matches it in every failing dimension: a flipped
    sign, a scale error (a positive multiple of the trace: probes with
    ``E[eps eps^T] = s I``, ``s != 1``), a mean of 0 where the trace is not (the probe
    entering once, ``1^T J eps``), the trace at ``1 - t``,
    the sum of all Jacobian entries (a probe constant across coordinates), a sum of only
    the first few diagonal terms.

    Args:
        estimate: ``estimate(u, x, t, rng) -> (n,)``; ``u(x, t)`` is the field (a PyTorch
            or JAX callable with ``framework="torch"`` or ``"jax"``, ``x`` and ``t`` then
            tensors or arrays of ``dtype``).
        framework: ``"numpy"``, ``"torch"`` or ``"jax"``.
        n_repeats: repeats of each point per call (>= 2).
        k: number of standard errors.
        seed: seed of the ``rng`` handed to ``estimate`` (an integer >= 0).
        torch_dtype: kept for compatibility; ``dtype`` takes precedence (another value
            than ``"float64"`` with another framework than ``"torch"`` is refused).
        dtype: the dtype with ``framework="torch"`` or ``"jax"``.
        dims: the dimensions (default 1, 2, 3, 5).
        precision: the precision the estimator computes in, if lower than what it returns says.
        n_calls: calls averaged when the probes are shared by the whole batch.

    Returns:
        ``CheckReport``.
    """
    check_callable(estimate, "estimate")
    framework = check_framework(framework)
    n_repeats = check_positive_int(n_repeats, "n_repeats", minimum=2)
    if n_repeats > 10**6:
        raise ValueError(f"n_repeats must be at most 1e6, got {n_repeats}")
    n_calls = check_positive_int(n_calls, "n_calls", minimum=8, maximum=10**5)
    k = check_k(k)
    seed = check_seed(seed)
    dims = check_dims(dims)
    dtype, known = _framework_dtype(framework, dtype, torch_dtype)
    declared = check_precision(precision)
    if declared is not None and (known is None or declared.eps > known.eps):
        known = declared
    rec = Recorder("check_divergence_estimator")
    impl = Impl(_wrap(estimate, framework, dtype), "estimate", rec, ("u", "x", "t", "rng"), declared)
    if known is not None:
        rec.precision = known
    return run_checker(rec, _div_body, impl, framework, n_repeats, k, seed, dims, known, n_calls)


assert_log_likelihood = assert_twin(check_log_likelihood)
assert_divergence_estimator = assert_twin(check_divergence_estimator)

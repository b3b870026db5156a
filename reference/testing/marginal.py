"""``check_marginal_velocity`` and ``check_velocity_field``: Theorem 1's field as the oracle  [lecture: Theorem 1, eq. (9); Theorem 2]"""

import math

import numpy as onp

from .._validate import as_points, check_callable, check_finite_number, check_positive_int
from ..distributions import GaussianMixture, dataset_mixture
from ._args import check_dims, check_k, check_precision, check_seed
from ._guard import Impl, as_array, continuing, run_checker
from ._report import K_SE, Recorder, assert_twin, roundoff_tol

__all__ = [
    "check_marginal_velocity",
    "assert_marginal_velocity",
    "check_velocity_field",
    "assert_velocity_field",
]

CHUNK_SIZES = (128, 256, 500, 512, 1000, 1024, 2000, 2048, 4096)
"""Chunk sizes tried when an estimate looks like weights normalised per chunk of the data."""


def _small_data():
    rng = onp.random.default_rng(12345)
    angles = 2 * onp.pi * onp.arange(6) / 6
    return onp.concatenate([2.0 * onp.stack([onp.cos(angles), onp.sin(angles)], 1),
                            rng.normal(scale=0.8, size=(6, 2))])


def _large_data(d, n_data):
    """``n_data`` points around six centres in ``d`` dimensions: more than any plausible chunk."""
    rng = onp.random.default_rng(777 + d)
    centres = 2.0 * rng.standard_normal((6, d))
    return centres[rng.integers(0, 6, n_data)] + 0.5 * rng.standard_normal((n_data, d))


def _lse(a, axis):
    """log sum exp along ``axis`` (keepdims), without scipy's overhead."""
    m = onp.max(a, axis=axis, keepdims=True)
    m = onp.where(onp.isfinite(m), m, 0.0)
    return m + onp.log(onp.sum(onp.exp(a - m), axis=axis, keepdims=True))


def exact_velocity(x, t, data, sigma):
    """``reference.oracles.EmpiricalOracle(data, sigma).velocity(x, t)`` in plain NumPy (tests check they agree)."""
    log_n, u_i = _posterior_parts(x, t, data, sigma)
    return onp.einsum("nj,njd->nd", onp.exp(log_n - _lse(log_n, 1)), u_i)


def _posterior_parts(x, t, data, sigma):
    d = data.shape[1]
    var = (1 - t) ** 2 + sigma**2
    log_n = -0.5 * d * onp.log(2 * onp.pi * var)[:, None] - 0.5 * onp.sum(
        (x[:, None, :] - t[:, None, None] * data[None]) ** 2, axis=2) / var[:, None]  # (n, N)
    u_i = data[None] - ((1 - t) / var)[:, None, None] * (x[:, None, :] - t[:, None, None] * data[None])
    return log_n, u_i


def _row_offsets(log_n, t, d, sigma):
    """The row-dependent terms by which a student's log-weights may differ from ``log N(x_n; t y_i, s_t^2 I)``.

    Each cancels in weights normalised over the data (axis 1), which is why it is dropped
    or added freely, but not in weights left unnormalised or normalised over the points:
    the Gaussian's constant ``-d/2 log(2 pi s_t^2)`` kept (offset 0) or dropped, and the
    largest log-weight of the row subtracted (log-sum-exp's shift; the constant then
    cancels whether it was kept or not).

    Returns:
        ``{name: (n,) offset}``.
    """
    var = (1 - t) ** 2 + sigma**2
    return {"the constant kept": onp.zeros(len(t)),
            "the constant dropped": 0.5 * d * onp.log(2 * onp.pi * var),
            "the row's largest subtracted": -onp.max(log_n, axis=1)}


def _chunked(log_n, u_i, size):
    """Weights normalised within each chunk of ``size`` data points, the chunks' estimates averaged."""
    parts = []
    for start in range(0, log_n.shape[1], size):
        ln = log_n[:, start:start + size]
        w = onp.exp(ln - _lse(ln, 1))
        parts.append(onp.einsum("nj,njd->nd", w, u_i[:, start:start + size]))
    return onp.mean(parts, axis=0)


def _check_set(rec, impl, data, sigma, n, rng, label):
    N, d = data.shape
    n_far = max(2, n // 8)
    t = 0.1 + 0.8 * rng.uniform(size=n)
    if n >= 8:
        near = max(1e-3, 16 * rec.precision.eps)
        t[:2] = (near, 1 - near)  # close to both ends, as close as the precision resolves
    idx = rng.integers(0, N, size=n)
    x = t[:, None] * data[idx] + (1 - t)[:, None] * rng.standard_normal((n, d)) + sigma * rng.standard_normal((n, d))
    direction = rng.standard_normal((n_far, d))
    x[-n_far:] = 25.0 * direction / onp.linalg.norm(direction, axis=1, keepdims=True)  # far from the data
    prec = rec.precision
    x, t = prec.round(x), prec.round(t)
    where = f"in d = {d} ({N} data points)" if label else ""
    est = impl(x, t, data, where=where)
    est = as_array(est, "estimate(x, t, data)", rec, shape=(n, d), finite=False, where=where)
    prec = rec.precision
    x, t = prec.round(x), prec.round(t)
    log_n, u_i = _posterior_parts(x, t, data, sigma)
    truth = onp.einsum("nj,njd->nd", onp.exp(log_n - _lse(log_n, 1)), u_i)
    eps = prec.eps
    tol = roundoff_tol(eps) * (1.0 + onp.max(onp.abs(truth), axis=1))
    finite = onp.all(onp.isfinite(est), axis=1)
    if not onp.all(finite):
        far = ~finite[-n_far:]
        rec.fail(f"estimate returned non-finite values at {int(onp.sum(~finite))} of {n} points ({where})")
        if onp.any(far) and onp.all(finite[:-n_far]):
            rec.diagnose("weights underflow far from the data",
                         "at points far from the data every N(x; t y_i, (1 - t)^2 I) underflows to 0 and 0/0 "
                         "follows: normalise the weights in log space (log-sum-exp)")
        return False, {}
    err = onp.max(onp.abs(est - truth), axis=1) / tol
    worst = int(onp.argmax(err))
    suffix = f"_N{N}_d{d}" if label else ""
    ok = rec.measure(f"error_over_tol{suffix}", err[worst], 1.0,
                     what=f"|estimate - exact field| in units of sqrt(eps)(1 + |u|), worst of {n} points {where} "
                          f"(t = {t[worst]:.3g}, error {onp.max(onp.abs(est - truth)[worst]):.3g})",
                     fail=f"{where} the estimate differs from the exact marginal velocity by up to "
                          f"{onp.max(onp.abs(est - truth)):.3g} (at t = {t[worst]:.3g})")
    if ok:
        return True, {}
    near = slice(0, n - n_far)
    bad = err > 1

    def matches(alt, rows=slice(None)):
        return bool(onp.all(onp.max(onp.abs(est - alt)[rows], axis=1)
                            <= 1e3 * tol[rows] + 1e-6 * (1 + onp.max(onp.abs(alt[rows]), axis=1))))

    offsets = _row_offsets(log_n, t, d, sigma)
    found = {}
    if matches(-truth):
        found["sign flipped"] = "the estimate is -u(x, t): u_cond = x1 - x0 = (y_i - x) / (1 - t)"
    elif matches(-exact_velocity(x, 1 - t, data, sigma), slice(2, n)):
        found["reversed time convention"] = ("the estimate is -u(x, 1 - t), the field of a path that is data at "
                                             "t = 0: in the lecture t = 0 is the noise N(0, I) and t = 1 the data")
    elif any(matches(onp.exp(_lse(log_n, 1) + b[:, None] - log_c) * truth, near)
             for b in offsets.values() for log_c in (0.0, onp.log(N))):
        found["weights not normalised"] = ("the estimate is sum_i w_i u_i with w_i = N(x; t y_i, (1-t)^2 I) times a "
                                           "factor of the point x (the Gaussian's constant kept or dropped, the "
                                           "largest weight divided out, 1/N): divide the weights by their sum over "
                                           "the data, so that the posterior p(z_i | x, t) sums to 1")
    elif any(matches(onp.einsum("nj,njd->nd", onp.exp(log_n + b[:, None] - _lse(log_n + b[:, None], 0)), u_i), near)
             for b in offsets.values()):
        found["weights normalised over the wrong axis"] = ("the weights sum to 1 over the points x, not over the "
                                                           "data z_i (softmax over the data axis)")
    elif matches(u_i.mean(axis=1), near):
        found["uniform weights"] = ("the estimate averages u_cond over the data without the weights p(z_i | x, t) "
                                    "(the posterior of eq. (9))")
    elif onp.all(t[bad] > 0.98) and onp.any(~bad):
        found["wrong only near t = 1"] = (f"right for t <= 0.98, wrong at t = {t[bad].max():.4g}: 1 - t "
                                          "clamped (or an epsilon added to it)?")
    else:
        for size in CHUNK_SIZES:
            if size < N and matches(_chunked(log_n, u_i, size)):
                found["weights normalised per chunk of the data"] = (
                    f"the estimate is the average over chunks of {size} data points of each chunk's own posterior "
                    "mean: each chunk must be weighted by its share of the total weight (carry the running "
                    "log-sum-exp across chunks)")
                break
    return False, found


def _marginal_body(rec, estimate, sets, sigma, n, seed, declared):
    impl = Impl(estimate, "estimate", rec, ("x", "t", "data"), declared)
    rng = onp.random.default_rng(seed)
    results = []
    for label, data in sets:
        result = (False, {})
        with continuing(rec):
            result = _check_set(rec, impl, data, sigma, n, rng, label if len(sets) > 1 else "")
        results.append((label, data) + tuple(result))
    if len(sets) > 1:
        values = [m.value for m in rec.measurements if m.name.startswith("error_over_tol_")]
        if values:
            rec.measure("error_over_tol", max(values), None, what="the worst of error_over_tol_* (reported)")
    failing = [r for r in results if not r[2]]
    if failing:
        common = set.intersection(*(set(r[3]) for r in failing)) if all(r[3] for r in failing) else set()
        for label in sorted(common):
            rec.diagnose(label, failing[0][3][label])
        if not common:
            for r in failing:
                for label, advice in r[3].items():
                    if label in ("weights normalised per chunk of the data", "weights underflow far from the data"):
                        rec.diagnose(label, advice)
            passed_small = [r for r in results if r[2] and r[1].shape[0] < 100]
            if passed_small and all(r[1].shape[0] >= 100 for r in failing) and not rec.diagnoses:
                rec.diagnose("wrong only with many data points",
                             f"right on {passed_small[0][0]}, wrong on data sets of "
                             f"{min(r[1].shape[0] for r in failing)} points or more: chunking, or a bound on the "
                             "number of data points?")
            dims_bad = sorted({r[1].shape[1] for r in failing})
            dims_good = sorted({r[1].shape[1] for r in results if r[2]} - set(dims_bad))
            if dims_good and not rec.diagnoses:
                rec.diagnose(f"wrong only in d = {', '.join(map(str, dims_bad))}",
                             f"right in d = {', '.join(map(str, dims_good))}: something depends on the dimension")
    rec.cover("data sets: " + "; ".join(f"{lab}" for lab, _ in sets) + f"; {n} points each (t from 1e-3 to 0.999, "
              "some 25 away from the data)")
    return (f"matches the exact marginal velocity on {len(sets)} data set(s) ({', '.join(lab for lab, _ in sets)}) "
            f"at {n} points each (including points far from the data and t close to 0 and 1).")


def check_marginal_velocity(estimate, *, data=None, sigma=0.0, n=32, seed=0, precision=None, dims=None,
                            n_data=5000):
    """Check an estimate of the marginal velocity of empirical data against the exact field  [lecture: Theorem 1, eq. (9), (10)]

    ``estimate(x, t, data) -> u(x, t)``: Theorem 1's marginal velocity of the linear path
    (``z = (x0, x1)``, ``x0 ~ N(0, I)``, ``x1`` uniform on ``data``; the conical path gives
    the same field), which for a finite data set is exactly

        u(x, t) = sum_i w_i(x, t) (y_i - x) / (1 - t),   w_i proportional to N(x; t y_i, (1 - t)^2 I)

    (``reference.oracles.EmpiricalOracle``). It is compared at points drawn from ``p_t``
    for times in ``[0.1, 0.9]`` and at ``t = 0.001`` and ``0.999``, and at points far
    from the data (where weights computed without log-sum-exp underflow), to
    ``sqrt(eps)`` relative. By default it runs on a small 2-D data set (12 points) and on
    data sets of ``n_data`` points (5000: more than any plausible chunk) in each of
    ``dims`` (1, 2, 3, 5).

    On failure it names: the sign flipped, the field of the reversed time convention
    (``-u(x, 1 - t)``, data at ``t = 0``), weights not normalised (the result is
    ``sum_i w_i u_i`` with ``w_i = N(x; t y_i, (1 - t)^2 I)`` times a factor of the row:
    the Gaussian's constant kept or dropped, the row's largest weight divided out, the
    number of data points), weights normalised over the points ``x`` instead of the data
    (with the same row factors, which do not cancel there), uniform weights, weights normalised per chunk of the data and the
    chunks averaged, non-finite values far from the data, a field wrong only near
    ``t = 1``, only with many data points, or only in some dimensions.

    Args:
        estimate: ``estimate(x, t, data) -> (n, d)``; ``x`` is ``(n, d)``, ``t`` is ``(n,)``,
            ``data`` is ``(N, d)``.
        data: one data set ``(N, d)`` to use instead of the defaults.
        sigma: the linear path's ``sigma`` (0 in the lecture).
        n: number of points per data set (>= 4).
        seed: seed of the points (an integer >= 0).
        precision: the precision the implementation computes in, if lower than what it returns says.
        dims: dimensions of the default large data sets (default 1, 2, 3, 5).
        n_data: size of the default large data sets (>= 2).

    Returns:
        ``CheckReport``.
    """
    check_callable(estimate, "estimate")
    sigma = float(check_finite_number(sigma, "sigma", nonnegative=True))
    if sigma > 100:
        raise ValueError(f"sigma must be at most 100, got {sigma}")
    n = check_positive_int(n, "n", minimum=4)
    if n > 100_000:
        raise ValueError(f"n must be at most 100000, got {n}")
    seed = check_seed(seed)
    n_data = check_positive_int(n_data, "n_data", minimum=2)
    if n_data > 200_000:
        raise ValueError(f"n_data must be at most 200000, got {n_data}")
    if data is None:
        sets = [("12 points in d = 2", _small_data())]
        sets += [(f"{n_data} points in d = {d}", _large_data(d, n_data)) for d in check_dims(dims)]
    else:
        if dims is not None:
            raise ValueError("dims applies to the default data sets only: omit it when data is given")
        data = as_points(data, "data", allow_traced=False)
        if onp.max(onp.abs(data)) > 1e6:
            raise ValueError("data must have entries of moderate size (|data| <= 1e6)")
        sets = [(f"{data.shape[0]} points in d = {data.shape[1]}", data)]
    declared = check_precision(precision)
    rec = Recorder("check_marginal_velocity")
    return run_checker(rec, _marginal_body, estimate, sets, sigma, n, seed, declared)


def _oracle_for(data):
    from ..oracles import EmpiricalOracle, GaussianMixtureOracle

    if isinstance(data, str):
        data = dataset_mixture(data)
    if isinstance(data, GaussianMixture):
        return GaussianMixtureOracle(data), data.sample, 1.0, f"{data!r}"
    if data is None:
        raise TypeError("data must be a GaussianMixture, the name of a mixture data set or an (N, d) array, got None")
    data = as_points(data, "data", allow_traced=False)
    return (EmpiricalOracle(data), lambda m, rng: data[rng.integers(0, data.shape[0], m)], 0.99,
            f"{data.shape[0]} data points")


def _field_body(rec, v, data, n, max_relative_loss, k, seed, declared):
    oracle, sample_data, t_max, described = _oracle_for(data)
    rng = onp.random.default_rng(seed)
    impl = Impl(v, "v", rec, ("x", "t"), declared)
    x1 = onp.asarray(sample_data(n, rng))
    d = x1.shape[1]
    x0 = rng.standard_normal((n, d))
    t = t_max * rng.uniform(size=n)
    x = t[:, None] * x1 + (1 - t)[:, None] * x0
    u = onp.asarray(oracle.velocity(x, t))
    out = as_array(impl(x, t), "v(x, t)", rec, shape=(n, d))

    def loss(target):
        sq = onp.sum((out - target) ** 2, axis=1)
        return sq.mean(), sq.std(ddof=1) / math.sqrt(n), sq

    scale = float(onp.mean(onp.sum(u**2, axis=1)))
    l_fm, se, sq = loss(u)
    rec.measure("relative_fm_loss", l_fm / scale, max_relative_loss,
                what=f"L_FM / E|u|^2 = {l_fm:.4g} +- {se:.2g} / {scale:.4g} ({n} samples; data: {described})",
                fail=f"the field is far from the true marginal velocity: L_FM / E|u|^2 = {l_fm / scale:.3g} "
                     f"(+- {se / scale:.2g}) > {max_relative_loss:g}")
    rec.measure("fm_loss", l_fm, None, what=f"L_FM = E|v - u|^2 (standard error {se:.2g})")
    for q in range(4):
        rows = (t >= q * t_max / 4) & (t < (q + 1) * t_max / 4)
        if onp.any(rows):
            rec.measure(f"fm_loss_t{q}", sq[rows].mean(), None,
                        what=f"L_FM over t in [{q * t_max / 4:.2f}, {(q + 1) * t_max / 4:.2f})")
    cfm_sq = onp.sum((out - (x1 - x0)) ** 2, axis=1)
    c_hat = cfm_sq - sq
    rec.measure("cfm_loss", cfm_sq.mean(), None, what="the CFM loss of the same samples (u_cond = x1 - x0)")
    rec.measure("cfm_constant", c_hat.mean(), None,
                what=f"C = L_CFM - L_FM (standard error {c_hat.std(ddof=1) / math.sqrt(n):.2g}): the CFM loss's floor")
    rec.measure("cfm_constant_se", c_hat.std(ddof=1) / math.sqrt(n), None, what="the standard error of C")
    t_rev = onp.clip(1.0 - t, 0.0, t_max)
    alternatives = {
        "sign flipped": (loss(-u), "v is closer to -u than to u"),
        "reversed time convention": (loss(-onp.asarray(oracle.velocity(x, t_rev))),
                                     "v is closer to -u(x, 1 - t), the field of a model trained with data at "
                                     "t = 0: in the lecture t = 0 is the noise N(0, I) and t = 1 the data"),
    }
    label, ((l_alt, se_alt, _), advice) = min(alternatives.items(), key=lambda item: item[1][0][0])
    if l_alt + k * se_alt < l_fm:
        rec.diagnose(label, advice)
    rec.cover(f"{n} samples of t ~ U[0, {t_max:g}], x ~ p_t in d = {d} (data: {described})")
    return (f"L_FM / E|u|^2 = {l_fm / scale:.3g} +- {se / scale:.2g} <= {max_relative_loss:g} "
            f"({n} samples, data: {described}).")


def check_velocity_field(v, data, *, n=4000, max_relative_loss=0.05, k=K_SE, seed=0, precision=None):
    """Score a learned velocity field by its exact flow-matching loss against the true marginal field  [lecture: eq. (5) FM loss; Theorem 2]

    The CFM loss a training run prints never reaches 0 (it plateaus at the constant
    ``C`` of Theorem 2), so it cannot say how good a field is. Here the true field
    ``u`` is known (``reference.oracles``: closed form for Gaussian-mixture data, exact
    for a finite data set), so the FM loss of eq. (5)

        L_FM(v) = E_{t ~ U[0, 1], x ~ p_t} |v(x, t) - u(x, t)|^2

    (for a finite data set, ``t ~ U[0, 0.99]``: the memorising field of an empirical
    data set is singular at ``t = 1``)

    is estimated by Monte Carlo (``n`` samples, with its standard error), relative to
    ``E |u|^2`` (a zero field scores 1). It passes when the relative loss is at most
    ``max_relative_loss`` and ``v`` has no side effects on ``x`` and ``t``. Also reported:
    the loss by quarter of the time interval, the CFM loss of the same samples and its
    constant ``C = L_CFM - L_FM``. A field that fits ``-u`` or the reversed time
    convention better than ``u`` (by ``k`` standard errors) is named.

    Args:
        v: the field ``v(x, t) -> (n, d)`` (``t`` of shape ``(n,)``).
        data: a ``GaussianMixture``, the name of a mixture data set (``"8gaussians"``,
            ``"cross"``), or an ``(N, d)`` array of data points.
        n: Monte Carlo samples (>= 16).
        max_relative_loss: the pass mark for ``L_FM / E |u|^2``, > 0.
        k: standard errors for the comparisons.
        seed: seed of the samples (an integer >= 0).
        precision: the precision ``v`` computes in, if lower than what it returns says.

    Returns:
        ``CheckReport``.
    """
    check_callable(v, "v")
    n = check_positive_int(n, "n", minimum=16)
    if n > 10**6:
        raise ValueError(f"n must be at most 1e6, got {n}")
    max_relative_loss = float(check_finite_number(max_relative_loss, "max_relative_loss", positive=True))
    k = check_k(k)
    seed = check_seed(seed)
    declared = check_precision(precision)
    if not isinstance(data, (str, GaussianMixture)):
        data = as_points(data, "data", allow_traced=False)
        if onp.max(onp.abs(data)) > 1e6:
            raise ValueError("data must have entries of moderate size (|data| <= 1e6)")
    else:
        _oracle_for(data)  # refuse an unknown name before anything runs
    rec = Recorder("check_velocity_field")
    return run_checker(rec, _field_body, v, data, n, max_relative_loss, k, seed, declared)


assert_marginal_velocity = assert_twin(check_marginal_velocity)
assert_velocity_field = assert_twin(check_velocity_field)

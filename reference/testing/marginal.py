"""``check_marginal_velocity`` and ``check_velocity_field``: Theorem 1's field as the oracle  [lecture: Theorem 1, eq. (9); Theorem 2]"""

import math

import numpy as onp
from scipy.special import logsumexp

from .._validate import as_points, check_callable, check_finite_number, check_positive_int
from ..distributions import GaussianMixture, dataset_mixture
from ._report import K_SE, Recorder, as_numpy, assert_twin, machine_eps, roundoff_tol

__all__ = [
    "check_marginal_velocity",
    "assert_marginal_velocity",
    "check_velocity_field",
    "assert_velocity_field",
]


def _default_data():
    rng = onp.random.default_rng(12345)
    angles = 2 * onp.pi * onp.arange(6) / 6
    return onp.concatenate([2.0 * onp.stack([onp.cos(angles), onp.sin(angles)], 1),
                            rng.normal(scale=0.8, size=(6, 2))])


def _call_field(fn, args, n, d, name, rec):
    with onp.errstate(all="ignore"):  # non-finite results are reported below
        out = as_numpy(fn(*args), name)
    if out.shape != (n, d):
        rec.fail(f"{name} returned shape {out.shape}, expected {(n, d)}")
        return None
    return out


def check_marginal_velocity(estimate, *, data=None, sigma=0.0, n=48, seed=0):
    """Check an estimate of the marginal velocity of empirical data against the exact field  [lecture: Theorem 1, eq. (9), (10)]

    ``estimate(x, t, data) -> u(x, t)``: Theorem 1's marginal velocity of the linear path
    (``z = (x0, x1)``, ``x0 ~ N(0, I)``, ``x1`` uniform on ``data``; the conical path gives
    the same field), which for a finite data set is exactly

        u(x, t) = sum_i w_i(x, t) (y_i - x) / (1 - t),   w_i proportional to N(x; t y_i, (1 - t)^2 I)

    (``reference.oracles.EmpiricalOracle``). It is compared at points drawn from ``p_t``
    for times in ``[0.1, 0.9]`` and at points far from the data (where weights computed
    without log-sum-exp underflow), to ``sqrt(eps)`` relative.

    On failure it names: the sign flipped, the field of the reversed time convention
    (``-u(x, 1 - t)``, data at ``t = 0``), weights not normalised (the result is
    ``p_t(x) u(x, t)`` or a multiple), weights normalised over the points ``x`` instead
    of the data, uniform weights, non-finite values far from the data.

    Args:
        estimate: ``estimate(x, t, data) -> (n, d)``; ``x`` is ``(n, d)``, ``t`` is ``(n,)``,
            ``data`` is ``(N, d)``.
        data: the data set (default: 12 points in 2-D).
        sigma: the linear path's ``sigma`` (0 in the lecture).
        n: number of points.
        seed: seed of the points.

    Returns:
        ``CheckReport``.
    """
    from ..oracles import EmpiricalOracle

    check_callable(estimate, "estimate")
    data = _default_data() if data is None else as_points(data, "data")
    sigma = float(check_finite_number(sigma, "sigma", nonnegative=True))
    n = check_positive_int(n, "n", minimum=4)
    rng = onp.random.default_rng(seed)
    N, d = data.shape
    oracle = EmpiricalOracle(data, sigma)
    rec = Recorder("check_marginal_velocity")

    n_far = max(2, n // 8)
    t = 0.1 + 0.8 * rng.uniform(size=n)
    idx = rng.integers(0, N, size=n)
    x = t[:, None] * data[idx] + (1 - t)[:, None] * rng.standard_normal((n, d)) + sigma * rng.standard_normal((n, d))
    direction = rng.standard_normal((n_far, d))
    x[-n_far:] = 25.0 * direction / onp.linalg.norm(direction, axis=1, keepdims=True)  # far from the data
    truth = onp.asarray(oracle.velocity(x, t))

    est = _call_field(estimate, (x.copy(), t.copy(), data.copy()), n, d, "estimate", rec)
    if est is None:
        return rec.report()
    eps = machine_eps(est)
    tol = roundoff_tol(eps) * (1.0 + onp.max(onp.abs(truth), axis=1))
    finite = onp.all(onp.isfinite(est), axis=1)
    if not onp.all(finite):
        far = ~finite[-n_far:]
        rec.fail(f"estimate returned non-finite values at {int(onp.sum(~finite))} of {n} points")
        if onp.any(far) and onp.all(finite[:-n_far]):
            rec.diagnose("weights underflow far from the data",
                         "at points far from the data every N(x; t y_i, (1 - t)^2 I) underflows to 0 and 0/0 "
                         "follows: normalise the weights in log space (log-sum-exp)")
        return rec.report()
    err = onp.max(onp.abs(est - truth), axis=1) / tol
    worst = int(onp.argmax(err))
    ok = rec.measure("error_over_tol", err[worst], 1.0,
                     what=f"|estimate - exact field| in units of sqrt(eps)(1 + |u|), worst of {n} points "
                          f"(t = {t[worst]:.3g}, error {onp.max(onp.abs(est - truth)[worst]):.3g})",
                     fail=f"the estimate differs from the exact marginal velocity by up to "
                          f"{onp.max(onp.abs(est - truth)):.3g} (at t = {t[worst]:.3g})")
    near = slice(0, n - n_far)
    rec.measure("error_near_data", onp.max(onp.abs(est - truth)[near]), None, what="max error at points drawn from p_t")
    rec.measure("error_far_from_data", onp.max(onp.abs(est - truth)[n - n_far:]), None,
                what="max error at points 25 away from the origin")
    if not ok:
        def matches(alt, rows=slice(None)):
            return bool(onp.all(onp.max(onp.abs(est - alt)[rows], axis=1) <= 1e3 * tol[rows] + 1e-6 * (1 + onp.max(onp.abs(alt[rows]), axis=1))))

        p_t = onp.exp(onp.asarray(oracle.logpdf(x, t)))
        var = (1 - t) ** 2 + sigma**2
        log_n = -0.5 * d * onp.log(2 * onp.pi * var)[:, None] - 0.5 * onp.sum(
            (x[:, None, :] - t[:, None, None] * data[None]) ** 2, axis=2) / var[:, None]  # (n, N)
        u_i = data[None] - ((1 - t) / var)[:, None, None] * (x[:, None, :] - t[:, None, None] * data[None])
        by_points = onp.exp(log_n - logsumexp(log_n, axis=0, keepdims=True))  # normalised over x, not over data
        if matches(-truth):
            rec.diagnose("sign flipped", "the estimate is -u(x, t): u_cond = x1 - x0 = (y_i - x) / (1 - t)")
        elif matches(-onp.asarray(oracle.velocity(x, 1 - t))):
            rec.diagnose("reversed time convention",
                         "the estimate is -u(x, 1 - t), the field of a path that is data at t = 0: in the "
                         "lecture t = 0 is the noise N(0, I) and t = 1 the data")
        elif matches(p_t[:, None] * truth, near) or matches(N * p_t[:, None] * truth, near):
            rec.diagnose("weights not normalised",
                         "the estimate is p_t(x) u(x, t) (times a constant): divide by sum_i N(x; t y_i, (1-t)^2 I), "
                         "i.e. normalise the posterior weights p(z_i | x, t) to sum to 1")
        elif matches(onp.einsum("nj,njd->nd", by_points, u_i), near):
            rec.diagnose("weights normalised over the wrong axis",
                         "the weights sum to 1 over the points x, not over the data z_i (softmax over the data axis)")
        elif matches(u_i.mean(axis=1), near):
            rec.diagnose("uniform weights", "the estimate averages u_cond over the data without the weights "
                                            "p(z_i | x, t) (the posterior of eq. (9))")
    return rec.report(f"matches the exact marginal velocity of {N} data points at {n} points "
                      f"(including {n_far} far from the data), t in [0.1, 0.9].")


def _oracle_for(data):
    from ..oracles import EmpiricalOracle, GaussianMixtureOracle

    if isinstance(data, str):
        data = dataset_mixture(data)
    if isinstance(data, GaussianMixture):
        return GaussianMixtureOracle(data), data.sample, 1.0, f"{data!r}"
    data = as_points(data, "data")
    return (EmpiricalOracle(data), lambda m, rng: data[rng.integers(0, data.shape[0], m)], 0.99,
            f"{data.shape[0]} data points")


def check_velocity_field(v, data, *, n=4000, max_relative_loss=0.05, k=K_SE, seed=0):
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
    ``max_relative_loss``. Also reported: the loss by quarter of the time interval, the
    CFM loss of the same samples and its constant ``C = L_CFM - L_FM``. A field that fits
    ``-u`` or the reversed time convention better than ``u`` (by ``k`` standard errors) is
    named.

    Args:
        v: the field ``v(x, t) -> (n, d)`` (``t`` of shape ``(n,)``).
        data: a ``GaussianMixture``, the name of a mixture data set (``"8gaussians"``,
            ``"cross"``), or an ``(N, d)`` array of data points.
        n: Monte Carlo samples.
        max_relative_loss: the pass mark for ``L_FM / E |u|^2``.
        k: standard errors for the comparisons.
        seed: seed of the samples.

    Returns:
        ``CheckReport``.
    """
    check_callable(v, "v")
    n = check_positive_int(n, "n", minimum=16)
    max_relative_loss = check_finite_number(max_relative_loss, "max_relative_loss", positive=True)
    check_finite_number(k, "k", positive=True)
    oracle, sample_data, t_max, described = _oracle_for(data)
    rng = onp.random.default_rng(seed)
    rec = Recorder("check_velocity_field")

    x1 = onp.asarray(sample_data(n, rng))
    d = x1.shape[1]
    x0 = rng.standard_normal((n, d))
    t = t_max * rng.uniform(size=n)
    x = t[:, None] * x1 + (1 - t)[:, None] * x0
    u = onp.asarray(oracle.velocity(x, t))
    out = _call_field(v, (x.copy(), t.copy()), n, d, "v", rec)
    if out is None:
        return rec.report()
    if not onp.all(onp.isfinite(out)):
        rec.fail(f"v returned non-finite values at {int(onp.sum(~onp.all(onp.isfinite(out), axis=1)))} points")
        return rec.report()
    out = out.astype(onp.float64)

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
    return rec.report(f"L_FM / E|u|^2 = {l_fm / scale:.3g} +- {se / scale:.2g} <= {max_relative_loss:g} "
                      f"({n} samples, data: {described}).")


assert_marginal_velocity = assert_twin(check_marginal_velocity)
assert_velocity_field = assert_twin(check_velocity_field)

"""``reference.marginal``: Theorem 1 — the marginal velocity from a finite set of z, its convergence, its stability."""

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy.special import logsumexp

from reference.continuity import continuity_terms
from reference.distributions import GaussianMixture, dataset_mixture
from reference.marginal import marginal_logpdf, marginal_velocity, posterior_weights
from reference.oracles import EmpiricalOracle, GaussianMixtureOracle
from reference.paths import (
    ConicalGaussianPath,
    LinearInterpolationPath,
    OptimalTransportPath,
    VariancePreservingPath,
)
from tests.strategies import dims, gaussian_paths, seeds, times_inside

K_SE = 5.0  # statistical tolerances below are K_SE standard errors


@st.composite
def finite_z_cases(draw, path=None, n_max=5, m_max=8, t=times_inside):
    """``(path, x, t, z)`` with ``m`` values of z and ``n`` points, built from a drawn seed."""
    path = draw(gaussian_paths()) if path is None else path
    n, m, d = draw(st.integers(1, n_max)), draw(st.integers(1, m_max)), draw(dims)
    t = np.array([draw(t) for _ in range(n)])
    rng = np.random.default_rng(draw(seeds))
    x1 = 2.0 * rng.standard_normal((m, d))
    z = (rng.standard_normal((m, d)), x1) if path.conditions_on_pairs else x1
    x = 2.0 * rng.standard_normal((n, d))
    return path, x, t, z


def z_rows(z, j, n):
    """The j-th value of z repeated n times (to call the row-wise path API)."""
    if isinstance(z, tuple):
        return tuple(np.repeat(c[j : j + 1], n, axis=0) for c in z)
    return np.repeat(z[j : j + 1], n, axis=0)


def eq10_by_hand(path, x, t, z):
    """Eq. (10) written out with the row-wise ``path.logpdf``/``path.velocity`` and scipy's logsumexp."""
    m = (z[1] if isinstance(z, tuple) else z).shape[0]
    n = x.shape[0]
    log_p = np.stack([path.logpdf(x, t, z_rows(z, j, n)) for j in range(m)], axis=1)
    u = np.stack([path.velocity(x, t, z_rows(z, j, n)) for j in range(m)], axis=1)
    w = np.exp(log_p - logsumexp(log_p, axis=1, keepdims=True))
    return logsumexp(log_p, axis=1) - np.log(m), w, np.einsum("nm,nmd->nd", w, u)


def relative_residual(log_p, u, x, t):
    terms = continuity_terms(log_p, u, x, t)
    return np.abs(sum(terms)) / (1.0 + sum(np.abs(term) for term in terms))


# -- eq. (10) --------------------------------------------------------------------------------------


@given(finite_z_cases(), st.sampled_from([None, 1, 3]))
def test_marginal_functions_compute_eq_10(case, chunk_size):
    path, x, t, z = case
    log_p, w, u = eq10_by_hand(path, x, t, z)
    np.testing.assert_allclose(marginal_logpdf(path, x, t, z, chunk_size), log_p, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(posterior_weights(path, x, t, z, chunk_size), w, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(marginal_velocity(path, x, t, z, chunk_size), u, rtol=1e-10, atol=1e-10)


@given(finite_z_cases(m_max=12))
def test_marginal_velocity_is_the_conditional_velocity_at_the_posterior_mean_of_z(case):
    # u_cond is affine in z for these paths, so E_{z|x,t}[u_cond(x, t, z)] = u_cond(x, t, E[z | x, t])
    path, x, t, z = case
    w = posterior_weights(path, x, t, z)
    z_mean = tuple(w @ c for c in z) if isinstance(z, tuple) else w @ z
    expected = path.velocity(x, t, z_mean)
    np.testing.assert_allclose(marginal_velocity(path, x, t, z), expected, rtol=1e-9, atol=1e-9)
    # negative control: the prior mean of z (uniform weights) is not it, unless the weights are uniform
    z_prior = tuple(c.mean(0, keepdims=True).repeat(len(x), 0) for c in z) if isinstance(z, tuple) \
        else z.mean(0, keepdims=True).repeat(len(x), 0)
    if np.max(np.abs(w - 1.0 / w.shape[1])) > 1e-3:
        assert not np.allclose(path.velocity(x, t, z_prior), expected, rtol=1e-6, atol=1e-6)


@given(finite_z_cases(), st.sampled_from([None, 2]))
def test_the_monte_carlo_marginal_pair_solves_the_continuity_equation_exactly(case, chunk_size):
    path, x, t, z = case
    log_p = lambda y, s: marginal_logpdf(path, y, s, z, chunk_size)  # noqa: E731
    u = lambda y, s: marginal_velocity(path, y, s, z, chunk_size)  # noqa: E731
    assert np.all(relative_residual(log_p, u, x, t) <= 1e-8)


@given(finite_z_cases(path=ConicalGaussianPath(), n_max=4, m_max=6, t=st.floats(0.3, 0.95)).filter(lambda c: c[3].shape[0] >= 2))
def test_averaging_u_cond_without_the_posterior_weights_breaks_continuity(case):
    # negative control for the previous property: the prior average (1/m) sum_j u_cond(x, t, z_j)
    # (at t >= 0.3, where the posterior weights are far from uniform)
    path, x, t, z = case
    m, n = z.shape[0], x.shape[0]
    log_p = lambda y, s: marginal_logpdf(path, y, s, z)  # noqa: E731
    prior_mean = lambda y, s: sum(path.velocity(y, s, z_rows(z, j, n)) for j in range(m)) / m  # noqa: E731
    assert np.max(relative_residual(log_p, prior_mean, x, t)) > 1e-3


# -- posterior weights -----------------------------------------------------------------------------


@given(finite_z_cases(m_max=10), st.floats(1e2, 1e4))
def test_posterior_weights_are_a_distribution_even_far_away(case, far):
    path, x, t, z = case
    for points in (x, x + far):  # far: every p(x | t, z_j) underflows to 0
        w = posterior_weights(path, points, t, z)
        assert np.all(np.isfinite(w)) and np.all(w >= 0)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-13)
        assert np.all(np.isfinite(marginal_velocity(path, points, t, z)))
        assert np.all(np.isfinite(marginal_logpdf(path, points, t, z)))


def test_naive_weights_underflow_far_away_where_the_log_space_ones_do_not():
    path, x1 = ConicalGaussianPath(), np.array([[0.0, 0.0], [1.0, 0.5], [-1.0, 2.0]])
    x = np.full((1, 2), 1e3)
    log_p = np.stack([path.logpdf(x, 0.5, x1[j : j + 1]) for j in range(3)], axis=1)
    with np.errstate(invalid="ignore"):
        naive = np.exp(log_p) / np.exp(log_p).sum(axis=1, keepdims=True)  # 0 / 0
    assert np.all(np.isnan(naive))  # negative control: the naive ratio fails
    w = posterior_weights(path, x, 0.5, x1)
    np.testing.assert_allclose(w, np.exp(log_p - logsumexp(log_p, axis=1, keepdims=True)), rtol=1e-12)
    assert w[0].argmax() == np.argmin(((x - 0.5 * x1) ** 2).sum(1))  # the nearest mean wins


# -- chunks and memory ------------------------------------------------------------------------------


@given(finite_z_cases(n_max=9, m_max=9), st.integers(1, 4))
def test_chunked_equals_unchunked_to_rounding(case, chunk_size):
    path, x, t, z = case
    for f in (marginal_logpdf, marginal_velocity, posterior_weights):
        np.testing.assert_allclose(f(path, x, t, z, chunk_size), f(path, x, t, z, None), rtol=1e-12, atol=1e-13)


@given(finite_z_cases(n_max=9, m_max=9), st.sampled_from([None, 1, 3]))
def test_the_fast_path_equals_the_differentiable_path(case, chunk_size):
    # plain arrays take the in-place path that uses u = u_cond(x, t, E[z | x, t]); under
    # autograd the pairwise sum of Theorem 1 is traced: the two give the same numbers
    from autograd import make_vjp

    path, x, t, z = case
    for f in (marginal_logpdf, marginal_velocity):
        traced = make_vjp(lambda y: f(path, y, t, z, chunk_size))(x)[1]
        fast = f(path, x, t, z, chunk_size)
        scale = np.abs(traced).max() + 1.0
        np.testing.assert_allclose(fast, traced, rtol=1e-12, atol=1e-12 * scale)
    # negative control: the posterior mean of z under uniform weights gives another field
    x0, x1 = (None, z) if not path.conditions_on_pairs else z
    (alpha, beta, sigma), (dalpha, dbeta, dsigma) = path.schedules(np.ones(len(x)) * t)
    z_bar = [v.mean(axis=0) if v is not None else 0.0 for v in (x1, x0)]
    mean = alpha[:, None] * z_bar[0] + beta[:, None] * z_bar[1]
    dmean = dalpha[:, None] * z_bar[0] + dbeta[:, None] * z_bar[1]
    uniform = dmean + (dsigma / sigma)[:, None] * (x - mean)
    if len(x1) > 1 and np.ptp(posterior_weights(path, x, t, z), axis=1).max() > 1e-3:
        assert not np.allclose(uniform, marginal_velocity(path, x, t, z), rtol=1e-6, atol=1e-9)


def peak_memory(f):
    tracemalloc.start()
    try:
        f()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_bounded_by_the_chunk_not_by_n_times_m(rng):
    n = m = 3000
    d, chunk = 2, 128
    x, z = rng.standard_normal((n, d)), rng.standard_normal((m, d))
    path = ConicalGaussianPath()
    peak = peak_memory(lambda: marginal_velocity(path, x, 0.5, z, chunk_size=chunk))
    one_block = chunk * chunk * d * 8  # bytes of one (chunk, chunk, d) float64 array
    bound = 16 * one_block + 16 * (n + m) * d * 8  # a handful of block temporaries + O((n + m) d) outputs
    unchunked_need = n * m * d * 8  # a single (n, m, d) array
    assert peak <= bound < unchunked_need / 10, (peak, bound, unchunked_need)
    # negative control: without chunks the peak is at least one (n, m) float64 array
    small = 800
    peak_full = peak_memory(lambda: marginal_velocity(path, x[:small], 0.5, z[:small], chunk_size=None))
    assert peak_full >= small * small * 8


@pytest.mark.slow
def test_memory_for_ten_thousand_points_and_ten_thousand_z(rng):
    n = m = 10_000
    x, z = rng.standard_normal((n, 2)), rng.standard_normal((m, 2))
    peak = peak_memory(lambda: marginal_velocity(ConicalGaussianPath(), x, 0.5, z, chunk_size=512))
    print(f"\npeak traced memory for n = m = 1e4, d = 2, chunk 512: {peak / 1e6:.1f} MB "
          f"(one (n, m, d) array would be {n * m * 2 * 8 / 1e6:.0f} MB)")
    assert peak <= 16 * 512 * 512 * 2 * 8 + 16 * (n + m) * 2 * 8


# -- Theorem 1: convergence of the Monte Carlo estimate to the closed form ---------------------------


def monte_carlo_errors(path, mixture, oracle, n_zs, reps, n_points, rng):
    """Mean squared error of the Monte Carlo marginal velocity, one row per repetition, one column per n_z.

    The test points are drawn from p_t (by the path's flow from z ~ p(z)) at times in
    [0.1, 0.8], away from t = 1 where the conditional densities are narrow and a few
    samples dominate.
    """
    t = rng.uniform(0.1, 0.8, n_points)
    x1 = mixture.sample(n_points, rng)
    z = (rng.standard_normal(x1.shape), x1) if path.conditions_on_pairs else x1
    x = path.flow(rng.standard_normal(x1.shape), t, z)
    exact = oracle.velocity(x, t)
    mse = np.empty((reps, len(n_zs)))
    for r in range(reps):
        for j, n_z in enumerate(n_zs):
            z_mc = path.sample_z(n_z, mixture.sample(n_z, rng), rng)
            mse[r, j] = np.mean(np.sum((marginal_velocity(path, x, t, z_mc) - exact) ** 2, axis=1))
    return mse


def slope_and_band(n_zs, mse, k=K_SE):
    """Least-squares slope of log RMS against log n_z, and k standard errors of it.

    log RMS_j = log(mean_r mse_rj) / 2; its variance, by the delta method, is
    (SE_j / MSE_j)^2 / 4 with SE_j the standard error of the mean over repetitions; the
    slope is a fixed linear combination of the log RMS, so its variance follows.
    """
    xs = np.log(n_zs)
    mean = mse.mean(axis=0)
    se = mse.std(axis=0, ddof=1) / np.sqrt(mse.shape[0])
    var_log_rms = (se / mean) ** 2 / 4
    c = (xs - xs.mean()) / np.sum((xs - xs.mean()) ** 2)
    slope = np.sum(c * 0.5 * np.log(mean))
    return slope, k * np.sqrt(np.sum(c**2 * var_log_rms))


N_ZS = np.array([256, 512, 1024, 2048, 4096, 8192])  # from 256: past the few-effective-samples regime


@pytest.mark.parametrize("path", [ConicalGaussianPath(), LinearInterpolationPath(0.3)], ids=repr)
def test_monte_carlo_marginal_velocity_converges_at_rate_one_over_sqrt_n(path):
    rng = np.random.default_rng(1)
    mixture = dataset_mixture("cross")
    oracle = GaussianMixtureOracle(mixture, path)
    mse = monte_carlo_errors(path, mixture, oracle, N_ZS, reps=16, n_points=16, rng=rng)
    slope, band = slope_and_band(N_ZS, mse)
    assert band < 0.2, band  # the test has power: the band is narrow
    assert abs(slope + 0.5) <= band, (slope, band)
    # negative control: z sampled from a slightly wrong data distribution converges to the wrong
    # field, the error stalls at the bias, and the measured slope leaves the band
    wrong = GaussianMixture(mixture.weights, 1.25 * mixture.means, mixture.covs)
    rng = np.random.default_rng(1)
    mse_wrong = monte_carlo_errors(path, wrong, oracle, N_ZS, reps=16, n_points=16, rng=rng)
    slope_wrong, band_wrong = slope_and_band(N_ZS, mse_wrong)
    assert abs(slope_wrong + 0.5) > band_wrong, (slope_wrong, band_wrong)


# -- the two lecture paths give the same marginal field (sigma = 0) ---------------------------------


@given(seeds, st.integers(1, 3), st.integers(1, 3), st.integers(1, 6), st.floats(0.0, 1.0))
def test_the_two_lecture_paths_have_the_same_gaussian_mixture_marginal(seed, d, k, n, t):
    rng = np.random.default_rng(seed)
    A = 0.5 * rng.standard_normal((k, d, d))
    mixture = GaussianMixture(np.full(k, 1.0 / k), 2 * rng.standard_normal((k, d)), A @ A.transpose(0, 2, 1) + 0.2 * np.eye(d))
    x = 2 * rng.standard_normal((n, d))
    linear, conical = GaussianMixtureOracle(mixture, LinearInterpolationPath(0.0)), GaussianMixtureOracle(mixture, ConicalGaussianPath())
    np.testing.assert_allclose(linear.velocity(x, t), conical.velocity(x, t), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(linear.logpdf(x, t), conical.logpdf(x, t), rtol=1e-13, atol=1e-13)
    # negative control: the linear path with sigma > 0 has another marginal (for 0 < t < 1)
    if 0.05 < t < 0.95:
        blurred = GaussianMixtureOracle(mixture, LinearInterpolationPath(0.3))
        assert not np.allclose(blurred.velocity(x, t), conical.velocity(x, t), rtol=1e-6, atol=1e-6)


@given(seeds, dims, st.integers(1, 8), st.floats(0.0, 0.99))
def test_for_empirical_data_the_linear_paths_exact_marginal_is_the_conical_monte_carlo_one(seed, d, m, t):
    # EmpiricalOracle integrates x0 out of the linear path (sigma = 0, z = (x0, x1));
    # the conical path's eq. (10) with z = the data points is exact for empirical data.
    rng = np.random.default_rng(seed)
    data, x = 2 * rng.standard_normal((m, d)), 2 * rng.standard_normal((5, d))
    oracle, conical = EmpiricalOracle(data), ConicalGaussianPath()
    np.testing.assert_allclose(marginal_velocity(conical, x, t, data), oracle.velocity(x, t), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(marginal_logpdf(conical, x, t, data), oracle.logpdf(x, t), rtol=1e-12, atol=1e-12)
    # negative control: the linear path with sigma = 0.3 and x0 integrated out is another field
    if t > 0.05:
        assert not np.allclose(EmpiricalOracle(data, 0.3).velocity(x, t), oracle.velocity(x, t), atol=1e-6)


def test_linear_paths_marginal_tends_to_the_conical_one_as_sigma_goes_to_zero(rng):
    # The Monte Carlo estimate over pairs needs sigma > 0 (a density); it converges to the
    # sigma-oracle (rate test above), and the sigma-oracle tends to the sigma = 0 (= conical)
    # one like sigma^2: the gap shrinks by 4 each time sigma halves.
    mixture = dataset_mixture("cross")
    x, t = 2 * rng.standard_normal((50, 2)), rng.uniform(0.05, 0.9, 50)
    conical = GaussianMixtureOracle(mixture, ConicalGaussianPath()).velocity(x, t)
    sigmas = np.array([0.04, 0.02, 0.01, 0.005])
    gaps = [np.abs(GaussianMixtureOracle(mixture, LinearInterpolationPath(s)).velocity(x, t) - conical).max() for s in sigmas]
    orders = np.log2(np.array(gaps[:-1]) / np.array(gaps[1:]))
    np.testing.assert_allclose(orders, 2.0, atol=0.05)
    # negative control: the gap does not vanish at sigma = 0.005 (the two are different fields for sigma > 0)
    assert gaps[-1] > 1e-6


def orthogonality(u, rng, data, n=40000):
    """Sample means and standard errors of (x1 - x0 - u(x_t, t)) g(x_t, t) under the linear path, sigma = 0.

    The conditional expectation E[x1 - x0 | x_t] is the only field whose residual is
    orthogonal to every function g of (x_t, t); we test a few g.
    """
    path = LinearInterpolationPath(0.0)
    t = rng.uniform(0.0, 0.9, n)
    x0, x1 = path.sample_z(n, data, rng)
    x_t = path.sample_x(t, (x0, x1), rng)
    r = (x1 - x0) - u(x_t, t)  # (n, d)
    g = np.stack([np.ones(n), x_t[:, 0], np.tanh(x_t).sum(1), t, t * x_t[:, -1]], axis=1)  # (n, 5)
    prods = (r[:, :, None] * g[:, None, :]).reshape(n, -1)
    return prods.mean(0), prods.std(0, ddof=1) / np.sqrt(n)


def test_the_closed_form_field_is_the_conditional_mean_of_x1_minus_x0_under_linear_pairs(rng):
    # The linear path with sigma = 0 has no density, but Theorem 1's u(x, t) = E[x1 - x0 | x_t = x]
    # can be tested on samples of pairs: its residual is orthogonal to functions of (x_t, t).
    data = 2 * rng.standard_normal((6, 2))
    oracle = EmpiricalOracle(data)  # = the conical path's exact marginal, see the previous test
    mean, se = orthogonality(oracle.velocity, rng, data)
    assert np.all(np.abs(mean) <= K_SE * se), (mean / se)
    # negative control: the sigma = 0.5 field is not the conditional mean
    mean_bad, se_bad = orthogonality(EmpiricalOracle(data, 0.5).velocity, rng, data)
    assert np.any(np.abs(mean_bad) > K_SE * se_bad)


# -- bad input ---------------------------------------------------------------------------------------

X = np.zeros((2, 2))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: marginal_velocity("conical", X, 0.5, X), TypeError, "path must be a reference.paths.GaussianPath"),
        (lambda: marginal_velocity(ConicalGaussianPath(), X, 0.5, np.zeros((3, 3))), ValueError, "dimension d = 2"),
        (lambda: marginal_velocity(ConicalGaussianPath(), X, 0.5, X, chunk_size=0), ValueError, "chunk_size must be an integer >= 1"),
        (lambda: marginal_velocity(ConicalGaussianPath(), X, 0.5, X, chunk_size=2.5), TypeError, "chunk_size must be an integer"),
        (lambda: marginal_velocity(ConicalGaussianPath(), X, 1.0, X), ValueError, "sigma_t = 0 at t = 1"),
        (lambda: marginal_logpdf(LinearInterpolationPath(0.0), X, 0.5, (X, X)), ValueError, "Dirac delta"),
        (lambda: marginal_logpdf(LinearInterpolationPath(0.1), X, 0.5, X), TypeError, r"tuple \(x0, x1\)"),
        (lambda: posterior_weights(ConicalGaussianPath(), X, np.zeros(3), X), ValueError, r"t must be a float or an array of shape \(2,\)"),
        (lambda: posterior_weights(VariancePreservingPath(), X, 1.0, X), ValueError, "sigma_t = 0 at t = 1"),
        (lambda: marginal_velocity(OptimalTransportPath(0.1), np.full((2, 2), np.inf), 0.5, X), ValueError, "non-finite"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("t", [0.0, 1e-310, 1e-200, 1e-120, 1e-40])
def test_the_fast_path_is_finite_and_right_for_tiny_times(t):
    # at t -> 0 the conical path's mean t x1 vanishes: the marginal is N(0, (1 - t)^2 I) and
    # u = E[x1 | x, t] - x ... with uniform weights, u = mean(x1) - x (here t x1 underflows)
    rng = np.random.default_rng(0)
    x, z = rng.normal(size=(20, 2)), rng.normal(size=(30, 2))
    path = ConicalGaussianPath()
    u = marginal_velocity(path, x, t, z)
    np.testing.assert_allclose(u, (z.mean(axis=0) - x) / (1 - t), rtol=1e-12, atol=1e-12)
    expected = -np.log(2 * np.pi) - 2 * np.log(1 - t) - 0.5 * np.sum(x**2, axis=1) / (1 - t) ** 2
    np.testing.assert_allclose(marginal_logpdf(path, x, t, z), expected, rtol=1e-12)
    # negative control: at t = 0.3 the weights are no longer uniform
    assert not np.allclose(marginal_velocity(path, x, 0.3, z), (z.mean(axis=0) - x) / 0.7, rtol=1e-6)

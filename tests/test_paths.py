"""``reference.paths``: conditional paths p(x | t, z), their velocities, boundary conditions, singular ends."""

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import elementwise_grad
from hypothesis import given, strategies as st
from scipy import stats

from reference.continuity import continuity_terms
from reference.paths import (
    ConicalGaussianPath,
    GaussianPath,
    LinearInterpolationPath,
    OptimalTransportPath,
    VariancePreservingPath,
    conical_velocity,
)
from tests.strategies import dims, path_cases, seeds, times, times_inside

K_SE = 5.0  # statistical tolerances below are K_SE standard errors
REL = 1e-9  # continuity residuals below are relative to the size of their three terms


def relative_residual(log_p, u, x, t):
    """|r| / (1 + |d/dt log p| + |u . grad log p| + |div u|), point by point."""
    terms = continuity_terms(log_p, u, x, t)
    return np.abs(sum(terms)) / (1.0 + sum(np.abs(term) for term in terms))


def conditional_pair(path, z, velocity=None):
    velocity = path.velocity if velocity is None else velocity
    return (lambda y, s: path.logpdf(y, s, z)), (lambda y, s: velocity(y, s, z))


# -- the continuity equation (5) ---------------------------------------------------------------


@given(path_cases())
def test_every_path_solves_the_continuity_equation_with_its_velocity(case):
    path, x, t, z = case
    log_p, u = conditional_pair(path, z)
    assert np.all(relative_residual(log_p, u, x, t) <= REL)
    # negative control: the velocity with the other sign does not
    _, minus_u = conditional_pair(path, z, lambda y, s, z: -path.velocity(y, s, z))
    assert np.max(relative_residual(log_p, minus_u, x, t)) > 1e-3


@given(path_cases(path=ConicalGaussianPath()))
def test_conical_sign_of_the_summary_table_is_right_and_the_text_sign_is_wrong(case):
    # the lecture's text (Example 2) prints (x - x1)/(1 - t), its summary table (x1 - x)/(1 - t)
    path, x, t, z = case
    log_p = lambda y, s: path.logpdf(y, s, z)  # noqa: E731
    table = lambda y, s: conical_velocity(y, s, z)  # noqa: E731
    text = lambda y, s: (y - z) / (1.0 - anp.reshape(s, (-1, 1)))  # noqa: E731
    assert np.all(relative_residual(log_p, table, x, t) <= REL)
    assert np.max(relative_residual(log_p, text, x, t)) > 1e-3


def random_schedule_path(c):
    """A GaussianPath with non-trivial schedules: alpha = t^2 + c t, beta = cos(t), sigma = 1.2 - t/2 + c sin t."""
    return GaussianPath(
        alpha=lambda t: t**2 + c * t,
        beta=lambda t: anp.cos(t),
        sigma=lambda t: 1.2 - 0.5 * t + c * anp.sin(t),
        name="custom",
    )


@given(st.floats(-0.2, 0.2), st.integers(1, 5), dims, times, seeds)
def test_a_custom_gaussian_path_solves_the_continuity_equation(c, n, d, t, seed):
    path = random_schedule_path(c)
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, d)), rng.standard_normal((n, d)))
    x = path.flow(rng.standard_normal((n, d)), t, z)
    log_p, u = conditional_pair(path, z)
    assert np.all(relative_residual(log_p, u, x, t) <= REL)
    # negative control: dropping the (sigma_t'/sigma_t)(x - mu_t) term breaks it
    (alpha, beta, _), (da, db, _) = path.schedules(np.full(n, t))
    translation = lambda y, s: da[:, None] * z[1] + db[:, None] * z[0] + 0.0 * y  # noqa: E731
    assert np.max(relative_residual(log_p, translation, x, t)) > 1e-3


@given(path_cases(t=times))
def test_mean_and_std_are_the_lecture_formulas(case):
    path, _, t, z = case
    x0, x1 = z if path.conditions_on_pairs else (None, z)
    if isinstance(path, ConicalGaussianPath):
        expected_mean, expected_std = t[:, None] * x1, 1 - t
    elif isinstance(path, LinearInterpolationPath):
        expected_mean, expected_std = (1 - t[:, None]) * x0 + t[:, None] * x1, np.full_like(t, path.sigma_value)
    elif isinstance(path, OptimalTransportPath):
        expected_mean, expected_std = t[:, None] * x1, 1 - (1 - path.sigma_min) * t
    else:  # variance preserving: a(s) = exp(-T(s)/2) at s = 1 - t, T(s) = beta_min s + (beta_max - beta_min) s^2/2
        s = 1 - t
        a = np.exp(-(path.beta_min * s + (path.beta_max - path.beta_min) * s**2 / 2) / 2)
        expected_mean, expected_std = a[:, None] * x1, np.sqrt(1 - a**2)
    np.testing.assert_allclose(path.mean(t, z), expected_mean, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(path.std(t), expected_std, rtol=1e-14, atol=1e-14)
    assert isinstance(path.std(float(t[0])), float)
    # negative control: the mean at 1 - t is another mean (unless t = 1/2 or z makes it coincide)
    if np.all(np.abs(t - 0.5) > 0.05):
        assert not np.allclose(path.mean(1 - t, z), expected_mean, atol=1e-6)


# -- the autograd velocity against the hand-written ones ------------------------------------------


@given(path_cases(path=ConicalGaussianPath()))
def test_autograd_velocity_equals_the_conical_formula(case):
    path, x, t, z = case
    np.testing.assert_allclose(GaussianPath.velocity(path, x, t, z), (z - x) / (1 - t[:, None]), rtol=1e-12, atol=1e-12)
    assert not np.allclose(GaussianPath.velocity(path, x, t, z), (x - z) / (1 - t[:, None]), rtol=1e-6, atol=1e-6)


@given(st.floats(0.0, 1.0), path_cases(path=LinearInterpolationPath(0.0), t=times))
def test_autograd_velocity_equals_x1_minus_x0_for_the_linear_path(sigma, case):
    _, x, t, z = case
    path = LinearInterpolationPath(sigma)
    x0, x1 = z
    np.testing.assert_allclose(GaussianPath.velocity(path, x, t, z), x1 - x0, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(path.velocity(x, t, z), x1 - x0, rtol=0, atol=0)
    assert not np.allclose(GaussianPath.velocity(path, x, t, z), x0 - x1, atol=1e-6)


@given(st.floats(1e-4, 0.5), path_cases(path=OptimalTransportPath(0.1), t=times))
def test_optimal_transport_path_velocity_is_lipman_eq_21(sigma_min, case):
    _, x, t, x1 = case
    path = OptimalTransportPath(sigma_min)
    expected = (x1 - (1 - sigma_min) * x) / (1 - (1 - sigma_min) * t[:, None])
    np.testing.assert_allclose(path.velocity(x, t, x1), expected, rtol=1e-12, atol=1e-12)
    wrong = (x1 - x) / (1 - (1 - sigma_min) * t[:, None])  # sigma_min dropped from the numerator
    assert not np.allclose(path.velocity(x, t, x1), wrong, rtol=1e-9, atol=1e-9)


@given(st.floats(0.0, 1.0), st.floats(1.0, 20.0), path_cases(path=VariancePreservingPath()))
def test_variance_preserving_path_matches_its_closed_form(beta_min, beta_max, case):
    _, x, t, x1 = case
    path = VariancePreservingPath(beta_min, beta_max)
    s = 1.0 - t
    T = beta_min * s + 0.5 * (beta_max - beta_min) * s**2
    a = np.exp(-T / 2)
    (alpha, beta, sigma), _ = path.schedules(t)
    np.testing.assert_allclose(alpha, a, rtol=1e-14)
    np.testing.assert_allclose(alpha**2 + sigma**2, 1.0, rtol=1e-14)  # variance preserving
    assert np.all(beta == 0)
    rate = beta_min + s * (beta_max - beta_min)  # beta(s) = d/ds T(s)
    expected = 0.5 * rate[:, None] * a[:, None] * (x1 - a[:, None] * x) / (1 - a[:, None] ** 2)
    np.testing.assert_allclose(path.velocity(x, t, x1), expected, rtol=1e-10, atol=1e-12)
    assert not np.allclose(path.velocity(x, t, x1), -expected, rtol=1e-6)


# -- the velocity is the time derivative of the conditional flow ----------------------------------


@given(path_cases(t=times_inside), seeds)
def test_velocity_is_the_time_derivative_of_the_conditional_flow(case, seed):
    path, _, t, z = case
    n, d = (z[1] if path.conditions_on_pairs else z).shape
    eps = np.random.default_rng(seed).standard_normal((n, d))
    x_t = path.flow(eps, t, z)
    # d/dt psi_t(eps), column by column, by autograd, and by central differences
    by_autograd = np.stack([elementwise_grad(lambda s: path.flow(eps, s, z)[:, j])(t) for j in range(d)], axis=1)
    h = 1e-6
    by_fd = (path.flow(eps, t + h, z) - path.flow(eps, t - h, z)) / (2 * h)
    u = path.velocity(x_t, t, z)
    np.testing.assert_allclose(u, by_autograd, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(u, by_fd, rtol=1e-6, atol=1e-6)
    # negative control: the velocity at the wrong point (eps instead of x_t) differs
    if not isinstance(path, LinearInterpolationPath):
        assert not np.allclose(path.velocity(eps, t, z), by_autograd, rtol=1e-6, atol=1e-6)


@given(dims, st.integers(1, 6), times, seeds)
def test_linear_path_with_sigma_zero_is_the_deterministic_interpolant(d, n, t, seed):
    rng = np.random.default_rng(seed)
    x0, x1 = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    path = LinearInterpolationPath(0.0)
    x_t = path.sample_x(t, (x0, x1), rng)
    np.testing.assert_array_equal(x_t, (1 - t) * x0 + t * x1)
    h = 1e-6
    t_lo, t_hi = max(t - h, 0.0), min(t + h, 1.0)
    dxdt = (path.sample_x(t_hi, (x0, x1), rng) - path.sample_x(t_lo, (x0, x1), rng)) / (t_hi - t_lo)
    np.testing.assert_allclose(path.velocity(x_t, t, (x0, x1)), dxdt, rtol=1e-6, atol=1e-6)
    assert not np.allclose(x0 - x1, dxdt, atol=1e-6)


# -- boundary conditions on samples ------------------------------------------------------------


def assert_standard_normal(x, k=K_SE):
    """Mean, second moments and the CDF of a projection of ``x`` match N(0, I) within k standard errors."""
    n, d = x.shape
    assert np.all(np.abs(x.mean(axis=0)) <= k / np.sqrt(n))
    prods = x[:, :, None] * x[:, None, :]  # (n, d, d); E = I, Var = 2 on the diagonal, 1 off it
    se = prods.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(prods.mean(axis=0) - np.eye(d)) <= k * se)
    direction = np.ones(d) / np.sqrt(d)
    proj = x @ direction
    for q in (-1.5, -0.5, 0.0, 0.7, 2.0):
        p = stats.norm.cdf(q)
        assert abs(np.mean(proj <= q) - p) <= k * np.sqrt(p * (1 - p) / n)


def test_the_standard_normal_check_can_fail(rng):
    # negative control for the checker itself: N(0, 1.1^2 I) and N(0.1, I) are rejected
    n = 20000
    for bad in (1.1 * rng.standard_normal((n, 2)), rng.standard_normal((n, 2)) + 0.1):
        with pytest.raises(AssertionError):
            assert_standard_normal(bad)


def data_set(rng, m=7, d=2):
    return 3.0 + rng.standard_normal((m, d))  # away from 0, so p_data differs clearly from p0


@pytest.mark.parametrize("path", [ConicalGaussianPath(), LinearInterpolationPath(0.0), OptimalTransportPath(0.05)])
def test_marginal_of_the_path_at_t0_is_p0(path, rng):
    data = data_set(rng)
    n = 20000
    z = path.sample_z(n, data, rng)
    assert_standard_normal(path.sample_x(0.0, z, rng))
    # negative control: a little later the samples have left p0
    with pytest.raises(AssertionError):
        assert_standard_normal(path.sample_x(0.1, z, rng))


@pytest.mark.parametrize("path", [ConicalGaussianPath(), LinearInterpolationPath(0.0)])
def test_marginal_of_the_path_at_t1_is_the_data_exactly(path, rng):
    data = data_set(rng)
    z = path.sample_z(5000, data, rng)
    x1 = z[1] if path.conditions_on_pairs else z
    x = path.sample_x(1.0, z, rng)
    np.testing.assert_array_equal(x, x1)  # a Dirac at x1: exact
    # every sample is a data point, and every data point is drawn about m / n of the time
    index = np.argmin(((x[:, None, :] - data[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(x, data[index])
    counts = np.bincount(index, minlength=len(data))
    p = 1.0 / len(data)
    assert np.all(np.abs(counts / len(x) - p) <= K_SE * np.sqrt(p * (1 - p) / len(x)))
    # negative control: at t = 1 - 1e-3 the conical samples are not data points
    if not path.conditions_on_pairs:
        assert not np.array_equal(path.sample_x(1.0 - 1e-3, z, rng), x1)


def test_optimal_transport_path_ends_at_a_gaussian_of_width_sigma_min(rng):
    path = OptimalTransportPath(0.05)
    x1 = rng.standard_normal((20000, 2))
    assert_standard_normal((path.sample_x(1.0, x1, rng) - x1) / 0.05)
    with pytest.raises(AssertionError):
        assert_standard_normal((path.sample_x(1.0, x1, rng) - x1) / 0.06)


def test_variance_preserving_path_starts_near_p0_not_at_it():
    path = VariancePreservingPath(0.1, 20.0)
    (alpha, _, sigma), _ = path.schedules(np.array([0.0, 1.0]))
    np.testing.assert_allclose(alpha, [np.exp(-0.5 * (0.1 + 0.5 * 19.9)), 1.0], rtol=1e-14)
    np.testing.assert_allclose(sigma, [np.sqrt(1 - np.exp(-(0.1 + 0.5 * 19.9))), 0.0], rtol=1e-14, atol=0)
    assert 6e-3 < alpha[0] < 7e-3  # documented: close to, not exactly, N(0, I) at t = 0


def test_sample_z_resamples_data_and_draws_x0_from_p0(rng):
    data = data_set(rng, m=5, d=3)
    x0, x1 = LinearInterpolationPath(0.0).sample_z(20000, data, rng)
    assert x0.shape == x1.shape == (20000, 3)
    assert all(any(np.array_equal(row, dat) for dat in data) for row in x1[:50])
    assert_standard_normal(x0)
    x1_only = ConicalGaussianPath().sample_z(4, data, rng)
    assert isinstance(x1_only, np.ndarray) and x1_only.shape == (4, 3)


# -- t = 1 and sigma = 0 -------------------------------------------------------------------------


def test_conical_path_at_t1_refuses_its_density_and_velocity_naming_t(rng):
    path = ConicalGaussianPath()
    x1 = rng.standard_normal((3, 2))
    x = rng.standard_normal((3, 2))
    for call in (lambda: path.velocity(x, 1.0, x1), lambda: path.logpdf(x, 1.0, x1),
                 lambda: GaussianPath.velocity(path, x, np.array([0.5, 1.0, 0.2]), x1)):
        with pytest.raises(ValueError, match=r"sigma_t = 0 at t = 1"):
            call()
    # just before t = 1 everything is finite, and OptimalTransportPath is finite at t = 1
    assert np.all(np.isfinite(path.velocity(x, 1 - 1e-9, x1)))
    ot = OptimalTransportPath(1e-3)
    assert np.all(np.isfinite(ot.velocity(x, 1.0, x1))) and np.all(np.isfinite(ot.logpdf(x, 1.0, x1)))
    log_p, u = conditional_pair(ot, x1)
    x_near = ot.flow(rng.standard_normal((3, 2)), 1.0, x1)
    assert np.all(relative_residual(log_p, u, x_near, 1.0) <= REL)


def test_variance_preserving_path_at_t1_refuses_like_the_conical_path(rng):
    x = rng.standard_normal((2, 2))
    with pytest.raises(ValueError, match=r"sigma_t = 0 at t = 1"):
        VariancePreservingPath().velocity(x, 1.0, x)


def test_linear_path_with_sigma_zero_has_no_density_but_a_velocity(rng):
    z = (rng.standard_normal((3, 2)), rng.standard_normal((3, 2)))
    path = LinearInterpolationPath(0.0)
    with pytest.raises(ValueError, match=r"Dirac delta .* has no density"):
        path.logpdf(z[0], 0.5, z)
    np.testing.assert_array_equal(path.velocity(z[0], 0.5, z), z[1] - z[0])
    assert np.all(np.isfinite(LinearInterpolationPath(0.1).logpdf(z[0], 0.5, z)))


def test_logpdf_equals_scipy(rng):
    x, x1 = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    t = np.array([0.0, 0.3, 0.6, 0.9])
    expected = [stats.multivariate_normal(t[i] * x1[i], (1 - t[i]) ** 2 * np.eye(3)).logpdf(x[i]) for i in range(4)]
    np.testing.assert_allclose(ConicalGaussianPath().logpdf(x, t, x1), expected, rtol=1e-12)
    # negative control: the variance (1 - t) instead of (1 - t)^2 is told apart
    wrong = [stats.multivariate_normal(t[i] * x1[i], (1 - t[i]) * np.eye(3)).logpdf(x[i]) for i in range(1, 4)]
    assert not np.allclose(ConicalGaussianPath().logpdf(x, t, x1)[1:], wrong)


# -- bad input -----------------------------------------------------------------------------------

X = np.zeros((2, 2))
PAIR = (np.zeros((2, 2)), np.ones((2, 2)))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: LinearInterpolationPath(-0.1), ValueError, "sigma must be >= 0"),
        (lambda: LinearInterpolationPath(np.nan), ValueError, "sigma must be finite"),
        (lambda: LinearInterpolationPath("0.1"), TypeError, "sigma must be a real number"),
        (lambda: OptimalTransportPath(1.0), ValueError, r"sigma_min must be in \[0, 1\)"),
        (lambda: VariancePreservingPath(2.0, 1.0), ValueError, "beta_max must be >= beta_min"),
        (lambda: GaussianPath(alpha=1.0, sigma=lambda t: t), TypeError, "alpha must be callable"),
        (lambda: LinearInterpolationPath(0.1).velocity(X, 0.5, np.zeros((2, 2))), TypeError, r"tuple \(x0, x1\)"),
        (lambda: ConicalGaussianPath().velocity(X, 0.5, PAIR), TypeError, r"array of x1"),
        (lambda: LinearInterpolationPath(0.1).logpdf(X, 0.5, (np.zeros((2, 2)), np.zeros((3, 2)))), ValueError, "same shape"),
        (lambda: ConicalGaussianPath().logpdf(np.zeros((3, 2)), 0.5, X), ValueError, "same number of rows"),
        (lambda: ConicalGaussianPath().logpdf(np.zeros((2, 3)), 0.5, X), ValueError, "dimension d = 2"),
        (lambda: ConicalGaussianPath().logpdf(X, 1.5, X), ValueError, "t must be <= 1"),
        (lambda: ConicalGaussianPath().logpdf(X, -0.1, X), ValueError, "t must be >= 0"),
        (lambda: ConicalGaussianPath().logpdf(X, np.zeros(3), X), ValueError, r"t must be a float or an array of shape \(2,\)"),
        (lambda: ConicalGaussianPath().velocity(X, 0.5, np.full((2, 2), np.nan)), ValueError, "non-finite"),
        (lambda: ConicalGaussianPath().sample_x(0.5, X, rng=0), TypeError, "rng must be a numpy.random.Generator"),
        (lambda: ConicalGaussianPath().sample_z(0, X, np.random.default_rng(0)), ValueError, "n must be an integer >= 1"),
        (lambda: ConicalGaussianPath().sample_z(3, np.zeros(4), np.random.default_rng(0)), ValueError, r"data must have shape \(n, d\)"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("path", [LinearInterpolationPath(), LinearInterpolationPath(0.3), ConicalGaussianPath(),
                                  OptimalTransportPath(1e-2), OptimalTransportPath(0.5)], ids=repr)
def test_the_slopes_of_affine_schedules_are_autograds_derivatives(path):
    import copy

    t = np.linspace(0.0, 1.0, 33)
    by_autograd = copy.copy(path)
    by_autograd._slopes = None  # the base class's autograd derivatives of the same schedules
    for mine, theirs in zip(path.schedules(t)[1], by_autograd.schedules(t)[1]):
        np.testing.assert_array_equal(mine, theirs)
    # negative control: a slope of the wrong sign is seen
    wrong = copy.copy(path)
    wrong._slopes = tuple(-s for s in path._slopes)
    assert not all(np.array_equal(a, b) for a, b in zip(wrong.schedules(t)[1], by_autograd.schedules(t)[1]))

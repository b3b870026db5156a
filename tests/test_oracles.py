"""``reference.oracles``: the closed-form marginal paths and velocities, and the Gaussian-to-Gaussian flow."""

import numpy as np
import pytest
from autograd import elementwise_grad
from hypothesis import given, strategies as st
from scipy import stats
from scipy.linalg import sqrtm

from reference.continuity import continuity_terms
from reference.distributions import GaussianMixture, dataset_mixture, standard_normal_logpdf
from reference.oracles import (
    EmpiricalOracle,
    GaussianMixtureOracle,
    conditional_quadrature,
    gaussian_flow_map,
    path_quadrature,
)
from reference.paths import ConicalGaussianPath, LinearInterpolationPath, OptimalTransportPath
from tests.strategies import dims, gaussian_paths, seeds, times, times_inside

REL = 1e-9


def relative_residual(log_p, u, x, t):
    terms = continuity_terms(log_p, u, x, t)
    return np.abs(sum(terms)) / (1.0 + sum(np.abs(term) for term in terms))


@st.composite
def mixtures(draw, d=None, k_max=3):
    """A Gaussian mixture built from a seed: well-conditioned covariances, means in a few units."""
    rng = np.random.default_rng(draw(seeds))
    d = draw(dims) if d is None else d
    k = draw(st.integers(1, k_max))
    w = rng.uniform(0.3, 1.0, k)
    A = 0.6 * rng.standard_normal((k, d, d))
    return GaussianMixture(w / w.sum(), 2.0 * rng.standard_normal((k, d)), A @ A.transpose(0, 2, 1) + 0.1 * np.eye(d))


def points_for(mixture, rng, n=5):
    return 2.0 * rng.standard_normal((n, mixture.dim))


# -- continuity --------------------------------------------------------------------------------


@given(mixtures(), gaussian_paths(), seeds, times_inside)
def test_gaussian_mixture_oracle_solves_the_continuity_equation(mixture, path, seed, t):
    rng = np.random.default_rng(seed)
    oracle = GaussianMixtureOracle(mixture, path)
    x = points_for(mixture, rng)
    assert np.all(relative_residual(oracle.logpdf, oracle.velocity, x, t) <= REL)
    # negative control: an extra expansion term 0.5 x breaks it
    wrong = lambda y, s: oracle.velocity(y, s) + 0.5 * y  # noqa: E731
    assert np.max(relative_residual(oracle.logpdf, wrong, x, t)) > 1e-3


@given(mixtures(), seeds)
def test_lecture_oracle_at_both_ends_of_the_conical_path(mixture, seed):
    oracle = GaussianMixtureOracle(mixture)
    x = points_for(mixture, np.random.default_rng(seed), n=6)
    # t = 0: p0 = N(0, I) and u = E[x1] - x; t = 1: the data and u = x
    np.testing.assert_allclose(oracle.logpdf(x, 0.0), standard_normal_logpdf(x), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(oracle.velocity(x, 0.0), mixture.mean()[None] - x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(oracle.logpdf(x, 1.0), mixture.logpdf(x), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(oracle.velocity(x, 1.0), x, rtol=1e-12, atol=1e-12)
    # negative control: at t = 0.1 the path is neither
    assert not np.allclose(oracle.logpdf(x, 0.1), standard_normal_logpdf(x), atol=1e-6)


def test_gaussian_mixture_oracle_at_the_ends_in_two_dimensions():
    mixture = dataset_mixture("cross")
    oracle = GaussianMixtureOracle(mixture, LinearInterpolationPath(0.0))
    x = np.array([[0.3, -1.0], [2.0, 0.1], [-4.0, 3.0]])
    np.testing.assert_allclose(oracle.logpdf(x, 0.0), standard_normal_logpdf(x), rtol=1e-13)
    np.testing.assert_allclose(oracle.logpdf(x, 1e-12), standard_normal_logpdf(x), rtol=1e-10)  # t -> 0
    np.testing.assert_allclose(oracle.logpdf(x, 1.0), mixture.logpdf(x), rtol=1e-13)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(oracle.logpdf(x, 0.9), mixture.logpdf(x), rtol=1e-3)


@given(dims, st.integers(1, 6), st.floats(0.0, 0.3), seeds, st.floats(0.0, 0.99))
def test_empirical_oracle_solves_the_continuity_equation(d, m, sigma, seed, t):
    rng = np.random.default_rng(seed)
    oracle = EmpiricalOracle(2 * rng.standard_normal((m, d)), sigma)
    x = 2 * rng.standard_normal((4, d))
    assert np.all(relative_residual(oracle.logpdf, oracle.velocity, x, t) <= REL)
    wrong = lambda y, s: -oracle.velocity(y, s)  # noqa: E731
    assert np.max(relative_residual(oracle.logpdf, wrong, x, t)) > 1e-3


def test_empirical_oracle_starts_at_p0_and_refuses_t1_with_sigma_zero(rng):
    data = rng.standard_normal((4, 2))
    x = rng.standard_normal((3, 2))
    np.testing.assert_allclose(EmpiricalOracle(data).logpdf(x, 0.0), standard_normal_logpdf(x), rtol=1e-13)
    with pytest.raises(ValueError, match="t = 1 with sigma = 0"):
        EmpiricalOracle(data).velocity(x, 1.0)
    # with sigma > 0 the end is the data blurred by N(0, sigma^2 I)
    expected = np.log(np.mean([stats.multivariate_normal(y, 0.2**2 * np.eye(2)).pdf(x) for y in data], axis=0))
    np.testing.assert_allclose(EmpiricalOracle(data, 0.2).logpdf(x, 1.0), expected, rtol=1e-12)


@given(seeds)
def test_empirical_field_ends_on_the_data_points(seed):
    # the memorising field: near t = 1 the velocity (y_i - x)/(1 - t) points to the nearest weighted data point
    rng = np.random.default_rng(seed)
    data = 3 * rng.standard_normal((5, 2))
    i = rng.integers(5)
    t = 1 - 1e-4
    x = t * data[i] + (1 - t) * 0.5 * rng.standard_normal((1, 2))  # on the i-th conditional path
    u = EmpiricalOracle(data).velocity(x, t)
    np.testing.assert_allclose(x + (1 - t) * u, data[i : i + 1], atol=1e-9)


# -- Gaussian to Gaussian ---------------------------------------------------------------------------


@st.composite
def gaussians(draw):
    rng = np.random.default_rng(draw(seeds))
    d = draw(dims)
    A = rng.standard_normal((d, d))
    return rng.standard_normal(d), A @ A.T + 0.2 * np.eye(d)


def affine_part(f, d):
    """``(b, A)`` of an affine map ``f(x) = b + x A^T`` evaluated on the basis vectors."""
    b = f(np.zeros((1, d)))[0]
    return b, (f(np.eye(d)) - b).T


@given(gaussians(), times)
def test_gaussian_flow_map_carries_p0_to_the_path_marginal(gauss, t):
    m, S = gauss
    d = len(m)
    b, A = affine_part(lambda x: gaussian_flow_map(x, t, m, S), d)
    np.testing.assert_allclose(b, t * m, atol=1e-12)
    np.testing.assert_allclose(A @ A.T, (1 - t) ** 2 * np.eye(d) + t**2 * S, rtol=1e-10, atol=1e-10)
    if t == 1.0:
        np.testing.assert_allclose(A, np.real(sqrtm(S)), rtol=1e-8, atol=1e-8)  # the symmetric square root
    # negative control: the straight-line interpolation toward the OT map m + S^{1/2} x0 is not this flow
    straight = (1 - t) * np.eye(d) + t * np.real(sqrtm(S))
    if 0.1 < t < 0.9 and not np.allclose(S, S[0, 0] * np.eye(d), rtol=1e-3):
        assert not np.allclose(straight @ straight.T, A @ A.T, rtol=1e-6, atol=1e-6)


@given(gaussians(), st.sampled_from([None, LinearInterpolationPath(0.4), OptimalTransportPath(0.1)]), seeds)
def test_gaussian_flow_map_is_the_flow_of_the_oracle_velocity(gauss, path, seed):
    m, S = gauss
    rng = np.random.default_rng(seed)
    d = len(m)
    oracle = GaussianMixtureOracle(GaussianMixture([1.0], m[None], S[None]), path)
    x0 = rng.standard_normal((4, d))
    t = rng.uniform(0.0, 0.95, 4)
    x_t = gaussian_flow_map(x0, t, m, S, path)
    dxdt = np.stack([elementwise_grad(lambda s: gaussian_flow_map(x0, s, m, S, path)[:, j])(t) for j in range(d)], axis=1)
    np.testing.assert_allclose(dxdt, oracle.velocity(x_t, t), rtol=1e-9, atol=1e-9)
    # flowing from t to s and back returns the start
    s = rng.uniform(0.0, 0.95, 4)
    back = gaussian_flow_map(gaussian_flow_map(x_t, s, m, S, path, s=t), t, m, S, path, s=s)
    np.testing.assert_allclose(back, x_t, rtol=1e-10, atol=1e-10)
    # negative control: the straight line from x0 to m + S^{1/2} x0 moves with another velocity
    straight_velocity = m[None] + x0 @ np.real(sqrtm(S)).T - x0
    assert not np.allclose(straight_velocity, oracle.velocity(x_t, t), atol=1e-6)


def test_gaussian_flow_map_agrees_with_integrating_the_oracle_velocity(rng):
    from reference.ode import integrate

    m, A = np.array([1.0, -2.0]), rng.standard_normal((2, 2))
    S = A @ A.T + 0.3 * np.eye(2)
    oracle = GaussianMixtureOracle(GaussianMixture([1.0], m[None], S[None]))
    x0 = rng.standard_normal((6, 2))
    by_rk4 = integrate(oracle.velocity, x0, 0.0, 1.0, n_steps=200, method="rk4")
    np.testing.assert_allclose(by_rk4, gaussian_flow_map(x0, 1.0, m, S), rtol=1e-9, atol=1e-9)
    # negative control: the flow of the wrong path (linear, sigma = 0.5) ends elsewhere
    assert not np.allclose(by_rk4, gaussian_flow_map(x0, 1.0, m, S, LinearInterpolationPath(0.5)), atol=1e-3)


# -- quadrature -------------------------------------------------------------------------------------


def test_path_quadrature_reproduces_the_moments_of_the_path():
    mixture = dataset_mixture("cross")
    t, x, w = path_quadrature(GaussianMixtureOracle(mixture), n_t=8, n_x=6)
    assert abs(w.sum() - 1) < 1e-14 and np.all(w > 0)
    # E_t E_{p_t}[x] = E[t] E[x1] = E[x1]/2; E[x x^T] = E[t^2] E[x1 x1^T] + E[(1-t)^2] I = (E[x1 x1^T] + I)/3
    second = mixture.covariance() + np.outer(mixture.mean(), mixture.mean())
    np.testing.assert_allclose(w @ x, mixture.mean() / 2, atol=1e-14)
    np.testing.assert_allclose((w[:, None] * x).T @ x, (second + np.eye(2)) / 3, rtol=1e-13, atol=1e-15)
    # negative control: weights that forget the mixture weights get the moments wrong for unequal weights
    t_u, x_u, w_u = path_quadrature(GaussianMixtureOracle(
        GaussianMixture([0.7, 0.3], mixture.means[:2], mixture.covs[:2])), n_t=8, n_x=6)
    assert not np.allclose(w_u @ x_u, mixture.means[:2].mean(0) / 2, atol=1e-3)


@pytest.mark.parametrize("path", [ConicalGaussianPath(), LinearInterpolationPath(0.0), LinearInterpolationPath(0.5)], ids=repr)
def test_conditional_quadrature_reproduces_the_moments_of_the_path(path):
    mixture = GaussianMixture([0.4, 0.6], np.array([[-1.0], [2.0]]), np.array([0.3, 0.5]))
    t, z, x, w = conditional_quadrature(mixture, path, n_t=6, n_x=5)
    assert abs(w.sum() - 1) < 1e-14
    second = mixture.covariance()[0, 0] + mixture.mean()[0] ** 2
    sigma2 = path.sigma_value**2 if isinstance(path, LinearInterpolationPath) else 0.0
    np.testing.assert_allclose(w @ x[:, 0], mixture.mean()[0] / 2, atol=1e-14)
    np.testing.assert_allclose(w @ x[:, 0] ** 2, (second + 1) / 3 + sigma2, rtol=1e-13)
    u = path.velocity(x, t, z)
    np.testing.assert_allclose(w @ u[:, 0] ** 2, second + 1, rtol=1e-12)  # E||u_cond||^2 = E x1^2 + 1 for both paths


# -- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: GaussianMixtureOracle("8gaussians"), TypeError, r"mixture must be a reference\.distributions\.GaussianMixture, got str"),
        (lambda: GaussianMixtureOracle(dataset_mixture("cross"), path="conical"), TypeError, "path must be"),
        (lambda: GaussianMixtureOracle(dataset_mixture("cross")).velocity(np.zeros((2, 3)), 0.5), ValueError, "dimension d = 2"),
        (lambda: GaussianMixtureOracle(dataset_mixture("cross")).velocity(np.zeros((2, 2)), 1.5), ValueError, "t must be <= 1"),
        (lambda: EmpiricalOracle(np.zeros(3)), ValueError, r"data must have shape \(n, d\)"),
        (lambda: EmpiricalOracle(np.zeros((3, 2)), sigma=-1.0), ValueError, "sigma must be >= 0"),
        (lambda: gaussian_flow_map(np.zeros((2, 2)), 0.5, np.zeros(3), np.eye(2)), ValueError, r"mean must be an array of shape \(2,\) like x.s dimension, got shape \(3,\)"),
        (lambda: gaussian_flow_map(np.zeros((2, 2)), 0.5, np.zeros(2), -np.eye(2)), ValueError, "positive definite"),
        (lambda: path_quadrature(GaussianMixtureOracle(dataset_mixture("cross")), n_t=0), ValueError, "n_t must be"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()

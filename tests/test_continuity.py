"""``reference.continuity``: the continuity equation (5) divided by p_t, evaluated by autograd."""

import warnings

import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, strategies as st

from reference.continuity import continuity_residual, continuity_terms
from tests.strategies import gaussian_to_gaussian, seeds, times

REL_TOL = 1e-8
CLEARLY = 1e3 * REL_TOL  # a negative control must miss the tolerance by three orders of magnitude


def column(t):
    return anp.reshape(t, (-1, 1)) if anp.ndim(t) else t


def gaussian_path(m, s):
    """p_t = N(t m, sigma_t^2 I), sigma_t = 1 - t + t s, and the velocity that generates it.

    The flow x_t = t m + sigma_t x0 carries N(0, I) to p_t; its time derivative
    m + (s - 1) x0, written in x_t, is u(x, t) = m + (s - 1) / sigma_t (x - t m).
    """
    d = m.shape[0]

    def log_p(x, t):
        sigma = 1.0 - t + t * s
        y = x - column(t) * m
        return -0.5 * d * np.log(2 * np.pi) - d * anp.log(sigma) - anp.sum(y**2, axis=1) / (2 * sigma**2)

    def u(x, t):
        sigma = column(1.0 - t + t * s)
        return m + (s - 1.0) / sigma * (x - column(t) * m)

    return log_p, u


def closed_form_terms(m, s, x, t):
    """The three terms by hand: d/dt log p, u . grad log p and div u for the Gaussian path."""
    d = m.shape[0]
    sigma, dsigma = 1.0 - t + t * s, s - 1.0
    y = x - np.reshape(t, (-1, 1)) * m
    sig = np.reshape(sigma, (-1, 1))
    dlogp_dt = -d * dsigma / sigma + y @ m / sigma**2 + np.sum(y**2, axis=1) * dsigma / sigma**3
    u = m + dsigma / sig * y
    transport = np.sum(u * (-y / sig**2), axis=1)
    return dlogp_dt, transport, np.broadcast_to(d * dsigma / sigma, (x.shape[0],))


def relative(terms):
    """|residual| / (sum of the terms' sizes): how well the terms cancel, per point."""
    scale = sum(np.abs(term) for term in terms)
    return np.abs(sum(terms)) / np.where(scale > 0, scale, 1.0)


@st.composite
def gaussian_cases(draw, per_point_time=False, t_strategy=times):
    """``(m, s, x, t)``: a path, 3 to 6 distinct points where p_t has its mass, and times."""
    m, s = draw(gaussian_to_gaussian())
    d = m.shape[0]
    n = draw(st.integers(3, 6))
    t = np.array([draw(t_strategy) for _ in range(n)]) if per_point_time else draw(t_strategy)
    eps = np.random.default_rng(draw(seeds)).standard_normal((n, d))
    x = np.reshape(t, (-1, 1)) * m + np.reshape(1.0 - t + t * s, (-1, 1)) * 1.5 * eps
    return m, s, x, t


@given(gaussian_cases(per_point_time=True))
def test_each_term_equals_its_closed_form(case):
    m, s, x, t = case
    log_p, u = gaussian_path(m, s)
    for got, expected in zip(continuity_terms(log_p, u, x, t), closed_form_terms(m, s, x, t)):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@given(gaussian_cases())
def test_the_residual_vanishes_for_the_gaussian_path_with_its_velocity(case):
    m, s, x, t = case
    log_p, u = gaussian_path(m, s)
    assert np.all(relative(continuity_terms(log_p, u, x, t)) <= REL_TOL)


# away from t = 0 (where sigma_t = 1 hides a missing 1 / sigma_t) and t = 1/2 (where t = 1 - t)
times_apart = st.one_of(st.floats(0.1, 0.4), st.floats(0.6, 1.0))


@given(gaussian_cases(t_strategy=times_apart))
def test_the_residual_of_a_wrong_velocity_is_clearly_not_zero(case):
    m, s, x, t = case
    log_p, u = gaussian_path(m, s)

    def missing_one_over_sigma(y, tau):  # the velocity of the wrong path (sigma_t' x0 in x, not x0)
        return m + (s - 1.0) * (y - column(tau) * m)

    wrong_velocities = {
        "sign flipped": lambda y, tau: -u(y, tau),
        "missing 1 / sigma_t": missing_one_over_sigma,
        "evaluated at 1 - t": lambda y, tau: u(y, 1.0 - tau),
    }
    for name, wrong in wrong_velocities.items():
        assert np.max(relative(continuity_terms(log_p, wrong, x, t))) > CLEARLY, name


@given(gaussian_cases(t_strategy=times_apart))
def test_a_wrong_time_derivative_of_the_density_is_detected(case):
    m, s, x, t = case
    _, u = gaussian_path(m, s)
    d = m.shape[0]

    def log_p_frozen_scale(y, tau):  # the mean moves but the scale is stuck at sigma_0 = 1
        return -0.5 * d * np.log(2 * np.pi) - anp.sum((y - column(tau) * m) ** 2, axis=1) / 2

    assert np.max(relative(continuity_terms(log_p_frozen_scale, u, x, t))) > CLEARLY


@given(gaussian_cases(per_point_time=True))
def test_one_time_per_point_equals_one_point_at_a_time(case):
    m, s, x, t = case
    log_p, u = gaussian_path(m, s)
    together = continuity_residual(log_p, u, x, t)
    alone = [continuity_residual(log_p, u, x[i : i + 1], float(t[i]))[0] for i in range(x.shape[0])]
    np.testing.assert_allclose(together, alone, rtol=1e-12, atol=1e-12)
    # negative control: one shared time is not the same as one time per point
    together_terms = continuity_terms(log_p, u, x, t)[0]
    shared = continuity_terms(log_p, u, x, float(t[0]))[0]
    if np.ptp(t) > 0.05:
        assert not np.allclose(together_terms, shared)


@given(st.integers(2, 5), seeds)
def test_a_rotation_keeps_the_standard_normal_in_place(d, seed):
    # u(x) = J x with J antisymmetric: u . grad log p = -x^T J x = 0 and div u = tr J = 0
    rng = np.random.default_rng(seed)
    A, x = rng.standard_normal((d, d)), rng.standard_normal((4, d))
    J = A - A.T
    log_p = lambda y, t: -0.5 * anp.sum(y**2, axis=1)  # noqa: E731  (stationary: independent of t)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a stationary density or a linear field is not an autograd warning
        residual = continuity_residual(log_p, lambda y, t: y @ J.T, x, 0.3)
    np.testing.assert_allclose(residual, 0.0, atol=1e-12)
    # negative control: a symmetric (stretching) field moves the standard normal (its residual
    # tr S - x^T S x vanishes only on a quadric, which random points miss)
    S = A + A.T + np.eye(d)
    assert np.max(np.abs(continuity_residual(log_p, lambda y, t: y @ S.T, x, 0.3))) > 1e-6


def test_a_constant_velocity_transports_the_density():
    # p_t = N(t m, I) is carried by the constant velocity m (divergence 0, no autograd warning)
    m = np.array([1.0, -2.0])
    log_p = lambda x, t: -0.5 * anp.sum((x - column(t) * m) ** 2, axis=1)  # noqa: E731
    x = np.array([[0.3, 0.1], [-1.0, 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(continuity_residual(log_p, lambda y, t: 0.0 * y + m, x, 0.4), 0.0, atol=1e-14)
    assert np.max(np.abs(continuity_residual(log_p, lambda y, t: 0.0 * y - m, x, 0.4))) > 1.0


@given(gaussian_to_gaussian(d=2), seeds)
def test_the_terms_match_finite_differences(ms, seed):
    m, s = ms
    log_p, u = gaussian_path(m, s)
    rng = np.random.default_rng(seed)
    x, t, h = rng.normal(size=(3, 2)), rng.uniform(0.1, 0.9, 3), 1e-5
    dlogp_dt, transport, div_u = continuity_terms(log_p, u, x, t)
    np.testing.assert_allclose(dlogp_dt, (log_p(x, t + h) - log_p(x, t - h)) / (2 * h), rtol=1e-6, atol=1e-6)
    e = np.eye(2) * h
    grad = np.stack([(log_p(x + e[j], t) - log_p(x - e[j], t)) / (2 * h) for j in range(2)], axis=1)
    np.testing.assert_allclose(transport, np.sum(u(x, t) * grad, axis=1), rtol=1e-6, atol=1e-6)
    fd_div = sum((u(x + e[j], t)[:, j] - u(x - e[j], t)[:, j]) / (2 * h) for j in range(2))
    np.testing.assert_allclose(div_u, fd_div, rtol=1e-6, atol=1e-6)


def _log_p(x, t):
    return -0.5 * anp.sum(x**2, axis=1)


def _u(x, t):
    return -x


X = np.ones((3, 2))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: continuity_residual("log_p", _u, X, 0.5), TypeError, "log_p must be callable"),
        (lambda: continuity_residual(_log_p, None, X, 0.5), TypeError, "u must be callable"),
        (lambda: continuity_residual(lambda x, t: x, _u, X, 0.5), ValueError, r"log_p\(x, t\) must return shape \(3,\)"),
        (lambda: continuity_residual(_log_p, lambda x, t: x[:, :1], X, 0.5), ValueError, r"u\(x, t\) must return shape \(3, 2\)"),
        (lambda: continuity_residual(_log_p, _u, np.ones(3), 0.5), ValueError, r"x must have shape \(n, d\)"),
        (lambda: continuity_residual(_log_p, _u, X, np.ones(2)), ValueError, r"t must be a float or an array of shape \(3,\)"),
        (lambda: continuity_residual(_log_p, _u, X, np.nan), ValueError, "t must be finite"),
        (lambda: continuity_residual(lambda x, t: -np.inf * anp.ones(3), _u, X, 0.5), ValueError, "p_t\\(x\\) = 0"),
        (lambda: continuity_residual(_log_p, lambda x, t: x * np.nan, X, 0.5), ValueError, "non-finite"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()

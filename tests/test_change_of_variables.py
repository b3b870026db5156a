"""``reference.change_of_variables``: the pushforward density, eq. (2), and the NLL of eq. (1)."""

import autograd.numpy as anp
import numpy as np
import pytest
from autograd.test_util import check_grads
from hypothesis import given, strategies as st
from scipy import stats

from reference.change_of_variables import negative_log_likelihood, pushforward_logpdf
from reference.distributions import standard_normal_logpdf
from tests.strategies import affine_maps, dims, points, seeds

K_SE = 5.0  # statistical tolerances below are K_SE standard errors


def affine_inverse(A, m):
    """T^{-1}(x) = (x - m) A^{-T} for T(z) = z A^T + m (row vectors)."""
    A_inv_T = np.linalg.inv(A).T
    return lambda x: (x - m) @ A_inv_T


def wrong_pushforward_logpdf(inverse_map, base_logpdf, x, sign=-1.0):
    """eq. (2) with the log-determinant's sign flipped (sign=-1) or dropped (sign=0)."""
    from reference.autodiff import log_abs_det_jacobian
    return base_logpdf(inverse_map(x)) + sign * log_abs_det_jacobian(inverse_map, x)


@given(dims.flatmap(lambda d: st.tuples(affine_maps(d), points(d=d))))
def test_affine_pushforward_of_the_standard_normal_is_n_m_aat(case):
    (A, m), x = case
    expected = stats.multivariate_normal(m, A @ A.T).logpdf(x).reshape(-1)
    got = pushforward_logpdf(affine_inverse(A, m), standard_normal_logpdf, x)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    # negative controls: a flipped or a missing log-determinant is told apart
    # (|log det A| >= 0.1 by construction)
    for sign in (-1.0, 0.0):
        wrong = wrong_pushforward_logpdf(affine_inverse(A, m), standard_normal_logpdf, x, sign)
        assert not np.allclose(wrong, expected, rtol=1e-10, atol=1e-10)


@st.composite
def nonlinear_bijections(draw):
    """T^{-1}(x) = D h(R (x - m)), h(u) = u + alpha tanh(u) (elementwise), in 2-D.

    h is increasing with h' = 1 + alpha sech^2(u) >= 1, D = diag(exp(s)) with
    sum(s) in [0.2, 1] and each s_i >= -0.4, R a rotation. Returns the map and its
    log|det J| in closed form. Since |T(z) - m| <= exp(max(-s)) |z| <= e^0.4 |z|, the mass
    of T # N(0, I) outside the disc of radius 10 around m is at most
    exp(-100 e^-0.8 / 2) < 2e-10.
    """
    theta = draw(st.floats(0, 2 * np.pi))
    R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    m = np.array([draw(st.floats(-1, 1)), draw(st.floats(-1, 1))])
    total = draw(st.floats(0.2, 1.0))
    delta = draw(st.floats(-0.5, 0.5))
    s = np.array([total / 2 + delta, total / 2 - delta])  # each in [-0.4, 1]
    alpha = np.array([draw(st.floats(0, 2)), draw(st.floats(0, 2))])

    def inverse_map(x):
        u = (x - m) @ R.T
        return (u + alpha * anp.tanh(u)) * anp.exp(s)

    def log_det(x):
        u = (x - m) @ R.T
        return np.sum(s) + np.sum(np.log1p(alpha / np.cosh(u) ** 2), axis=1)

    return inverse_map, log_det


def grid_integral(logpdf, half_width=11.0, n=201):
    """Trapezoid rule for the integral of exp(logpdf) over [-half_width, half_width]^2."""
    g = np.linspace(-half_width, half_width, n)
    X, Y = np.meshgrid(g, g)
    p = np.exp(logpdf(np.stack([X.ravel(), Y.ravel()], axis=1))).reshape(X.shape)
    return np.trapezoid(np.trapezoid(p, g, axis=1), g)


@given(nonlinear_bijections(), points(d=2))
def test_nonlinear_pushforward_equals_its_closed_form(bijection, x):
    inverse_map, log_det = bijection
    expected = standard_normal_logpdf(inverse_map(x)) + log_det(x)
    np.testing.assert_allclose(pushforward_logpdf(inverse_map, standard_normal_logpdf, x), expected,
                               rtol=1e-12, atol=1e-12)
    # negative control: the log-density of the base at the same point is not it
    assert not np.allclose(standard_normal_logpdf(inverse_map(x)), expected, rtol=1e-12, atol=1e-12)


@given(nonlinear_bijections())
def test_pushforward_density_integrates_to_one(bijection):
    # tail mass outside the grid < 2e-10; the trapezoid rule on an analytic integrand
    # decaying like a Gaussian converges geometrically (to rounding at 201^2 points)
    inverse_map, _ = bijection
    total = grid_integral(lambda x: pushforward_logpdf(inverse_map, standard_normal_logpdf, x))
    assert abs(total - 1.0) < 1e-8
    # negative control: with the log-det's sign flipped the integral is
    # E[|det J_{T^-1}|^-2] <= exp(-2 * 0.2) < 0.68, or without it E[|det J|^-1] <= 0.82
    for sign in (-1.0, 0.0):
        wrong = grid_integral(lambda x: wrong_pushforward_logpdf(inverse_map, standard_normal_logpdf, x, sign))
        assert abs(wrong - 1.0) > 0.18


def test_pushforward_is_differentiable_in_the_map_parameters(rng):
    x = rng.normal(size=(4, 2))

    def mean_log_p1(theta):
        A = anp.reshape(theta[:4], (2, 2)) + 2 * np.eye(2)
        inverse = lambda y: anp.tanh(y @ A.T) + y  # noqa: E731
        return anp.mean(pushforward_logpdf(inverse, standard_normal_logpdf, x))

    check_grads(mean_log_p1, modes=["rev"], order=1)(0.3 * rng.normal(size=4))


@given(dims.flatmap(lambda d: st.tuples(affine_maps(d), st.just(d))), seeds)
def test_nll_of_the_true_model_is_the_entropy_within_k_standard_errors(case, seed):
    (A, m), d = case
    n = 4000
    x = np.random.default_rng(seed).standard_normal((n, d)) @ A.T + m
    log_p1 = lambda y: pushforward_logpdf(affine_inverse(A, m), standard_normal_logpdf, y)  # noqa: E731
    nll = negative_log_likelihood(log_p1, x)
    np.testing.assert_allclose(nll, -np.mean(log_p1(x)), rtol=1e-15)
    entropy = stats.multivariate_normal(m, A @ A.T).entropy()
    se = np.sqrt(d / 2 / n)  # Var(-log p(x)) = Var(|z|^2 / 2) = d / 2 for a Gaussian
    assert abs(nll - entropy) <= K_SE * se
    # negative control: the model N(m, 4 A A^T) is off by KL = d (log 4 - 3/4) / 2 >= 0.31,
    # well beyond 2 K_SE standard errors (<= 0.056 each): its NLL is not the entropy
    wrong = lambda y: pushforward_logpdf(lambda v: affine_inverse(A, m)(v) / 2, standard_normal_logpdf, y)  # noqa: E731
    assert abs(negative_log_likelihood(wrong, x) - entropy) > K_SE * se


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: pushforward_logpdf(3.0, standard_normal_logpdf, np.zeros((2, 2))), TypeError, "inverse_map must be callable"),
        (lambda: pushforward_logpdf(lambda x: x, None, np.zeros((2, 2))), TypeError, "base_logpdf must be callable"),
        (lambda: pushforward_logpdf(lambda x: x, standard_normal_logpdf, np.zeros(3)), ValueError, r"x must have shape \(n, d\)"),
        (lambda: pushforward_logpdf(lambda x: x, standard_normal_logpdf, np.array([[np.nan, 0.0]])), ValueError, "non-finite"),
        (lambda: pushforward_logpdf(lambda x: x[:, :1], standard_normal_logpdf, np.zeros((2, 2))), ValueError, r"inverse_map\(x\) must return shape \(2, 2\)"),
        (lambda: pushforward_logpdf(lambda x: x * np.inf, standard_normal_logpdf, np.ones((2, 2))), ValueError, "non-finite"),
        (lambda: pushforward_logpdf(lambda x: x, lambda z: z, np.zeros((2, 2))), ValueError, r"base_logpdf\(x\) must return shape \(2,\)"),
        (lambda: negative_log_likelihood("p", np.zeros((2, 2))), TypeError, "log_p1 must be callable"),
        (lambda: negative_log_likelihood(lambda x: x[:, 0] * np.nan, np.zeros((2, 2))), ValueError, "NaN"),
        (lambda: negative_log_likelihood(standard_normal_logpdf, np.zeros((0, 2))), ValueError, "n >= 1"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()

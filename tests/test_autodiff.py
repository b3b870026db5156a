"""``reference.autodiff``: batched Jacobians, log-determinants, exact and Hutchinson divergences."""

import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, strategies as st

from reference.autodiff import (
    divergence,
    hutchinson_divergence,
    hutchinson_variance,
    jacobian,
    log_abs_det_jacobian,
    sample_probes,
)
from tests.strategies import dims, is_edge, points, seeds, times, well_conditioned_matrices

K_SE = 5.0  # statistical tolerances below are K_SE standard errors


def nonlinear_field(A, c):
    """u(x, t) = tanh(x A^T) * (1 + t) + c t x^2: a row-wise field with a non-symmetric Jacobian."""
    def u(x, t):
        t_col = anp.reshape(t, (-1, 1)) if anp.ndim(t) else t
        return anp.tanh(x @ A.T) * (1.0 + t_col) + c * t_col * x**2
    return u


def jacobian_of_nonlinear_field(A, c, x, t):
    s = 1.0 - np.tanh(x @ A.T) ** 2  # (n, d)
    return (1.0 + t) * s[:, :, None] * A[None] + 2 * c * t * np.einsum("ni,ij->nij", x, np.eye(x.shape[1]))


def finite_difference_jacobian(f, x, h=1e-6):
    n, d = x.shape
    cols = []
    for j in range(d):
        e = np.zeros(d)
        e[j] = h
        cols.append((f(x + e) - f(x - e)) / (2 * h))
    return np.stack(cols, axis=2)


@st.composite
def fields(draw):
    """``(d, A, c, x, t)`` for ``nonlinear_field(A, c)``, built from a drawn seed.

    ``d`` from ``dims`` (1 in about a tenth of the examples); ``A`` uniform in ``[-1.5, 1.5]``
    and ``c`` in ``[-1, 1]``, the zero field (``A = 0``, ``c = 0``) in about a tenth;
    ``x`` from ``points``; ``t`` in ``[0, 1]``.
    """
    d = draw(dims)
    rng = np.random.default_rng(draw(seeds))
    zero = is_edge(rng)
    A = np.zeros((d, d)) if zero else rng.uniform(-1.5, 1.5, size=(d, d))
    c = 0.0 if zero else float(rng.uniform(-1.0, 1.0))
    x = draw(points(d=d))
    t = draw(times)
    return d, A, c, x, t


@given(fields())
def test_jacobian_of_a_linear_map_is_its_matrix(case):
    d, A, _, x, _ = case
    J = jacobian(lambda y: y @ A.T, x)
    np.testing.assert_allclose(J, np.broadcast_to(A, (x.shape[0], d, d)), atol=1e-14)


@given(fields())
def test_jacobian_equals_closed_form_and_finite_differences(case):
    _, A, c, x, t = case
    u = nonlinear_field(A, c)
    J = jacobian(lambda y: u(y, t), x)
    np.testing.assert_allclose(J, jacobian_of_nonlinear_field(A, c, x, t), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(J, finite_difference_jacobian(lambda y: u(y, t), x), rtol=1e-6, atol=1e-6)


def test_jacobian_orientation_is_output_by_input():
    # negative control for the orientation: J[i, j] = d f_i / d x_j, not its transpose
    A = np.array([[1.0, 2.0], [0.0, 3.0]])
    J = jacobian(lambda y: y @ A.T, np.ones((1, 2)))[0]
    assert J[0, 1] == 2.0 and J[1, 0] == 0.0


@given(dims.flatmap(lambda d: st.tuples(well_conditioned_matrices(d), points(d=d))))
def test_log_abs_det_of_a_linear_map_is_slogdet(case):
    A, x = case
    expected = np.linalg.slogdet(A)[1]
    np.testing.assert_allclose(log_abs_det_jacobian(lambda y: y @ A.T, x), expected, atol=1e-12)
    # negative control: the map 2A has a log-det larger by d log 2
    assert not np.allclose(log_abs_det_jacobian(lambda y: 2 * y @ A.T, x), expected)


@given(fields())
def test_divergence_is_the_trace_of_the_jacobian(case):
    _, A, c, x, t = case
    u = nonlinear_field(A, c)
    expected = np.trace(jacobian_of_nonlinear_field(A, c, x, t), axis1=1, axis2=2)
    np.testing.assert_allclose(divergence(u, x, t), expected, rtol=1e-12, atol=1e-12)
    # negative control: 1^T J 1 (the sum of all entries) is not the divergence
    wrong = jacobian_of_nonlinear_field(A, c, x, t).sum(axis=(1, 2))
    if np.max(np.abs(np.triu(A, 1)) + np.abs(np.tril(A, -1))) > 0.1 and x.shape[1] > 1:
        assert not np.allclose(wrong, expected, rtol=1e-12, atol=1e-12)


def test_divergence_takes_one_time_per_point():
    A = np.array([[0.5, -1.0], [2.0, 0.3]])
    u = nonlinear_field(A, 0.7)
    x = np.array([[0.1, 0.2], [0.3, -0.4], [1.0, 1.0]])
    t = np.array([0.0, 0.5, 1.0])
    per_point = divergence(u, x, t)
    one_by_one = [divergence(u, x[i : i + 1], t[i])[0] for i in range(3)]
    np.testing.assert_allclose(per_point, one_by_one, rtol=1e-14)


@given(fields(), seeds, st.sampled_from(["rademacher", "gaussian"]))
def test_hutchinson_is_unbiased(case, seed, noise):
    _, A, c, x, t = case
    u = nonlinear_field(A, c)
    x1 = x[:1]
    J = jacobian_of_nonlinear_field(A, c, x1, t)[0]
    m = 4000
    # one probe per copy of the point: m independent single-probe estimates
    est = hutchinson_divergence(u, np.repeat(x1, m, axis=0), t, np.random.default_rng(seed), noise=noise)
    se = np.sqrt(hutchinson_variance(J, noise) / m)
    assert abs(est.mean() - np.trace(J)) <= K_SE * se + 1e-12
    # negative control: probes of variance 2 (not normalised: E[eps eps^T] = 2 I) estimate
    # 2 tr J, which the same statistic rejects wherever tr J is clearly non-zero
    wrong = hutchinson_divergence(u, np.repeat(x1, m, axis=0), t,
                                  probes=np.sqrt(2.0) * sample_probes(np.random.default_rng(seed), (1, m, x1.shape[1]), noise))
    if abs(np.trace(J)) > 4 * K_SE * (se + 1e-12):
        assert abs(wrong.mean() - np.trace(J)) > K_SE * se + 1e-12


def _sample_variance_and_its_se(samples):
    m = samples.size
    c = samples - samples.mean()
    var = np.mean(c**2) * m / (m - 1)
    se = np.sqrt(max(np.mean(c**4) - np.mean(c**2) ** 2, 0.0) / m)  # delta method
    return var, se


@pytest.mark.parametrize("noise, other", [("rademacher", "gaussian"), ("gaussian", "rademacher")])
def test_hutchinson_variance_matches_the_closed_form(noise, other):
    A = np.array([[1.5, 0.4, -0.3], [0.2, -1.0, 0.8], [-0.6, 0.5, 0.7]])
    u = nonlinear_field(A, 0.3)
    x1 = np.array([[0.2, -0.1, 0.4]])
    J = jacobian_of_nonlinear_field(A, 0.3, x1, 0.6)[0]
    m = 40000
    est = hutchinson_divergence(u, np.repeat(x1, m, axis=0), 0.6, np.random.default_rng(0), noise=noise)
    var, se = _sample_variance_and_its_se(est)
    assert abs(var - hutchinson_variance(J, noise)) <= K_SE * se
    # negative control: the other noise's variance is rejected (they differ by 2 sum S_ii^2)
    assert abs(var - hutchinson_variance(J, other)) > K_SE * se


def test_hutchinson_averages_its_probes_and_each_point_draws_its_own():
    A = np.array([[0.5, 1.0], [-2.0, 0.3]])
    u = nonlinear_field(A, 0.2)
    x = np.repeat([[0.3, -0.2]], 200, axis=0)
    single = hutchinson_divergence(u, x, 0.4, np.random.default_rng(5), n_probes=1)
    assert np.unique(np.round(single, 12)).size > 1  # identical points, independent probes
    probes = sample_probes(np.random.default_rng(6), (8, 200, 2))
    J = jacobian_of_nonlinear_field(A, 0.2, x, 0.4)
    by_hand = np.einsum("mni,nij,mnj->mn", probes, J, probes).mean(axis=0)
    np.testing.assert_allclose(hutchinson_divergence(u, x, 0.4, probes=probes), by_hand, rtol=1e-12)


def test_rademacher_probes_with_many_probes_are_exact_for_diagonal_jacobians(rng):
    # eps_i^2 = 1, so for a diagonal J every Rademacher sample equals the trace
    u = lambda x, t: x * np.array([1.0, -2.0, 3.5])  # noqa: E731
    x = rng.normal(size=(10, 3))
    np.testing.assert_allclose(hutchinson_divergence(u, x, 0.0, rng, n_probes=3), 2.5, rtol=1e-14)
    assert not np.allclose(hutchinson_divergence(u, x, 0.0, rng, noise="gaussian"), 2.5)


def test_divergence_is_differentiable():
    # d/dx div(u) for u = x^3 (elementwise): div = 3 sum x^2, gradient 6 x
    from autograd import grad
    g = grad(lambda x: anp.sum(divergence(lambda y, t: y**3, x, 0.0)))(np.array([[0.5, -1.0]]))
    np.testing.assert_allclose(g, [[3.0, -6.0]], rtol=1e-14)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: divergence(3.0, np.zeros((2, 2)), 0.0), TypeError, "u must be callable"),
        (lambda: divergence(lambda x, t: x[:, :1], np.zeros((2, 2)), 0.0), ValueError, r"u\(x, t\) must return shape \(2, 2\)"),
        (lambda: divergence(lambda x, t: x, np.zeros((2, 2)), np.zeros(3)), ValueError, r"t must be a float or an array of shape \(2,\)"),
        (lambda: divergence(lambda x, t: x + np.inf, np.ones((2, 2)), 0.0), ValueError, "non-finite"),
        (lambda: hutchinson_divergence(lambda x, t: x, np.zeros((2, 2)), 0.0, np.random.default_rng(0), noise="uniform"), ValueError, "noise must be one of"),
        (lambda: hutchinson_divergence(lambda x, t: x, np.zeros((2, 2)), 0.0, np.random.default_rng(0), n_probes=0), ValueError, "n_probes must be an integer >= 1"),
        (lambda: hutchinson_divergence(lambda x, t: x, np.zeros((2, 2)), 0.0), TypeError, "rng must be"),
        (lambda: hutchinson_divergence(lambda x, t: x, np.zeros((2, 2)), 0.0, probes=np.zeros((1, 3, 2))), ValueError,
         r"probes must be an array of shape \(M, 2, 2\) \(M probes for the points of x\), got shape \(1, 3, 2\)"),
        (lambda: jacobian(lambda x: x, np.zeros(4)), ValueError, r"x must have shape \(n, d\)"),
        (lambda: log_abs_det_jacobian(lambda x: x[:, :1], np.zeros((2, 2))), ValueError, "R\\^d to R\\^d"),
        (lambda: hutchinson_variance(np.zeros((2, 3)), "gaussian"), ValueError, "J must have shape"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()


@given(fields())
def test_value_and_divergence_is_one_pass_of_both(case):
    from reference.autodiff import value_and_divergence
    _, A, c, x, t = case
    u = nonlinear_field(A, c)
    value, div = value_and_divergence(u, x, t)
    np.testing.assert_array_equal(value, u(x, t))
    np.testing.assert_array_equal(div, divergence(u, x, t))
    probes = sample_probes(np.random.default_rng(0), (2,) + x.shape)
    value_h, est = hutchinson_divergence(u, x, t, probes=probes, return_value=True)
    np.testing.assert_array_equal(value_h, u(x, t))
    np.testing.assert_array_equal(est, hutchinson_divergence(u, x, t, probes=probes))


def test_a_field_constant_in_x_has_zero_divergence_without_warnings():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        div = divergence(lambda x, t: anp.ones_like(x) * t, np.zeros((3, 2)), 0.5)
    np.testing.assert_array_equal(div, 0.0)

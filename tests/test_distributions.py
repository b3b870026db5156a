"""``reference.distributions``: the base N(0, I), Gaussian mixtures, the toy data sets."""

import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy import stats
from scipy.special import logsumexp

from reference.distributions import (
    DATASETS,
    GaussianMixture,
    dataset_mixture,
    make_dataset,
    sample_standard_normal,
    standard_normal_logpdf,
)
from tests.strategies import points, rngs, seeds

K_SE = 5.0  # statistical tolerances below are K_SE standard errors


@given(points())
def test_standard_normal_logpdf_equals_scipy(x):
    d = x.shape[1]
    expected = stats.multivariate_normal(np.zeros(d), np.eye(d)).logpdf(x).reshape(-1)
    np.testing.assert_allclose(standard_normal_logpdf(x), expected, rtol=1e-12, atol=1e-12)
    # negative control: the density of N(0, 2I) is told apart by the same comparison
    wrong = stats.multivariate_normal(np.zeros(d), 2 * np.eye(d)).logpdf(x).reshape(-1)
    assert not np.allclose(wrong, expected, rtol=1e-12, atol=1e-12)


def _grid_integral(logpdf, half_width=8.0, n=401):
    g = np.linspace(-half_width, half_width, n)
    X, Y = np.meshgrid(g, g)
    p = np.exp(logpdf(np.stack([X.ravel(), Y.ravel()], axis=1))).reshape(X.shape)
    return np.trapezoid(np.trapezoid(p, g, axis=1), g)


def test_standard_normal_density_integrates_to_one():
    assert abs(_grid_integral(standard_normal_logpdf) - 1.0) < 1e-8
    # negative control: a density missing its normalising constant does not
    assert abs(_grid_integral(lambda x: -0.5 * np.sum(x**2, axis=1)) - 1.0) > 1.0


@st.composite
def mixtures(draw, d=None):
    rng = np.random.default_rng(draw(seeds))
    d = draw(st.integers(1, 3)) if d is None else d
    k = draw(st.integers(1, 4))
    w = rng.uniform(0.2, 1.0, k)
    A = rng.normal(size=(k, d, d)) * 0.5
    covs = A @ np.swapaxes(A, 1, 2) + 0.3 * np.eye(d)
    return GaussianMixture(w / w.sum(), rng.normal(scale=2.0, size=(k, d)), covs)


@given(mixtures(), points(n=5, d=None))
def test_mixture_logpdf_equals_sum_of_scipy_components(gm, x):
    x = x[:, :1].repeat(gm.dim, axis=1) if x.shape[1] < gm.dim else x[:, : gm.dim]
    comps = [stats.multivariate_normal(m, c).logpdf(x).reshape(-1) for m, c in zip(gm.means, gm.covs)]
    expected = logsumexp(np.log(gm.weights)[:, None] + np.array(comps), axis=0)
    np.testing.assert_allclose(gm.logpdf(x), expected, rtol=1e-10, atol=1e-10)


def test_mixture_logpdf_is_finite_far_away():
    gm = dataset_mixture("8gaussians")
    far = np.array([[300.0, -400.0]])
    value = gm.logpdf(far)
    # every component's density underflows to 0 in float64, the log-density does not
    assert np.all(np.exp(gm.component_logpdf(far)) == 0.0)
    comps = [stats.multivariate_normal(m, c).logpdf(far[0]) for m, c in zip(gm.means, gm.covs)]
    np.testing.assert_allclose(value, logsumexp(np.log(gm.weights) + np.array(comps)), rtol=1e-12)


@given(mixtures(d=2))
def test_mixture_density_integrates_to_one(gm):
    half = 6 + np.abs(gm.means).max() + 6 * np.sqrt(np.linalg.eigvalsh(gm.covs).max())
    assert abs(_grid_integral(gm.logpdf, half_width=half, n=401) - 1.0) < 1e-4


@given(mixtures(), rngs)
def test_mixture_sample_mean_within_standard_errors(gm, rng):
    n = 4000
    x = gm.sample(n, rng)
    cov = gm.covariance()
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x.mean(axis=0) - gm.mean()) <= K_SE * se)
    # negative control: a sampler that ignores the weights (components drawn uniformly) is
    # rejected by the same statistic wherever its mean is far from the mixture's
    k = rng.integers(0, gm.n_components, n)
    wrong = gm.means[k] + np.einsum("nij,nj->ni", gm.chol[k], rng.standard_normal((n, gm.dim)))
    far = np.abs(gm.means.mean(axis=0) - gm.mean()) > 3 * K_SE * se
    assert np.all(np.abs(wrong.mean(axis=0) - gm.mean())[far] > K_SE * se[far])


def test_mixture_sample_components_follow_weights(rng):
    gm = GaussianMixture([0.7, 0.2, 0.1], [[0.0], [5.0], [10.0]], [1.0, 1.0, 1.0])
    n = 20000
    _, k = gm.sample(n, rng, return_components=True)
    freq = np.bincount(k, minlength=3) / n
    se = np.sqrt(gm.weights * (1 - gm.weights) / n)
    assert np.all(np.abs(freq - gm.weights) <= K_SE * se)


@pytest.mark.parametrize("name", list(DATASETS))
def test_datasets_are_seeded_2d_and_finite(name):
    a = make_dataset(name, 500, np.random.default_rng(1))
    b = make_dataset(name, 500, np.random.default_rng(1))
    c = make_dataset(name, 500, np.random.default_rng(2))
    assert a.shape == (500, 2) and a.dtype == np.float64 and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # every data set is centred near the origin at a scale comparable to N(0, I)
    assert np.all(np.abs(a.mean(axis=0)) < 1.0) and 0.3 < a.std() < 5.0


@pytest.mark.parametrize("name", ["8gaussians", "cross"])
def test_mixture_datasets_come_from_their_mixture(name):
    x = make_dataset(name, 100, np.random.default_rng(3))
    np.testing.assert_array_equal(x, dataset_mixture(name).sample(100, np.random.default_rng(3)))


def test_checkerboard_occupies_alternate_squares():
    x = make_dataset("checkerboard", 5000, np.random.default_rng(0)) / 1.5
    cell = np.floor(x).astype(int)
    assert np.all((cell.sum(axis=1) % 2) == 0) or np.all((cell.sum(axis=1) % 2) == 1)
    assert len({tuple(c) for c in cell}) == 8


def test_standard_normal_samples(rng):
    x = sample_standard_normal(20000, 3, rng)
    assert x.shape == (20000, 3)
    assert np.all(np.abs(x.mean(axis=0)) < K_SE / np.sqrt(20000))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: standard_normal_logpdf(np.zeros(3)), ValueError, r"x must have shape \(n, d\)"),
        (lambda: standard_normal_logpdf([[np.nan, 0.0]]), ValueError, "non-finite"),
        (lambda: standard_normal_logpdf("abc"), TypeError, "x must be an array"),
        (lambda: make_dataset("swissroll", 10, np.random.default_rng(0)), ValueError, "name must be one of"),
        (lambda: make_dataset("moons", 0, np.random.default_rng(0)), ValueError, "n must be an integer >= 1"),
        (lambda: make_dataset("moons", 10, 0), TypeError, "rng must be a numpy.random.Generator"),
        (lambda: GaussianMixture([0.5, 0.6], [[0.0], [1.0]], [1.0, 1.0]), ValueError, "weights must sum to 1"),
        (lambda: GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]]), ValueError, "positive definite"),
        (lambda: GaussianMixture([1.0], [[0.0, 0.0]], [1.0, 1.0]), ValueError, "covs must have shape"),
        (lambda: dataset_mixture("moons"), ValueError, "mixture data sets"),
        (lambda: dataset_mixture("cross").logpdf(np.zeros((2, 3))), ValueError, "dimension d = 2"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()

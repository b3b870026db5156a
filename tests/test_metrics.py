"""``reference.metrics``: energy distance, MMD and sliced Wasserstein-2 between samples, and their noise floor."""

import functools

import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy import stats
from scipy.optimize import linprog
from scipy.spatial.distance import pdist

from reference.metrics import (
    energy_distance,
    gaussian_kernel,
    median_bandwidth,
    mmd2,
    noise_floor,
    path_length_ratio,
    sliced_wasserstein2,
    wasserstein2_1d,
)
from tests.strategies import points, seeds

K_SE = 5.0  # statistical tolerances below are K_SE standard errors


# ---------------------------------------------------------------- closed forms (derived here)

def mean_norm_of_gaussian(d, mu, s):
    """E|Z| for Z ~ N(mu, s^2 I_d): s times the mean of a (non-central) chi with d degrees of freedom."""
    lam = float(np.sum(np.square(mu))) / s**2
    if lam == 0.0:
        return s * stats.chi(d).mean()
    return s * stats.ncx2(d, lam).expect(np.sqrt)


def energy_distance_of_gaussians(d, m1, m2, s1, s2):
    """2 E|X - Y| - E|X - X'| - E|Y - Y'| for X ~ N(m1, s1^2 I), Y ~ N(m2, s2^2 I)."""
    cross = mean_norm_of_gaussian(d, m1 - m2, np.hypot(s1, s2))
    return 2 * cross - mean_norm_of_gaussian(d, 0.0, np.sqrt(2) * s1) - mean_norm_of_gaussian(d, 0.0, np.sqrt(2) * s2)


def mean_gaussian_kernel(d, mu, v, h):
    """E exp(-|Z|^2 / (2 h^2)) for Z ~ N(mu, v I_d), by completing the square in the Gaussian integral."""
    return (1 + v / h**2) ** (-d / 2) * np.exp(-np.sum(np.square(mu)) / (2 * (v + h**2)))


def mmd2_of_gaussians(d, m1, m2, s1, s2, h):
    return (mean_gaussian_kernel(d, 0.0, 2 * s1**2, h) + mean_gaussian_kernel(d, 0.0, 2 * s2**2, h)
            - 2 * mean_gaussian_kernel(d, m1 - m2, s1**2 + s2**2, h))


def transport_lp_w2(a, b):
    """W2^2 between 1-D empirical measures by the transport linear program (the definition)."""
    n, m = a.size, b.size
    cost = (a[:, None] - b[None, :]) ** 2
    rows = np.kron(np.eye(n), np.ones(m))  # sum_j P_ij = 1/n
    cols = np.kron(np.ones(n), np.eye(m))  # sum_i P_ij = 1/m
    res = linprog(cost.ravel(), A_eq=np.vstack([rows, cols]),
                  b_eq=np.concatenate([np.full(n, 1 / n), np.full(m, 1 / m)]), bounds=(0, None), method="highs")
    assert res.success
    return res.fun


def mean_and_se(values):
    values = np.asarray(values)
    return values.mean(), values.std(ddof=1) / np.sqrt(values.size)


@st.composite
def gaussian_pairs(draw, min_d=1, min_shift=0.0):
    """Two isotropic Gaussians N(m1, s1^2 I), N(m2, s2^2 I) and a seed."""
    d = draw(st.integers(min_d, 3))
    rng = np.random.default_rng(draw(seeds))
    m1 = rng.uniform(-1, 1, d)
    direction = rng.standard_normal(d)
    shift = draw(st.floats(min_shift, 2.5))
    m2 = m1 + shift * direction / np.linalg.norm(direction)
    s1, s2 = draw(st.floats(0.5, 1.5)), draw(st.floats(0.5, 1.5))
    return d, m1, m2, s1, s2, draw(seeds)


# ---------------------------------------------------------------- energy distance and MMD

@given(gaussian_pairs(min_shift=1.0))
def test_energy_distance_of_two_gaussians_equals_its_closed_form(case):
    d, m1, m2, s1, s2, seed = case
    rng = np.random.default_rng(seed)
    n, m, repeats = 40, 55, 30  # unequal sizes on purpose
    values = [energy_distance(m1 + s1 * rng.standard_normal((n, d)), m2 + s2 * rng.standard_normal((m, d)))
              for _ in range(repeats)]
    mean, se = mean_and_se(values)
    assert abs(mean - energy_distance_of_gaussians(d, m1, m2, s1, s2)) <= K_SE * se
    # negative control: the point-mass value 2|m1 - m2| (the spreads forgotten) is rejected
    assert abs(mean - 2 * np.linalg.norm(m1 - m2)) > K_SE * se


def test_energy_distance_between_point_masses_is_twice_their_distance():
    a, b = np.array([1.0, -2.0]), np.array([4.0, 2.0])  # |a - b| = 5
    x, y = np.tile(a, (3, 1)), np.tile(b, (4, 1))
    assert energy_distance(x, y) == 10.0 and energy_distance(x, y, unbiased=False) == 10.0
    assert energy_distance(x, x + 1e-3, unbiased=False) < 1e-2  # and close masses are close


@given(gaussian_pairs(min_shift=1.0), st.floats(0.75, 2.0))
def test_mmd_of_two_gaussians_equals_its_closed_form(case, c):
    d, m1, m2, s1, s2, seed = case
    h = c * max(s1, s2)  # a bandwidth on the scale of the data, where MMD tells distributions apart
    rng = np.random.default_rng(seed)
    n, m, repeats = 60, 80, 30
    values = [mmd2(m1 + s1 * rng.standard_normal((n, d)), m2 + s2 * rng.standard_normal((m, d)), bandwidth=h)
              for _ in range(repeats)]
    mean, se = mean_and_se(values)
    assert abs(mean - mmd2_of_gaussians(d, m1, m2, s1, s2, h)) <= K_SE * se
    # negative control: the closed form with the means' shift forgotten (only the spreads differ) is rejected
    assert abs(mean - mmd2_of_gaussians(d, m1, m1, s1, s2, h)) > K_SE * se


@given(st.integers(1, 3), seeds)
def test_unbiased_estimators_vanish_in_expectation_for_identical_distributions(d, seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(d, d)) / np.sqrt(d) + np.eye(d)  # a correlated Gaussian N(0, A A^T)
    sample = lambda n: rng.standard_normal((n, d)) @ A.T  # noqa: E731
    repeats = 150
    pairs = [(sample(20), sample(20)) for _ in range(repeats)]
    for metric in (energy_distance, functools.partial(mmd2, bandwidth=1.0)):
        mean, se = mean_and_se([metric(x, y) for x, y in pairs])
        assert abs(mean) <= K_SE * se, metric
        # negative control: the V-statistic (diagonal i = j included) is biased upwards and rejected
        v_mean, v_se = mean_and_se([metric(x, y, unbiased=False) for x, y in pairs])
        assert v_mean > K_SE * v_se, metric


@given(points(n=6, d=2), points(n=4, d=2))
def test_v_statistic_exceeds_u_statistic_by_its_diagonal_term(x, y):
    # V = U + mean_{i != j}|x_i - x_j| / n + mean_{i != j}|y_i - y_j| / m, exactly
    def within(s):
        n = len(s)
        return sum(np.linalg.norm(s[i] - s[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    by_hand = energy_distance(x, y) + within(x) / 6 + within(y) / 4
    np.testing.assert_allclose(energy_distance(x, y, unbiased=False), by_hand, rtol=1e-12, atol=1e-12)
    # negative control: without the diagonal correction the two differ (unless all points coincide)
    if within(x) + within(y) > 1e-6:
        assert not np.isclose(energy_distance(x, y, unbiased=False), energy_distance(x, y), rtol=1e-12, atol=1e-12)


def test_gaussian_kernel_and_median_bandwidth_by_hand(rng):
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    by_hand = np.array([[np.exp(-np.sum((a - b) ** 2) / (2 * 0.7**2)) for b in y] for a in x])
    np.testing.assert_allclose(gaussian_kernel(x, y, 0.7), by_hand, rtol=1e-14)
    pooled = np.concatenate([x, y])
    dists = [np.linalg.norm(pooled[i] - pooled[j]) for i in range(9) for j in range(i + 1, 9)]
    assert median_bandwidth(x, y) == pytest.approx(np.median(dists), rel=1e-14)
    # negative control: the median including the zero self-distances is smaller
    all_dists = [np.linalg.norm(a - b) for a in pooled for b in pooled]
    assert np.median(all_dists) < median_bandwidth(x, y)


# ---------------------------------------------------------------- sliced Wasserstein-2

@given(st.integers(1, 6), st.integers(1, 6), seeds)
def test_w2_1d_with_unequal_sizes_equals_the_transport_linear_program(n, m, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(loc=0.5, size=m)
    np.testing.assert_allclose(wasserstein2_1d(a[None], b[None])[0], transport_lp_w2(a, b), rtol=1e-7, atol=1e-9)
    # and by repeating each point to a common size n m (the same empirical measures)
    np.testing.assert_allclose(wasserstein2_1d(np.repeat(a, m)[None], np.repeat(b, n)[None])[0],
                               transport_lp_w2(a, b), rtol=1e-7, atol=1e-9)
    # negative control: pairing the first min(n, m) sorted values (a common mistake) is wrong when n != m
    if n != m:
        k = min(n, m)
        wrong = np.mean((np.sort(a)[:k] - np.sort(b)[:k]) ** 2)
        assert not np.isclose(wrong, transport_lp_w2(a, b), rtol=1e-7, atol=1e-9)


@given(points(n=5, d=1), points(n=3, d=1), seeds)
def test_sliced_w2_in_one_dimension_is_w2(x, y, seed):
    # in 1-D every direction is +1 or -1, and W2 is invariant under the reflection
    expected = transport_lp_w2(x[:, 0], y[:, 0])
    got = sliced_wasserstein2(x, y, np.random.default_rng(seed), n_projections=3)
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9)
    # negative control: the W2 of the unsorted (index) pairing of the first three points differs in general
    naive = np.mean((x[:3, 0] - y[:, 0]) ** 2)
    if not np.isclose(naive, expected, rtol=1e-7, atol=1e-9):
        assert not np.isclose(got, naive, rtol=1e-7, atol=1e-9)


@given(gaussian_pairs())
def test_sliced_w2_of_two_gaussians_equals_its_closed_form(case):
    # y = m2 + (s2 / s1)(x - m1) is a draw of N(m2, s2^2 I) coupled to x by the optimal map, so the
    # empirical SW2^2 has expectation exactly |m1 - m2|^2 / d + (s1 - s2)^2 (no finite-sample bias)
    d, m1, m2, s1, s2, seed = case
    rng = np.random.default_rng(seed)
    n, repeats = 100, 30
    values, naive = [], []
    for _ in range(repeats):
        x = m1 + s1 * rng.standard_normal((n, d))
        values.append(sliced_wasserstein2(x, m2 + (s2 / s1) * (x - m1), rng, n_projections=16))
        theta = rng.standard_normal((16, d))
        theta /= np.linalg.norm(theta, axis=1, keepdims=True)
        y_anti = m2 - (s2 / s1) * (x - m1)  # the same law, the decreasing coupling
        naive.append(np.mean(((x - y_anti) @ theta.T) ** 2))
    mean, se = mean_and_se(values)
    assert abs(mean - (np.sum((m1 - m2) ** 2) / d + (s1 - s2) ** 2)) <= K_SE * se + 1e-12  # se = 0 if s1 = s2
    # negative control: without sorting the projections (keeping the index pairing) the decreasing
    # coupling has expectation |m1 - m2|^2 / d + (s1 + s2)^2 and is rejected
    naive_mean, naive_se = mean_and_se(naive)
    assert abs(naive_mean - (np.sum((m1 - m2) ** 2) / d + (s1 - s2) ** 2)) > K_SE * naive_se


# ---------------------------------------------------------------- properties shared by all three

METRICS = {
    "energy (U)": energy_distance,
    "energy (V)": functools.partial(energy_distance, unbiased=False),
    "mmd2 (U, h = 1)": functools.partial(mmd2, bandwidth=1.0),
    "mmd2 (U, median h)": mmd2,
    "sliced W2": lambda x, y: sliced_wasserstein2(x, y, np.random.default_rng(7), n_projections=64),
}


@pytest.mark.parametrize("name", METRICS)
@given(x=points(n=6, d=3), y=points(n=4, d=3), shift=st.floats(-2, 2), seed=seeds)
def test_metrics_are_symmetric_and_invariant_under_translation_and_reordering(name, x, y, shift, seed):
    metric = METRICS[name]
    if name == "mmd2 (U, median h)" and np.median(pdist(np.concatenate([x, y]))) == 0:
        return  # the median heuristic refuses data that mostly coincide (tested in the bad-input table)
    value = metric(x, y)
    perm = np.random.default_rng(seed).permutation(6)
    np.testing.assert_allclose(metric(y, x), value, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(metric(x[perm], y), value, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(metric(x + shift, y + shift), value, rtol=1e-9, atol=1e-9)


def test_symmetry_check_detects_an_asymmetric_metric(rng):
    # negative control for the symmetry property: 2 E|X - Y| - 2 E|X - X'| is not symmetric
    lopsided = lambda x, y: energy_distance(x, y) + energy_distance(x, x) - energy_distance(y, y)  # noqa: E731
    x, y = rng.normal(size=(6, 3)), 2 * rng.normal(size=(4, 3))
    assert not np.isclose(lopsided(x, y), lopsided(y, x), rtol=1e-10)


@pytest.mark.parametrize("name", ["energy (V)", "sliced W2"])
@given(x=points(n=5, d=2))
def test_biased_metrics_vanish_between_a_sample_and_itself(name, x):
    assert METRICS[name](x, x) == pytest.approx(0.0, abs=1e-12)
    # negative control: a sample and its translate are apart
    assert METRICS[name](x, x + 1.0) > 0.1


@pytest.mark.parametrize("name", METRICS)
def test_metrics_grow_with_the_shift_from_well_above_the_noise_floor(name, rng):
    metric = METRICS[name]
    x, y = rng.normal(size=(200, 2)), rng.normal(size=(200, 2))
    shifts = [0.0, 0.5, 1.0, 2.0, 3.0]
    values = [metric(x, y + [c, 0.0]) for c in shifts]
    floor = noise_floor(metric, lambda n, r: r.normal(size=(n, 2)), 200, rng, n_repeats=10)
    spread = floor.se * np.sqrt(10)  # the standard deviation of one value at the floor
    assert abs(values[0] - floor.mean) <= K_SE * spread  # no shift: a value at the noise floor
    assert values[1] > floor.mean + K_SE * spread  # a half-sigma shift is detected
    assert np.all(np.diff(values) > 0)  # and the metric increases with it
    # negative control: the same checks on a metric blind to the shift (it compares the
    # second coordinates only, where the samples do not move) fail
    blind = [metric(x[:, 1:], (y + [c, 0.0])[:, 1:]) for c in shifts]
    assert not (blind[1] > floor.mean + K_SE * spread and np.all(np.diff(blind) > 0))


# ---------------------------------------------------------------- noise floor

@given(st.integers(1, 3), seeds)
def test_noise_floor_of_the_v_statistic_is_its_diagonal_bias(d, seed):
    # for two draws of N(0, I): E[V] = E[U] + E|X - X'| / n + E|Y - Y'| / n = 2 E|X - X'| / n
    rng = np.random.default_rng(seed)
    n = 25
    floor = noise_floor(METRICS["energy (V)"], lambda k, r: r.standard_normal((k, d)), n, rng, n_repeats=300)
    expected = 2 * mean_norm_of_gaussian(d, 0.0, np.sqrt(2)) / n
    assert abs(floor.mean - expected) <= K_SE * floor.se
    # negative control: the floor of twice as many points (half the bias) is rejected
    assert abs(floor.mean - expected / 2) > K_SE * floor.se


def test_noise_floor_of_sliced_w2_is_positive_and_shrinks_with_n(rng):
    metric = METRICS["sliced W2"]
    small = noise_floor(metric, lambda k, r: r.standard_normal((k, 2)), 50, rng, n_repeats=10)
    large = noise_floor(metric, lambda k, r: r.standard_normal((k, 2)), 800, rng, n_repeats=10)
    assert small.mean > K_SE * small.se and large.mean > K_SE * large.se
    assert large.mean + K_SE * large.se < small.mean - K_SE * small.se
    # negative control: the floor of a metric between a sample and itself is zero, not positive
    same = noise_floor(lambda x, y: metric(x, x), lambda k, r: r.standard_normal((k, 2)), 50, rng, n_repeats=3)
    assert same.mean == 0.0


def test_noise_floor_is_deterministic_under_its_seed():
    run = lambda: noise_floor(energy_distance, lambda k, r: r.normal(size=(k, 2)), 30, np.random.default_rng(3), 5)  # noqa: E731
    assert run() == run()


# ---------------------------------------------------------------- trajectories

@given(points(n=3, d=3), points(n=3, d=3), st.integers(1, 20))
def test_straight_monotone_trajectories_have_length_ratio_one(a, b, k):
    if np.any(np.linalg.norm(b - a, axis=1) == 0):
        b = b + 1.0  # a trajectory needs distinct ends
    s = np.sort(np.random.default_rng(k).uniform(size=k + 1))
    s[0], s[-1] = 0.0, 1.0
    path = a[None] + s[:, None, None] * (b - a)[None]  # monotone steps along the chord
    np.testing.assert_allclose(path_length_ratio(path), 1.0, rtol=1e-9)
    # negative control: going past the end and coming back (same chord) is longer
    back = np.concatenate([path, (a + 1.5 * (b - a))[None], b[None]])
    assert np.all(path_length_ratio(back) > 1.5)


@pytest.mark.parametrize("k", [1, 2, 7, 100])
def test_length_ratio_of_a_polygon_on_a_half_circle(k):
    # k equal chords on a half circle of radius 1: length 2 k sin(pi / (2 k)), chord 2
    angles = np.linspace(np.pi, 0.0, k + 1)
    path = np.stack([np.cos(angles), np.sin(angles)], axis=1)[:, None, :]
    np.testing.assert_allclose(path_length_ratio(path), k * np.sin(np.pi / (2 * k)), rtol=1e-13)
    if k > 1:  # negative control: the arc-length limit pi / 2 is reached only as k grows
        assert path_length_ratio(path)[0] < np.pi / 2


# ---------------------------------------------------------------- bad input

_x, _y = np.zeros((3, 2)), np.ones((4, 2))
_rng = np.random.default_rng(0)
_normal = lambda n, r: r.normal(size=(n, 2))  # noqa: E731


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: energy_distance(_x, np.ones((4, 3))), ValueError, "y must have dimension d = 2"),
        (lambda: energy_distance(np.zeros(3), _y), ValueError, r"x must have shape \(n, d\)"),
        (lambda: energy_distance(_x[:1], _y), ValueError, "x must hold at least 2 points for the unbiased"),
        (lambda: mmd2(_x, _y[:1]), ValueError, "y must hold at least 2 points"),
        (lambda: energy_distance(_x, _y + np.nan), ValueError, "y holds 8 non-finite"),
        (lambda: energy_distance("x", _y), TypeError, "x must be an array"),
        (lambda: mmd2(_x, _y, bandwidth=0.0), ValueError, "bandwidth must be > 0"),
        (lambda: mmd2(_x, _y, bandwidth=np.inf), ValueError, "bandwidth must be finite"),
        (lambda: mmd2(np.zeros((4, 2)), np.zeros((4, 2))), ValueError, "median heuristic gives h = 0"),
        (lambda: sliced_wasserstein2(_x, _y, 0), TypeError, "rng must be a numpy.random.Generator"),
        (lambda: sliced_wasserstein2(_x, _y, _rng, n_projections=0), ValueError, "n_projections must be an integer >= 1"),
        (lambda: wasserstein2_1d(np.zeros((2, 3)), np.zeros((3, 3))), ValueError, "same L"),
        (lambda: wasserstein2_1d(np.zeros((1, 3)), np.full((1, 2), np.nan)), ValueError, r"b holds 2 non-finite value\(s\) \(NaN or inf\)"),
        (lambda: noise_floor("energy", _normal, 10, _rng), TypeError, "metric must be callable"),
        (lambda: noise_floor(energy_distance, _normal, 10, _rng, n_repeats=1), ValueError, "n_repeats must be an integer >= 2"),
        (lambda: noise_floor(energy_distance, lambda n, r: r.normal(size=(n + 1, 2)), 10, _rng), ValueError, "must return 10 points"),
        (lambda: noise_floor(energy_distance, lambda n, r: r.normal(size=n), 10, _rng), ValueError, r"sampler\(n, rng\) must have shape"),
        (lambda: noise_floor(energy_distance, _normal, 10, None), TypeError, "rng must be"),
        (lambda: path_length_ratio(np.zeros((1, 3, 2))), ValueError, r"path must have shape \(K \+ 1, n, d\)"),
        (lambda: path_length_ratio(np.zeros((4, 2))), ValueError, r"path must be an array of shape \(K \+ 1, n, d\), got shape \(4, 2\)"),
        (lambda: path_length_ratio(np.zeros((3, 2, 2))), ValueError, "trajectory 0 ends where it starts"),
        (lambda: path_length_ratio(np.full((3, 2, 2), np.nan)), ValueError, "non-finite"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()

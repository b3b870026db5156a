"""``reference.flows.chain``: compositions of layers, the chain rule for log-dets, RealNVP and planar chains."""

from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from reference.autodiff import jacobian
from reference.distributions import standard_normal_logpdf
from reference.flows.chain import (
    alternating_permutations,
    chain_forward,
    chain_inverse,
    chain_logpdf,
    planar_chain_forward,
    planar_chain_inverse,
    planar_chain_logpdf,
    planar_chain_sample,
    realnvp_forward,
    realnvp_init,
    realnvp_inverse,
    realnvp_logpdf,
    realnvp_sample,
)
from reference.flows.coupling import coupling_forward, coupling_inverse
from reference.flows.planar import planar_forward, planar_inverse
from tests.strategies import planar_layers, points, seeds


@st.composite
def realnvps(draw, d=None, max_layers=4):
    """``(params, d)`` of a random RealNVP with 1..max_layers couplings."""
    d = draw(st.integers(2, 5)) if d is None else d
    k = draw(st.integers(1, max_layers))
    hidden = tuple(draw(st.lists(st.integers(2, 8), min_size=1, max_size=2)))
    return realnvp_init(d, k, hidden, np.random.default_rng(draw(seeds))), d


@st.composite
def planar_chains(draw, d=None, max_layers=4):
    d = draw(st.integers(1, 4)) if d is None else d
    k = draw(st.integers(1, max_layers))
    return [draw(planar_layers(d)) for _ in range(k)], d


def with_points(models):
    return models.flatmap(lambda m: st.tuples(st.just(m), points(d=m[1])))


def wrong_chain_log_det(forwards, z):
    """Every layer's log-det taken at x_0 instead of x_{k-1}: a chain-rule mistake."""
    x, total = z, 0.0
    for phi in forwards:
        total = total + phi(z)[1]
        x = phi(x)[0]
    return total


@given(with_points(realnvps()))
def test_realnvp_log_det_is_slogdet_of_the_composed_jacobian(case):
    (params, d), z = case
    x, log_det = realnvp_forward(params, z)
    J = jacobian(lambda v: realnvp_forward(params, v)[0], z)
    np.testing.assert_allclose(log_det, np.linalg.slogdet(J)[1], rtol=1e-10, atol=1e-10)
    J_inv = jacobian(lambda v: realnvp_inverse(params, v)[0], x)
    np.testing.assert_allclose(realnvp_inverse(params, x)[1], np.linalg.slogdet(J_inv)[1], rtol=1e-10, atol=1e-10)
    # negative control: log-dets all taken at x_0 (not at x_{k-1}) differ once K >= 2
    if len(params) >= 2:
        perms = alternating_permutations(d, len(params))
        forwards = [partial(coupling_forward, p, perm=q) for p, q in zip(params, perms)]
        assert not np.allclose(wrong_chain_log_det(forwards, z), log_det, rtol=1e-8, atol=1e-8)


@given(with_points(realnvps()))
def test_realnvp_inverse_undoes_forward_both_ways_and_log_dets_cancel(case):
    (params, d), z = case
    x, log_det, path = realnvp_forward(params, z, return_path=True)
    z_back, log_det_inv, path_back = realnvp_inverse(params, x, return_path=True)
    np.testing.assert_allclose(z_back, z, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(path_back, path, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(log_det + log_det_inv, 0.0, atol=1e-11)
    np.testing.assert_allclose(realnvp_forward(params, realnvp_inverse(params, z)[0])[0], z, rtol=1e-11, atol=1e-11)
    # negative control: inverting with other coordinate orders than the forward pass
    # (no alternation) misses z once there are two layers
    if len(params) >= 2:
        wrong, _ = realnvp_inverse(params, x, perms=[None] * len(params))
        assert not np.allclose(wrong, z, rtol=1e-6, atol=1e-6)


@given(with_points(planar_chains()))
def test_planar_chain_log_det_is_slogdet_of_the_composed_jacobian(case):
    (params, d), z = case
    x, log_det = planar_chain_forward(params, z)
    J = jacobian(lambda v: planar_chain_forward(params, v)[0], z)
    np.testing.assert_allclose(log_det, np.linalg.slogdet(J)[1], rtol=1e-10, atol=1e-10)
    # the chain rule through the inverse: log|det J_{T^-1}(x)| = sum_k log|det J_{phi_k^-1}(x_k)|
    z_back, log_det_inv = planar_chain_inverse(params, x)
    np.testing.assert_allclose(z_back, z, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(log_det_inv, -log_det, rtol=1e-10, atol=1e-10)
    # negative control: all log-dets at x_0 differ. At x_0 with b_1^T x_0 + c_1 = 1 the first
    # layer moves the point by tanh(1) a_1, so the second layer's argument changes by
    # tanh(1) a_1^T b_2 (not 0: a_1 and b_2 are never orthogonal in these draws), and its
    # log-det with it (it depends on |b_2^T x + c_2| only, which would need a coincidence)
    if len(params) >= 2:
        b, c = params[0]["b"], params[0]["c"]
        zz = np.concatenate([z, ((1.0 - c) * b / (b @ b))[None, :]])
        right = planar_chain_forward(params, zz)[1]
        forwards = [partial(planar_forward, p) for p in params]
        assert not np.allclose(wrong_chain_log_det(forwards, zz), right, rtol=1e-8, atol=1e-8)


@given(with_points(realnvps()), st.data())
def test_a_mixed_chain_composes_log_dets_by_the_chain_rule(rcase, data):
    (rparams, d), z = rcase
    planar = [data.draw(planar_layers(d)) for _ in range(2)]
    planar[1] = dict(planar[1], c=planar[1]["c"] + 0.5)  # not a palindrome of planar[0]
    perms = alternating_permutations(d, len(rparams))
    forwards = [partial(planar_forward, planar[0])]
    forwards += [partial(coupling_forward, p, perm=q) for p, q in zip(rparams, perms)]
    forwards += [partial(planar_forward, planar[1])]
    inverses = [partial(planar_inverse, planar[0])]
    inverses += [partial(coupling_inverse, p, perm=q) for p, q in zip(rparams, perms)]
    inverses += [partial(planar_inverse, planar[1])]
    x, log_det, path = chain_forward(forwards, z, return_path=True)
    assert path.shape == (len(forwards) + 1, *z.shape)
    np.testing.assert_array_equal(path[0], z)
    np.testing.assert_array_equal(path[-1], x)
    J = jacobian(lambda v: chain_forward(forwards, v)[0], z)
    np.testing.assert_allclose(log_det, np.linalg.slogdet(J)[1], rtol=1e-9, atol=1e-9)
    z_back, log_det_inv, path_back = chain_inverse(inverses, x, return_path=True)
    np.testing.assert_allclose(z_back, z, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(path_back, path, rtol=1e-10, atol=1e-10)  # both list x_0, ..., x_K
    np.testing.assert_allclose(log_det + log_det_inv, 0.0, atol=1e-10)
    # negative control: the inverses applied in the wrong order (phi_1^-1 first) miss z
    wrong, _ = chain_inverse(inverses[::-1], x)
    assert not np.allclose(wrong, z, rtol=1e-6, atol=1e-6)


def grid_integral(logpdf, half_width, n):
    g = np.linspace(-half_width, half_width, n)
    X, Y = np.meshgrid(g, g)
    p = np.exp(logpdf(np.stack([X.ravel(), Y.ravel()], axis=1))).reshape(X.shape)
    return np.trapezoid(np.trapezoid(p, g, axis=1), g)


def scaled_last_layers(params, factor):
    """The same RealNVP with the last layer of every s and t MLP multiplied by ``factor``."""
    return [{k: mlp[:-1] + [(factor * mlp[-1][0], factor * mlp[-1][1])] for k, mlp in layer.items()}
            for layer in params]


@settings(max_examples=8)
@given(realnvps(d=2), st.floats(0.2, 0.6))
def test_realnvp_density_integrates_to_one_on_a_grid(model, factor):
    # A mild deformation of N(0, I) (last layers scaled by 0.2-0.6), so that its tails stay
    # Gaussian-like: on the square of half-width 4 x (largest |x| of 2000 exact samples)
    # + 3 the missing mass is negligible, and the trapezoid rule converges geometrically
    # on this analytic integrand (|error| < 1e-9 over 60 random models at 201^2 points).
    params = scaled_last_layers(model[0], factor)
    half = 4 * np.abs(realnvp_sample(params, 2000, np.random.default_rng(0))).max() + 3
    total = grid_integral(lambda x: realnvp_logpdf(params, x), half, 201)
    assert abs(total - 1.0) < 1e-6
    # negative control: the same density without its log-det integrates to E_z|det J_T(z)|,
    # which the check above tells apart from 1 (unless T preserved volume on average)
    wrong = grid_integral(lambda x: standard_normal_logpdf(realnvp_inverse(params, x)[0]), half, 201)
    assert abs(wrong - 1.0) > 1e-6


def test_planar_chain_density_integrates_to_one_on_a_grid():
    rng = np.random.default_rng(7)
    # a^T b = 1.1, -0.39, -0.54: invertible layers that bend N(0, I) visibly; each moves
    # a point by at most |a_k| (<= 1.6), so the tails stay those of N(0, I) shifted by
    # <= 3.3. Layers with a^T b near -1 compress space by 1 + a^T b and need a finer grid.
    params = [{"a": np.array([1.5, -0.5]), "b": np.array([1.0, 0.8]), "c": np.array(0.3)},
              {"a": np.array([-0.6, 0.1]), "b": np.array([0.4, -1.5]), "c": np.array(-0.5)},
              {"a": np.array([0.6, 0.6]), "b": np.array([-1.2, 0.3]), "c": np.array(0.1)}]
    assert all(p["a"] @ p["b"] > -1 for p in params)
    half = 4 * np.abs(planar_chain_sample(params, 2000, rng)).max() + 3
    total = grid_integral(lambda x: planar_chain_logpdf(params, x), half, 401)
    assert abs(total - 1.0) < 1e-6
    # negative control: dropping the log-dets (sum of log|1 + tanh' a^T b|) is wrong
    wrong = grid_integral(lambda x: standard_normal_logpdf(planar_chain_inverse(params, x)[0]), half, 401)
    assert abs(wrong - 1.0) > 1e-3


@given(realnvps(), seeds)
def test_sample_log_density_from_the_forward_pass_equals_realnvp_logpdf(model, seed):
    params, d = model
    x, log_p = realnvp_sample(params, 50, np.random.default_rng(seed), return_logpdf=True)
    np.testing.assert_allclose(log_p, realnvp_logpdf(params, x), rtol=1e-10, atol=1e-10)
    # the same draws without return_logpdf
    np.testing.assert_array_equal(realnvp_sample(params, 50, np.random.default_rng(seed)), x)
    # negative control: log p0(z) + log|det J_T(z)| (the sign of eq. (2) flipped) differs
    z = np.random.default_rng(seed).standard_normal((50, d))
    _, log_det = realnvp_forward(params, z)
    assert not np.allclose(standard_normal_logpdf(z) + log_det, log_p, rtol=1e-10, atol=1e-10)


@given(planar_chains(), seeds)
def test_planar_chain_sample_log_density_equals_its_logpdf(model, seed):
    params, _ = model
    x, log_p = planar_chain_sample(params, 30, np.random.default_rng(seed), return_logpdf=True)
    np.testing.assert_allclose(log_p, planar_chain_logpdf(params, x), rtol=1e-9, atol=1e-9)
    # negative control: the base log-density at x itself is not it
    assert not np.allclose(standard_normal_logpdf(x), log_p, rtol=1e-9, atol=1e-9)


@given(with_points(realnvps(max_layers=3)))
def test_chain_logpdf_is_the_base_at_x0_plus_the_summed_inverse_log_dets(case):
    (params, d), x = case
    perms = alternating_permutations(d, len(params))
    # x_K = x, x_{k-1} = phi_k^{-1}(x_k), written out
    xs, total = [x], 0.0
    for p, q in list(zip(params, perms))[::-1]:
        y, ld = coupling_inverse(p, xs[-1], q)
        xs.append(y)
        total = total + ld
    expected = standard_normal_logpdf(xs[-1]) + total
    inverses = [partial(coupling_inverse, p, perm=q) for p, q in zip(params, perms)]
    np.testing.assert_allclose(chain_logpdf(inverses, x), expected, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(realnvp_logpdf(params, x), expected, rtol=1e-13, atol=1e-13)
    # negative control: a different base (N(0, 4 I)) changes it
    wide = lambda v: standard_normal_logpdf(v / 2) - d * np.log(2)  # noqa: E731
    assert not np.allclose(chain_logpdf(inverses, x, wide), expected, rtol=1e-10, atol=1e-10)


@given(st.integers(2, 6), seeds)
def test_alternating_halves_transform_every_coordinate(d, seed):
    params = realnvp_init(d, 2, (4,), np.random.default_rng(seed))
    x = np.random.default_rng(seed + 1).normal(size=(3, d))

    def untouched(layers, perms):
        """Coordinates i that every layer leaves as they are (row i of J is e_i)."""
        keep = set(range(d))
        for p, q in zip(layers, perms):
            J = jacobian(lambda v: coupling_forward(p, v, q)[0], x)
            keep &= {i for i in range(d) if np.allclose(J[:, i, :], np.eye(d)[i], rtol=0, atol=0)}
        return keep

    assert untouched(params, alternating_permutations(d, 2)) == set()
    # negative control: without the alternation the first d' = d // 2 coordinates pass
    # through every layer untouched
    assert untouched(params, [None, None]) == set(range(d // 2))


def test_realnvp_init_uses_half_splits_and_is_seeded():
    p = realnvp_init(5, 3, (6,), np.random.default_rng(0))
    q = realnvp_init(5, 3, (6,), np.random.default_rng(0))
    assert len(p) == 3 and all(layer["s"][0][0].shape == (2, 6) and layer["s"][-1][0].shape == (6, 3) for layer in p)
    assert all(np.array_equal(a[0][0], b[0][0]) for a, b in zip((l["t"] for l in p), (l["t"] for l in q)))
    perms = alternating_permutations(5, 3)
    assert [list(v) for v in perms] == [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [0, 1, 2, 3, 4]]


GOOD = realnvp_init(2, 2, (4,), np.random.default_rng(0))
PLANAR = [{"a": np.array([0.5, 0.0]), "b": np.array([1.0, 0.0]), "c": np.array(0.0)}]


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: chain_forward([], np.zeros((2, 2))), TypeError, "forwards must be a non-empty list"),
        (lambda: chain_forward([3], np.zeros((2, 2))), TypeError, r"forwards\[0\] must be callable"),
        (lambda: chain_forward([lambda x: x], np.zeros((2, 2))), TypeError, r"forwards\[0\]\(x\) must return a pair"),
        (lambda: chain_forward([lambda x: (x[:, :1], x[:, 0])], np.zeros((2, 2))), ValueError, r"must return y of shape \(2, 2\)"),
        (lambda: chain_inverse([lambda x: (x, x)], np.zeros((2, 2))), ValueError, r"inverses\[0\]\(x\) must return y of shape"),
        (lambda: chain_forward([lambda x: (x, x[:, 0])], np.zeros(2)), ValueError, r"z must have shape \(n, d\)"),
        (lambda: chain_logpdf([lambda x: (x, x[:, 0])], np.zeros((2, 2)), base_logpdf=1.0), TypeError, "base_logpdf must be callable"),
        (lambda: realnvp_init(1, 2, (4,), np.random.default_rng(0)), ValueError, "d must be an integer >= 2"),
        (lambda: realnvp_init(2, 0, (4,), np.random.default_rng(0)), ValueError, "n_layers must be an integer >= 1"),
        (lambda: realnvp_init(2, 2, (4,), None), TypeError, "rng must be a numpy.random.Generator"),
        (lambda: realnvp_logpdf([], np.zeros((2, 2))), TypeError, "params must be a non-empty list of coupling-layer"),
        (lambda: realnvp_logpdf(GOOD, np.zeros((2, 3))), ValueError, r"x must have dimension d = 2 like params, got shape \(2, 3\)"),
        (lambda: realnvp_logpdf(GOOD, np.array([[np.inf, 0.0]])), ValueError, "non-finite"),
        (lambda: realnvp_forward(GOOD, np.zeros((2, 2)), perms=[None]), ValueError, r"one permutation per layer \(2\)"),
        (lambda: realnvp_forward(GOOD, np.zeros((2, 2)), perms=[[0, 0], [0, 1]]), ValueError, r"perms\[0\] must be a permutation"),
        (lambda: realnvp_sample(GOOD, 0, np.random.default_rng(0)), ValueError, "n must be an integer >= 1"),
        (lambda: realnvp_sample(GOOD, 5, 42), TypeError, "rng must be a numpy.random.Generator"),
        (lambda: alternating_permutations(2, 0), ValueError, "n_layers must be an integer >= 1"),
        (lambda: planar_chain_logpdf({}, np.zeros((2, 2))), TypeError, "params must be a non-empty list of planar-layer"),
        (lambda: planar_chain_logpdf([dict(PLANAR[0], a=np.array([-2.0, 0.0]))], np.zeros((2, 2))), ValueError, r"a\^T b > -1"),
        (lambda: planar_chain_forward(PLANAR, np.zeros((2, 3))), ValueError, r"z must have dimension d = 2 like params, got shape \(2, 3\)"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()


@given(realnvps(), seeds)
def test_an_identity_initialised_realnvp_is_the_base_distribution(model, seed):
    _, d = model
    params = realnvp_init(d, 3, (5,), np.random.default_rng(seed), identity=True)
    x = np.random.default_rng(seed).normal(size=(7, d)) * 2
    np.testing.assert_array_equal(realnvp_forward(params, x)[0], x)
    np.testing.assert_array_equal(realnvp_logpdf(params, x), standard_normal_logpdf(x))
    # negative control: the random initialisation of the same draws is not the identity
    random = realnvp_init(d, 3, (5,), np.random.default_rng(seed))
    assert not np.allclose(realnvp_logpdf(random, x), standard_normal_logpdf(x))
    # and only the last layers differ between the two
    np.testing.assert_array_equal(random[0]["s"][0][0], params[0]["s"][0][0])

"""``reference.flows.planar``: the planar layer, its log-det, its invertibility condition and its inverse."""

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from autograd.test_util import check_grads
from hypothesis import given, strategies as st
from scipy.optimize import brentq

from reference.autodiff import jacobian
from reference.flows.planar import (
    PLANAR_MARGIN,
    planar_collision,
    planar_constrain,
    planar_forward,
    planar_init,
    planar_inverse,
    planar_is_invertible,
    planar_log_det,
)
from tests.strategies import dims, planar_layers, points, seeds


def layer_and_points(invertible=True):
    return dims.flatmap(lambda d: st.tuples(planar_layers(d, invertible), points(d=d)))


def hyperplane_point(params, s):
    """The point x = (s - c) b / |b|^2, where b^T x + c = s."""
    b = params["b"]
    return ((s - params["c"]) * b / (b @ b))[None, :]


@given(st.one_of(layer_and_points(True), layer_and_points(False)))
def test_log_det_equals_slogdet_of_the_autograd_jacobian(case):
    params, x = case
    x = np.concatenate([x, hyperplane_point(params, 0.0), hyperplane_point(params, 1.0)])
    J = jacobian(lambda y: planar_forward(params, y)[0], x)
    sign, expected = np.linalg.slogdet(J)
    assert np.all(sign != 0)
    _, log_det = planar_forward(params, x)
    np.testing.assert_allclose(log_det, expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(log_det, planar_log_det(params, x))
    # negative control: tanh in place of tanh' is wrong (at b^T x + c = 0 and 1, the two
    # agree only if a^T b = 0 or both a^T b = -2 and a^T b = -2 / 1.18)
    s = x @ params["b"] + params["c"]
    wrong = np.log(np.abs(1 + np.tanh(s) * (params["a"] @ params["b"])))
    assert not np.allclose(wrong, expected, rtol=1e-10, atol=1e-10)


@given(layer_and_points(True))
def test_inverse_undoes_forward_both_ways(case):
    params, x = case
    x = np.concatenate([x, hyperplane_point(params, 0.0)])
    y, _ = planar_forward(params, x)
    x_back, _ = planar_inverse(params, y)
    np.testing.assert_allclose(x_back, x, rtol=1e-12, atol=1e-12)
    y_back, _ = planar_forward(params, planar_inverse(params, x)[0])
    np.testing.assert_allclose(y_back, x, rtol=1e-12, atol=1e-12)
    # negative control: the inverse of a perturbed layer (c + 0.5) fails the round trip;
    # at the hyperplane point (y = x) it moves x by |tanh(s')| |a| >= 0.12 * 0.15
    perturbed = dict(params, c=params["c"] + 0.5)
    assert not np.allclose(planar_inverse(perturbed, y)[0], x, rtol=1e-6, atol=1e-6)


@given(layer_and_points(True))
def test_forward_and_inverse_log_dets_sum_to_zero(case):
    params, x = case
    x = np.concatenate([x, hyperplane_point(params, 1.0)])
    y, log_det = planar_forward(params, x)
    _, log_det_inv = planar_inverse(params, y)
    np.testing.assert_allclose(log_det + log_det_inv, 0.0, atol=1e-12)
    # negative control: the inverse's log-det taken at y instead of x does not cancel
    # (at b^T x + c = 1, b^T y + c = 1 + tanh(1) a^T b is not +-1 and a^T b != 0)
    assert not np.allclose(log_det - planar_log_det(params, y), 0.0, atol=1e-12)


def m_of(s):
    """m(s) = -1 + delta + softplus(s + 1 - delta), written independently."""
    return -1 + PLANAR_MARGIN + np.logaddexp(0, s + 1 - PLANAR_MARGIN)


@given(dims.flatmap(lambda d: st.tuples(
    st.just(d), st.floats(-10, 10), st.floats(-10, 10), seeds)))
def test_constrain_always_yields_an_invertible_layer(case):
    d, log_a, log_b, seed = case
    rng = np.random.default_rng(seed)
    # any direction, any scale over ten orders of magnitude, a^T b of either sign
    raw = {"a": rng.standard_normal(d) * 10 ** (log_a / 5), "b": rng.standard_normal(d) * 10 ** (log_b / 5),
           "c": np.array(rng.normal())}
    con = planar_constrain(raw)
    ab, ab_raw = con["a"] @ con["b"], raw["a"] @ raw["b"]
    assert ab > -1 and planar_is_invertible(con)
    np.testing.assert_allclose(ab, m_of(ab_raw), rtol=1e-9, atol=1e-9)
    # a moves along b only; b and c are untouched
    da = con["a"] - raw["a"]
    np.testing.assert_allclose(da - (da @ raw["b"]) / (raw["b"] @ raw["b"]) * raw["b"], 0,
                               atol=1e-9 * (1 + np.abs(raw["a"]).max()))
    assert con["b"] is raw["b"] and con["c"] is raw["c"]
    # negative control: the raw layer violates the condition whenever a^T b < -1
    if ab_raw < -1:
        assert not planar_is_invertible(raw)


@given(layer_and_points(True))
def test_constrain_is_onto_the_invertible_layers(case):
    target, x = case
    b = target["b"]
    ab = target["a"] @ b
    # m(s) = -1 + delta + softplus(s + 1 - delta) has the inverse
    # m^-1(u) = log(exp(u + 1 - delta) - 1) - (1 - delta)
    m_inv = np.log(np.expm1(ab + 1 - PLANAR_MARGIN)) - (1 - PLANAR_MARGIN)
    raw_a = target["a"] + (m_inv - ab) * b / (b @ b)
    con = planar_constrain(dict(target, a=raw_a))
    np.testing.assert_allclose(con["a"], target["a"], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(planar_forward(con, x)[0], planar_forward(target, x)[0], rtol=1e-10, atol=1e-10)
    # negative control: the target itself, taken as unconstrained, is moved (m(s) > s)
    assert not np.allclose(planar_constrain(target)["a"], target["a"], rtol=1e-10, atol=1e-10)


@given(layer_and_points(True), st.floats(-0.5, 30.0))
def test_constrain_leaves_a_layer_well_inside_the_region_nearly_unchanged(case, ab):
    layer, x = case
    b = layer["b"]
    valid = dict(layer, a=layer["a"] + (ab - layer["a"] @ b) * b / (b @ b))  # a^T b = ab
    # |a_hat - a| = (m(ab) - ab) / |b| <= exp(-(ab + 1 - delta)) / |b|, and the layer's
    # output moves by at most as much
    bound = np.exp(-(ab + 1 - PLANAR_MARGIN)) / np.linalg.norm(b) * (1 + 1e-9) + 1e-13
    con = planar_constrain(valid)
    assert np.linalg.norm(con["a"] - valid["a"]) <= bound
    moved = np.linalg.norm(planar_forward(con, x)[0] - planar_forward(valid, x)[0], axis=1)
    assert np.all(moved <= bound)
    # negative control: Rezende and Mohamed's m(s) = -1 + softplus(s) lowers a^T b by
    # about one for large a^T b, moving a by about 1 / |b|, beyond the bound when ab > 1
    rm = valid["a"] + (-1 + np.logaddexp(0, ab) - ab) * b / (b @ b)
    if ab > 1:
        assert np.linalg.norm(rm - valid["a"]) > bound


def test_a_layer_with_ab_below_minus_one_maps_two_points_to_one():
    # a = (-2, 0), b = (1, 0), c = 0: phi(u, v) = (u - 2 tanh(u), v), and u - 2 tanh(u) = 0
    # at u = 0 and u = +-u*, with u* = 2 tanh(u*) found independently
    params = {"a": np.array([-2.0, 0.0]), "b": np.array([1.0, 0.0]), "c": np.array(0.0)}
    u_star = brentq(lambda u: u - 2 * np.tanh(u), 1.0, 3.0, xtol=1e-15)
    x = np.array([[u_star, 0.7], [-u_star, 0.7]])
    y, _ = planar_forward(params, x)
    np.testing.assert_allclose(y, [[0.0, 0.7], [0.0, 0.7]], atol=1e-14)
    assert np.linalg.norm(x[0] - x[1]) > 3.8
    with pytest.raises(ValueError, match=r"invertibility condition a\^T b > -1 \(a\^T b = -2\)"):
        planar_inverse(params, y)
    # negative control: with a = (-0.5, 0) (a^T b = -0.5), the same two points stay apart
    ok = dict(params, a=np.array([-0.5, 0.0]))
    y_ok, _ = planar_forward(ok, x)
    assert np.linalg.norm(y_ok[0] - y_ok[1]) > 1.0


@given(dims.flatmap(lambda d: planar_layers(d, invertible=False)))
def test_planar_collision_exhibits_two_preimages_of_one_point(params):
    x, y = planar_collision(params)
    images, _ = planar_forward(params, x)
    np.testing.assert_allclose(images, np.repeat(y, 2, axis=0), rtol=1e-12, atol=1e-12)
    assert np.linalg.norm(x[0] - x[1]) > 0.1  # 2 tau* |a| with tau* >= 0.5, |a| >= 0.6
    assert not planar_is_invertible(params)
    with pytest.raises(ValueError, match="invertibility condition"):
        planar_inverse(params, y)
    # negative control: the constrained layer is injective, and has no collision to show
    with pytest.raises(ValueError, match="injective"):
        planar_collision(planar_constrain(params))


def test_inverse_is_differentiable_and_its_gradient_matches_finite_differences(rng):
    params = planar_constrain(planar_init(3, rng, scale=2.0))
    a, b, c = params["a"], params["b"], np.asarray(params["c"], dtype=float)
    y = rng.normal(size=(4, 3))
    w = rng.normal(size=(4, 3))

    def loss(c, a):
        x, log_det_inv = planar_inverse({"a": a, "b": b, "c": c}, y)
        return anp.sum(w * x) + anp.sum(log_det_inv)

    def central_difference(f, v, h=1e-6):
        out = np.zeros_like(v)
        for idx in np.ndindex(v.shape):
            e = np.zeros_like(v)
            e[idx] = h
            out[idx] = (f(v + e) - f(v - e)) / (2 * h)
        return out

    fd_c = central_difference(lambda v: loss(v, a), c)
    np.testing.assert_allclose(grad(loss, 0)(c, a), fd_c, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(grad(loss, 1)(c, a), central_difference(lambda v: loss(c, v), a), rtol=1e-6, atol=1e-7)
    # and with respect to the whole params dict at once (as a trainer differentiates it)
    check_grads(lambda p: anp.sum(w * planar_inverse(p, y)[0]) + anp.sum(planar_inverse(p, y)[1]),
                modes=["rev"], order=1)(params)
    # negative control: holding the root s fixed (no implicit-function derivative) gives
    # a different c-gradient
    s_fixed = planar_inverse(params, y)[0] @ b + c

    def frozen_loss(c):
        x = y - anp.tanh(s_fixed)[:, None] * a
        return anp.sum(w * x) - anp.sum(planar_log_det({"a": a, "b": b, "c": c}, x))

    np.testing.assert_allclose(frozen_loss(c), loss(c, a), rtol=1e-12)
    assert not np.allclose(grad(frozen_loss)(c), fd_c, rtol=1e-3, atol=1e-3)


def test_init_is_seeded_and_scaled(rng):
    p = planar_init(4, np.random.default_rng(3), scale=2.0)
    q = planar_init(4, np.random.default_rng(3), scale=2.0)
    assert all(np.array_equal(p[k], q[k]) for k in "abc")
    assert p["a"].shape == p["b"].shape == (4,) and np.ndim(p["c"]) == 0
    big = planar_init(4, rng, scale=1.0)
    assert not np.array_equal(big["a"], p["a"])


GOOD = {"a": np.array([0.5, 0.0]), "b": np.array([1.0, 0.0]), "c": np.array(0.0)}


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: planar_forward([1, 2, 3], np.zeros((2, 2))), TypeError, "params must be a dict with keys"),
        (lambda: planar_forward({"a": 1, "b": 2}, np.zeros((2, 2))), TypeError, "params must be a dict with keys"),
        (lambda: planar_forward(dict(GOOD, a=np.zeros(3)), np.zeros((2, 2))), ValueError, "a and b of shape"),
        (lambda: planar_forward(dict(GOOD, c=np.zeros(2)), np.zeros((2, 2))), ValueError, "scalar c"),
        (lambda: planar_forward(GOOD, np.zeros((2, 3))), ValueError, "params are for d = 2, x has d = 3"),
        (lambda: planar_forward(dict(GOOD, c=np.array(np.nan)), np.zeros((2, 2))), ValueError, r"params\['c'\] holds 1 non-finite value"),
        (lambda: planar_forward(GOOD, np.array([[np.inf, 0.0]])), ValueError, "non-finite"),
        (lambda: planar_forward(GOOD, np.zeros(2)), ValueError, r"x must have shape \(n, d\)"),
        (lambda: planar_inverse(GOOD, np.zeros((2, 3))), ValueError, "params are for d = 2"),
        (lambda: planar_inverse(dict(GOOD, a=np.array([-1.0, 0.0])), np.zeros((2, 2))), ValueError, r"a\^T b > -1"),
        (lambda: planar_inverse(GOOD, np.zeros((2, 2)), max_iter=0), ValueError, "max_iter must be an integer >= 1"),
        (lambda: planar_collision(GOOD), ValueError, "injective"),
        (lambda: planar_init(0, np.random.default_rng(0)), ValueError, "d must be an integer >= 1"),
        (lambda: planar_init(2, 0), TypeError, "rng must be a numpy.random.Generator"),
        (lambda: planar_init(2, np.random.default_rng(0), scale=-1.0), ValueError, "scale must be > 0"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()

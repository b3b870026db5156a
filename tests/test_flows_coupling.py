"""``reference.flows.coupling``: RealNVP's affine coupling, eq. (3), its closed-form inverse and log-det."""

import numpy as np
import pytest
from autograd import grad
from autograd.test_util import check_grads
import autograd.numpy as anp
from hypothesis import given, strategies as st

from reference.autodiff import jacobian
from reference.flows.coupling import (
    SCALE_BOUND,
    coupling_forward,
    coupling_init,
    coupling_inverse,
    coupling_log_det,
    coupling_scale,
    coupling_translation,
)
from reference.nn import mlp_apply
from tests.strategies import coupling_layers, points, seeds


def layer_and_points():
    return coupling_layers().flatmap(lambda c: st.tuples(st.just(c), points(d=c[1])))


def permutations(d):
    return st.permutations(list(range(d))).map(np.array)


def layer_points_perm():
    return layer_and_points().flatmap(
        lambda case: st.tuples(st.just(case), st.one_of(st.none(), permutations(case[0][1]))))


def perturbed(params, name="t", delta=0.1):
    """The same layer with the last bias of ``s`` or ``t`` shifted by ``delta``."""
    W, b = params[name][-1]
    return dict(params, **{name: params[name][:-1] + [(W, b + delta)]})


@given(layer_points_perm())
def test_inverse_undoes_forward_both_ways(case):
    ((params, d, d_split), x), perm = case
    y, _ = coupling_forward(params, x, perm)
    np.testing.assert_allclose(coupling_inverse(params, y, perm)[0], x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(coupling_forward(params, coupling_inverse(params, x, perm)[0], perm)[0], x,
                               rtol=1e-12, atol=1e-12)
    # negative control: a perturbed inverse (t shifted by 0.1) moves x_{d'+1:d} by
    # 0.1 exp(-s) >= 0.1 e^-2 on every point
    x_wrong, _ = coupling_inverse(perturbed(params, "t"), y, perm)
    assert np.all(np.abs(x_wrong - x).max(axis=1) > 0.1 * np.exp(-SCALE_BOUND) * 0.99)


@given(layer_points_perm())
def test_forward_and_inverse_log_dets_sum_to_zero(case):
    ((params, _, _), x), perm = case
    y, log_det = coupling_forward(params, x, perm)
    _, log_det_inv = coupling_inverse(params, y, perm)
    np.testing.assert_allclose(log_det + log_det_inv, 0.0, atol=1e-12)
    # negative control: the inverse's log-det of a layer whose scale is perturbed
    # (s's last bias + 0.5) does not cancel
    _, wrong = coupling_inverse(perturbed(params, "s", 0.5), y, perm)
    assert not np.allclose(log_det + wrong, 0.0, atol=1e-6)


@given(layer_points_perm())
def test_log_det_equals_slogdet_of_the_autograd_jacobian(case):
    ((params, _, d_split), x), perm = case
    J = jacobian(lambda v: coupling_forward(params, v, perm)[0], x)
    sign, expected = np.linalg.slogdet(J)
    assert np.all(sign > 0)  # exp(s) > 0 on the diagonal of a triangular matrix
    y, log_det = coupling_forward(params, x, perm)
    np.testing.assert_allclose(log_det, expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(coupling_log_det(params, x, perm), log_det, rtol=1e-15)
    # the inverse's log-det is slogdet of the inverse's Jacobian, at y
    J_inv = jacobian(lambda v: coupling_inverse(params, v, perm)[0], y)
    np.testing.assert_allclose(coupling_inverse(params, y, perm)[1], np.linalg.slogdet(J_inv)[1],
                               rtol=1e-10, atol=1e-10)
    # negative controls: a log-det missing the term of the first scaled coordinate, or
    # computed from the MLP's raw output without the bound, differs
    xp = x if perm is None else x[:, perm]
    s = coupling_scale(params, xp[:, :d_split])
    missing = log_det - s[:, 0]
    raw = np.sum(mlp_apply(params["s"], xp[:, :d_split], "tanh"), axis=1)
    assert not np.allclose(missing, expected, rtol=1e-10, atol=1e-10)
    assert not np.allclose(raw, expected, rtol=1e-10, atol=1e-10)


@given(layer_and_points())
def test_jacobian_is_lower_triangular_with_an_identity_block(case):
    (params, d, d_split), x = case
    J = jacobian(lambda v: coupling_forward(params, v)[0], x)
    s = coupling_scale(params, x[:, :d_split])
    eye = np.broadcast_to(np.eye(d_split), (x.shape[0], d_split, d_split))
    np.testing.assert_array_equal(J[:, :d_split, :d_split], eye)  # Id_{d'}
    np.testing.assert_array_equal(J[:, :d_split, d_split:], 0.0)  # 0_{d', d - d'}
    diag = np.zeros_like(J[:, d_split:, d_split:])
    idx = np.arange(d - d_split)
    diag[:, idx, idx] = np.exp(s)
    np.testing.assert_allclose(J[:, d_split:, d_split:], diag, rtol=1e-14, atol=0)  # diag(exp(s))
    # negative control: with the halves swapped (reversed coordinates), the same layer's
    # Jacobian in the original coordinates has a non-zero upper-right block
    J_rev = jacobian(lambda v: coupling_forward(params, v, np.arange(d)[::-1])[0], x)
    assert np.abs(np.triu(J_rev, 1)).max() > 1e-6


@given(layer_and_points())
def test_the_first_d_split_coordinates_pass_through_and_the_others_follow_eq_3(case):
    (params, d, d_split), x = case
    x = np.concatenate([x, np.ones((1, d))])  # a point with x_{d'+1:d} != 0
    y, _ = coupling_forward(params, x)
    np.testing.assert_array_equal(y[:, :d_split], x[:, :d_split])
    x1 = x[:, :d_split]
    # s = S tanh(MLP_s / S), t = MLP_t (tanh hidden layers), written out again
    s = SCALE_BOUND * np.tanh(mlp_apply(params["s"], x1, "tanh") / SCALE_BOUND)
    t = mlp_apply(params["t"], x1, "tanh")
    np.testing.assert_allclose(y[:, d_split:], x[:, d_split:] * np.exp(s) + t, rtol=1e-14, atol=1e-14)
    np.testing.assert_array_equal(coupling_translation(params, x1), t)
    assert np.all(np.abs(s) < SCALE_BOUND)
    # negative control: exp(-s) in place of exp(s) is a different map
    assert not np.allclose(y[:, d_split:], x[:, d_split:] * np.exp(-s) + t, rtol=1e-10, atol=1e-10)


@given(layer_and_points(), st.data())
def test_a_permuted_layer_is_the_layer_in_permuted_coordinates(case, data):
    (params, d, _), x = case
    perm = data.draw(permutations(d))
    y, log_det = coupling_forward(params, x, perm)
    y_in_perm, log_det_in_perm = coupling_forward(params, x[:, perm])
    np.testing.assert_array_equal(y[:, perm], y_in_perm)
    np.testing.assert_array_equal(log_det, log_det_in_perm)
    # negative control: scattering back with perm instead of its inverse is wrong for a
    # permutation that is not an involution
    cyc = np.roll(np.arange(d), 1)
    if d > 2:
        y_cyc, _ = coupling_forward(params, x, cyc)
        assert not np.allclose(y_cyc[:, cyc[cyc]], coupling_forward(params, x[:, cyc])[0])


def test_scale_is_bounded_even_for_huge_network_outputs(rng):
    params = coupling_init(3, 1, (4,), rng)
    W, b = params["s"][-1]
    params["s"][-1] = (1e6 * W, 1e6 * b)
    x = rng.normal(size=(50, 3)) * 10
    y, log_det = coupling_forward(params, x)
    assert np.all(np.isfinite(y)) and np.all(np.abs(log_det) <= 2 * SCALE_BOUND)
    np.testing.assert_allclose(coupling_inverse(params, y)[0], x, rtol=1e-10, atol=1e-10)


def test_gradients_with_respect_to_the_parameters_match_finite_differences(rng):
    params = coupling_init(3, 2, (5,), rng)
    x = rng.normal(size=(4, 3))
    check_grads(lambda p: anp.sum(coupling_forward(p, x)[0] ** 2) + anp.sum(coupling_forward(p, x)[1]),
                modes=["rev"], order=1)(params)
    check_grads(lambda p: anp.sum(coupling_inverse(p, x)[0] ** 2), modes=["rev"], order=1)(params)
    g_t = grad(lambda p: anp.sum(coupling_forward(p, x)[1]))(params)["t"]  # log-det ignores t entirely
    assert all(np.all(g == 0.0) for W, b in g_t for g in (W, b))


@given(seeds)
def test_init_is_seeded_and_shaped(seed):
    p = coupling_init(5, 2, (7, 3), np.random.default_rng(seed))
    q = coupling_init(5, 2, (7, 3), np.random.default_rng(seed))
    assert [W.shape for W, _ in p["s"]] == [(2, 7), (7, 3), (3, 3)]
    assert [W.shape for W, _ in p["t"]] == [(2, 7), (7, 3), (3, 3)]
    assert all(np.array_equal(a, b) for la, lb in zip(p["s"] + p["t"], q["s"] + q["t"]) for a, b in zip(la, lb))
    assert not np.array_equal(p["s"][0][0], p["t"][0][0])  # s and t are independent networks


GOOD = coupling_init(3, 1, (4,), np.random.default_rng(0))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: coupling_init(3, 0, (4,), np.random.default_rng(0)), ValueError, r"1 <= d_split <= d - 1 = 2, got 0"),
        (lambda: coupling_init(3, 3, (4,), np.random.default_rng(0)), ValueError, "d_split = d = 3 leaves nothing to transform"),
        (lambda: coupling_init(3, 4, (4,), np.random.default_rng(0)), ValueError, "1 <= d_split <= d - 1"),
        (lambda: coupling_init(3, 1.5, (4,), np.random.default_rng(0)), TypeError, "d_split must be an integer"),
        (lambda: coupling_init(1, 1, (4,), np.random.default_rng(0)), ValueError, "d must be an integer >= 2"),
        (lambda: coupling_init(3, 1, 4, np.random.default_rng(0)), TypeError, "hidden must be a sequence"),
        (lambda: coupling_init(3, 1, (0,), np.random.default_rng(0)), ValueError, r"hidden\[0\] must be an integer >= 1 \(a layer width\), got 0"),
        (lambda: coupling_init(3, 1, (4,), 0), TypeError, "rng must be a numpy.random.Generator"),
        (lambda: coupling_forward(GOOD, np.zeros((2, 4))), ValueError, "params are for d = 3 .d' = 1., x has d = 4"),
        (lambda: coupling_forward(GOOD, np.zeros(3)), ValueError, r"x must have shape \(n, d\)"),
        (lambda: coupling_forward(GOOD, np.array([[np.nan, 0, 0]])), ValueError, "non-finite"),
        (lambda: coupling_inverse(GOOD, np.zeros((2, 2))), ValueError, "params are for d = 3"),
        (lambda: coupling_forward({"s": GOOD["s"]}, np.zeros((2, 3))), TypeError, "params must be a dict"),
        (lambda: coupling_forward({"s": GOOD["s"], "t": 3}, np.zeros((2, 3))), TypeError, r"params\['t'\] must be a non-empty list of \(W, b\) pairs as made by reference\.nn\.mlp_init, got int"),
        (lambda: coupling_forward({"s": GOOD["s"], "t": coupling_init(3, 2, (4,), np.random.default_rng(0))["t"]},
                                  np.zeros((2, 3))), ValueError, r"both must map R\^d' -> R\^\(d-d'\)"),
        (lambda: coupling_forward(GOOD, np.zeros((2, 3)), perm=[0, 1, 1]), ValueError, "perm must be a permutation of 0..2"),
        (lambda: coupling_forward(GOOD, np.zeros((2, 3)), perm=[0, 1]), ValueError, "perm must be a permutation"),
        (lambda: coupling_inverse(GOOD, np.zeros((2, 3)), perm=[0.0, 1.0, 2.0]), TypeError, "perm must be an integer array"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()

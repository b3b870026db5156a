"""``reference.nn``: the MLP and the time-conditioned velocity field."""

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from autograd.test_util import check_grads
from hypothesis import given, strategies as st

from reference.nn import mlp_apply, mlp_init, silu, velocity_apply, velocity_init
from tests.strategies import points, seeds, velocity_networks


def test_silu_equals_its_definition_and_does_not_overflow():
    h = np.linspace(-30, 30, 601)
    np.testing.assert_allclose(silu(h), h / (1 + np.exp(-h)), rtol=1e-13, atol=1e-300)
    assert np.all(np.isfinite(silu(np.array([-1e4, 1e4]))))
    assert silu(np.array([1e4]))[0] == 1e4 and silu(np.array([-1e4]))[0] == 0.0


@given(seeds, st.lists(st.integers(1, 6), min_size=2, max_size=4))
def test_mlp_init_shapes_and_bounds(seed, sizes):
    params = mlp_init(sizes, np.random.default_rng(seed))
    assert len(params) == len(sizes) - 1
    for (W, b), fan_in, fan_out in zip(params, sizes[:-1], sizes[1:]):
        assert W.shape == (fan_in, fan_out) and b.shape == (fan_out,)
        assert np.all(np.abs(W) <= 1 / np.sqrt(fan_in)) and np.all(np.abs(b) <= 1 / np.sqrt(fan_in))


def test_mlp_apply_is_the_composition_of_its_layers(rng):
    params = mlp_init((3, 5, 4, 2), rng)
    h = rng.normal(size=(7, 3))
    (W1, b1), (W2, b2), (W3, b3) = params
    by_hand = silu(silu(h @ W1 + b1) @ W2 + b2) @ W3 + b3
    np.testing.assert_allclose(mlp_apply(params, h), by_hand, rtol=1e-14)
    # negative control: the tanh network differs
    assert not np.allclose(mlp_apply(params, h, "tanh"), by_hand)


def test_mlp_gradients_match_finite_differences(rng):
    params = mlp_init((2, 4, 3), rng)
    h = rng.normal(size=(5, 2))
    check_grads(lambda p: anp.sum(mlp_apply(p, h) ** 2), modes=["rev"], order=2)(params)


def test_zero_last_layer_outputs_zero(rng):
    params = mlp_init((3, 8, 2), rng, zero_last=True)
    assert np.all(mlp_apply(params, rng.normal(size=(4, 3))) == 0.0)


@given(seeds, points(d=2))
def test_velocity_takes_a_float_or_one_time_per_point(seed, x):
    params = velocity_init(2, (8, 8), np.random.default_rng(seed))
    n = x.shape[0]
    t = np.linspace(0.0, 1.0, n)
    per_point = velocity_apply(params, x, t)
    one_by_one = np.concatenate([velocity_apply(params, x[i : i + 1], float(t[i])) for i in range(n)])
    np.testing.assert_allclose(per_point, one_by_one, rtol=1e-13, atol=1e-14)
    assert per_point.shape == x.shape
    # the input is [x, t]: the field depends on t
    assert not np.allclose(velocity_apply(params, x, 0.0), velocity_apply(params, x, 1.0))


def test_velocity_is_differentiable_in_x_and_params(rng):
    params = velocity_init(2, (6,), rng)
    x = rng.normal(size=(3, 2))
    check_grads(lambda y: anp.sum(velocity_apply(params, y, 0.3) ** 2), modes=["rev"], order=1)(x)
    g = grad(lambda p: anp.sum(velocity_apply(p, x, 0.3)))(params)
    assert all(gW.shape == W.shape for (gW, _), (W, _) in zip(g, params))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: mlp_init((3,), np.random.default_rng(0)), ValueError, "at least an input and an output"),
        (lambda: mlp_init((3, 0), np.random.default_rng(0)), ValueError, ">= 1"),
        (lambda: mlp_init((3, 2), None), TypeError, "rng must be"),
        (lambda: mlp_apply(mlp_init((3, 2), np.random.default_rng(0)), np.zeros((4, 2))), ValueError, r"h must have shape \(n, 3\)"),
        (lambda: mlp_apply(mlp_init((3, 2), np.random.default_rng(0)), np.zeros((4, 3)), "gelu"), ValueError, "activation must be one of"),
        (lambda: velocity_apply(velocity_init(2, (4,), np.random.default_rng(0)), np.zeros((4, 3)), 0.5), ValueError,
         r"x must have dimension d = 2 for these params \(they map \[x, t\] in R\^3 to R\^2\), got shape \(4, 3\)"),
        (lambda: velocity_apply(velocity_init(2, (4,), np.random.default_rng(0)), np.zeros((4, 2)), np.zeros(5)), ValueError, r"t must be a float or an array of shape \(4,\)"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------------ flat parameters

from reference.nn import mlp_flatten, mlp_unflatten  # noqa: E402


@given(velocity_networks())
def test_flatten_round_trip_shares_memory(case):
    params, _, _ = case
    theta, sizes = mlp_flatten(params)
    back = mlp_unflatten(theta, sizes)
    for (W, b), (W2, b2) in zip(params, back):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)
    theta[0] += 1.0  # the unflattened arrays are views
    assert back[0][0].flat[0] == params[0][0].flat[0] + 1.0

"""``reference.bridge``: K planar layers are K Euler steps, and their log-dets tend to the integrated divergence."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from reference.autodiff import divergence, log_abs_det_jacobian
from reference.bridge import (
    planar_coefficients,
    planar_divergence,
    planar_layers,
    planar_layers_forward,
    planar_ode_forward,
    planar_velocity,
)
from reference.flows.planar import planar_forward
from reference.ode import integrate
from tests.strategies import dims, seeds

SLOPE_TOL = 0.25
KS = (32, 64, 128, 256)
FEW = settings(max_examples=max(4, settings().max_examples // 4))


@st.composite
def planar_fields(draw, d=None):
    """Coefficients with |a0| = |a1| = 0.8, |b0| = |b1| = 1 (so |div u| <= 3.2) and 4 starting points."""
    d = draw(dims) if d is None else d
    rng = np.random.default_rng(draw(seeds))

    def unit(k):
        v = rng.standard_normal((k, d))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    params = {"a": 0.8 * unit(2), "b": unit(2), "c": rng.normal(0.0, 0.5, 2)}
    return params, rng.standard_normal((4, d))


@given(planar_fields(), st.integers(1, 40))
def test_k_planar_layers_are_k_euler_steps(field, K):
    params, x0 = field
    x_layers, _ = planar_layers_forward(params, x0, K)
    x_euler = integrate(lambda x, t: planar_velocity(params, x, t), x0, 0.0, 1.0, K, "euler")
    np.testing.assert_allclose(x_layers, x_euler, rtol=1e-14, atol=1e-14)
    # negative control: the layers are not midpoint steps
    if K <= 8:
        x_mid = integrate(lambda x, t: planar_velocity(params, x, t), x0, 0.0, 1.0, K, "midpoint")
        assert np.max(np.abs(x_layers - x_mid)) > 1e-8


@given(planar_fields(), st.integers(1, 10))
def test_layer_k_uses_the_coefficients_at_the_left_end_of_its_step(field, K):
    params, x0 = field
    layers = planar_layers(params, K)
    for k, layer in enumerate(layers, start=1):
        a, b, c = planar_coefficients(params, (k - 1) / K)
        np.testing.assert_allclose(layer["a"], a / K, rtol=1e-15)
        np.testing.assert_allclose(layer["b"], b, rtol=1e-15)
        np.testing.assert_allclose(layer["c"], c, rtol=1e-15)
    # and one layer's log-det is log |1 + h div u| at its input, by the analytic formula
    _, log_det = planar_forward(layers[0], x0)
    np.testing.assert_allclose(log_det, np.log(np.abs(1 + planar_divergence(params, x0, 0.0) / K)), rtol=1e-12)


@given(planar_fields(), st.floats(0.0, 1.0))
def test_the_planar_divergence_is_the_trace_of_the_jacobian(field, t):
    params, x = field
    expected = divergence(lambda y, s: planar_velocity(params, y, s), x, t)
    np.testing.assert_allclose(planar_divergence(params, x, t), expected, rtol=1e-12, atol=1e-14)
    # negative control: the sum of all entries of the rank-one Jacobian is not its trace
    a, b, c = planar_coefficients(params, t)
    sech2 = 1 - np.tanh(x @ b + c) ** 2
    if abs(np.sum(a) * np.sum(b) - a @ b) > 1e-3:
        assert not np.allclose(sech2 * np.sum(a) * np.sum(b), expected)


@FEW
@given(planar_fields())
def test_the_integrated_divergence_is_the_log_det_of_the_flow_map(field):
    # Jacobi's formula: d/dt log det J = tr(J_u) along the trajectory (Liouville)
    params, x0 = field
    _, integral = planar_ode_forward(params, x0, n_steps=100, method="rk4")
    flow_map = lambda y: integrate(lambda x, t: planar_velocity(params, x, t), y, 0.0, 1.0, 100, "rk4")  # noqa: E731
    np.testing.assert_allclose(integral, log_abs_det_jacobian(flow_map, x0), atol=1e-8)
    assert np.max(np.abs(integral)) > 1e-3  # negative control: the flow does change volumes


@FEW
@given(planar_fields())
def test_summed_log_dets_converge_to_the_integrated_divergence_at_rate_one_over_k(field):
    params, x0 = field
    x1, integral = planar_ode_forward(params, x0, n_steps=200, method="dopri5")  # reference, error ~1e-12
    end_errors, log_det_errors, inverse_gaps = [], [], []
    for K in KS:  # RMS over the points: asymptotically C / K with C > 0 unless every point's C is 0
        x_K, log_det = planar_layers_forward(params, x0, K)
        end_errors.append(np.sqrt(np.mean((x_K - x1) ** 2)))
        log_det_errors.append(np.sqrt(np.mean((log_det - integral) ** 2)))
        inverse_gaps.append(np.sqrt(np.mean((-log_det - integral) ** 2)))
    log_k = np.log(KS)
    for errors in (end_errors, log_det_errors):
        assert min(errors) > 1e-9  # far above the reference's error
        slope = np.polyfit(log_k, np.log(errors), 1)[0]
        assert abs(slope + 1.0) <= SLOPE_TOL, (slope, errors)
    # eq. (2): the summed inverse log-dets tend to minus the integral, not to the integral
    # (negative control, unless the integral is ~0)
    if np.sqrt(np.mean(integral**2)) > 0.05:
        assert inverse_gaps[-1] > 10 * log_det_errors[-1]


P = {"a": np.ones((2, 2)), "b": np.ones((2, 2)), "c": np.zeros(2)}


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: planar_velocity({"a": np.ones((2, 2))}, np.ones((3, 2)), 0.0), TypeError, "keys 'a', 'b', 'c'"),
        (lambda: planar_velocity({"a": np.ones(2), "b": np.ones(2), "c": 0.0}, np.ones((3, 2)), 0.0), ValueError, r"a and b of shape \(2, d\)"),
        (lambda: planar_velocity(P, np.ones((3, 3)), 0.0), ValueError, "params are for d = 2"),
        (lambda: planar_velocity(P, np.ones((3, 2)), np.ones(2)), ValueError, r"t must be a float or an array of shape \(3,\)"),
        (lambda: planar_layers(P, 0), ValueError, "K must be an integer >= 1"),
        (lambda: planar_layers_forward(P, np.ones(2), 4), ValueError, r"x0 must have shape \(n, d\)"),
        (lambda: planar_ode_forward(P, np.ones((2, 2)), n_steps=0), ValueError, "n_steps must be an integer >= 1"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()

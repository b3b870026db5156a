"""``reference.engines``: every fast engine computes what its readable formula computes, and one switch turns them off.

- The switch: ``reference.readable()`` (nesting, per thread), ``REFERENCE_READABLE``, and
  ``fused=`` arguments that follow it.
- Both modes agree on every entry point that has an engine: Theorem 1 (``marginal``), the
  CFM training step and ``train_cfm``, Adam, the learned field and its sampling, the CNF
  likelihood of a learned field, the variational planar chain and energies.
- Under the switch the readable formulas are what runs: editing the readable formula of
  Theorem 1, of the CFM loss or of the network changes the figures (and, as the negative
  control, the same edit leaves the engines' figures as they were).
"""

import os
import threading

import autograd.numpy as anp
import matplotlib.pyplot as plt
import numpy as np
import pytest
from autograd import grad
from autograd.test_util import check_grads
from hypothesis import given, strategies as st

import reference
from reference import marginal, nn, train
from reference.engines import ENVIRONMENT_VARIABLE, engines_on, is_readable, readable, use_engine
from reference.autodiff import divergence
from reference.engines.mlp import mlp_apply_flat, velocity_and_divergence_flat
from reference.nn import mlp_apply, mlp_flatten, mlp_unflatten, velocity_apply, velocity_init
from reference.paths import ConicalGaussianPath, LinearInterpolationPath, OptimalTransportPath
from tests.strategies import seeds, velocity_networks


# ------------------------------------------------------------------ the switch


def test_the_switch_is_off_by_default_and_the_context_manager_nests(monkeypatch):
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    assert not is_readable() and engines_on()
    with reference.readable():
        assert is_readable() and not engines_on()
        with readable(False):
            assert engines_on()
        assert is_readable()
    assert not is_readable()


def test_the_environment_variable_turns_it_on_and_the_context_manager_wins(monkeypatch):
    for value in ("1", "true", "YES", " on "):
        monkeypatch.setenv(ENVIRONMENT_VARIABLE, value)
        assert is_readable(), value
        with readable(False):
            assert not is_readable()
    for value in ("0", "false", "no", "off", ""):
        monkeypatch.setenv(ENVIRONMENT_VARIABLE, value)
        assert not is_readable(), value
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "maybe")  # negative control: a typo is refused, not read as off
    with pytest.raises(ValueError, match=ENVIRONMENT_VARIABLE):
        is_readable()


def test_the_mode_is_local_to_a_thread(monkeypatch):
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    seen = {}
    entered, release = threading.Event(), threading.Event()

    def other():
        entered.wait()
        seen["other"] = is_readable()
        release.set()

    thread = threading.Thread(target=other)
    thread.start()
    with readable():
        entered.set()
        release.wait()
        seen["mine"] = is_readable()
    thread.join()
    assert seen == {"mine": True, "other": False}


def test_fused_arguments_follow_the_switch_unless_given(monkeypatch):
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    assert use_engine(None) and use_engine(True) and not use_engine(False)
    with readable():
        assert not use_engine(None) and use_engine(True) and not use_engine(False)
    with pytest.raises(TypeError, match="fused"):
        use_engine("yes")
    with pytest.raises(TypeError, match="on"):
        with readable(1):
            pass


def test_the_readable_learned_field_is_a_closure_over_velocity_apply(monkeypatch):
    from reference.engines.mlp import VelocityNetwork

    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    params = velocity_init(2, (8,), np.random.default_rng(0))
    assert isinstance(train.model_velocity(params), VelocityNetwork)
    with readable():
        u = train.model_velocity(params)
    assert not isinstance(u, VelocityNetwork) and u.d == 2
    x = np.random.default_rng(1).normal(size=(5, 2))
    np.testing.assert_array_equal(u(x, 0.3), velocity_apply(params, x, 0.3))


# ------------------------------------------------------------------ both modes agree on every entry point

PATHS = [ConicalGaussianPath(), LinearInterpolationPath(0.2), OptimalTransportPath(1e-2)]


def _z(path, m, rng):
    x1 = rng.normal(scale=2.0, size=(m, 2))
    return (rng.normal(size=(m, 2)), x1) if path.conditions_on_pairs else x1


@pytest.mark.parametrize("path", PATHS, ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("chunk_size", [None, 7, 512])
def test_theorem_1_engine_equals_the_pairwise_sums(path, chunk_size):
    rng = np.random.default_rng(2)
    z = _z(path, 300, rng)
    x, t = rng.normal(scale=2.0, size=(40, 2)), rng.uniform(0.0, 0.97, 40)
    fast = [f(path, x, t, z, chunk_size) for f in (marginal.posterior_weights, marginal.marginal_logpdf,
                                                     marginal.marginal_velocity)]
    with readable():
        slow = [f(path, x, t, z, chunk_size) for f in (marginal.posterior_weights, marginal.marginal_logpdf,
                                                         marginal.marginal_velocity)]
    for name, a, b in zip(("weights", "log p", "u"), fast, slow):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12 * np.abs(b).max(), err_msg=name)
    # negative control: the same comparison tells the marginal at another time apart
    assert not np.allclose(marginal.marginal_velocity(path, x, t * 0.9, z), slow[2], rtol=1e-11)


def test_theorem_1_readable_mode_refuses_far_points_that_the_engine_computes():
    path, rng = ConicalGaussianPath(), np.random.default_rng(3)
    z, x = rng.normal(size=(20, 2)), np.array([[1e15, 0.0], [0.5, 0.5]])
    u = marginal.marginal_velocity(path, x, 0.5, z)  # the engine: exact from the cross term
    assert np.all(np.isfinite(u))
    with readable(), pytest.raises(ValueError, match="x: point 0"):
        marginal.marginal_velocity(path, x, 0.5, z)
    with readable():  # the near point alone is fine, and equal to the engine's
        np.testing.assert_allclose(marginal.marginal_velocity(path, x[1:], 0.5, z), u[1:], rtol=1e-12)


def test_theorem_1_gradients_go_through_the_readable_sums():
    path, rng = ConicalGaussianPath(), np.random.default_rng(4)
    z, x = rng.normal(size=(30, 2)), rng.normal(size=(4, 2))
    f = lambda y: anp.sum(marginal.marginal_logpdf(path, y, 0.6, z))  # noqa: E731
    check_grads(f, modes=["rev"], order=1)(x)
    # the score of the mixture is the posterior average of the conditional scores
    w = marginal.posterior_weights(path, x, 0.6, z)
    score = (w[:, :, None] * (0.6 * z[None] - x[:, None]) / 0.4**2).sum(axis=1)
    np.testing.assert_allclose(grad(f)(x), score, rtol=1e-10)


@pytest.mark.parametrize("path, ot", [(LinearInterpolationPath(), False), (LinearInterpolationPath(), True),
                                      (ConicalGaussianPath(), False), (LinearInterpolationPath(0.3), False)])
def test_the_cfm_engine_trains_the_readable_model(path, ot):
    data = np.random.default_rng(5).normal(size=(500, 2))
    kwargs = dict(batch_size=32, hidden=(8, 8), lr=1e-2, ot_pairing=ot)
    fused, l_fused = train.train_cfm(data, path, 40, rng=np.random.default_rng(11), **kwargs)
    with readable():
        plain, l_plain = train.train_cfm(data, path, 40, rng=np.random.default_rng(11), **kwargs)
    np.testing.assert_allclose(l_fused, l_plain, rtol=1e-12)
    for (Wf, bf), (Wp, bp) in zip(fused, plain):
        np.testing.assert_allclose(Wf, Wp, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(bf, bp, rtol=1e-10, atol=1e-13)
    # negative control: one step more moves the parameters by far more than that tolerance
    more, _ = train.train_cfm(data, path, 41, rng=np.random.default_rng(11), **kwargs)
    assert not np.allclose(more[0][0], fused[0][0], rtol=1e-10, atol=1e-13)


@given(seed=seeds, n_iters=st.integers(1, 30), lr=st.floats(1e-4, 1e-1))
def test_flat_adam_is_adam_update_and_autograds_adam_bit_for_bit(seed, n_iters, lr):
    from autograd.misc.optimizers import adam

    from reference.engines.adam import FlatAdam

    A = np.random.default_rng(seed).normal(size=(6, 6))

    def gradient(x, i):
        return np.tanh(A @ x) * (i + 1) + x**3

    x0 = np.random.default_rng(seed + 1).normal(size=6)
    expected = adam(gradient, x0.copy(), num_iters=n_iters, step_size=lr)
    theta, m, v = x0.copy(), np.zeros(6), np.zeros(6)
    in_place = x0.copy()
    opt = FlatAdam(in_place, lr)
    for i in range(n_iters):
        theta, m, v = train.adam_update(theta, gradient(theta, i), m, v, i + 1, lr)
        opt.step(gradient(in_place, i))
    np.testing.assert_array_equal(theta, expected)
    np.testing.assert_array_equal(in_place, expected)
    # negative control: another b2 changes the iterates (from the second step on)
    other, m, v = x0.copy(), np.zeros(6), np.zeros(6)
    for i in range(max(n_iters, 2)):
        other, m, v = train.adam_update(other, gradient(other, i), m, v, i + 1, lr, b2=0.99)
    assert not np.array_equal(other, adam(gradient, x0.copy(), num_iters=max(n_iters, 2), step_size=lr))


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_sampling_by_the_engine_equals_sampling_by_velocity_apply(method):
    params = velocity_init(2, (16, 16), np.random.default_rng(6))
    fast = train.sample_model(params, 300, np.random.default_rng(7), method=method, n_steps=12)
    with readable():
        slow = train.sample_model(params, 300, np.random.default_rng(7), method=method, n_steps=12)
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-13)


def test_the_cnf_likelihood_of_a_learned_field_is_the_same_in_both_modes():
    from reference.cnf import cnf_logpdf

    params = velocity_init(2, (8, 8), np.random.default_rng(8))
    x = np.random.default_rng(9).normal(size=(20, 2))
    fast = cnf_logpdf(train.model_velocity(params), x, n_steps=16)  # forward-mode divergence
    with readable():
        slow = cnf_logpdf(train.model_velocity(params), x, n_steps=16)  # d backward passes
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)


def test_the_variational_engines_equal_the_readable_chain_and_energies():
    from reference.variational import ENERGIES, MeanFieldGaussian, energy_log_joint, planar_posterior

    rng = np.random.default_rng(10)
    base = MeanFieldGaussian(np.zeros((1, 2)), np.zeros((1, 2)))
    layers = {"a": rng.normal(size=(5, 2)), "b": rng.normal(size=(5, 2)), "c": rng.normal(size=5)}
    z = {}
    for mode in (False, True):
        with readable(mode):
            z[mode] = planar_posterior(base, layers).sample(None, 64, np.random.default_rng(11))
    np.testing.assert_allclose(z[True][0], z[False][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(z[True][1], z[False][1], rtol=1e-12, atol=1e-12)
    points = rng.normal(size=(50, 2))
    for name in ENERGIES:
        g = {}
        for mode in (False, True):
            with readable(mode):
                log_joint = energy_log_joint(name)
                g[mode] = grad(lambda p: anp.sum(log_joint(None, p)))(points)
        np.testing.assert_allclose(g[True], g[False], rtol=1e-9, atol=1e-9, err_msg=name)


# ------------------------------------------------------------------ the engine of the network


@given(velocity_networks())
def test_flat_primitive_is_the_same_function_with_the_same_gradients(case):
    params, x, t = case
    theta, sizes = mlp_flatten(params)
    h = np.concatenate([x, t[:, None]], axis=1)
    np.testing.assert_allclose(mlp_apply_flat(theta, h, sizes), mlp_apply(params, h), rtol=1e-13, atol=1e-14)
    weights = np.cos(np.arange(sizes[-1]) + 1.0)  # a loss that weighs outputs differently

    def loss(apply):
        return lambda th, hh: anp.sum(anp.sin(apply(th, hh)) * weights)

    fused = loss(lambda th, hh: mlp_apply_flat(th, hh, sizes))
    plain = loss(lambda th, hh: mlp_apply(mlp_unflatten(th, sizes), hh))
    for argnum in (0, 1):
        np.testing.assert_allclose(grad(fused, argnum)(theta, h), grad(plain, argnum)(theta, h),
                                   rtol=1e-11, atol=1e-13)
    # negative control: the plain gradient with a tanh network differs (where there is a hidden layer to differ)
    tanh_plain = loss(lambda th, hh: mlp_apply(mlp_unflatten(th, sizes), hh, "tanh"))
    if len(sizes) > 2:
        assert not np.allclose(grad(fused)(theta, h), grad(tanh_plain)(theta, h), rtol=1e-11, atol=1e-13)


def test_flat_primitive_gradients_match_finite_differences(rng):
    theta, sizes = mlp_flatten(velocity_init(2, (5, 4), rng))
    h = rng.normal(size=(4, 3))
    check_grads(lambda th: anp.sum(mlp_apply_flat(th, h, sizes) ** 2), modes=["rev"], order=1)(theta)
    check_grads(lambda hh: anp.sum(mlp_apply_flat(theta, hh, sizes) ** 2), modes=["rev"], order=1)(h)


def test_flat_primitive_is_finite_and_exact_for_huge_pre_activations():
    # silu(a) -> 0 for a -> -inf and -> a for a -> +inf; exp(-a) overflows harmlessly
    theta, sizes = mlp_flatten([(np.array([[1.0]]), np.array([0.0])), (np.array([[1.0]]), np.array([0.0]))])
    h = np.array([[-1e4], [1e4], [0.0]])
    out = mlp_apply_flat(theta, h, sizes)
    np.testing.assert_array_equal(out, [[0.0], [1e4], [0.0]])
    g = grad(lambda th: anp.sum(mlp_apply_flat(th, h, sizes)))(theta)
    assert np.all(np.isfinite(g))


def test_workspace_reuses_its_buffers_and_gives_the_same_numbers(rng):
    theta, sizes = mlp_flatten(velocity_init(2, (8, 8), rng))
    h = rng.normal(size=(5, 3))
    ws = {}
    first = mlp_apply_flat(theta, h, sizes, workspace=ws).copy()
    loss = lambda th: anp.sum(mlp_apply_flat(th, h, sizes, workspace=ws) ** 2)  # noqa: E731
    g_ws = grad(loss)(theta)  # the backward pass adds its buffers to the forward pass's
    buffers = {k: id(v) for k, v in ws.items() if isinstance(v, np.ndarray)}
    g_again = grad(loss)(theta)
    g_plain = grad(lambda th: anp.sum(mlp_apply_flat(th, h, sizes) ** 2))(theta)
    np.testing.assert_array_equal(first, mlp_apply_flat(theta, h, sizes))
    np.testing.assert_array_equal(g_ws, g_plain)
    np.testing.assert_array_equal(g_again, g_plain)
    assert g_again is not g_ws and not np.shares_memory(g_again, g_ws)  # each gradient a new array
    assert {k: id(v) for k, v in ws.items() if isinstance(v, np.ndarray)} == buffers  # no new buffers


def test_a_workspace_overwritten_before_its_gradient_is_refused(rng):
    theta, sizes = mlp_flatten(velocity_init(2, (8,), rng))
    h = rng.normal(size=(4, 3))
    ws = {}

    def two_calls(th, workspace_2):
        return anp.sum(mlp_apply_flat(th, h, sizes, ws)) + anp.sum(mlp_apply_flat(th, 2 * h, sizes, workspace_2) ** 2)

    with pytest.raises(RuntimeError, match="workspace was used by another call"):
        grad(lambda th: two_calls(th, ws))(theta)
    # with a workspace per call the gradient is that of the readable network
    expected = grad(lambda th: anp.sum(mlp_apply(mlp_unflatten(th, sizes), h))
                    + anp.sum(mlp_apply(mlp_unflatten(th, sizes), 2 * h) ** 2))(theta)
    np.testing.assert_allclose(grad(lambda th: two_calls(th, {}))(theta), expected, rtol=1e-12, atol=1e-14)


@given(velocity_networks())
def test_forward_mode_divergence_equals_the_trace_by_reverse_mode(case):
    params, x, t = case
    theta, sizes = mlp_flatten(params)
    v, div = velocity_and_divergence_flat(theta, sizes, x, t)
    u = lambda y, s: velocity_apply(params, y, s)  # noqa: E731
    np.testing.assert_allclose(v, u(x, t), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(div, divergence(u, x, t), rtol=1e-11, atol=1e-13)


def test_forward_mode_divergence_negative_control(rng):
    # the trace is not the sum of all Jacobian entries: a field mixing coordinates tells them apart
    params = velocity_init(2, (8,), rng)
    theta, sizes = mlp_flatten(params)
    x, t = rng.normal(size=(6, 2)), 0.4
    _, div = velocity_and_divergence_flat(theta, sizes, x, t)
    from reference.autodiff import jacobian
    J = jacobian(lambda y: velocity_apply(params, y, t), x)
    np.testing.assert_allclose(div, np.trace(J, axis1=1, axis2=2), rtol=1e-12)
    assert not np.allclose(div, J.sum(axis=(1, 2)), rtol=1e-6)


@given(velocity_networks())
def test_evaluation_forward_is_the_same_function(case):
    from reference.engines.mlp import mlp_forward_flat
    params, x, t = case
    theta, sizes = mlp_flatten(params)
    h = np.concatenate([x, t[:, None]], axis=1) * 50.0  # large pre-activations too
    ws = {}
    for _ in range(2):  # the second call reuses the workspace
        np.testing.assert_allclose(mlp_forward_flat(theta, h, sizes, ws), mlp_apply(params, h),
                                   rtol=1e-13, atol=1e-12 * (1 + np.abs(mlp_apply(params, h)).max()))


def test_velocity_network_on_two_threads_is_velocity_apply(rng):
    from reference.engines.mlp import VelocityNetwork
    params = velocity_init(2, (16, 16), rng)
    u = VelocityNetwork(params)
    n = 2 * VelocityNetwork.BLOCK_ROWS + 3  # cut in four blocks, evaluated on two threads
    x, t = rng.normal(size=(n, 2)), rng.uniform(size=n)
    for time in (t, 0.7):
        np.testing.assert_allclose(u(x, time), velocity_apply(params, x, time), rtol=1e-13, atol=1e-15)
    # negative control: the same comparison rejects an output whose blocks come back swapped
    out = u(x, t)
    swapped = np.concatenate([out[n // 2:], out[: n // 2]])
    assert not np.allclose(swapped[: 2 * (n // 2)], velocity_apply(params, x, t)[: 2 * (n // 2)], rtol=1e-13, atol=1e-15)


# ------------------------------------------------------------------ an edited formula shows in the figures


def _figure_pixels(name, out_dir):
    """Run figure ``name`` in quick mode, every cached model trained afresh; its first image as an array."""
    from figures import load_figure
    from figures._models import _trained_model

    _trained_model.cache_clear()
    path = load_figure(name).main(out_dir, quick=True)[0]
    plt.close("all")
    return plt.imread(path)


def _figures_with_and_without(edit, name, tmp_path, monkeypatch):
    """``{readable: (before, after)}``: the figure's pixels before and after ``edit(monkeypatch)``, in each mode."""
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    before = {}
    for mode in (True, False):
        with readable(mode):
            before[mode] = _figure_pixels(name, tmp_path / f"before_{mode}")
    edit(monkeypatch)
    out = {}
    for mode in (True, False):
        with readable(mode):
            out[mode] = (before[mode], _figure_pixels(name, tmp_path / f"after_{mode}"))
    return out


def _differ(a, b):
    return a.shape != b.shape or not np.array_equal(a, b)


@pytest.mark.slow  # each trains and draws its figure four times (about 5 s)
def test_editing_theorem_1_changes_the_readable_figures(tmp_path, monkeypatch):
    # the edit: uniform weights in place of the posterior p(z | x, t) of eq. (10)
    def uniform_weights(monkeypatch):
        def posterior_weights(path, x, t, z, chunk_size=marginal.DEFAULT_CHUNK):
            m = np.shape(z[1] if isinstance(z, tuple) else z)[0]
            return anp.ones((np.shape(x)[0], m)) / m

        monkeypatch.setattr(marginal, "posterior_weights", posterior_weights)

    figures = _figures_with_and_without(uniform_weights, "fig_10_marginal", tmp_path, monkeypatch)
    assert _differ(*figures[True])  # readable: the marginal velocity panel changes
    assert not _differ(*figures[False])  # negative control: the engine does not read the edited formula


@pytest.mark.slow  # each trains and draws its figure four times (about 5 s)
def test_editing_the_cfm_loss_changes_the_readable_figures(tmp_path, monkeypatch):
    # the edit: regress on the reversed conditional velocity (the sign mistake)
    def reversed_target(monkeypatch):
        from reference.losses import cfm_loss

        def wrong(v, path, t, z, x, weights=None):
            x0, x1 = z
            return cfm_loss(v, path, t, (x1, x0), x, weights)

        monkeypatch.setattr(train, "cfm_loss", wrong)

    figures = _figures_with_and_without(reversed_target, "fig_13_cfm_plateau", tmp_path, monkeypatch)
    assert _differ(*figures[True])
    assert not _differ(*figures[False])


@pytest.mark.slow  # each trains and draws its figure four times (about 5 s)
def test_editing_the_network_changes_the_readable_figures(tmp_path, monkeypatch):
    # the edit: tanh in place of SiLU in v_theta (training and sampling both go through velocity_apply)
    def tanh_network(monkeypatch):
        monkeypatch.setitem(nn._ACTIVATIONS, "silu", anp.tanh)

    figures = _figures_with_and_without(tanh_network, "fig_16_animation", tmp_path, monkeypatch)
    assert _differ(*figures[True])
    assert not _differ(*figures[False])


@pytest.mark.parametrize("sigma", [0.0, 0.3])
def test_the_engines_linear_batch_is_cfm_batch_and_the_paths_velocity(sigma):
    from reference.engines.cfm import _linear_batch
    from reference.train import _cfm_batch

    path, data = LinearInterpolationPath(sigma), np.random.default_rng(2).normal(size=(50, 3))
    t, z, x = _cfm_batch(path, data, 17, np.random.default_rng(9), False)
    h = np.empty((17, 4))
    t_fast, u_fast = _linear_batch(sigma, data, 17, np.random.default_rng(9), h)
    np.testing.assert_array_equal(t_fast, t)
    np.testing.assert_array_equal(h[:, :3], x)
    np.testing.assert_array_equal(h[:, 3], t)
    np.testing.assert_array_equal(u_fast, path.velocity(x, t, z))
    # negative control: another generator state draws another batch
    _linear_batch(sigma, data, 17, np.random.default_rng(10), h)
    assert not np.array_equal(h[:, :3], x)

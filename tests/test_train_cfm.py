"""``reference.train`` section 2: conditional flow matching, training (step 4) and sampling (step 5)."""

import functools
import time

import numpy as np
import pytest

from reference.distributions import GaussianMixture, make_dataset
from reference.losses import cfm_constant
from reference.metrics import energy_distance, noise_floor, path_length_ratio
from reference.nn import velocity_apply
from reference.ode import AdaptiveResult, integrate
from reference.oracles import GaussianMixtureOracle
from reference.ot import pairing_cost
from reference.paths import ConicalGaussianPath, LinearInterpolationPath
from reference.train import cfm_batch, model_velocity, sample_model, train_cfm

K_SE = 5.0  # statistical tolerances below are K_SE standard errors

LINEAR = LinearInterpolationPath()
SMALL = {"batch_size": 32, "hidden": (8, 8), "lr": 1e-2}


def mean_and_se(values):
    values = np.asarray(values)
    return values.mean(), values.std(ddof=1) / np.sqrt(values.size)


@pytest.fixture(scope="module")
def moons():
    return make_dataset("moons", 2000, np.random.default_rng(0))


# ---------------------------------------------------------------- step 4: the minibatch

def test_a_batch_is_t_uniform_z_from_p0_and_data_and_x_on_the_linear_path(moons):
    t, (x0, x1), x = cfm_batch(LINEAR, moons, 500, np.random.default_rng(1))
    assert t.shape == (500,) and np.all((0 <= t) & (t < 1))
    assert x0.shape == x1.shape == x.shape == (500, 2)
    assert all(any(np.array_equal(row, d) for d in moons[:2000]) for row in x1[:20])  # x1 are data points
    np.testing.assert_allclose(x, (1 - t)[:, None] * x0 + t[:, None] * x1, rtol=1e-14, atol=1e-14)
    # negative control: the interpolant with the time reversed is not what was drawn
    assert not np.allclose(x, t[:, None] * x0 + (1 - t)[:, None] * x1)


def test_ot_pairing_repairs_the_same_draws_optimally(moons):
    t, (x0, x1), _ = cfm_batch(LINEAR, moons, 7, np.random.default_rng(2))
    t_ot, (x0_ot, x1_ot), x_ot = cfm_batch(LINEAR, moons, 7, np.random.default_rng(2), ot_pairing=True)
    # the same t and x0, x1 reordered: the marginals of the coupling are untouched
    np.testing.assert_array_equal(t_ot, t)
    np.testing.assert_array_equal(x0_ot, x0)
    np.testing.assert_array_equal(np.sort(x1_ot, axis=0), np.sort(x1, axis=0))
    np.testing.assert_allclose(x_ot, (1 - t)[:, None] * x0_ot + t[:, None] * x1_ot, rtol=1e-14)
    # the brute-force minimum over the 7! pairings, and the independent pairing is worse
    import itertools
    best = min(pairing_cost(x0, x1[list(p)]) for p in itertools.permutations(range(7)))
    np.testing.assert_allclose(pairing_cost(x0_ot, x1_ot), best, rtol=1e-12)
    assert pairing_cost(x0, x1) > best * (1 + 1e-9)


# ---------------------------------------------------------------- step 4: training

def test_training_is_bit_for_bit_deterministic_under_its_seed(moons):
    for ot in (False, True):
        a = train_cfm(moons, LINEAR, 15, rng=np.random.default_rng(3), ot_pairing=ot, **SMALL)
        b = train_cfm(moons, LINEAR, 15, rng=np.random.default_rng(3), ot_pairing=ot, **SMALL)
        np.testing.assert_array_equal(a[1], b[1])
        for (Wa, ba), (Wb, bb) in zip(a[0], b[0]):
            np.testing.assert_array_equal(Wa, Wb)
            np.testing.assert_array_equal(ba, bb)
    # negative control: another seed gives other parameters and losses
    c = train_cfm(moons, LINEAR, 15, rng=np.random.default_rng(4), **SMALL)
    assert not np.array_equal(a[1], c[1]) and not np.array_equal(a[0][0][0], c[0][0][0])


def test_trained_parameters_are_those_of_nn_velocity_apply(moons):
    params, losses = train_cfm(moons, ConicalGaussianPath(), 5, rng=np.random.default_rng(5), **SMALL)
    assert losses.shape == (5,) and np.all(np.isfinite(losses))
    x = np.random.default_rng(6).normal(size=(4, 2))
    np.testing.assert_allclose(model_velocity(params)(x, 0.3), velocity_apply(params, x, 0.3), rtol=1e-13, atol=1e-15)
    assert [W.shape for W, _ in params] == [(3, 8), (8, 8), (8, 2)]


def test_the_callback_sees_the_parameters_each_loss_was_taken_at(moons):
    seen = []
    params, losses = train_cfm(moons, LINEAR, 6, rng=np.random.default_rng(7),
                               callback=lambda p, step, loss: seen.append((step, p, loss)), **SMALL)
    assert [s for s, _, _ in seen] == list(range(6))
    np.testing.assert_array_equal([loss for *_, loss in seen], losses)
    # the parameters at step 0 are the initialisation, and training moved them
    assert not np.array_equal(seen[0][1][0][0], params[0][0])


def test_cfm_loss_decreases_during_training():
    data = make_dataset("8gaussians", 5000, np.random.default_rng(8))
    window = 40

    def decrease(lr):
        _, losses = train_cfm(data, LINEAR, 300, batch_size=128, hidden=(32, 32), lr=lr, rng=np.random.default_rng(9))
        (m0, se0), (m1, se1) = mean_and_se(losses[:window]), mean_and_se(losses[-window:])
        return m0 - m1, np.hypot(se0, se1)

    drop, se = decrease(3e-3)
    assert drop > K_SE * se
    # negative control: with a vanishing step size the same windows do not differ
    drop, se = decrease(1e-12)
    assert abs(drop) <= K_SE * se


def test_fm_loss_falls_towards_zero_while_the_cfm_loss_plateaus_at_C():
    # 1-D two-component mixture: the exact u (oracle) and C (quadrature) are known
    mixture = GaussianMixture([0.4, 0.6], np.array([[-2.0], [1.5]]), np.array([0.3**2, 0.5**2]))
    oracle = GaussianMixtureOracle(mixture, LINEAR)
    C = cfm_constant(oracle)
    rng = np.random.default_rng(10)
    n = 20_000  # a fixed evaluation set (t, z, x) ~ U[0, 1] x p0 x p_data x p(x | t, z)
    x0, x1, t = rng.standard_normal((n, 1)), mixture.sample(n, rng), rng.uniform(size=n)
    x = (1 - t)[:, None] * x0 + t[:, None] * x1
    u, u_cond = oracle.velocity(x, t), x1 - x0

    start = []
    params, losses = train_cfm(mixture.sample(5000, rng), LINEAR, 800, batch_size=128, hidden=(32, 32), lr=3e-3,
                               rng=rng, callback=lambda p, step, loss: start.append(p) if step == 0 else None)

    def per_sample(p):
        v = velocity_apply(p, x, t)
        return np.sum((v - u_cond) ** 2, axis=1), np.sum((v - u) ** 2, axis=1)

    cfm0, fm0 = per_sample(start[0])
    cfm1, fm1 = per_sample(params)
    (l_cfm, se_cfm), (l_fm, se_fm) = mean_and_se(cfm1), mean_and_se(fm1)
    # L_FM falls by more than a factor 10 ...
    assert l_fm < fm0.mean() / 10
    # ... while L_CFM cannot fall below C: it sits at C + L_FM (Theorem 2, paired on the same samples)
    gap, gap_se = mean_and_se(cfm1 - fm1)
    assert abs(gap - C) <= K_SE * gap_se
    assert l_cfm >= C - K_SE * se_cfm
    tail, tail_se = mean_and_se(losses[-100:])  # and so does the training loss
    assert tail >= C - K_SE * tail_se
    # negative controls: L_CFM does not fall by a factor 10, L_FM does fall far below C
    assert l_cfm > cfm0.mean() / 10
    assert l_fm < C - K_SE * se_fm


def test_ot_pairing_gives_straighter_trajectories():
    data = make_dataset("moons", 5000, np.random.default_rng(11))
    x0 = np.random.default_rng(12).standard_normal((400, 2))

    def excess_length(seed, ot):
        params, _ = train_cfm(data, LINEAR, 200, batch_size=128, hidden=(32, 32), lr=3e-3,
                              rng=np.random.default_rng(seed), ot_pairing=ot)
        traj, _ = integrate(model_velocity(params), x0, 0.0, 1.0, 20, "rk4", return_path=True)
        chord = np.linalg.norm(traj[-1] - traj[0], axis=1)
        return (path_length_ratio(traj) - 1.0) * chord  # length minus chord, per trajectory

    independent, optimal = excess_length(0, False), excess_length(0, True)
    gap, se = mean_and_se(independent - optimal)  # paired: the same x0 through both fields
    assert gap > K_SE * se
    assert optimal.mean() < independent.mean() / 5
    # negative control: two independent-coupling models (other seeds) differ far less than OT does
    other_gap, _ = mean_and_se(independent - excess_length(1, False))
    assert abs(other_gap) < gap / 4


# ---------------------------------------------------------------- step 5: sampling

def test_euler_sampling_is_the_lectures_scheme(moons):
    params, _ = train_cfm(moons, LINEAR, 10, rng=np.random.default_rng(13), **SMALL)
    N = 7
    x = np.random.default_rng(14).standard_normal((50, 2))
    for k in range(N):  # x_{k+1} = x_k + (1/N) v_theta(x_k, k/N)
        x = x + velocity_apply(params, x, k / N) / N
    np.testing.assert_allclose(sample_model(params, 50, np.random.default_rng(14), "euler", N), x, rtol=1e-12)
    # negative control: evaluating the field at t_{k+1} instead of t_k is another scheme
    y = np.random.default_rng(14).standard_normal((50, 2))
    for k in range(N):
        y = y + velocity_apply(params, y, (k + 1) / N) / N
    assert not np.allclose(y, x, rtol=1e-6)


def test_rk4_and_adaptive_sampling_agree_with_a_fine_solution(moons):
    params, _ = train_cfm(moons, LINEAR, 10, rng=np.random.default_rng(15), **SMALL)
    fine = sample_model(params, 30, np.random.default_rng(16), "rk4", 400)
    coarse = sample_model(params, 30, np.random.default_rng(16), "rk4", 20)
    euler = sample_model(params, 30, np.random.default_rng(16), "euler", 20)
    adaptive = sample_model(params, 30, np.random.default_rng(16), adaptive=True, rtol=1e-8, atol=1e-8)
    assert isinstance(adaptive, AdaptiveResult) and adaptive.n_fev > 0
    err = {name: np.max(np.abs(v - fine)) for name, v in (("rk4", coarse), ("euler", euler), ("adaptive", adaptive.x))}
    assert err["rk4"] < 1e-6 and err["adaptive"] < 1e-6
    # negative control: Euler with the same 20 steps is first order, far less accurate
    assert err["euler"] > 100 * err["rk4"]
    path, times = sample_model(params, 30, np.random.default_rng(16), "rk4", 20, return_path=True)
    assert path.shape == (21, 30, 2) and times[0] == 0.0 and times[-1] == 1.0
    np.testing.assert_array_equal(path[-1], coarse)


# ---------------------------------------------------------------- slow: sample quality

@pytest.mark.slow
@pytest.mark.parametrize("name", ["8gaussians", "moons"])
def test_training_reaches_the_noise_floor_within_a_stated_factor(name):
    # 5000 Adam steps, default network (64, 64, 64), batch 256, lr 2e-3; 1000 samples by RK4 with 20
    # steps; energy distance (V-statistic) to fresh data, averaged over 5 draws, against its noise
    # floor (20 pairs of data draws of the same size).
    factor = 4.0
    rng = np.random.default_rng(17)
    start = time.perf_counter()
    params, _ = train_cfm(make_dataset(name, 20_000, rng), LINEAR, 5000, lr=2e-3, rng=rng)
    elapsed = time.perf_counter() - start
    metric = functools.partial(energy_distance, unbiased=False)
    sampler = functools.partial(make_dataset, name)
    floor = noise_floor(metric, sampler, 1000, rng, n_repeats=20)
    value = np.mean([metric(sample_model(params, 1000, rng, "rk4", 20), sampler(1000, rng)) for _ in range(5)])
    print(f"{name}: E / floor = {value / floor.mean:.2f} (floor {floor.mean:.2e} +- {floor.se:.1e}), "
          f"training {elapsed:.0f} s")
    assert value <= factor * floor.mean
    # negative control: the untrained network is far above the same bound
    untrained, _ = train_cfm(make_dataset(name, 100, rng), LINEAR, 1, lr=1e-12, rng=rng)
    assert metric(sample_model(untrained, 1000, rng, "rk4", 20), sampler(1000, rng)) > factor * floor.mean


# ---------------------------------------------------------------- bad input

_data = np.zeros((10, 2))
_rng = np.random.default_rng(0)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: train_cfm(np.zeros(10), LINEAR, 1, rng=_rng), ValueError, r"data must have shape \(n, d\)"),
        (lambda: train_cfm(_data + np.nan, LINEAR, 1, rng=_rng), ValueError, "data holds 20 non-finite"),
        (lambda: train_cfm(_data, "linear", 1, rng=_rng), TypeError, "path must be a reference.paths.GaussianPath"),
        (lambda: train_cfm(_data, ConicalGaussianPath(), 1, rng=_rng, ot_pairing=True), ValueError,
         "ot_pairing=True pairs z = \\(x0, x1\\) and needs a path conditioned on pairs"),
        (lambda: train_cfm(_data, LINEAR, 1, rng=_rng, ot_pairing="yes"), TypeError, "ot_pairing must be True or False"),
        (lambda: train_cfm(_data, LINEAR, 0, rng=_rng), ValueError, "n_steps must be an integer >= 1"),
        (lambda: train_cfm(_data, LINEAR, 1, batch_size=0, rng=_rng), ValueError, "batch_size must be an integer >= 1"),
        (lambda: train_cfm(_data, LINEAR, 1, lr=-1.0, rng=_rng), ValueError, "lr must be > 0"),
        (lambda: train_cfm(_data, LINEAR, 1), TypeError, "rng must be a numpy.random.Generator"),
        (lambda: train_cfm(_data, LINEAR, 1, rng=_rng, callback=3), TypeError, "callback must be callable"),
        (lambda: train_cfm(_data, LINEAR, 1, rng=_rng, hidden=(0,)), ValueError, "must be an integer >= 1"),
        (lambda: cfm_batch(LINEAR, _data, 4, None), TypeError, "rng must be"),
        (lambda: sample_model(_params(), 0, _rng), ValueError, "n must be an integer >= 1"),
        (lambda: sample_model(_params(), 3, _rng, method="leapfrog"), ValueError, "method"),
        (lambda: sample_model(_params(), 3, _rng, adaptive=1), TypeError, "adaptive must be True or False"),
        (lambda: sample_model(_params(), 3, "seed"), TypeError, "rng must be"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()


@functools.lru_cache(maxsize=1)
def _params():
    from reference.nn import velocity_init
    return velocity_init(2, (4,), np.random.default_rng(0))


# ------------------------------------------------ the fused engine trains the same model

from autograd.misc.optimizers import adam  # noqa: E402
from hypothesis import given, strategies as st  # noqa: E402

from reference.paths import OptimalTransportPath  # noqa: E402
from reference.engines.adam import FlatAdam  # noqa: E402
from reference.train import cfm_step  # noqa: E402


@given(st.integers(0, 2**32 - 1), st.integers(2, 40), st.floats(1e-4, 1e-1))
def test_flat_adam_is_autograds_adam_bit_for_bit(seed, n_iters, lr):
    A = np.random.default_rng(seed).normal(size=(6, 6))

    def gradient(x, i):
        return np.tanh(A @ x) * (i + 1) + x**3

    x0 = np.random.default_rng(seed + 1).normal(size=6)
    expected = adam(gradient, x0.copy(), num_iters=n_iters, step_size=lr)
    theta = x0.copy()
    opt = FlatAdam(theta, lr)
    for i in range(n_iters):
        opt.step(gradient(theta, i))
    np.testing.assert_array_equal(theta, expected)
    # negative control: another b2 changes the iterates (from the second step on)
    theta = x0.copy()
    opt = FlatAdam(theta, lr, b2=0.99)
    for i in range(n_iters):
        opt.step(gradient(theta, i))
    assert not np.array_equal(theta, expected)


@pytest.mark.parametrize("path, ot", [(LINEAR, False), (LINEAR, True), (ConicalGaussianPath(), False),
                                      (OptimalTransportPath(1e-2), False), (LinearInterpolationPath(0.3), False)])
def test_fused_and_readable_engines_train_the_same_model(moons, path, ot):
    kwargs = dict(batch_size=32, hidden=(8, 8), lr=1e-2, ot_pairing=ot, lr_decay=0.3)
    fused, l_fused = train_cfm(moons, path, 60, rng=np.random.default_rng(11), fused=True, **kwargs)
    plain, l_plain = train_cfm(moons, path, 60, rng=np.random.default_rng(11), fused=False, **kwargs)
    np.testing.assert_allclose(l_fused, l_plain, rtol=1e-12)
    for (Wf, bf), (Wp, bp) in zip(fused, plain):
        np.testing.assert_allclose(Wf, Wp, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(bf, bp, rtol=1e-10, atol=1e-13)
    # negative control: one step more moves the parameters by far more than that tolerance
    more, _ = train_cfm(moons, path, 61, rng=np.random.default_rng(11), fused=True, **dict(kwargs, lr_decay=0.0))
    assert not np.allclose(more[0][0], fused[0][0], rtol=1e-10, atol=1e-13)


def test_each_engine_takes_the_gradient_of_the_cfm_loss(moons):
    from autograd import grad
    from reference.losses import cfm_loss
    from reference.nn import mlp_flatten, mlp_unflatten, velocity_init

    params = velocity_init(2, (8,), np.random.default_rng(12))
    theta0, sizes = mlp_flatten(params)
    t, z, x = cfm_batch(LINEAR, moons, 32, np.random.default_rng(13))
    g = grad(lambda th: cfm_loss(lambda y, s: velocity_apply(mlp_unflatten(th, sizes), y, s), LINEAR, t, z, x))(theta0)
    for fused in (True, False):
        step, current = cfm_step(moons, LINEAR, params, batch_size=32, lr=1e-3, rng=np.random.default_rng(13), fused=fused)
        step()  # the same batch: its first Adam step moves each parameter by lr * g / (|g| + eps)
        theta1, _ = mlp_flatten(current())
        expected = theta0 - 1e-3 * g / (np.abs(g) + 1e-8)
        np.testing.assert_allclose(theta1, expected, rtol=1e-12, atol=1e-15)
    assert np.array_equal(mlp_flatten(params)[0], theta0)  # the initial parameters are not modified


def test_velocity_network_is_velocity_apply_and_differentiable(moons):
    from autograd import grad
    from reference.engines.mlp import VelocityNetwork
    from reference.nn import velocity_init

    params = velocity_init(2, (8, 8), np.random.default_rng(14))
    u = VelocityNetwork(params)
    x, t = np.random.default_rng(15).normal(size=(5, 2)), np.linspace(0, 1, 5)
    first = u(x, t)
    np.testing.assert_allclose(first, velocity_apply(params, x, t), rtol=1e-13, atol=1e-15)
    second = u(x + 1.0, t)  # a later call does not overwrite an earlier result
    assert not np.allclose(first, second)
    np.testing.assert_allclose(first, velocity_apply(params, x, t), rtol=1e-13, atol=1e-15)
    # second derivatives go through the readable network
    f = lambda y: np.sum(u(y, 0.5) ** 3)  # noqa: E731
    g = lambda y: np.sum(velocity_apply(params, y, 0.5) ** 3)  # noqa: E731
    np.testing.assert_allclose(grad(lambda y: np.sum(grad(f)(y) ** 2))(x), grad(lambda y: np.sum(grad(g)(y) ** 2))(x),
                               rtol=1e-12)


# ---------------------------------------------------------------- the step size's fall (lr_decay)


def test_step_size_is_constant_then_falls_linearly_to_the_last_step():
    from reference.train import step_size

    n, lr = 10, 0.5
    assert [step_size(lr, k, n) for k in range(n)] == [lr] * n  # lr_decay = 0: constant
    sizes = [step_size(lr, k, n, lr_decay=0.4) for k in range(n)]  # K = 6: constant before, then lr (10 - k) / 4
    np.testing.assert_allclose(sizes, [lr] * 6 + [lr * (n - k) / 4 for k in range(6, n)], rtol=1e-15)
    assert sizes[-1] == lr / 4 > 0
    np.testing.assert_allclose([step_size(lr, k, n, 1.0) for k in range(n)], lr * (n - np.arange(n)) / n, rtol=1e-15)
    # continuous at K = 6 (lr there), then falling
    assert sizes[5] == sizes[6] == lr > sizes[7]


@pytest.mark.parametrize("fused", [True, False])
def test_lr_decay_is_the_schedule_of_cfm_steps_in_both_engines(moons, fused):
    from reference.nn import velocity_init
    from reference.train import cfm_step, step_size

    n, kwargs = 12, dict(batch_size=16, hidden=(8,), lr=1e-2)
    params, losses = train_cfm(moons, LINEAR, n, rng=np.random.default_rng(3), fused=fused, lr_decay=0.5, **kwargs)
    # the same run by hand: the initial parameters, then each step with its step size
    rng = np.random.default_rng(3)
    step, current = cfm_step(moons, LINEAR, velocity_init(2, (8,), rng), 16, 1e-2, rng, fused=fused)
    by_hand = [step(step_size(1e-2, k, n, 0.5)) for k in range(n)]
    np.testing.assert_array_equal(losses, by_hand)
    for (W, b), (Wh, bh) in zip(params, current()):
        np.testing.assert_array_equal(W, Wh)
    # negative control: the constant step size trains other parameters
    constant, _ = train_cfm(moons, LINEAR, n, rng=np.random.default_rng(3), fused=fused, **kwargs)
    assert not np.allclose(constant[0][0], params[0][0], rtol=1e-10)
    with pytest.raises(ValueError, match="lr_k"):
        step(-1.0)

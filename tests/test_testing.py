"""``reference.testing``: each checker accepts correct implementations and names each kind of mistake.

For every checker: the reference itself passes, an independent hand-written correct
implementation passes, and for each kind of mistake people make (a sign flipped, time
running the wrong way, a missing or mis-signed log-det or divergence, a solver that is
not the order it claims, a pairing that is permuted, weights that are not normalised) a
deliberately broken implementation fails with a message that names it.
"""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from reference.autodiff import divergence, hutchinson_divergence
from reference.flows.coupling import coupling_forward, coupling_init, coupling_inverse
from reference.flows.planar import planar_constrain, planar_forward, planar_init, planar_inverse, planar_log_det
from reference.ot import ot_pair, ot_permutation
from reference.paths import ConicalGaussianPath, LinearInterpolationPath, OptimalTransportPath
from reference.testing import (
    CheckReport,
    assert_bijection,
    assert_ot_pairing,
    check_bijection,
    check_conditional_path,
    check_divergence_estimator,
    check_log_likelihood,
    check_marginal_velocity,
    check_ode_solver,
    check_ot_pairing,
    check_velocity_field,
    from_torch,
)
from reference.testing import strategies as fst
from reference.testing.solvers import ODE_PROBLEMS
from tests.strategies import seeds


def _failed_with(report, *words):
    """The report failed and its message names every one of ``words``."""
    text = str(report)
    return (not report.passed) and all(w.lower() in text.lower() for w in words)


# ----------------------------------------------------------------------------- the report


def test_report_is_truthy_exactly_when_it_passed_and_the_assert_twin_raises_its_message():
    x = np.array([[0.5, -1.0], [1.0, 2.0]])
    good = check_bijection(lambda z: (2 * z, np.full(2, 2 * np.log(2))), lambda y: (y / 2, np.full(2, -2 * np.log(2))), x)
    bad = check_bijection(lambda z: (2 * z, np.zeros(2)), lambda y: (y / 2, np.zeros(2)), x)
    assert isinstance(good, CheckReport) and good and good.passed and good.diagnosis is None
    assert not bad and "round_trip_x" in good.figures and "PASSED" in str(good) and "FAILED" in str(bad)
    assert assert_bijection(lambda z: (2 * z, np.full(2, 2 * np.log(2))), lambda y: (y / 2, np.full(2, -2 * np.log(2))), x)
    with pytest.raises(AssertionError, match="log-det missing"):
        assert_bijection(lambda z: (2 * z, np.zeros(2)), lambda y: (y / 2, np.zeros(2)), x)


# ----------------------------------------------------------------------------- bijections


@st.composite
def couplings(draw):
    d = draw(st.integers(2, 5))
    d_split = draw(st.integers(1, d - 1))
    rng = np.random.default_rng(draw(seeds))
    params = coupling_init(d, d_split, (8,), rng)
    return params, rng.normal(size=(5, d))


@given(couplings())
def test_reference_coupling_passes_and_a_flipped_log_det_is_named(case):
    params, x = case
    fwd, inv = (lambda z: coupling_forward(params, z)), (lambda y: coupling_inverse(params, y))
    report = check_bijection(fwd, inv, x)
    assert report, str(report)
    # negative control: the same layer with its forward log-det's sign flipped
    y, ld = fwd(x)
    if np.max(np.abs(ld)) > 1e-3:
        flipped = check_bijection(lambda z: (fwd(z)[0], -fwd(z)[1]), inv, x)
        assert _failed_with(flipped, "log-det sign flipped")


@given(st.integers(1, 4), seeds)
def test_reference_planar_layer_passes_and_a_log_det_at_the_output_is_named(d, seed):
    rng = np.random.default_rng(seed)
    params = planar_constrain(planar_init(d, rng, scale=2.0))
    x = rng.normal(size=(6, d))
    assert check_bijection(lambda z: planar_forward(params, z), lambda y: planar_inverse(params, y), x)
    at_output = check_bijection(lambda z: (planar_forward(params, z)[0], planar_log_det(params, planar_forward(params, z)[0])),
                                lambda y: planar_inverse(params, y), x)
    y, ld = planar_forward(params, x)
    if np.max(np.abs(planar_log_det(params, y) - ld)) > 1e-4:
        assert _failed_with(at_output, "log-det evaluated at the output")


@given(fst.well_conditioned_matrices(3), fst.points(n=4, d=3))
def test_hand_written_affine_map_passes(A, x):
    b = np.array([0.5, -1.0, 2.0])
    log_det = np.linalg.slogdet(A)[1]

    def forward(z):
        return z @ A.T + b, np.full(len(z), log_det)

    def inverse(y):
        return np.linalg.solve(A, (y - b).T).T, np.full(len(y), -log_det)

    assert check_bijection(forward, inverse, x)


@pytest.fixture
def coupling_layer():
    params = coupling_init(4, 2, (16,), np.random.default_rng(3))
    x = np.random.default_rng(4).normal(size=(8, 4))
    return params, x


def test_a_missing_log_det_is_named(coupling_layer):
    params, x = coupling_layer
    r = check_bijection(lambda z: (coupling_forward(params, z)[0], np.zeros(len(z))),
                        lambda y: coupling_inverse(params, y), x)
    assert _failed_with(r, "log-det missing")


def test_an_inverse_log_det_with_the_forward_sign_is_named(coupling_layer):
    params, x = coupling_layer
    r = check_bijection(lambda z: coupling_forward(params, z),
                        lambda y: (coupling_inverse(params, y)[0], -coupling_inverse(params, y)[1]), x)
    assert _failed_with(r, "inverse log-det sign flipped")


def test_an_inverse_that_is_not_the_inverse_fails_the_round_trip(coupling_layer):
    params, x = coupling_layer

    def wrong_inverse(y):  # exp(+s) instead of exp(-s): a classic RealNVP slip
        x_back, ld = coupling_inverse(params, y)
        return x_back + 0.1 * np.sin(y), ld

    r = check_bijection(lambda z: coupling_forward(params, z), wrong_inverse, x)
    assert _failed_with(r, "inverse(forward(x)) does not return x")


def test_per_coordinate_log_dets_are_named(coupling_layer):
    params, x = coupling_layer
    r = check_bijection(lambda z: (coupling_forward(params, z)[0], np.zeros_like(z)),
                        lambda y: coupling_inverse(params, y), x)
    assert _failed_with(r, "not summed")


def test_float32_outputs_get_float32_tolerances(coupling_layer):
    params, x = coupling_layer

    def f32(fn):
        return lambda z: tuple(np.asarray(v, dtype=np.float32) for v in fn(z))

    r = check_bijection(f32(lambda z: coupling_forward(params, z)), f32(lambda y: coupling_inverse(params, y)), x)
    assert r, str(r)
    assert np.isclose(r.measurements[0].bound, np.sqrt(np.finfo(np.float32).eps))


# ----------------------------------------------------------------------------- conditional paths


def _reference_sample(path):
    def sample(x0, x1, t):
        if path.conditions_on_pairs:
            z = (x0, x1)
            x_t = path.flow(np.zeros_like(x0), t, z)
        else:
            z = x1
            x_t = path.flow(x0, t, z)
        with np.errstate(divide="ignore", invalid="ignore"):
            return x_t, path.velocity(x_t, t, z)
    return sample


def _conical(x0, x1, t):  # hand-written, the summary table's sign
    tc = t[:, None]
    x_t = tc * x1 + (1 - tc) * x0
    return x_t, (x1 - x_t) / (1 - tc)


@pytest.mark.parametrize("path", [LinearInterpolationPath(), ConicalGaussianPath(), OptimalTransportPath(1e-2),
                                  LinearInterpolationPath(sigma=0.3)], ids=repr)
def test_reference_paths_pass_against_themselves(path):
    rng = np.random.default_rng(0)
    x0, x1 = rng.normal(size=(8, 3)), rng.normal(size=(8, 3)) + 2
    report = check_conditional_path(_reference_sample(path), x0, x1, path=path)
    assert report, str(report)


def test_a_variance_preserving_path_passes_once_its_approximate_start_is_allowed_for():
    from reference.paths import VariancePreservingPath

    path = VariancePreservingPath()
    rng = np.random.default_rng(5)
    x0, x1 = rng.normal(size=(8, 2)), rng.normal(size=(8, 2)) + 2
    strict = check_conditional_path(_reference_sample(path), x0, x1, path=path)
    # a(1) = exp(-5.025) = 6.6e-3 of the data is left at t = 0: refused by default, named in the report
    assert not strict and 0.006 < strict.figures["start_x1_weight"] < 0.007
    relaxed = check_conditional_path(_reference_sample(path), x0, x1, path=path, boundary_tol=1e-2)
    assert relaxed, str(relaxed)


@given(fst.noise_data_pairs())
def test_hand_written_paths_pass_and_the_lectures_example_2_sign_is_named(pair):
    x0, x1 = pair
    assert check_conditional_path(lambda a, b, t: ((1 - t)[:, None] * a + t[:, None] * b, b - a), x0, x1,
                                  path=LinearInterpolationPath())
    assert check_conditional_path(_conical, x0, x1, path=ConicalGaussianPath())

    def example_2_text(a, b, t):  # u = (x - x1) / (1 - t), as the lecture's Example 2 writes it
        x_t, u = _conical(a, b, t)
        return x_t, -u

    assert _failed_with(check_conditional_path(example_2_text, x0, x1), "velocity sign flipped")


def test_a_path_that_is_data_at_t0_is_named_a_reversed_time_convention():
    rng = np.random.default_rng(1)
    x0, x1 = rng.normal(size=(6, 2)), rng.normal(size=(6, 2)) + 2
    reversed_path = lambda a, b, t: (t[:, None] * a + (1 - t)[:, None] * b, a - b)  # noqa: E731
    assert _failed_with(check_conditional_path(reversed_path, x0, x1), "reversed time convention")
    # the same path with the arguments in the lecture's order passes
    assert check_conditional_path(lambda a, b, t: reversed_path(a, b, 1 - t)[0:1] + (b - a,), x0, x1)


def test_noise_drawn_inside_sample_and_the_linear_velocity_on_a_sigma_min_path_are_named():
    rng = np.random.default_rng(2)
    x0, x1 = rng.normal(size=(6, 2)), rng.normal(size=(6, 2)) + 2
    noise = np.random.default_rng(3)
    noisy = lambda a, b, t: ((1 - t)[:, None] * a + t[:, None] * b + 0.1 * noise.normal(size=a.shape), b - a)  # noqa: E731
    assert _failed_with(check_conditional_path(noisy, x0, x1), "noise drawn inside sample")
    ot = OptimalTransportPath(1e-2)

    def ot_with_linear_velocity(a, b, t):
        return _reference_sample(ot)(a, b, t)[0], b - a

    assert check_conditional_path(_reference_sample(ot), x0, x1)
    assert _failed_with(check_conditional_path(ot_with_linear_velocity, x0, x1), "linear path's velocity")


def test_a_path_against_the_wrong_reference_fails():
    rng = np.random.default_rng(4)
    x0, x1 = rng.normal(size=(6, 2)), rng.normal(size=(6, 2)) + 2
    r = check_conditional_path(_reference_sample(OptimalTransportPath(1e-2)), x0, x1, path=ConicalGaussianPath())
    assert _failed_with(r, "reference_x_t_error")


# ----------------------------------------------------------------------------- ODE solvers


def _hand_written(tableau_c, tableau_a, tableau_b, time_of=lambda t, t0, t1: t):
    """A fixed-step explicit Runge-Kutta solver from its tableau (``time_of`` lets a test break its clock)."""
    def solve(u, x0, t0, t1, n):
        h = (t1 - t0) / n
        x = np.array(x0, dtype=float)
        for k in range(n):
            t = t0 + k * h
            ks = []
            for c, row in zip(tableau_c, tableau_a):
                ks.append(u(x + h * sum(a * kj for a, kj in zip(row, ks)), time_of(t + c * h, t0, t1)))
            x = x + h * sum(b * kj for b, kj in zip(tableau_b, ks))
        return x
    return solve


EULER = ([0.0], [[]], [1.0])
HEUN = ([0.0, 1.0], [[], [1.0]], [0.5, 0.5])
RK4 = ([0.0, 0.5, 0.5, 1.0], [[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6])


@pytest.mark.parametrize("tableau, order", [(EULER, 1), (HEUN, 2), (RK4, 4)], ids=["euler", "heun", "rk4"])
def test_hand_written_solvers_pass_with_their_order(tableau, order):
    report = check_ode_solver(_hand_written(*tableau), order)
    assert report, str(report)


@pytest.mark.parametrize("method, order", [("euler", 1), ("midpoint", 2), ("rk4", 4), ("rk38", 4), ("dopri5", 5)])
def test_reference_integrators_pass_and_their_observed_orders_are_within_0_2(method, order):
    from reference.ode import integrate

    report = check_ode_solver(lambda u, x0, t0, t1, n: integrate(u, x0, t0, t1, n, method=method), order)
    assert report, str(report)
    # the module's claim: the pre-asymptotic bias at these steps is below 0.2
    deviations = [v for name, v in report.figures.items() if name.startswith("order_")]
    assert len(deviations) == 2 * len(ODE_PROBLEMS) and max(deviations) < 0.2


@pytest.mark.parametrize("steps", [[4, 12, 36], [16, 24, 32, 40]])
def test_step_counts_that_are_not_doublings_measure_the_same_order(steps):
    from reference.ode import integrate

    for method, order in (("euler", 1), ("rk4", 4)):
        solve = lambda u, x0, t0, t1, n, m=method: integrate(u, x0, t0, t1, n, method=m)  # noqa: E731
        assert check_ode_solver(solve, order, steps=steps), method
        assert not check_ode_solver(solve, order + 1, steps=steps)  # negative control: a claimed order too high


def test_a_solver_that_is_not_the_order_it_claims_is_named():
    r = check_ode_solver(_hand_written(*HEUN), 4)
    assert _failed_with(r, "order 2, not 4")
    assert _failed_with(check_ode_solver(_hand_written(*RK4), 2), "more than the claimed 2")


def test_time_running_the_wrong_way_inside_a_solver_is_named():
    reversed_clock = _hand_written(*RK4, time_of=lambda t, t0, t1: t0 + t1 - t)
    assert _failed_with(check_ode_solver(reversed_clock, 4), "time runs the wrong way")
    frozen_clock = _hand_written(*RK4, time_of=lambda t, t0, t1: t0)
    assert _failed_with(check_ode_solver(frozen_clock, 4), "time not advanced")


def test_a_stage_at_the_wrong_time_is_named():
    wrong_c = ([0.0, 0.5, 0.5, 0.5], RK4[1], RK4[2])  # last stage at t + h/2 instead of t + h
    assert _failed_with(check_ode_solver(_hand_written(*wrong_c), 4), "stage at the wrong time")


def test_an_adaptive_solver_has_no_order_to_measure_and_says_so():
    from reference.ode import integrate_adaptive

    tight = lambda u, x0, t0, t1, n: integrate_adaptive(u, x0, t0, t1, rtol=1e-14, atol=1e-14).x  # noqa: E731
    assert _failed_with(check_ode_solver(tight, 5), "errors at round-off")


def test_a_solver_that_cannot_integrate_backwards_is_named():
    forward_only = _hand_written(*RK4)
    r = check_ode_solver(lambda u, x0, t0, t1, n: forward_only(u, x0, min(t0, t1), max(t0, t1), n), 4)
    assert _failed_with(r, "no reverse-time integration")


# ----------------------------------------------------------------------------- divergence estimators


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_reference_hutchinson_passes_and_its_variance_is_recognised(noise):
    r = check_divergence_estimator(lambda u, x, t, rng: hutchinson_divergence(u, x, t, rng, noise=noise))
    assert r, str(r)
    assert any(noise.capitalize() in note for note in r.notes)


def test_exact_and_hand_written_estimators_pass():
    assert check_divergence_estimator(lambda u, x, t, rng: divergence(u, x, t))

    def finite_difference_hutchinson(u, x, t, rng, h=1e-5):
        eps = rng.choice([-1.0, 1.0], size=x.shape)
        jvp = (u(x + h * eps, t) - u(x - h * eps, t)) / (2 * h)
        return np.sum(eps * jvp, axis=1)

    r = check_divergence_estimator(finite_difference_hutchinson)
    assert r, str(r)


@pytest.mark.parametrize("broken, name", [
    (lambda u, x, t, rng: -hutchinson_divergence(u, x, t, rng), "sign flipped"),
    (lambda u, x, t, rng: hutchinson_divergence(u, x, 1.0 - t, rng), "time reversed"),
    (lambda u, x, t, rng: hutchinson_divergence(u, x, t, probes=np.ones((1,) + x.shape)), "probe of ones"),
    (lambda u, x, t, rng: hutchinson_divergence(u, x, t, probes=rng.uniform(-1, 1, (1,) + x.shape)), "not normalised"),
], ids=["sign", "reversed time", "ones", "uniform probes"])
def test_a_biased_divergence_estimator_is_named(broken, name):
    assert _failed_with(check_divergence_estimator(broken), name)


# ----------------------------------------------------------------------------- OT pairing


def _brute_force_pair(x0, x1):
    n = len(x0)
    best = min(itertools.permutations(range(n)), key=lambda p: np.sum((x0 - x1[list(p)]) ** 2))
    return x0, x1[list(best)]


def test_reference_and_brute_force_pairings_pass():
    assert check_ot_pairing(ot_pair)
    assert assert_ot_pairing(_brute_force_pair, sizes=(3, 5))


def _by_assignment(cost):
    from scipy.optimize import linear_sum_assignment

    def pair(x0, x1):
        _, cols = linear_sum_assignment(cost(x0, x1))
        return x0, x1[cols]
    return pair


def _with_replacement(x0, x1):
    i = np.random.default_rng(0).integers(0, len(x0), len(x0))
    x0p, x1p = ot_pair(x0, x1)
    return x0p[i], x1p[i]


@pytest.mark.parametrize("broken, name", [
    (lambda x0, x1: (x0, x1), "no re-pairing"),
    (lambda x0, x1: (x0, x1[np.argsort(ot_permutation(x0, x1))]), "inverse permutation"),
    (_with_replacement, "drawn with replacement"),
    (_by_assignment(lambda a, b: np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))), "cost not squared"),
    (_by_assignment(lambda a, b: -((a[:, None] - b[None]) ** 2).sum(-1)), "cost maximised"),
    (lambda x0, x1: ot_pair(x0, x1)[::-1], "x0 and x1 swapped"),
], ids=["identity", "inverse", "replacement", "distance", "maximised", "swapped"])
def test_a_wrong_pairing_is_named(broken, name):
    assert _failed_with(check_ot_pairing(broken), name)


# ----------------------------------------------------------------------------- adapters and bad input


def test_from_torch_without_torch_says_how_to_install_it():
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install torch"):
            from_torch(lambda x: x)(np.zeros((1, 1)))
    else:
        pytest.skip("torch is installed: tests/interop covers from_torch")


@pytest.mark.parametrize("call, error, match", [
    (lambda: check_bijection(3, lambda y: y, np.zeros((2, 2))), TypeError, "forward must be callable"),
    (lambda: check_bijection(lambda x: x, lambda y: y, np.zeros(3)), ValueError, r"x must have shape \(n, d\)"),
    (lambda: check_conditional_path(_conical, np.zeros((2, 2)), np.zeros((3, 2))), ValueError, "same shape"),
    (lambda: check_conditional_path(_conical, np.ones((2, 2)), 2 * np.ones((2, 2))), ValueError, "proportional"),
    (lambda: check_conditional_path(_conical, np.eye(2), -np.ones((2, 2)), t=[0.0, 0.5]), ValueError, "interior"),
    (lambda: check_ode_solver(lambda *a: None, 0), ValueError, "order must be an integer >= 1"),
    (lambda: check_ode_solver(lambda *a: None, 2, steps=[8, 4]), ValueError, "increasing"),
    (lambda: check_ot_pairing(ot_pair, sizes=(9,)), ValueError, "sizes must be <= 8"),
    (lambda: check_divergence_estimator(divergence, framework="jax"), ValueError, "framework must be one of"),
    (lambda: from_torch(3), TypeError, "fn must be callable"),
    (lambda: check_log_likelihood(lambda u, x: x[:, 0], atol=0.0), ValueError, "atol must be > 0"),
    (lambda: check_log_likelihood(lambda u, x: x[:, 0], framework="tf"), ValueError, "framework must be one of"),
    (lambda: check_marginal_velocity(lambda x, t, d: x, n=2), ValueError, "n must be an integer >= 4"),
    (lambda: check_marginal_velocity(lambda x, t, d: x, data=np.zeros(3)), ValueError, r"data must have shape \(n, d\)"),
    (lambda: check_velocity_field(lambda x, t: x, "moons"), ValueError, "mixture data sets"),
    (lambda: check_velocity_field(lambda x, t: x, "8gaussians", max_relative_loss=-1), ValueError, "must be > 0"),
])
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_wrongly_shaped_result_is_a_failed_check_not_a_crash():
    r = check_bijection(lambda z: (z[:, :1], np.zeros(len(z))), lambda y: (y, np.zeros(len(y))), np.ones((2, 2)))
    assert _failed_with(r, "expected (2, 2)")
    r = check_ot_pairing(lambda a, b: a)
    assert _failed_with(r, "must return a pair")


# ----------------------------------------------------------------------------- marginal velocity


def test_reference_marginal_velocity_and_oracle_pass():
    from reference.marginal import marginal_velocity
    from reference.oracles import EmpiricalOracle

    # with z = x1 (the conical path) and z running over the whole data set, eq. (10) is exact
    r = check_marginal_velocity(lambda x, t, data: marginal_velocity(ConicalGaussianPath(), x, t, data))
    assert r, str(r)
    assert check_marginal_velocity(lambda x, t, data: EmpiricalOracle(data).velocity(x, t))
    assert check_marginal_velocity(lambda x, t, data: EmpiricalOracle(data, 0.2).velocity(x, t), sigma=0.2)


def _hand_written_marginal(x, t, data, normalise="data", stable=True):
    """u(x, t) = sum_i w_i (y_i - x) / (1 - t), w_i proportional to N(x; t y_i, (1 - t)^2 I)."""
    var = (1 - t) ** 2
    log_n = -((x[:, None, :] - t[:, None, None] * data[None]) ** 2).sum(-1) / (2 * var[:, None]) \
        - x.shape[1] / 2 * np.log(2 * np.pi * var)[:, None]
    axis = 1 if normalise == "data" else 0
    if stable:
        log_n = log_n - log_n.max(axis=axis, keepdims=True)
    n_i = np.exp(log_n)
    w = n_i / n_i.sum(axis=axis, keepdims=True) if normalise else np.exp(log_n) / len(data)
    return np.einsum("nj,njd->nd", w, (data[None] - x[:, None]) / (1 - t)[:, None, None])


@given(st.integers(2, 20), seeds)
def test_hand_written_marginal_velocity_passes_on_any_data(n_data, seed):
    data = np.random.default_rng(seed).normal(scale=2.0, size=(n_data, 2))
    r = check_marginal_velocity(_hand_written_marginal, data=data, seed=seed % 1000)
    assert r, str(r)
    # negative control: the same with the weights normalised over the points x instead of the data
    wrong = check_marginal_velocity(lambda x, t, d: _hand_written_marginal(x, t, d, normalise="points"), data=data)
    assert not wrong


@pytest.mark.parametrize("broken, name", [
    (lambda x, t, d: _hand_written_marginal(x, t, d, normalise=None, stable=False), "weights not normalised"),
    (lambda x, t, d: _hand_written_marginal(x, t, d, stable=False), "weights underflow far from the data"),
    (lambda x, t, d: -_hand_written_marginal(x, t, d), "sign flipped"),
    (lambda x, t, d: -_hand_written_marginal(x, 1 - t, d), "reversed time convention"),
    (lambda x, t, d: _hand_written_marginal(x, t, d, normalise="points"), "wrong axis"),
    (lambda x, t, d: (d.mean(0) - x) / (1 - t)[:, None], "uniform weights"),
], ids=["unnormalised", "underflow", "sign", "reversed", "axis", "uniform"])
def test_a_wrong_marginal_velocity_is_named(broken, name):
    with np.errstate(all="ignore"):
        report = check_marginal_velocity(broken)
    assert _failed_with(report, name)


# ----------------------------------------------------------------------------- learned fields


def test_the_true_field_scores_zero_and_a_slightly_wrong_one_scores_its_error():
    from reference.distributions import dataset_mixture
    from reference.oracles import GaussianMixtureOracle

    oracle = GaussianMixtureOracle(dataset_mixture("8gaussians"))
    exact = check_velocity_field(oracle.velocity, "8gaussians")
    assert exact and exact.figures["relative_fm_loss"] == 0.0
    # v = 1.1 u has L_FM = 0.01 E|u|^2 exactly: the score must say so
    scaled = check_velocity_field(lambda x, t: 1.1 * oracle.velocity(x, t), "8gaussians")
    assert scaled and abs(scaled.figures["relative_fm_loss"] - 0.01) < 1e-12
    # Theorem 2: the reported C = L_CFM - L_FM is the constant of losses.cfm_constant (quadrature),
    # within K standard errors, and far from zero
    from reference.losses import cfm_constant
    C = cfm_constant(oracle)
    assert C > 1.0 and abs(exact.figures["cfm_constant"] - C) <= 5 * exact.figures["cfm_constant_se"]
    # negative control: the CFM loss of a wrong field (v = 2u, L_FM = E|u|^2) is rejected as C
    doubled = check_velocity_field(lambda x, t: 2.0 * oracle.velocity(x, t), "8gaussians")
    assert abs(doubled.figures["cfm_loss"] - C) > 5 * doubled.figures["cfm_constant_se"]
    assert not check_velocity_field(lambda x, t: 1.3 * oracle.velocity(x, t), "8gaussians")


@pytest.mark.parametrize("wrong, name", [
    (lambda u: (lambda x, t: -u(x, t)), "sign flipped"),
    (lambda u: (lambda x, t: -u(x, 1 - t)), "reversed time convention"),
], ids=["sign", "reversed"])
def test_a_field_of_the_wrong_sign_or_time_convention_is_named(wrong, name):
    from reference.distributions import dataset_mixture
    from reference.oracles import GaussianMixtureOracle

    oracle = GaussianMixtureOracle(dataset_mixture("cross"))
    assert _failed_with(check_velocity_field(wrong(oracle.velocity), "cross"), name)


def test_empirical_data_is_scored_against_its_exact_field():
    from reference.oracles import EmpiricalOracle

    data = np.random.default_rng(0).normal(size=(10, 2))
    assert check_velocity_field(EmpiricalOracle(data).velocity, data, n=500)
    assert not check_velocity_field(lambda x, t: 0 * x, data, n=500)


# ----------------------------------------------------------------------------- CNF log-likelihood


def _hand_written_cnf(u, x, n_steps=50, div_sign=-1.0, backwards=True, constant=True):
    """log p1(x) = log p0(x(0)) - int_0^1 div u(x(t), t) dt, by RK4 on d/dt [x, l] = [u, div u].

    The keywords break it the ways people do: ``div_sign = +1`` flips the divergence's sign
    (0 drops it), ``backwards=False`` pushes x forwards from t = 0 to 1 (as if x were the
    noise), ``constant=False`` drops log p0's ``-d/2 log(2 pi)``.
    """
    n, d = x.shape

    def rhs(state, t):
        y = state[:, :d]
        return np.concatenate([u(y, t), divergence(u, y, t)[:, None]], axis=1)

    t0, t1 = (1.0, 0.0) if backwards else (0.0, 1.0)
    h = (t1 - t0) / n_steps
    state = np.concatenate([x, np.zeros((n, 1))], axis=1)
    for k in range(n_steps):
        t = t0 + k * h
        k1 = rhs(state, t)
        k2 = rhs(state + h / 2 * k1, t + h / 2)
        k3 = rhs(state + h / 2 * k2, t + h / 2)
        k4 = rhs(state + h * k3, t + h)
        state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    z = state[:, :d]
    integral = -state[:, d] if backwards else state[:, d]  # int_0^1 div u along the trajectory
    log_p0 = -0.5 * np.sum(z**2, axis=1) - (0.5 * d * np.log(2 * np.pi) if constant else 0.0)
    return log_p0 + div_sign * integral


def test_reference_cnf_and_a_hand_written_one_pass():
    from reference.cnf import cnf_logpdf

    r = check_log_likelihood(lambda u, x: cnf_logpdf(u, x, n_steps=100, method="rk4", divergence="exact"), atol=1e-6)
    assert r, str(r)
    r = check_log_likelihood(_hand_written_cnf, atol=1e-6)
    assert r, str(r)


def test_reference_cnf_with_hutchinson_passes_in_expectation():
    from reference.cnf import cnf_logpdf

    r = check_log_likelihood(lambda u, x: cnf_logpdf(u, x, n_steps=20, method="rk4", divergence="hutchinson",
                                                     rng=np.random.default_rng(0)),
                             atol=1e-3, stochastic=True, n=3, n_repeats=200)
    assert r, str(r)


@pytest.mark.parametrize("broken, name", [
    (lambda u, x: _hand_written_cnf(u, x, div_sign=+1.0), "divergence sign flipped"),
    (lambda u, x: _hand_written_cnf(u, x, div_sign=0.0), "divergence missing"),
    (lambda u, x: _hand_written_cnf(lambda y, t: 0.0 * y, x), "no flow"),
    (lambda u, x: _hand_written_cnf(u, x, backwards=False), "time reversed (x pushed forwards"),
    (lambda u, x: _hand_written_cnf(u, x, backwards=False, div_sign=+1.0), "time reversed and divergence sign"),
    (lambda u, x: _hand_written_cnf(u, x, constant=False), "without its constant"),
], ids=["sign", "missing", "no flow", "reversed", "reversed and sign", "constant"])
def test_a_wrong_cnf_log_likelihood_is_named(broken, name):
    assert _failed_with(check_log_likelihood(broken, n=4), name)


# ----------------------------------------------------------------------------- strategies for users


@settings(max_examples=10)
@given(fst.linear_fields(d=2), fst.points(n=3, d=2), fst.times(inside=True))
def test_linear_fields_strategy_gives_the_exact_flow_and_density(field, x0, t):
    from reference.cnf import cnf_logpdf
    from reference.ode import integrate

    u, flow, log_p1 = field
    np.testing.assert_allclose(integrate(u, x0, 0.0, t, 32, method="rk4"), flow(x0, t), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(cnf_logpdf(u, x0, n_steps=128), log_p1(x0), rtol=1e-8, atol=1e-8)
    # negative control: the flow run for -t does not match unless the field barely moves the points
    if np.max(np.abs(flow(x0, t) - x0)) > 1e-3:
        assert not np.allclose(flow(x0, -t), flow(x0, t), rtol=1e-8, atol=1e-8)


@settings(max_examples=10)
@given(fst.gaussian_mixtures(), seeds)
def test_any_gaussian_mixture_from_the_strategy_is_scored_exactly_by_its_own_oracle(mixture, seed):
    from reference.oracles import GaussianMixtureOracle

    oracle = GaussianMixtureOracle(mixture)
    assert check_velocity_field(oracle.velocity, mixture, n=300, seed=seed % 1000)
    assert not check_velocity_field(lambda x, t: -oracle.velocity(x, t), mixture, n=300, seed=seed % 1000)

"""``reference.testing``'s checkers accept the reference and judge by the numbers they claim.

The catalogue (``test_testing_catalogue.py``) holds the hand-written implementations;
here: the reference's own implementations pass, the numerical claims the checkers
rest on hold (closed-form divergences and the float64 CNF they compare with, the
calibrated asymptotic ranges of the ODE problems, where a stochastic estimator's
randomness lives), each with a negative control.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from reference.autodiff import divergence, hutchinson_divergence, jacobian
from reference.flows.coupling import coupling_forward, coupling_init, coupling_inverse
from reference.paths import ConicalGaussianPath, LinearInterpolationPath, OptimalTransportPath
from reference.testing import (
    check_bijection,
    check_conditional_path,
    check_divergence_estimator,
    check_log_likelihood,
    check_marginal_velocity,
    check_ode_solver,
    check_ot_pairing,
    check_velocity_field,
)
from reference.testing._stats import locate_and_average
from reference.testing.solvers import ODE_PROBLEMS
from tests.strategies import seeds

# ----------------------------------------------------------------------------- bijections


@st.composite
def couplings(draw):
    d = draw(st.integers(2, 5))
    d_split = draw(st.integers(1, d - 1))
    rng = np.random.default_rng(draw(seeds))
    return coupling_init(d, d_split, (8,), rng), rng.normal(size=(5, d))


@settings(max_examples=8)
@given(couplings())
def test_reference_coupling_passes_and_a_flipped_log_det_is_named(case):
    params, x = case
    fwd, inv = (lambda z: coupling_forward(params, z)), (lambda y: coupling_inverse(params, y))
    report = check_bijection(fwd, inv, x)
    assert report, str(report)
    _, ld = fwd(x)
    if np.max(np.abs(ld)) > 1e-3:  # negative control: the same layer with its log-det's sign flipped
        flipped = check_bijection(lambda z: (fwd(z)[0], -fwd(z)[1]), inv, x)
        assert not flipped and flipped.diagnosis == "log-det sign flipped"


# ----------------------------------------------------------------------------- conditional paths


def _reference_sample(path):
    def sample(x0, x1, t):
        z = (x0, x1) if path.conditions_on_pairs else x1
        x_t = path.flow(np.zeros_like(x0) if path.conditions_on_pairs else x0, t, z)
        return x_t, path.velocity(x_t, t, z)
    return sample


@pytest.mark.parametrize("path", [LinearInterpolationPath(), ConicalGaussianPath(), OptimalTransportPath(1e-2),
                                  LinearInterpolationPath(sigma=0.3)], ids=repr)
def test_reference_paths_pass_against_themselves_and_not_against_another(path):
    rng = np.random.default_rng(0)
    x0, x1 = rng.normal(size=(8, 3)), rng.normal(size=(8, 3)) + 2
    report = check_conditional_path(_reference_sample(path), x0, x1, path=path)
    assert report, str(report)
    # negative control: another path (the linear and conical paths share their interpolant, not this one's)
    assert not check_conditional_path(_reference_sample(path), x0, x1, path=OptimalTransportPath(0.1))


def test_a_variance_preserving_path_passes_once_its_approximate_start_is_allowed_for():
    from reference.paths import VariancePreservingPath

    path = VariancePreservingPath()
    rng = np.random.default_rng(5)
    x0, x1 = rng.normal(size=(8, 2)), rng.normal(size=(8, 2)) + 2
    strict = check_conditional_path(_reference_sample(path), x0, x1, path=path)
    # a(1) = exp(-5.025) = 6.6e-3 of the data is left at t = 0: refused by default, named in the report
    assert not strict and 0.006 < strict.figures["start_x1_weight"] < 0.007
    assert check_conditional_path(_reference_sample(path), x0, x1, path=path, boundary_tol=1e-2)


def test_the_default_batches_cover_every_dimension_and_times_close_to_both_ends():
    report = check_conditional_path(_reference_sample(ConicalGaussianPath()))
    assert report and {f"velocity_error_over_tol_d{d}" for d in (1, 2, 3, 5)} <= set(report.figures)
    assert any("d = 1, 2, 3, 5" in c and "0.001" in c and "0.999" in c for c in report.coverage), report.coverage


# ----------------------------------------------------------------------------- ODE solvers


@pytest.mark.parametrize("method, order", [("euler", 1), ("rk4", 4), ("dopri5", 5)])
def test_reference_integrators_pass_with_every_measured_order_within_the_calibrated_0_3(method, order):
    from reference.ode import integrate

    report = check_ode_solver(lambda u, x0, t0, t1, n: integrate(u, x0, t0, t1, n, method=method), order)
    assert report, str(report)
    deviations = [v for name, v in report.figures.items() if name.startswith("order_")]
    assert len(deviations) >= 6 and max(deviations) < 0.3
    assert any("n_steps = 1, 3" in c for c in report.coverage)


@pytest.mark.parametrize("steps", [[4, 12, 36]])
def test_step_counts_that_are_not_doublings_measure_the_same_order(steps):
    from reference.testing._catalogue import EULER, RK4, rk_solver

    for tableau, order in ((EULER, 1), (RK4, 4)):
        solve = rk_solver(tableau)
        assert check_ode_solver(solve, order, steps=steps), order
        assert not check_ode_solver(solve, order + 1, steps=steps)  # negative control: a claimed order too high


def test_an_adaptive_solver_has_no_order_to_measure_and_says_so():
    from scipy.integrate import solve_ivp

    def adaptive(u, x0, t0, t1, n):
        shape = x0.shape
        sol = solve_ivp(lambda t, y: u(y.reshape(shape), t).ravel(), (t0, t1), x0.ravel(), method="DOP853",
                        rtol=1e-13, atol=1e-13)
        return sol.y[:, -1].reshape(shape)

    report = check_ode_solver(adaptive, 5)
    assert not report and "errors at round-off" in report.diagnosis


@pytest.mark.slow
def test_the_calibrated_asymptotic_ranges_are_those_the_textbook_tableaus_show():
    from reference.testing.solvers import asymptotic_table

    assert asymptotic_table() == tuple(p.asymptotic_from for p in ODE_PROBLEMS)
    # negative control: a tighter tolerance moves some of them
    assert asymptotic_table(tol=0.1) != tuple(p.asymptotic_from for p in ODE_PROBLEMS)


def test_the_ode_problems_solutions_solve_them():
    for prob in ODE_PROBLEMS:
        h = 1e-5
        s = prob.t0 + 0.3 * (prob.t1 - prob.t0)  # not the midpoint, where t0 + t1 - s = s
        x = prob.exact(prob.x0, prob.t0, s)
        dxdt = (prob.exact(prob.x0, prob.t0, s + h) - prob.exact(prob.x0, prob.t0, s - h)) / (2 * h)
        np.testing.assert_allclose(dxdt, prob.u(x, s), rtol=1e-7, atol=1e-7)
        for alt, field in ((prob.reversed_exact, lambda y, r: prob.u(y, prob.t0 + prob.t1 - r)),
                           (prob.frozen_exact, lambda y, r: prob.u(y, prob.t0))):
            if alt is not None:
                y = alt(prob.x0, prob.t0, s)
                dy = (alt(prob.x0, prob.t0, s + h) - alt(prob.x0, prob.t0, s - h)) / (2 * h)
                np.testing.assert_allclose(dy, field(y, s), rtol=1e-7, atol=1e-7)
                assert not np.allclose(dy, prob.u(y, s), rtol=1e-3)  # negative control


# ----------------------------------------------------------------------------- fields and likelihoods


@pytest.mark.parametrize("d", [1, 3, 5])
def test_the_test_fields_closed_form_jacobian_and_divergence_are_autograds(d):
    from reference.testing._fields import make_field, nonlinear_divergence, nonlinear_jacobian

    u = make_field("nonlinear", "numpy", d)
    x = np.random.default_rng(d).normal(size=(4, d))
    t = np.array([0.1, 0.4, 0.7, 0.95])
    np.testing.assert_allclose(nonlinear_jacobian(x, t, d), jacobian(lambda y: u(y, t), x), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(nonlinear_divergence(x, t, d), divergence(u, x, t), rtol=1e-13, atol=1e-13)
    assert not np.allclose(nonlinear_divergence(x, 1 - t, d), divergence(u, x, t))  # negative control


def test_the_float64_cnf_the_likelihood_checker_compares_with_is_the_reference_cnf():
    from reference.cnf import cnf_logpdf
    from reference.testing._fields import closed_forms, make_field, points_for, reference_log_likelihood

    rng = np.random.default_rng(3)
    d = 3
    x = points_for("nonlinear", 3, d, rng)
    # RK4 with 64 steps (autograd's trace) against 256 steps (the closed-form trace): RK4's error, 1e-8 here
    ref = cnf_logpdf(make_field("nonlinear", "numpy", d), x, n_steps=64, method="rk4")
    np.testing.assert_allclose(reference_log_likelihood(x)[0], ref, rtol=0, atol=1e-7)
    assert np.max(np.abs(reference_log_likelihood(x, n_steps=4)[0] - ref)) > 1e-6  # negative control: too few steps
    for kind in ("gaussian_path", "linear"):
        y = points_for(kind, 3, d, rng)
        truth, alternatives = closed_forms(kind, y)
        np.testing.assert_allclose(cnf_logpdf(make_field(kind, "numpy", d), y, n_steps=32), truth, atol=1e-6)
        assert all(np.max(np.abs(alt - truth)) > 0.1 for alt in alternatives.values())


def test_the_reference_cnf_passes_and_a_hutchinson_one_passes_in_expectation():
    from reference.cnf import cnf_logpdf

    exact = check_log_likelihood(lambda u, x: cnf_logpdf(u, x, n_steps=8, method="rk4"), atol=1e-3, n=3,
                                 dims=(3,))
    assert exact, str(exact)
    hutch = check_log_likelihood(lambda u, x: cnf_logpdf(u, x, n_steps=8, method="rk4", divergence="hutchinson",
                                                         rng=np.random.default_rng(0)),
                                 atol=3e-3, stochastic=True, n=2, n_repeats=32, dims=(2,))
    assert hutch, str(hutch)
    assert any("per point" in note for note in hutch.notes)


# ----------------------------------------------------------------------------- randomness


def _synthetic(kind, bias=0.0):
    """Estimates of the values 1, 2, 3 with noise drawn per point, per call, or none."""
    truth = np.array([1.0, 2.0, 3.0])
    rng = np.random.default_rng(7)

    def call(m):
        if kind == "point":
            noise = rng.standard_normal(3 * m)
        elif kind == "call":
            noise = np.tile(rng.standard_normal(3), m)
        else:
            noise = np.zeros(3 * m)
        return np.tile(truth + bias, m) + noise

    return truth, (lambda c: call(16)), (lambda c: call(1))


@pytest.mark.parametrize("kind, where", [("point", "per point"), ("call", "per call"), ("none", "none")])
def test_the_randomness_is_located_and_an_unbiased_estimator_is_judged_unbiased_wherever_it_lives(kind, where):
    truth, rep, single = _synthetic(kind)
    mean, se, samples, found, m = locate_and_average(rep, single, 3, 16, 64, 2.2e-16)
    assert found == where
    assert np.all(np.abs(mean - truth) <= 5 * se + 1e-12)
    # negative control: a bias of 2 (about 10 standard errors of the 32 or more samples) is seen
    truth, rep, single = _synthetic(kind, bias=2.0)
    mean, se, *_ = locate_and_average(rep, single, 3, 16, 64, 2.2e-16)
    assert np.all(np.abs(mean - truth) > 5 * se)


def test_a_call_shared_probe_would_be_judged_biased_if_its_repeats_were_taken_as_independent():
    truth, rep, _ = _synthetic("call")
    samples = rep(0).reshape(16, 3)
    naive_se = samples.std(axis=0, ddof=1) / 4  # zero: every repeat equal
    assert np.any(np.abs(samples.mean(axis=0) - truth) > 5 * naive_se)


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_reference_hutchinson_passes_and_its_variance_is_recognised(noise):
    r = check_divergence_estimator(lambda u, x, t, rng: hutchinson_divergence(u, x, t, rng, noise=noise), dims=(2, 3),
                                   n_repeats=1000)
    assert r, str(r)
    assert any(noise.capitalize() in note for note in r.notes)


# ----------------------------------------------------------------------------- pairing, marginal, learned fields


def test_reference_pairing_passes():
    from reference.ot import ot_pair

    assert check_ot_pairing(ot_pair)


def test_the_checkers_exact_field_is_the_oracles_and_the_reference_marginal_passes():
    from reference.marginal import marginal_velocity
    from reference.oracles import EmpiricalOracle
    from reference.testing.marginal import exact_velocity

    rng = np.random.default_rng(1)
    data, x, t = rng.normal(size=(50, 3)), rng.normal(size=(7, 3)), rng.uniform(0.05, 0.95, 7)
    for sigma in (0.0, 0.2):
        np.testing.assert_allclose(exact_velocity(x, t, data, sigma), EmpiricalOracle(data, sigma).velocity(x, t),
                                   rtol=1e-13, atol=1e-13)
    assert check_marginal_velocity(lambda x, t, d: marginal_velocity(ConicalGaussianPath(), x, t, d), dims=(2,),
                                   n_data=2000)
    assert check_marginal_velocity(lambda x, t, d: EmpiricalOracle(d, 0.2).velocity(x, t), sigma=0.2,
                                   data=rng.normal(size=(20, 2)))


def test_the_true_field_scores_zero_and_a_slightly_wrong_one_scores_its_error():
    from reference.distributions import dataset_mixture
    from reference.oracles import GaussianMixtureOracle

    oracle = GaussianMixtureOracle(dataset_mixture("8gaussians"))
    exact = check_velocity_field(oracle.velocity, "8gaussians")
    assert exact and exact.figures["relative_fm_loss"] == 0.0
    scaled = check_velocity_field(lambda x, t: 1.1 * oracle.velocity(x, t), "8gaussians")
    assert scaled and abs(scaled.figures["relative_fm_loss"] - 0.01) < 1e-12  # L_FM = 0.01 E|u|^2 exactly
    assert not check_velocity_field(lambda x, t: 1.3 * oracle.velocity(x, t), "8gaussians")


@pytest.mark.slow
def test_the_reported_constant_is_theorem_2s():
    from reference.distributions import dataset_mixture
    from reference.losses import cfm_constant
    from reference.oracles import GaussianMixtureOracle

    oracle = GaussianMixtureOracle(dataset_mixture("8gaussians"))
    exact = check_velocity_field(oracle.velocity, "8gaussians")
    C = cfm_constant(oracle)
    assert C > 1.0 and abs(exact.figures["cfm_constant"] - C) <= 5 * exact.figures["cfm_constant_se"]
    doubled = check_velocity_field(lambda x, t: 2.0 * oracle.velocity(x, t), "8gaussians")
    assert abs(doubled.figures["cfm_loss"] - C) > 5 * doubled.figures["cfm_constant_se"]  # negative control


def test_empirical_data_is_scored_against_its_exact_field():
    from reference.oracles import EmpiricalOracle

    data = np.random.default_rng(0).normal(size=(10, 2))
    assert check_velocity_field(EmpiricalOracle(data).velocity, data, n=500)
    assert not check_velocity_field(lambda x, t: 0 * x, data, n=500)


def test_every_round_off_allowance_is_sqrt_eps_of_the_precision():
    for name, eps in (("float64", 2.0**-52), ("float32", 2.0**-23), ("float16", 2.0**-10), ("bfloat16", 2.0**-7)):
        from reference.testing._precision import parse_precision
        from reference.testing._report import roundoff_tol

        assert parse_precision(name).eps == eps and roundoff_tol(eps) == math.sqrt(eps)


# ----------------------------------------------------------------------------- names given only for their cause
# The catalogue shows each name given to one broken case and not to the others; here the same mistakes written
# the ways students write them (other methods, terms that cancel elsewhere kept or dropped) get the same names.

_TABLEAUS = {
    "Euler": (([0.0], [[]], [1.0]), 1),
    "midpoint": (([0.0, 0.5], [[], [0.5]], [0.0, 1.0]), 2),
    "RK4": (([0.0, 0.5, 0.5, 1.0], [[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6]), 4),
}


def _explicit_rk(tableau, time_of):
    c, a, b = tableau

    def solve(u, x0, t0, t1, n):
        h, x = (t1 - t0) / n, np.array(x0, dtype=float)
        for k in range(n):
            t = t0 + k * h
            ks = []
            for ci, row in zip(c, a):
                ks.append(u(x + h * sum((aij * kj for aij, kj in zip(row, ks)), np.zeros_like(x)),
                            time_of(t + ci * h, t0, t1)))
            x = x + h * sum(bi * ki for bi, ki in zip(b, ks))
        return x
    return solve


@pytest.mark.parametrize("method, wrong, name", [
    ("Euler", "frozen", "time not advanced"),
    ("midpoint", "reversed", "time runs the wrong way"),
    ("midpoint", "frozen", "time not advanced"),
])  # Euler reversed, RK4 reversed and RK4 frozen are in the catalogue
def test_a_solver_whose_time_is_reversed_or_frozen_is_named_so_whatever_its_order(method, wrong, name):
    tableau, order = _TABLEAUS[method]
    time_of = {"reversed": lambda s, t0, t1: t0 + t1 - s, "frozen": lambda s, t0, t1: t0}[wrong]
    report = check_ode_solver(_explicit_rk(tableau, time_of), order)
    assert not report and report.diagnosis == name, str(report)
    # the name rests on convergence to the wrong problem's solution at the claimed order: the report says so
    assert f"converges to the solution of dx/dt = u(x, t0{' + t1 - t' if wrong == 'reversed' else ''})" in report.message


def _hutchinson_variant(noise="rademacher", left=True, scale=1.0):
    def estimate(u, x, t, rng):
        eps = rng.choice([-1.0, 1.0], size=x.shape) if noise == "rademacher" else rng.standard_normal(x.shape)
        h = 1e-5
        jv = (u(x + h * eps, t) - u(x - h * eps, t)) / (2 * h)
        return scale * np.sum((eps if left else 1.0) * jv, axis=1)
    return estimate


@pytest.mark.parametrize("what, estimate, name", [
    ("1^T J eps, Rademacher", _hutchinson_variant(left=False), "mean 0 instead of the trace"),
    ("1^T J eps, Gaussian", _hutchinson_variant("gaussian", left=False), "mean 0 instead of the trace"),
    ("zero", lambda u, x, t, rng: np.zeros(len(x)), "mean 0 instead of the trace"),
    ("half the trace", _hutchinson_variant(scale=0.5), "probes not normalised"),
    ("minus half the trace", _hutchinson_variant(scale=-0.5), None),  # no E[eps eps^T] = s I gives s < 0
])
def test_a_mean_of_0_is_not_probes_not_normalised_and_a_negative_multiple_is_neither(what, estimate, name):
    report = check_divergence_estimator(estimate, dims=(2, 3), n_repeats=500)
    assert not report and report.diagnosis == name, f"{what}: {report}"


def _student_marginal(constant, shift, normalise):
    """Theorem 1's sum the way it is written from the posterior weights, with the usual choices."""
    def estimate(x, t, data):
        var = (1 - t) ** 2
        log_w = -np.sum((x[:, None, :] - t[:, None, None] * data[None]) ** 2, axis=2) / (2 * var[:, None])
        if constant:
            log_w = log_w - 0.5 * x.shape[1] * np.log(2 * np.pi * var)[:, None]
        if shift:
            log_w = log_w - np.max(log_w, axis=1, keepdims=True)
        w = np.exp(log_w)
        if normalise is not None:
            w = w / np.sum(w, axis=normalise, keepdims=True)
        return np.einsum("nm,nmd->nd", w, (data[None] - x[:, None]) / (1 - t)[:, None, None])
    return estimate


@pytest.mark.parametrize("constant", [True, False], ids=["constant kept", "constant dropped"])
@pytest.mark.parametrize("shift", [False, True], ids=["", "max subtracted"])
@pytest.mark.parametrize("normalise, name", [(1, None), (None, "weights not normalised"),
                                             (0, "weights normalised over the wrong axis")],
                         ids=["normalised", "not normalised", "over the points"])
def test_the_weights_mistakes_are_named_whether_or_not_the_gaussians_constant_is_kept(constant, shift, normalise, name):
    from reference.testing.marginal import _small_data

    report = check_marginal_velocity(_student_marginal(constant, shift, normalise), data=_small_data())
    if name is None:
        # normalised over the data the constant cancels; without the shift the far points underflow
        assert bool(report) == shift and report.diagnosis == (None if shift else "weights underflow far from the data")
    else:
        assert not report and report.diagnosis == name, str(report)

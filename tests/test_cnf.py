"""``reference.cnf``: the likelihood of a continuous normalizing flow by the trace of its Jacobian."""

import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.stats import multivariate_normal

from reference.bridge import planar_velocity
from reference.cnf import cnf_logpdf, cnf_sample
from reference.distributions import standard_normal_logpdf
from reference.ode import integrate
from tests.strategies import gaussian_to_gaussian, seeds

K_SE = 5.0  # statistical tolerances below are K_SE standard errors
ORDERS = {"euler": 1, "midpoint": 2, "rk4": 4, "rk38": 4, "dopri5": 5}
SLOPE_TOL = 0.25
FIRST_N = {1: 16, 2: 8, 4: 4, 5: 1}
MAX_N = 128
# errors fitted for a slope stay above FLOOR (relative to the log-density's size): far
# above the rounding of n <= 128 steps (about n * 1e-16)
FLOOR = 1e-12
FEW = settings(max_examples=max(4, settings().max_examples // 4))


def column(t):
    return anp.reshape(t, (-1, 1)) if anp.ndim(t) else t


def gaussian_velocity(m, s):
    """The velocity of the path N(t m, sigma_t^2 I), sigma_t = 1 - t + t s, from N(0, I) to N(m, s^2 I)."""
    def u(x, t):
        return m + (s - 1.0) / column(1.0 - t + t * s) * (x - column(t) * m)
    return u


def gaussian_logpdf(m, s, x):
    """log N(x; m, s^2 I), by scipy."""
    return multivariate_normal(m, s**2 * np.eye(m.shape[0])).logpdf(x).reshape(-1)


def matrix_gaussian_velocity(m, S):
    """From N(0, I) to N(m, S^2) along x_t = t m + A_t x0, A_t = (1 - t) I + t S (S symmetric positive definite).

    u(x, t) = m + (S - I) A_t^{-1} (x - t m): a symmetric, non-diagonal Jacobian, so that
    Rademacher probes have a non-zero variance.
    """
    eye = np.eye(m.shape[0])

    def u(x, t):
        M = (S - eye) @ np.linalg.inv((1.0 - t) * eye + t * S)
        return m + (x - t * m) @ M.T
    return u


@st.composite
def gaussian_cases(draw, d_max=3, contracting=False):
    m, s = draw(gaussian_to_gaussian(d=draw(st.integers(1, d_max)), contracting=contracting))
    rng = np.random.default_rng(draw(seeds))
    x = m + s * rng.standard_normal((4, m.shape[0]))  # where p1 has its mass
    return m, s, x


def slope_over_resolutions(error_at, order, scale, floor=FLOOR):
    """Slope of log(error) against log(h) over the three finest resolutions above the floor."""
    steps, errors = [], []
    n = FIRST_N[order]
    while n <= MAX_N:
        err = error_at(n)
        if err < floor * scale:
            break
        steps.append(n)
        errors.append(err)
        n *= 2
    assert len(steps) >= 3, f"fewer than three resolutions above the rounding floor: {steps}, {errors}"
    return np.polyfit(np.log(1.0 / np.array(steps[-3:])), np.log(errors[-3:]), 1)[0], steps, errors


# --- exact divergence: the closed form, at the integrator's order ------------------------------------

@pytest.mark.parametrize("method", sorted(ORDERS))
@FEW
@given(gaussian_cases(contracting=True))
def test_the_cnf_likelihood_of_the_gaussian_path_converges_to_the_closed_form_at_the_methods_order(method, case):
    # Every Runge-Kutta method follows x(t) = t m + sigma_t x0 exactly (it is linear in t),
    # so the whole error is the quadrature of div u = d (s - 1) / sigma_t. For s > 1 the
    # error of dopri5's quadrature changes sign near h = 1/4 and its asymptotic slope
    # shows only near rounding; contracting paths (s < 1) show it from h = 1/2 on. With
    # no error from the trajectory, rounding stays near 1e-15 and the floor can be 1e-13.
    m, s, x = case
    u, expected = gaussian_velocity(m, s), gaussian_logpdf(m, s, x)

    def error_at(n):
        return np.max(np.abs(cnf_logpdf(u, x, n_steps=n, method=method) - expected))

    slope, steps, errors = slope_over_resolutions(error_at, ORDERS[method], np.max(np.abs(expected)), floor=1e-13)
    assert abs(slope - ORDERS[method]) <= SLOPE_TOL, (slope, steps, errors)


@FEW
@given(gaussian_cases(d_max=5))
def test_the_cnf_likelihood_equals_the_closed_form_to_integrator_accuracy(case):
    m, s, x = case
    u, expected = gaussian_velocity(m, s), gaussian_logpdf(m, s, x)
    np.testing.assert_allclose(cnf_logpdf(u, x, n_steps=40, method="dopri5"), expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(cnf_logpdf(u, x, method="adaptive", rtol=1e-10, atol=1e-12), expected, rtol=1e-8, atol=1e-8)
    # negative control: with the divergence term's sign flipped, log p0(x(0)) + int div u
    log_p, x0 = cnf_logpdf(u, x, n_steps=40, method="dopri5", return_x0=True)
    flipped = standard_normal_logpdf(x0) + (standard_normal_logpdf(x0) - log_p)
    integral = m.shape[0] * np.log(s)  # int_0^1 div u dt = d int (s - 1) / sigma_t dt = d log s
    np.testing.assert_allclose(flipped - expected, 2 * integral, rtol=1e-6)
    assert np.min(np.abs(flipped - expected)) > 0.4  # 2 d |log s| >= 2 log 1.25
    # and x(0) is where the flow starts: x(1) = m + s x(0)
    np.testing.assert_allclose(x0, (x - m) / s, rtol=1e-9, atol=1e-9)


def test_the_density_at_an_intermediate_time_is_that_of_the_path():
    m, s = np.array([1.0, -2.0]), 0.5
    u, x = gaussian_velocity(m, s), np.array([[0.2, -0.5], [1.0, 1.0]])
    for t in (0.25, 0.7):
        sigma = 1 - t + t * s
        expected = multivariate_normal(t * m, sigma**2 * np.eye(2)).logpdf(x)
        np.testing.assert_allclose(cnf_logpdf(u, x, n_steps=40, method="dopri5", t=t), expected, rtol=1e-9)
    # negative control: the density at t = 0.7 is not the one at t = 1
    assert not np.allclose(cnf_logpdf(u, x, n_steps=40, method="dopri5", t=0.7), gaussian_logpdf(m, s, x), rtol=1e-3)


# --- Hutchinson: unbiased ---------------------------------------------------------------------------

@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
@pytest.mark.parametrize("resample_probes", [False, True])
@FEW
@given(seeds)
def test_the_hutchinson_cnf_likelihood_is_unbiased(noise, resample_probes, seed):
    rng = np.random.default_rng(seed)
    d = 3
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    S = Q @ np.diag(rng.uniform(0.4, 2.0, d)) @ Q.T  # symmetric positive definite, not diagonal
    m = rng.normal(size=d)
    u = matrix_gaussian_velocity(m, S)
    x1 = m + rng.normal(size=(1, d)) @ S
    M = 1000  # copies of the point: each draws its own probes, so M independent estimates
    est, x0s = cnf_logpdf(u, np.repeat(x1, M, axis=0), n_steps=16, method="dopri5", divergence="hutchinson",
                          rng=rng, noise=noise, resample_probes=resample_probes, return_x0=True)
    exact = cnf_logpdf(u, x1, n_steps=16, method="dopri5")[0]
    closed_form = multivariate_normal(m, S @ S).logpdf(x1[0])
    assert abs(exact - closed_form) < 1e-8  # the integrator error is far below the standard error
    se = est.std(ddof=1) / np.sqrt(M)
    assert se > 0  # the Jacobian is not diagonal, so even Rademacher probes are noisy
    assert abs(est.mean() - exact) <= K_SE * se
    # negative control: the same estimates with the divergence's sign flipped,
    # log p0(x(0)) + int div u, are rejected by the same statistic (they differ by
    # 2 int div u = 2 log det S, clearly non-zero here)
    flipped = 2 * standard_normal_logpdf(x0s) - est
    if abs(np.linalg.slogdet(S)[1]) > 4 * K_SE * se:
        assert abs(flipped.mean() - exact) > K_SE * se


def test_rademacher_probes_are_exact_for_a_diagonal_jacobian(rng):
    # the isotropic Gaussian path has J = (s - 1) / sigma_t I: eps^T J eps = tr J for eps_i = +-1
    m, s = np.array([0.5, -1.0]), 1.6
    u, x = gaussian_velocity(m, s), rng.normal(size=(5, 2))
    exact = cnf_logpdf(u, x, n_steps=20, method="rk4")
    np.testing.assert_allclose(cnf_logpdf(u, x, 20, "rk4", "hutchinson", rng), exact, rtol=1e-13)
    assert not np.allclose(cnf_logpdf(u, x, 20, "rk4", "hutchinson", rng, noise="gaussian"), exact, rtol=1e-3)


def test_probes_drawn_once_give_a_smooth_function_of_the_point_and_fresh_ones_do_not(rng):
    u = matrix_gaussian_velocity(np.zeros(2), np.array([[1.5, 0.4], [0.4, 0.8]]))
    x = np.repeat([[0.3, -0.2]], 2, axis=0) + np.array([[0.0, 0.0], [1e-7, 0.0]])
    seed = 11
    once = cnf_logpdf(u, x[:1], 8, "rk4", "hutchinson", np.random.default_rng(seed))
    once_moved = cnf_logpdf(u, x[1:], 8, "rk4", "hutchinson", np.random.default_rng(seed))
    assert abs(once - once_moved) < 1e-5  # the same probes: a tiny move changes the estimate a little
    fresh = cnf_logpdf(u, x[:1], 8, "rk4", "hutchinson", np.random.default_rng(seed), resample_probes=True)
    assert abs(fresh - once) > 1e-5  # other probes at later stages: another estimate


# --- a nonlinear CNF: a density, and the same one forwards and backwards ---------------------------------

def nonlinear_field(seed, d=2):
    """A planar field u = tanh(b(t)^T x + c(t)) a(t) plus a contraction -0.6 tanh(x).

    Built, not filtered: |a0| = |a1| = 0.7 and |b0| = |b1| = 1, so |div| stays below ~3.
    """
    rng = np.random.default_rng(seed)

    def unit(k):
        v = rng.standard_normal((k, d))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    params = {"a": 0.7 * unit(2), "b": unit(2), "c": rng.normal(0.0, 0.5, 2)}
    return lambda x, t: planar_velocity(params, x, t) - 0.6 * anp.tanh(x)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_density_of_a_nonlinear_cnf_integrates_to_one(seed):
    u = nonlinear_field(seed)
    L, n = 7.0, 90
    grid = np.linspace(-L, L, n)
    X, Y = np.meshgrid(grid, grid)
    pts = np.stack([X.ravel(), Y.ravel()], axis=1)
    log_p, x0 = cnf_logpdf(u, pts, n_steps=16, method="rk4", return_x0=True)
    cell = (grid[1] - grid[0]) ** 2
    mass = np.sum(np.exp(log_p)) * cell
    # budget: the field moves points by at most ~4, so the mass outside the box is below
    # N(0, I)'s beyond radius 3 (~1e-2) only if the flow pushes it out; the rule's error for
    # a smooth density decaying at the edges, and RK4's with 16 steps, are far smaller
    assert abs(mass - 1.0) < 2e-3, mass
    # negative controls: without the divergence term, or with its sign flipped, it does not
    without = np.sum(np.exp(standard_normal_logpdf(x0))) * cell
    flipped = np.sum(np.exp(2 * standard_normal_logpdf(x0) - log_p)) * cell
    assert abs(without - 1.0) > 0.05 and abs(flipped - 1.0) > 0.05, (without, flipped)


# dopri5 is left to the next test: on these nonlinear fields its gap nears its slope slowly
# (about 4.6 between 8 and 32 steps, with errors already near 1e-11)
@pytest.mark.parametrize("method", ["euler", pytest.param("midpoint", marks=pytest.mark.slow),
                                    pytest.param("rk4", marks=pytest.mark.slow)])  # about 5 s and 10 s
@FEW
@given(seeds, st.integers(1, 4))
def test_the_likelihood_computed_while_sampling_converges_to_the_one_from_the_sample(method, seed, d):
    u = nonlinear_field(seed, d)
    x0 = np.random.default_rng(seed).standard_normal((5, d))
    p = ORDERS[method]

    def gap(n):  # forwards: x1 and log p1 along the way; backwards: log p1 of x1
        x1, log_p_forward = cnf_sample(u, x0, n_steps=n, method=method, return_logpdf=True)
        return np.max(np.abs(cnf_logpdf(u, x1, n_steps=n, method=method) - log_p_forward))

    slope, steps, errors = slope_over_resolutions(gap, p, 1.0)
    # the gap is a forward-backward round trip: it closes at least at the method's order
    # (one order faster for even orders, whose leading error terms cancel)
    assert slope >= p - SLOPE_TOL, (slope, steps, errors)


@given(seeds, st.integers(1, 4))
@settings(max_examples=max(2, settings().max_examples // 10))
def test_the_likelihood_computed_while_sampling_agrees_with_the_one_from_the_sample(seed, d):
    u = nonlinear_field(seed, d)
    x0 = np.random.default_rng(seed).standard_normal((5, d))
    x1, log_p_forward = cnf_sample(u, x0, n_steps=64, method="dopri5", return_logpdf=True)
    log_p_backward, back = cnf_logpdf(u, x1, n_steps=64, method="dopri5", return_x0=True)
    np.testing.assert_allclose(log_p_backward, log_p_forward, atol=1e-8)
    np.testing.assert_allclose(back, x0, atol=1e-8)
    # negative control: the backward pass with the divergence's sign flipped disagrees
    flipped = 2 * standard_normal_logpdf(back) - log_p_backward
    assert np.max(np.abs(flipped - log_p_forward)) > 1e-3


def test_sampling_without_the_density_is_integrate(rng):
    u = nonlinear_field(3)
    x0 = rng.standard_normal((6, 2))
    np.testing.assert_array_equal(cnf_sample(u, x0, 12, "midpoint"), integrate(u, x0, 0.0, 1.0, 12, "midpoint"))
    x1, _ = cnf_sample(u, x0, 12, "midpoint", return_logpdf=True)
    np.testing.assert_allclose(x1, integrate(u, x0, 0.0, 1.0, 12, "midpoint"), rtol=1e-14)


X = np.ones((3, 2))


def _u(x, t):
    return -x


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: cnf_logpdf("u", X), TypeError, "u must be callable"),
        (lambda: cnf_logpdf(_u, np.ones(3)), ValueError, r"x must have shape \(n, d\)"),
        (lambda: cnf_logpdf(_u, X, divergence="trace"), ValueError, "divergence must be one of"),
        (lambda: cnf_logpdf(_u, X, method="rk5"), ValueError, "method must be one of"),
        (lambda: cnf_logpdf(_u, X, n_steps=0), ValueError, "n_steps must be an integer >= 1"),
        (lambda: cnf_logpdf(_u, X, divergence="hutchinson"), TypeError, "rng must be a numpy.random.Generator"),
        (lambda: cnf_logpdf(_u, X, divergence="hutchinson", rng=0), TypeError, "rng must be a numpy.random.Generator"),
        (lambda: cnf_logpdf(_u, X, divergence="hutchinson", rng=np.random.default_rng(0), noise="uniform"), ValueError, "noise must be one of"),
        (lambda: cnf_logpdf(_u, X, divergence="hutchinson", rng=np.random.default_rng(0), n_probes=0), ValueError, "n_probes must be"),
        (lambda: cnf_logpdf(_u, X, method="adaptive", divergence="hutchinson", rng=np.random.default_rng(0), resample_probes=True), ValueError, "controller would chase"),
        (lambda: cnf_logpdf(_u, X, log_p0=3), TypeError, "log_p0 must be callable"),
        (lambda: cnf_logpdf(lambda x, t: x[:, :1], X), ValueError, r"must return shape \(3, 2\)"),
        (lambda: cnf_logpdf(_u, X, t=np.nan), ValueError, "t must be finite"),
        (lambda: cnf_sample(_u, np.ones((2, 2)), return_logpdf=True, log_p0=lambda x: x), ValueError, r"log_p0\(x0\) must return shape \(2,\)"),
        (lambda: cnf_sample(_u, np.full((2, 2), np.inf)), ValueError, "x0 holds 4 non-finite"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_velocity_network_gives_the_same_likelihood_by_forward_mode():
    # nn.VelocityNetwork offers its own exact divergence (forward mode through the network);
    # cnf_logpdf uses it, and gets the numbers of the generic autograd trace
    from reference.engines.mlp import VelocityNetwork
    from reference.nn import velocity_apply, velocity_init

    params = velocity_init(2, (16, 16), np.random.default_rng(0))
    x = np.random.default_rng(1).normal(size=(20, 2))
    fast = cnf_logpdf(VelocityNetwork(params), x, n_steps=20)
    generic = cnf_logpdf(lambda y, t: velocity_apply(params, y, t), x, n_steps=20)
    np.testing.assert_allclose(fast, generic, rtol=1e-12, atol=1e-12)
    # negative control: a network whose divergence is dropped gives another likelihood
    class NoDivergence(VelocityNetwork):
        def velocity_and_divergence(self, x, t):
            return self(x, t), np.zeros(len(x))
    assert not np.allclose(cnf_logpdf(NoDivergence(params), x, n_steps=20), generic, rtol=1e-6)

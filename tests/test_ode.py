"""``reference.ode``: Butcher tableaus, observed orders of convergence, the reverse-time ODE, adaptive Dormand-Prince."""

import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from reference.autodiff import jacobian
from reference.ode import (
    DOPRI5,
    EULER,
    MIDPOINT,
    RK4,
    RK38,
    TABLEAUS,
    ButcherTableau,
    IntegrationError,
    flow,
    flow_inverse,
    integrate,
    integrate_adaptive,
    push_samples,
)
from tests.strategies import dims, seeds, well_conditioned_matrices

ORDERS = {"euler": 1, "midpoint": 2, "rk4": 4, "rk38": 4, "dopri5": 5}
SLOPE_TOL = 0.25
# each example of the order properties runs up to ~20 solves: a quarter of the profile's examples
FEW = settings(max_examples=max(4, settings().max_examples // 4))
# Observed orders are fitted on the three finest of n = n_first, 2 n_first, ..., 256 steps
# whose error stays above FLOOR (relative), about 4500 ulp: far above the rounding that
# n <= 256 steps accumulate (about n * 1e-16), so the slope measures truncation only.
FIRST_N = {1: 32, 2: 32, 4: 8, 5: 4}
MAX_N = 256
FLOOR = 1e-12


class UncheckedTableau(ButcherTableau):
    """A tableau that skips the consistency checks: only for building deliberately wrong methods."""

    def __post_init__(self):
        pass


# RK4 with its last stage evaluated at t + h/2 instead of t + h: an inconsistent c
RK4_WRONG_C = UncheckedTableau("rk4-wrong-c", 4, c=(0.0, 0.5, 0.5, 0.5), a=RK4.a, b=RK4.b)


# --- problems with known solutions -------------------------------------------------------------

def linear(A):
    """x' = A x; x(t) = expm(t A) x0."""
    return (lambda x, t: x @ A.T), (lambda x0, t: x0 @ expm(t * A).T)


def alpha(t):
    """The time-dependent rate of the non-autonomous problems, and its integral from 0."""
    return 1.0 + 0.5 * anp.cos(2 * t), t + np.sin(2 * t) / 4


def column(t):
    """A time as a column ``(n, 1)`` when it is one time per point, else unchanged."""
    return anp.reshape(t, (-1, 1)) if anp.ndim(t) else t


def linear_time_dependent(A):
    """x' = alpha(t) A x; the matrices alpha(t) A commute, so x(t) = expm(int_0^t alpha A) x0."""
    def u(x, t):
        return column(alpha(t)[0]) * (x @ A.T)
    return u, (lambda x0, t: x0 @ expm(alpha(t)[1] * A).T)


ROT = np.array([[0.0, -1.0], [1.0, 0.0]])


def twist(w):
    """x' = w alpha(t) (1 + |x|^2) J x in 2-D (J a quarter turn): nonlinear and non-autonomous.

    |x| is conserved, so each point turns at its own constant-in-x rate:
    x(t) = R(theta) x0 with theta = w (1 + |x0|^2) int_0^t alpha.
    """
    def u(x, t):
        r2 = anp.sum(x**2, axis=1, keepdims=True)
        return w * column(alpha(t)[0]) * (1.0 + r2) * (x @ ROT.T)

    def exact(x0, t):
        theta = w * alpha(t)[1] * (1.0 + np.sum(x0**2, axis=1))
        c, s = np.cos(theta), np.sin(theta)
        return np.stack([c * x0[:, 0] - s * x0[:, 1], s * x0[:, 0] + c * x0[:, 1]], axis=1)

    return u, exact


def riccati():
    """x' = cos(t) x^2 (nonlinear and non-autonomous); x(t) = x0 / (1 - x0 sin t)."""
    return (lambda x, t: anp.cos(t) * x**2), (lambda x0, t: x0 / (1 - x0 * np.sin(t)))


RICCATI_X0 = np.array([[-1.0], [-0.3], [0.4], [0.8]])  # 1 - x0 sin t >= 0.32 on [0, 1]


def rms(e):
    return float(np.sqrt(np.mean(e**2)))


def observed_order(u, exact, x0, method, order):
    """Slope of log(RMS error at t = 1) against log(h), over the finest resolved step counts.

    Returns:
        ``(slope, step_counts, errors)``.
    """
    x_exact = exact(x0, 1.0)
    floor = FLOOR * np.max(np.abs(x_exact))
    steps, errors = [], []
    n = FIRST_N[order]
    while n <= MAX_N:
        err = rms(integrate(u, x0, 0.0, 1.0, n, method) - x_exact)
        if err < floor:
            break
        steps.append(n)
        errors.append(err)
        n *= 2
    steps, errors = steps[-3:], errors[-3:]
    assert len(steps) == 3, f"fewer than three resolutions above the rounding floor: {steps}"
    return np.polyfit(np.log(1.0 / np.array(steps)), np.log(errors), 1)[0], steps, errors


@st.composite
def linear_systems(draw):
    """A d x d matrix with singular values in [e^-0.5, e^0.5] and a batch of initial values."""
    d = draw(dims)
    A = draw(well_conditioned_matrices(d, max_log_sv=0.5))
    x0 = np.random.default_rng(draw(seeds)).normal(size=(3, d))
    return A, x0


@st.composite
def twist_problems(draw):
    """A rate w in [0.5, 1.5] and 1 to 4 starting points at radius 0.2 to 0.8."""
    w = draw(st.floats(0.5, 1.5))
    k = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(seeds))
    angle, radius = rng.uniform(0, 2 * np.pi, k), rng.uniform(0.2, 0.8, k)
    return w, np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)


# --- the tableaus ---------------------------------------------------------------------------------

def order_conditions(tab, order):
    """The Runge-Kutta order conditions (rooted trees) up to ``order`` <= 5 as ``(value, target)`` pairs."""
    A, b, c = np.array(tab.a), np.array(tab.b), np.array(tab.c)
    Ac = A @ c
    conds = {
        1: [(b.sum(), 1)],
        2: [(b @ c, 1 / 2)],
        3: [(b @ c**2, 1 / 3), (b @ Ac, 1 / 6)],
        4: [(b @ c**3, 1 / 4), (b @ (c * Ac), 1 / 8), (b @ A @ c**2, 1 / 12), (b @ A @ Ac, 1 / 24)],
        5: [(b @ c**4, 1 / 5), (b @ (c**2 * Ac), 1 / 10), (b @ (c * (A @ c**2)), 1 / 15),
            (b @ (c * (A @ Ac)), 1 / 30), (b @ Ac**2, 1 / 20), (b @ A @ c**3, 1 / 20),
            (b @ A @ (c * Ac), 1 / 40), (b @ A @ A @ c**2, 1 / 60), (b @ A @ A @ Ac, 1 / 120)],
    }
    return [pair for k in range(1, order + 1) for pair in conds[k]]


@pytest.mark.parametrize("name", sorted(TABLEAUS))
def test_each_tableau_meets_the_order_conditions_of_its_order_and_not_the_next(name):
    tab = TABLEAUS[name]
    assert tab.order == ORDERS[name]
    for value, target in order_conditions(tab, tab.order):
        assert value == pytest.approx(target, abs=1e-14)
    # negative control: some condition of the next order fails (Dormand-Prince has order
    # exactly 5 but is checked against its own embedded weights below)
    if tab.order < 5:
        nxt = order_conditions(tab, tab.order + 1)[len(order_conditions(tab, tab.order)):]
        assert any(abs(v - target) > 1e-3 for v, target in nxt)


def test_the_embedded_dopri_solution_has_order_four_not_five():
    embedded = ButcherTableau("dopri4", 4, c=DOPRI5.c, a=DOPRI5.a, b=DOPRI5.b_err)
    for value, target in order_conditions(embedded, 4):
        assert value == pytest.approx(target, abs=1e-14)
    fifth = order_conditions(embedded, 5)[8:]
    assert any(abs(v - target) > 1e-4 for v, target in fifth)


def test_first_same_as_last():
    assert DOPRI5.fsal and not RK4.fsal and not EULER.fsal and not MIDPOINT.fsal and not RK38.fsal


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(c=(0.0, 0.5), a=((0.0, 0.0), (0.5, 0.0)), b=(0.4, 0.5)), "b must sum to 1"),
        (dict(c=(0.0, 0.4), a=((0.0, 0.0), (0.5, 0.0)), b=(0.0, 1.0)), r"row 1 of a sums to 0.5 but c\[1\] = 0.4"),
        (dict(c=(0.5, 0.5), a=((0.5, 0.0), (0.5, 0.0)), b=(0.0, 1.0)), "strictly lower triangular"),
        (dict(c=(0.0, 0.5), a=((0.0, 0.0), (0.5, 0.0)), b=(1.0,)), "must have length s"),
        (dict(c=(0.0, 0.5), a=((0.0, 0.0), (0.5, 0.0)), b=(0.0, 1.0), b_err=(1.0, 0.5), err_order=1), "b_err must sum to 1"),
        (dict(c=(0.0, 0.5), a=((0.0, 0.0), (0.5, 0.0)), b=(0.0, 1.0), b_err=(1.0, 0.0)), "needs err_order"),
        (dict(c=(0.0, np.nan), a=((0.0, 0.0), (np.nan, 0.0)), b=(0.0, 1.0)), "finite"),
    ],
)
def test_a_broken_tableau_is_refused_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ButcherTableau("broken", 2, **kwargs)


def test_the_wrong_c_control_is_refused_by_the_checked_class():
    with pytest.raises(ValueError, match="row 3 of a sums to 1.0 but c"):
        ButcherTableau(RK4_WRONG_C.name, 4, c=RK4_WRONG_C.c, a=RK4_WRONG_C.a, b=RK4_WRONG_C.b)


def test_rk38_is_the_step_torchdiffeq_calls_rk4():
    # written out as torchdiffeq's rk4_alt_step_func does it, independently of the tableau
    u, _ = riccati()
    x, t, h = RICCATI_X0, 0.3, 0.2
    k1 = u(x, t)
    k2 = u(x + h * k1 / 3, t + h / 3)
    k3 = u(x + h * (k2 - k1 / 3), t + 2 * h / 3)
    k4 = u(x + h * (k1 - k2 + k3), t + h)
    by_hand = x + (k1 + 3 * (k2 + k3) + k4) * h / 8
    np.testing.assert_allclose(integrate(u, x, t, t + h, 1, "rk38"), by_hand, rtol=1e-15, atol=1e-15)
    # negative control: the classic RK4 step is a different step on a nonlinear problem
    assert np.max(np.abs(integrate(u, x, t, t + h, 1, "rk4") - by_hand)) > 1e-8


# --- observed orders ------------------------------------------------------------------------------

@pytest.mark.parametrize("method", sorted(ORDERS))
@FEW
@given(linear_systems())
def test_observed_order_on_linear_systems_against_expm(method, system):
    A, x0 = system
    slope, steps, errors = observed_order(*linear(A), x0, method, ORDERS[method])
    assert abs(slope - ORDERS[method]) <= SLOPE_TOL, (slope, steps, errors)


@pytest.mark.parametrize("method", sorted(ORDERS))
@FEW
@given(linear_systems())
def test_observed_order_on_a_non_autonomous_linear_system(method, system):
    A, x0 = system
    slope, steps, errors = observed_order(*linear_time_dependent(A), x0, method, ORDERS[method])
    assert abs(slope - ORDERS[method]) <= SLOPE_TOL, (slope, steps, errors)


@pytest.mark.parametrize("method", sorted(ORDERS))
@FEW
@given(twist_problems())
def test_observed_order_on_a_nonlinear_non_autonomous_problem(method, problem):
    w, x0 = problem
    slope, steps, errors = observed_order(*twist(w), x0, method, ORDERS[method])
    assert abs(slope - ORDERS[method]) <= SLOPE_TOL, (slope, steps, errors)


@FEW
@given(linear_systems(), twist_problems())
def test_a_stage_at_the_wrong_time_shows_only_on_non_autonomous_problems(system, problem):
    A, x0 = system
    # on x' = A x the nodes c are never used: the wrong tableau still looks fourth order ...
    slope, _, _ = observed_order(*linear(A), x0, RK4_WRONG_C, 4)
    assert abs(slope - 4) <= SLOPE_TOL
    # ... while on x' = alpha(t) A x the order test catches it (b . c = 5/12, not 1/2: order 1)
    slope, steps, errors = observed_order(*linear_time_dependent(A), x0, RK4_WRONG_C, 4)
    assert abs(slope - 4) > 2.0, (slope, steps, errors)
    w, y0 = problem
    slope, _, _ = observed_order(*twist(w), y0, RK4_WRONG_C, 4)
    assert abs(slope - 4) > 2.0


# --- the flow and its inverse ---------------------------------------------------------------------

def round_trip_order(order):
    """The order of the error of forward-then-backward: ``p`` for odd ``p``, ``p + 1`` for even ``p``.

    Backward steps of size ``-h`` invert the adjoint method, whose leading error term is
    ``(-1)^p`` times the method's, so for even ``p`` the two leading terms cancel.
    """
    return order if order % 2 else order + 1


@pytest.mark.parametrize("method", sorted(ORDERS))
@FEW
@given(linear_systems())
def test_forward_then_backward_returns_the_start(method, system):
    A, x0 = system
    u, _ = linear_time_dependent(A)
    p = ORDERS[method]
    steps, errors = [], []
    n = FIRST_N[p]
    while n <= MAX_N:
        back = integrate(u, integrate(u, x0, 0.0, 1.0, n, method), 1.0, 0.0, n, method)
        err = rms(back - x0)
        if err < FLOOR * np.max(np.abs(x0)):
            break
        steps.append(n)
        errors.append(err)
        n *= 2
    assert len(steps) >= 3, f"fewer than three resolutions above the rounding floor: {steps}"
    slope = np.polyfit(np.log(1.0 / np.array(steps[-3:])), np.log(errors[-3:]), 1)[0]
    assert abs(slope - round_trip_order(p)) <= SLOPE_TOL, (slope, steps, errors)


@pytest.mark.parametrize("method", sorted(ORDERS))
def test_running_minus_u_forward_is_not_the_reverse_time_ode(method):
    # with a drift that does not commute with the twist, the order of the times matters
    u_twist, _ = twist(1.0)
    shift = np.array([0.5, -0.3])

    def u(x, t):
        return u_twist(x, t) + t * shift

    x0 = np.array([[0.3, -0.5], [0.6, 0.1]])
    x1 = integrate(u, x0, 0.0, 1.0, 64, method)
    assert rms(integrate(u, x1, 1.0, 0.0, 64, method) - x0) < {1: 0.05, 2: 1e-3}.get(ORDERS[method], 1e-6)
    # the mistake: -u integrated forward from 0 to 1 (instead of u from 1 back to 0)
    assert rms(integrate(lambda x, t: -u(x, t), x1, 0.0, 1.0, 64, method) - x0) > 0.1


def test_return_path_gives_every_state_and_the_times():
    u, exact = riccati()
    path, times = integrate(u, RICCATI_X0, 0.0, 1.0, 40, "rk4", return_path=True)
    assert path.shape == (41, 4, 1) and times.shape == (41,)
    np.testing.assert_allclose(times, np.linspace(0, 1, 41), rtol=0, atol=0)
    np.testing.assert_array_equal(path[0], RICCATI_X0)
    np.testing.assert_array_equal(path[-1], integrate(u, RICCATI_X0, 0.0, 1.0, 40, "rk4"))
    for k in (1, 17, 33):  # path[k] is the state at times[k]
        np.testing.assert_allclose(path[k], integrate(u, RICCATI_X0, 0.0, times[k], k, "rk4"), rtol=1e-13)
    exact_path = np.stack([exact(RICCATI_X0, t) for t in times])
    assert np.max(np.abs(path - exact_path)) < 1e-6
    # negative control: the path is not the straight line between its ends
    line = RICCATI_X0 + times[:, None, None] * (path[-1] - RICCATI_X0)
    assert np.max(np.abs(path - line)) > 1e-2


@FEW
@given(linear_systems())
def test_the_jacobian_of_the_flow_map_is_expm(system):
    A, x0 = system
    u, _ = linear(A)
    J = jacobian(lambda x: integrate(u, x, 0.0, 1.0, 40, "rk4"), x0)
    np.testing.assert_allclose(J, np.broadcast_to(expm(A), J.shape), atol=1e-6)
    assert not np.allclose(J, np.broadcast_to(expm(A.T), J.shape), atol=1e-6) or np.allclose(A, A.T)


@FEW
@given(linear_systems(), st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3))
def test_flow_with_one_time_per_point_is_the_exact_flow(system, ts):
    A, x0 = system
    u, exact = linear_time_dependent(A)
    t = np.array(ts)
    got = flow(u, x0, t, n_steps=60, method="dopri5")
    expected = np.stack([exact(x0[i : i + 1], t[i])[0] for i in range(3)])
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(flow_inverse(u, expected[:1], t[0], n_steps=60, method="dopri5"), x0[:1], atol=1e-8)
    # negative control: every point flowed to the first point's time is not it (unless the times agree)
    if np.ptp(t) > 0.1:
        assert not np.allclose(flow(u, x0, t[0], 60, "dopri5"), expected, rtol=1e-8, atol=1e-8)


def test_push_samples_follows_the_flow_through_several_times():
    A = np.array([[0.2, -1.0], [1.0, 0.1]])
    u, exact = linear_time_dependent(A)
    x0 = np.random.default_rng(1).normal(size=(50, 2))
    times = np.array([0.0, 0.25, 0.6, 1.0])
    xs = push_samples(u, x0, times, n_steps=80, method="rk4")
    assert xs.shape == (4, 50, 2)
    for j, t in enumerate(times):
        np.testing.assert_allclose(xs[j], exact(x0, t), atol=1e-7)
    # negative control: the sample at t = 0.6 is not the one at t = 1
    assert np.max(np.abs(xs[2] - exact(x0, 1.0))) > 0.1


# --- adaptive Dormand-Prince ----------------------------------------------------------------------

def scipy_solution(u, x0, t0, t1, method="DOP853"):
    out = [solve_ivp(lambda t, y: u(y[None, :], t)[0], (t0, t1), row, method=method, rtol=1e-13, atol=1e-13).y[:, -1]
           for row in x0]
    return np.array(out)


@FEW
@given(linear_systems())
def test_adaptive_agrees_with_solve_ivp_at_tight_tolerances(system):
    A, x0 = system
    u = lambda x, t: anp.sin(3 * t) * anp.tanh(x @ A.T) - 0.3 * x  # noqa: E731
    res = integrate_adaptive(u, x0, 0.0, 1.5, rtol=1e-11, atol=1e-12)
    expected = scipy_solution(u, x0, 0.0, 1.5)
    np.testing.assert_allclose(res.x, expected, rtol=1e-8, atol=1e-9)
    # negative control: a field off by one part in 10^5 is told apart at this tolerance
    v = lambda x, t: (1 + 1e-5) * u(x, t)  # noqa: E731
    assert not np.allclose(integrate_adaptive(v, x0, 0.0, 1.5, rtol=1e-11, atol=1e-12).x, expected,
                           rtol=1e-8, atol=1e-9)


def test_adaptive_takes_the_same_steps_as_scipys_rk45():
    # the same method, error norm, controller and first-step rule as scipy's RK45:
    # the same steps, up to rounding in the (tiny) error estimates
    u, _ = riccati()
    for rtol in (1e-3, 1e-5, 1e-7):
        ours = integrate_adaptive(u, np.array([[0.7]]), 0.0, 3.0, rtol=rtol, atol=1e-9)
        theirs = solve_ivp(lambda t, y: np.cos(t) * y**2, (0.0, 3.0), [0.7], method="RK45", rtol=rtol, atol=1e-9)
        assert ours.n_fev == theirs.nfev and ours.times.shape == theirs.t.shape
        np.testing.assert_allclose(ours.times, theirs.t, rtol=1e-6)
    # negative control: a different safety factor takes different steps
    other = integrate_adaptive(u, np.array([[0.7]]), 0.0, 3.0, rtol=1e-7, atol=1e-9, safety=0.8)
    assert other.times.shape != theirs.t.shape or not np.allclose(other.times, theirs.t, rtol=1e-6)


def test_the_error_shrinks_as_rtol_does():
    u, exact = riccati()

    def errors(atol):
        return np.array([rms(integrate_adaptive(u, RICCATI_X0, 0.0, 1.0, rtol=r, atol=atol).x - exact(RICCATI_X0, 1.0))
                         for r in 10.0 ** -np.arange(3, 11)])

    # each decade of rtol buys at least a factor 2 in accuracy (about 10 is typical)
    tight = errors(atol=1e-14)
    assert np.all(tight[1:] < tight[:-1] / 2), tight
    # negative control: with a large atol the tolerance is not rtol's to set, and the
    # error stops shrinking
    loose = errors(atol=1e-3)
    assert not np.all(loose[1:] < loose[:-1] / 2), loose


@FEW
@given(linear_systems(), st.sampled_from([None, 0.5]), st.sampled_from([1e-4, 1e-8]))
def test_the_statistics_count_what_happened(system, first_step, rtol):
    A, x0 = system
    calls = []

    def u(x, t):
        calls.append(t)
        return anp.cos(4 * t) * (x @ A.T)

    res = integrate_adaptive(u, x0, 0.0, 2.0, rtol=rtol, atol=1e-10, first_step=first_step, return_states=True)
    heuristic = 1 if first_step is None else 0
    # FSAL: six new evaluations per step, accepted or rejected, plus the first one
    assert len(calls) == res.n_fev == 1 + 6 * (res.n_accepted + res.n_rejected) + heuristic
    assert res.times.shape == (res.n_accepted + 1,) and res.states.shape == (res.n_accepted + 1,) + x0.shape
    assert res.times[0] == 0.0 and res.times[-1] == 2.0 and np.all(np.diff(res.times) > 0)
    np.testing.assert_array_equal(res.states[-1], res.x)
    # negative control: seven evaluations per step (no FSAL) is not what was counted
    assert len(calls) != 1 + 7 * (res.n_accepted + res.n_rejected) + heuristic


def test_a_too_large_first_step_is_rejected_and_counted():
    u, exact = riccati()
    res = integrate_adaptive(u, RICCATI_X0, 0.0, 1.0, rtol=1e-8, atol=1e-10, first_step=1.0)
    assert res.n_rejected >= 1
    np.testing.assert_allclose(res.x, exact(RICCATI_X0, 1.0), rtol=1e-6)


@FEW
@given(linear_systems())
def test_adaptive_backwards_inverts_forwards(system):
    A, x0 = system
    u, exact = linear_time_dependent(A)
    fwd = integrate_adaptive(u, x0, 0.0, 1.0, rtol=1e-10, atol=1e-12)
    back = integrate_adaptive(u, fwd.x, 1.0, 0.0, rtol=1e-10, atol=1e-12)
    assert back.times[-1] == 0.0 and np.all(np.diff(back.times) < 0)
    np.testing.assert_allclose(back.x, x0, atol=1e-7 * np.max(np.abs(x0)))
    assert np.max(np.abs(fwd.x - x0)) > 1e-3  # negative control: the flow moved the points


def test_a_blow_up_stops_with_the_time_it_happened():
    # x' = x^2, x(0) = 1 has x(t) = 1 / (1 - t): it blows up at t = 1
    with pytest.raises(IntegrationError, match=r"step size underflow at t = 0?\.9999|step size underflow at t = 1\.0000"):
        integrate_adaptive(lambda x, t: x**2, np.ones((1, 1)), 0.0, 2.0)
    with pytest.raises(IntegrationError, match="max_steps = 5 steps reached at t = "):
        integrate_adaptive(lambda x, t: x**2, np.ones((1, 1)), 0.0, 0.99, max_steps=5)
    # fixed steps: Euler overflows; the error says where
    with pytest.raises(IntegrationError, match="at t = "):
        integrate(lambda x, t: x**2, np.ones((1, 1)), 0.0, 3.0, n_steps=30, method="euler")


STIFF = "the problem looks stiff"


def _van_der_pol(mu):
    def u(x, t):
        return anp.stack([x[:, 1], mu * (1.0 - x[:, 0] ** 2) * x[:, 1] - x[:, 0]], axis=1)
    return u


@pytest.mark.parametrize("problem", ["linear, eigenvalues -1 and -1e6", "Van der Pol, mu = 1000"])
def test_a_stiff_problem_that_runs_out_of_steps_is_called_stiff(problem):
    # the slow solution is smooth, yet an explicit method's step is held at |h lambda_max| ~ 3.3
    if problem.startswith("linear"):
        A = np.diag([-1.0, -1e6])
        u, x0, t1 = (lambda x, t: x @ A.T), np.ones((1, 2)), 1.0
    else:
        u, x0, t1 = _van_der_pol(1000.0), np.array([[2.0, 0.0]]), 3000.0
    for rtol, atol in ((1e-6, 1e-9), (1e-3, 1e-6)):  # a looser tolerance changes nothing: stability holds h
        with pytest.raises(IntegrationError) as caught:
            integrate_adaptive(u, x0, 0.0, t1, rtol=rtol, atol=atol, max_steps=150)
        message = str(caught.value)
        assert "max_steps = 150 steps reached" in message and STIFF in message
        assert "implicit solver" in message and "loosen rtol/atol" not in message


@pytest.mark.parametrize("problem", ["oscillator at rtol 1e-10", "x' = x^2 with max_steps = 5"])
def test_negative_control_a_non_stiff_problem_that_runs_out_of_steps_is_told_to_take_more(problem):
    # accuracy, not stability, limits these steps (|h| rho far below the edge of the stability region)
    if problem.startswith("oscillator"):
        W = 50.0 * np.array([[0.0, 1.0], [-1.0, 0.0]])
        call = dict(u=lambda x, t: x @ W.T, x0=np.array([[1.0, 0.0]]), t0=0.0, t1=100.0, rtol=1e-10, atol=1e-12,
                    max_steps=150)
    else:
        call = dict(u=lambda x, t: x**2, x0=np.ones((1, 1)), t0=0.0, t1=0.99, max_steps=5)
    with pytest.raises(IntegrationError) as caught:
        integrate_adaptive(**call)
    message = str(caught.value)
    assert "steps reached" in message and "raise max_steps or loosen rtol/atol" in message
    assert STIFF not in message


def _bad_field(x, t):
    return anp.where(t > 0.5, anp.inf, 1.0) * x


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: integrate(3.0, np.zeros((2, 2))), TypeError, "u must be callable"),
        (lambda: integrate(lambda x, t: x[:, :1], np.zeros((2, 2))), ValueError, r"u\(x, t\) must return shape \(2, 2\) like x, got shape \(2, 1\), at t = 0"),
        (lambda: integrate(lambda x, t: x, np.zeros(3)), ValueError, r"x0 must have shape \(n, d\)"),
        (lambda: integrate(lambda x, t: x, np.full((1, 2), np.nan)), ValueError, "x0 holds 2 non-finite"),
        (lambda: integrate(lambda x, t: x, np.zeros((2, 2)), n_steps=0), ValueError, "n_steps must be an integer >= 1"),
        (lambda: integrate(lambda x, t: x, np.zeros((2, 2)), n_steps=2.5), TypeError, "n_steps must be an integer"),
        (lambda: integrate(lambda x, t: x, np.zeros((2, 2)), method="rk5"), ValueError, "method must be one of"),
        (lambda: integrate(lambda x, t: x, np.zeros((2, 2)), t1=np.inf), ValueError, "t1 must be finite"),
        (lambda: integrate(_bad_field, np.ones((2, 2)), n_steps=4), IntegrationError, r"non-finite values .*at t = 0\.625"),
        (lambda: integrate_adaptive(lambda x, t: x, np.ones((1, 1)), rtol=-1e-3), ValueError, "rtol must be >= 0"),
        (lambda: integrate_adaptive(lambda x, t: x, np.ones((1, 1)), atol=-1.0), ValueError, "atol must be > 0"),
        (lambda: integrate_adaptive(lambda x, t: x, np.ones((1, 1)), rtol=1e-6, atol=0.0), ValueError, "atol must be > 0"),
        (lambda: integrate_adaptive(lambda x, t: x, np.ones((1, 1)), max_steps=0), ValueError, "max_steps must be"),
        (lambda: integrate_adaptive(lambda x, t: x, np.ones((1, 1)), safety=1.5), ValueError, "safety must be in"),
        (lambda: integrate_adaptive(lambda x, t: x, np.ones((1, 1)), min_factor=2.0), ValueError, "min_factor < 1 < max_factor"),
        (lambda: integrate_adaptive(lambda x, t: x, np.ones((1, 1)), first_step=-0.1), ValueError, "first_step must be > 0"),
        (lambda: integrate_adaptive("u", np.ones((1, 1))), TypeError, "u must be callable"),
        (lambda: integrate_adaptive(_bad_field, np.ones((2, 2))), IntegrationError, "non-finite values"),
        (lambda: flow(lambda x, t: x, np.ones((2, 2)), np.ones(3)), ValueError, r"t must be a float or an array of shape \(2,\)"),
        (lambda: push_samples(lambda x, t: x, np.ones((2, 2)), [0.5, 0.2]), ValueError, "non-decreasing"),
        (lambda: push_samples(lambda x, t: x, np.ones((2, 2)), [-0.5]), ValueError, ">= 0"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()

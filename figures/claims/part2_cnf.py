"""Claims of the continuous-normalizing-flow part: integrators of eq. (4), the continuity equation (5), the CNF likelihood."""

import functools

import autograd.numpy as anp
import numpy as onp
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from figures.claims import Claim, lecture, project
from reference.autodiff import divergence
from reference.bridge import planar_layers_forward, planar_ode_forward, planar_velocity
from reference.cnf import cnf_logpdf, cnf_sample
from reference.continuity import continuity_terms
from reference.distributions import GaussianMixture, standard_normal_logpdf
from reference.ode import RK4, ButcherTableau, TABLEAUS, integrate, integrate_adaptive
from reference.oracles import GaussianMixtureOracle
from reference.paths import ConicalGaussianPath, GaussianPath

K_SE = 5.0
MIXTURE = GaussianMixture(
    [0.35, 0.35, 0.3],
    onp.array([[2.2, 1.2], [-2.0, 1.6], [0.3, -2.3]]),
    onp.array([[[0.25, 0.1], [0.1, 0.2]], [[0.3, -0.12], [-0.12, 0.2]], [[0.35, 0.0], [0.0, 0.15]]]),
)
A = onp.array([[0.3, -1.1, 0.2], [0.9, -0.2, 0.4], [-0.5, 0.3, 0.1]])
X0 = onp.random.default_rng(0).standard_normal((4, 3))


def _rate(t):
    """alpha(t) = 1 + cos(2t) / 2 and its integral from 0."""
    return 1.0 + 0.5 * anp.cos(2 * t), t + onp.sin(2 * t) / 4


def _time_dependent_linear(x, t):
    """x' = alpha(t) A x: non-autonomous (a stage at a wrong time shows); x(t) = expm(int alpha A) x0."""
    return _rate(t)[0] * (x @ A.T)


def _observed_order(method, first_n, floor=1e-12):
    """Slope of log error against log h over the three finest resolutions with error above floor."""
    exact = X0 @ expm(_rate(1.0)[1] * A).T
    steps, errors, n = [], [], first_n
    while n <= 256:
        err = onp.sqrt(onp.mean((integrate(_time_dependent_linear, X0, 0.0, 1.0, n, method) - exact) ** 2))
        if err < floor * onp.abs(exact).max():
            break
        steps.append(n)
        errors.append(err)
        n *= 2
    return onp.polyfit(onp.log(1.0 / onp.array(steps[-3:])), onp.log(errors[-3:]), 1)[0]


def _order_check(method, first_n):
    @project
    def check(quick):
        p = TABLEAUS[method].order
        slope = _observed_order(method, first_n)
        return Claim("Runge-Kutta", f"{method} converges at order {p}",
                     "|observed slope - order| (x' = alpha(t) A x vs expm)", abs(slope - p), 0.25,
                     note=f"slope {slope:.3f}, fitted on the three finest step counts with error > 1e-12")
    check.__name__ = check.__qualname__ = f"check_order_{method}"
    return check


class _UncheckedTableau(ButcherTableau):
    def __post_init__(self):  # a deliberately inconsistent tableau, for the negative control
        pass


@project
def check_wrong_node_detected(quick):
    wrong = _UncheckedTableau("rk4-wrong-c", 4, c=(0.0, 0.5, 0.5, 0.5), a=RK4.a, b=RK4.b)
    slope = _observed_order(wrong, 8)
    return Claim("Runge-Kutta", "control: RK4 with last node at h/2 is not",
                 "|observed slope - 4| on the non-autonomous problem", abs(slope - 4), 2.0, op=">=",
                 note=f"slope {slope:.3f} (b . c = 5/12, not 1/2: first order)")


def _mixture_flow():
    return GaussianMixtureOracle(MIXTURE, ConicalGaussianPath()).velocity


N_ROUND_TRIP = 20


@functools.lru_cache(maxsize=1)
def _forward_solve():
    """x0, x(1) by RK4 with N = 20 steps on Figure 4's flow, and an estimate of that solve's error."""
    u = _mixture_flow()
    x0 = onp.random.default_rng(1).standard_normal((20, 2))
    x1 = integrate(u, x0, 0.0, 1.0, N_ROUND_TRIP, "rk4")
    coarse = integrate(u, x0, 0.0, 1.0, N_ROUND_TRIP // 2, "rk4")
    return x0, x1, float(onp.abs(coarse - x1).max() / 15.0)  # Richardson: |x_N/2 - x_N| = (2^4 - 1) err(x_N)


def _round_trip(reverse_time):
    u = _mixture_flow()
    x0, x1, forward_error = _forward_solve()
    if reverse_time:
        back = integrate(u, x1, 1.0, 0.0, N_ROUND_TRIP, "rk4")
    else:  # -u run forwards in time: the reverse of an autonomous field only
        back = integrate(lambda x, t: -u(x, t), x1, 0.0, 1.0, N_ROUND_TRIP, "rk4")
    return float(onp.abs(back - x0).max()), forward_error


@lecture
def check_round_trip(quick):
    error, forward_error = _round_trip(True)
    return Claim("after eq. (4)", "solving eq. (4) backwards returns x(0)",
                 "max |x0 - back(forward(x0))| (RK4, 20 steps each way)", error, forward_error,
                 note="bound: the forward solve's own error, |x_10 - x_20| / 15 (Richardson, RK4), on Figure 4's flow")


@lecture
def check_round_trip_control(quick):
    error, _ = _round_trip(False)
    return Claim("after eq. (4)", "control: -u with time not reversed does not",
                 "max |x0 - x(1)|, dx/dt = -u(x, t) from x(0) = forward(x0), t from 0 to 1", error, 0.1, op=">=",
                 note="the field is time-dependent: its reverse is -u(x, 1 - t)")


TOLERANCES = {False: (1e-6, 1e-8, 1e-10), True: (1e-5, 1e-7, 1e-9)}
"""rtol = atol of the adaptive solves (full, quick); scipy's reference is solved at 1000 times the smallest."""


@functools.lru_cache(maxsize=2)
def _adaptive_runs(quick):
    """Our adaptive Dormand-Prince at ``TOLERANCES[quick]`` and scipy's DOP853 far tighter, on Figure 4's flow."""
    u = _mixture_flow()
    x0 = onp.random.default_rng(2).standard_normal((2 if quick else 8, 2))
    shape, tight = x0.shape, min(TOLERANCES[quick]) * 1e-3
    theirs = solve_ivp(lambda t, y: onp.asarray(u(y.reshape(shape), t)).ravel(), (0.0, 1.0), x0.ravel(),
                       method="DOP853", rtol=tight, atol=tight).y[:, -1].reshape(shape)
    ours = {tol: integrate_adaptive(u, x0, 0.0, 1.0, rtol=tol, atol=tol) for tol in TOLERANCES[quick]}
    return ours, theirs


@lecture
def check_adaptive_tolerance(quick):
    ours, theirs = _adaptive_runs(quick)
    tols = onp.array(sorted(ours))
    errors = onp.array([onp.abs(ours[tol].x - theirs).max() for tol in tols])
    slope = onp.polyfit(onp.log(tols), onp.log(errors), 1)[0]
    fev = ", ".join(f"{ours[tol].n_fev}" for tol in tols[::-1])
    return Claim("CNF pros", "the tolerance sets the error: error ~ tol",
                 f"|slope of log error vs log tol - 1|, tol = rtol = atol = {', '.join(f'{v:g}' for v in tols[::-1])} "
                 "(Dormand-Prince 5(4))", abs(slope - 1.0), 0.25,
                 note=f"slope {slope:.3f}; errors {', '.join(f'{e:.1e}' for e in errors[::-1])} at {fev} evaluations: "
                      f"the solver trades evaluations for accuracy; reference: scipy's DOP853 at {tols[0] * 1e-3:g}")


@project
def check_adaptive_vs_scipy(quick):
    ours, theirs = _adaptive_runs(quick)
    tol = min(ours)
    run = ours[tol]
    counts = 1 + 6 * (run.n_accepted + run.n_rejected) + 1
    return Claim("adaptive RK", "Dormand-Prince 5(4) agrees with scipy",
                 f"max |ours(rtol {tol:g}) - solve_ivp(DOP853, rtol {tol * 1e-3:g})|", float(onp.abs(run.x - theirs).max()),
                 1e-8, note=f"{run.n_accepted} accepted, {run.n_rejected} rejected steps, {run.n_fev} evaluations "
                            f"(= 1 + 6 steps + 1: {run.n_fev == counts})")


def _gaussian_path(m, s):
    """N(t m, sigma_t^2 I), sigma_t = 1 - t + t s: ``reference.paths.GaussianPath`` with z = x1 = m."""
    return GaussianPath(alpha=lambda t: t, sigma=lambda t: 1.0 - t + t * s, name="Gaussian to Gaussian")


def _continuity_case(sign):
    rng = onp.random.default_rng(3)
    n, d, s = 200, 3, 1.8
    m = onp.array([1.0, -2.0, 0.5])
    path, z = _gaussian_path(m, s), onp.tile(m, (n, 1))
    t = rng.uniform(0.0, 1.0, n)
    x = t[:, None] * m + (1 - t + t * s)[:, None] * rng.standard_normal((n, d))
    terms = continuity_terms(lambda y, r: path.logpdf(y, r, z), lambda y, r: sign * path.velocity(y, r, z), x, t)
    return onp.abs(sum(terms)) / sum(onp.abs(term) for term in terms)


@lecture
def check_gaussian_continuity(quick):
    return Claim("eq. (5)", "N(t m, (1 - t + t s)^2 I) and its u solve it",
                 "max |r| / (|d/dt log p| + |u . grad log p| + |div u|)", float(_continuity_case(+1.0).max()), 1e-8,
                 note="200 points and times, d = 3, s = 1.8; residual r = d/dt log p + u . grad log p + div u (autograd)")


@lecture
def check_wrong_velocity_continuity(quick):
    return Claim("eq. (5)", "control: the sign-flipped velocity does not",
                 "median relative residual of -u", float(onp.median(_continuity_case(-1.0))), 1e-2, op=">=")


def _gaussian_velocity(m, s):
    def u(x, t):
        return m + (s - 1.0) / (1.0 - t + t * s) * (x - t * m)
    return u


def _gaussian_case():
    m, s = onp.array([1.0, -2.0, 0.5]), 1.8
    x = m + s * onp.random.default_rng(4).standard_normal((50, 3))
    expected = standard_normal_logpdf((x - m) / s) - 3 * onp.log(s)
    return _gaussian_velocity(m, s), x, expected


@lecture
def check_cnf_closed_form(quick):
    u, x, expected = _gaussian_case()
    log_p = cnf_logpdf(u, x, n_steps=40, method="dopri5")
    return Claim("CNF pros", "likelihood from the trace of J = closed form",
                 "max |log p0(x(0)) - int div u - log N(x; m, s^2 I)|, N(0, I) to N(m, s^2 I)",
                 float(onp.abs(log_p - expected).max()), 1e-8,
                 note="Dormand-Prince fifth-order solution, 40 steps, exact trace")


@lecture
def check_cnf_sign_control(quick):
    u, x, expected = _gaussian_case()

    def slipped(z, t):  # d/dt [x, l] = [u, + div u]: the sign of the divergence slipped
        x_t = z[:, :3]
        return anp.concatenate([u(x_t, t), anp.reshape(divergence(u, x_t, t), (-1, 1))], axis=1)

    z0 = integrate(slipped, onp.concatenate([x, onp.zeros((len(x), 1))], axis=1), 1.0, 0.0, 40, "dopri5")
    log_p = standard_normal_logpdf(z0[:, :3]) - z0[:, 3]
    return Claim("CNF pros", "control: with + div u in the ODE it is not",
                 "min |log p0(x(0)) + int div u - closed form| (the augmented ODE with + div u)",
                 float(onp.abs(log_p - expected).min()), 1.0, op=">=", note="the two differ by 2 d log s = 3.53")


@lecture
def check_hutchinson_bias(quick):
    rng = onp.random.default_rng(5)
    d = 3
    Q, _ = onp.linalg.qr(rng.standard_normal((d, d)))
    S = Q @ onp.diag([0.5, 1.0, 1.8]) @ Q.T  # p1 = N(m, S^2): a symmetric, non-diagonal Jacobian
    m, eye = onp.array([0.5, -1.0, 1.0]), onp.eye(d)

    def u(x, t):
        return m + (x - t * m) @ ((S - eye) @ onp.linalg.inv((1 - t) * eye + t * S)).T

    x1 = m + rng.standard_normal((1, d)) @ S
    M = 500 if quick else 4000
    est = cnf_logpdf(u, onp.repeat(x1, M, axis=0), n_steps=12, method="dopri5", divergence="hutchinson", rng=rng)
    exact = cnf_logpdf(u, x1, n_steps=12, method="dopri5")[0]
    se = est.std(ddof=1) / onp.sqrt(M)
    return Claim("CNF pros", "Hutchinson CNF log-likelihood is unbiased",
                 "|mean of M estimates - exact-trace value| / standard error", float(abs(est.mean() - exact) / se), K_SE,
                 note=f"M = {M} Rademacher-probe solves (probes drawn once per solve), SE = {se:.2e}")


@lecture
def check_cnf_mass(quick):
    u = _mixture_flow()
    n, n_steps = 50, (16 if quick else 32)
    g = onp.linspace(-5.0, 5.0, n)
    X, Y = onp.meshgrid(g, g)
    log_p = cnf_logpdf(u, onp.stack([X.ravel(), Y.ravel()], axis=1), n_steps=n_steps, method="rk4")
    mass = float(onp.sum(onp.exp(log_p)) * (g[1] - g[0]) ** 2)
    return Claim("CNF pros", "the CNF density integrates to 1",
                 "|sum exp(log p1) dx - 1| on a 2-D grid", abs(mass - 1.0), 1e-3,
                 note=f"mass {mass:.6f} on a {n} x {n} grid over [-5, 5]^2 (Figure 4's flow, RK4 with {n_steps} steps); "
                      "budget: RK4's error dominates (2e-4 at 16 steps, 7e-6 at 32), the grid's and the tails' are below 1e-6")


@lecture
def check_forward_backward_likelihood(quick):
    u = _mixture_flow()
    x0 = onp.random.default_rng(6).standard_normal((30, 2))
    n_steps = 32 if quick else 64
    x1, forward = cnf_sample(u, x0, n_steps=n_steps, method="dopri5", return_logpdf=True)
    backward = cnf_logpdf(u, x1, n_steps=n_steps, method="dopri5")
    return Claim("CNF pros", "log p1 while sampling = log p1 of the sample",
                 f"max |forward - backward| (dopri5, {n_steps} steps)", float(onp.abs(forward - backward).max()), 1e-6,
                 note="sampling needs no inversion; the gap is a round trip of the integrator: 4e-8 at 32 steps, "
                      "2e-9 at 64")


_PLANAR = {"a": onp.array([[1.2, 0.4], [-0.6, 1.0]]), "b": onp.array([[0.8, -0.9], [1.1, 0.5]]),
           "c": onp.array([0.3, -0.5])}


@lecture
def check_planar_is_euler(quick):
    x0 = onp.random.default_rng(7).standard_normal((50, 2))
    K = 37
    layers, _ = planar_layers_forward(_PLANAR, x0, K)
    euler = integrate(lambda x, t: planar_velocity(_PLANAR, x, t), x0, 0.0, 1.0, K, "euler")
    return Claim("CNF (planar)", "K planar layers = K Euler steps of eq. (4)",
                 "max |layers - Euler| (K = 37)", float(onp.abs(layers - euler).max()), 1e-13,
                 note="layers by flows.planar, Euler by ode.integrate on the planar field u = tanh(b(t).x + c(t)) a(t)")


@project
def check_planar_log_det_rate(quick):
    x0 = onp.random.default_rng(7).standard_normal((50, 2))
    _, integral = planar_ode_forward(_PLANAR, x0, n_steps=200, method="dopri5")
    Ks = onp.array([32, 64, 128, 256] if quick else [64, 128, 256, 512, 1024])
    errors = [onp.sqrt(onp.mean((planar_layers_forward(_PLANAR, x0, int(K))[1] - integral) ** 2)) for K in Ks]
    slope = onp.polyfit(onp.log(Ks), onp.log(errors), 1)[0]
    return Claim("planar -> CNF", "planar log-dets -> int div u at rate 1/K",
                 "|slope of log RMS error vs log K + 1|", abs(slope + 1.0), 0.1,
                 note=f"slope {slope:.3f}; the inverse log-dets of eq. (2) tend to -int div u")


CHECKS = [
    _order_check("euler", 32),
    _order_check("midpoint", 32),
    _order_check("rk4", 8),
    _order_check("rk38", 8),
    _order_check("dopri5", 4),
    check_wrong_node_detected,
    check_round_trip,
    check_round_trip_control,
    check_adaptive_tolerance,
    check_adaptive_vs_scipy,
    check_gaussian_continuity,
    check_wrong_velocity_continuity,
    check_cnf_closed_form,
    check_cnf_sign_control,
    check_hutchinson_bias,
    check_cnf_mass,
    check_forward_backward_likelihood,
    check_planar_is_euler,
    check_planar_log_det_rate,
]

"""Claims of the continuous-normalizing-flow part: integrators of eq. (4), the continuity equation (5), the CNF likelihood."""

import autograd.numpy as anp
import numpy as onp
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from figures.claims import Claim
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
    def check(quick):
        p = TABLEAUS[method].order
        slope = _observed_order(method, first_n)
        return Claim("eq. (4); Runge-Kutta", f"{method} converges at order {p}",
                     "|observed slope - order| (x' = alpha(t) A x vs expm)", abs(slope - p), 0.25,
                     note=f"slope {slope:.3f}, fitted on the three finest step counts with error > 1e-12")
    check.__name__ = f"check_order_{method}"
    return check


class _UncheckedTableau(ButcherTableau):
    def __post_init__(self):  # a deliberately inconsistent tableau, for the negative control
        pass


def check_wrong_node_detected(quick):
    wrong = _UncheckedTableau("rk4-wrong-c", 4, c=(0.0, 0.5, 0.5, 0.5), a=RK4.a, b=RK4.b)
    slope = _observed_order(wrong, 8)
    return Claim("eq. (4); Runge-Kutta", "negative control: RK4 with its last stage at t + h/2 loses its order",
                 "|observed slope - 4| on the non-autonomous problem", abs(slope - 4), 2.0, op=">=",
                 note=f"slope {slope:.3f} (b . c = 5/12, not 1/2: first order)")


def _mixture_flow():
    return GaussianMixtureOracle(MIXTURE, ConicalGaussianPath()).velocity


def check_round_trip(quick):
    u = _mixture_flow()
    x0 = onp.random.default_rng(1).standard_normal((20, 2))
    n = 50
    x1 = integrate(u, x0, 0.0, 1.0, n, "rk4")
    back = integrate(u, x1, 1.0, 0.0, n, "rk4")
    forward_error = onp.abs(x1 - integrate(u, x0, 0.0, 1.0, 2 * n, "rk4")).max()  # Richardson: ~15/16 of it
    return Claim("eq. (4): the reverse-time ODE inverts the flow", "forward then backward (RK4) returns the start",
                 "max |x0 - back(forward(x0))|", float(onp.abs(back - x0).max()), float(forward_error),
                 note="bound: the forward solve's own error |x_n - x_2n| (n = 50 steps, Figure 4's flow)")


def check_adaptive_vs_scipy(quick):
    u = _mixture_flow()
    x0 = onp.random.default_rng(2).standard_normal((2 if quick else 8, 2))
    ours = integrate_adaptive(u, x0, 0.0, 1.0, rtol=1e-10, atol=1e-12)
    theirs = onp.array([solve_ivp(lambda t, y: onp.asarray(u(y[None], t))[0], (0.0, 1.0), row, method="DOP853",
                                  rtol=1e-13, atol=1e-13).y[:, -1] for row in x0])
    counts = 1 + 6 * (ours.n_accepted + ours.n_rejected) + 1
    return Claim("CNF Pros: adaptive steps", "adaptive Dormand-Prince 5(4) agrees with scipy's DOP853",
                 "max |ours(rtol 1e-10) - solve_ivp(DOP853, rtol 1e-13)|", float(onp.abs(ours.x - theirs).max()), 1e-8,
                 note=f"{ours.n_accepted} accepted, {ours.n_rejected} rejected steps, {ours.n_fev} evaluations "
                      f"(= 1 + 6 steps + 1: {ours.n_fev == counts})")


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


def check_gaussian_continuity(quick):
    return Claim("eq. (5)", "the Gaussian path N(t m, (1 - t + t s)^2 I) and its velocity solve the continuity equation",
                 "max |r| / (|d/dt log p| + |u . grad log p| + |div u|)", float(_continuity_case(+1.0).max()), 1e-8,
                 note="200 points and times, d = 3, s = 1.8")


def check_wrong_velocity_continuity(quick):
    return Claim("eq. (5)", "negative control: the sign-flipped velocity does not",
                 "median relative residual of -u", float(onp.median(_continuity_case(-1.0))), 1e-2, op=">=")


def _gaussian_velocity(m, s):
    def u(x, t):
        return m + (s - 1.0) / (1.0 - t + t * s) * (x - t * m)
    return u


def check_cnf_closed_form(quick):
    m, s = onp.array([1.0, -2.0, 0.5]), 1.8
    x = m + s * onp.random.default_rng(4).standard_normal((50, 3))
    log_p, x0 = cnf_logpdf(_gaussian_velocity(m, s), x, n_steps=40, method="dopri5", return_x0=True)
    expected = standard_normal_logpdf((x - m) / s) - 3 * onp.log(s)
    return Claim("CNF: instantaneous change of variables", "CNF log-likelihood = closed form (N(0, I) to N(m, s^2 I))",
                 "max |log p0(x(0)) - int div u - log N(x; m, s^2 I)|", float(onp.abs(log_p - expected).max()), 1e-8,
                 note="Dormand-Prince fifth-order solution, 40 steps, exact trace")


def check_cnf_sign_control(quick):
    m, s = onp.array([1.0, -2.0, 0.5]), 1.8
    x = m + s * onp.random.default_rng(4).standard_normal((50, 3))
    log_p, x0 = cnf_logpdf(_gaussian_velocity(m, s), x, n_steps=40, method="dopri5", return_x0=True)
    flipped = 2 * standard_normal_logpdf(x0) - log_p  # log p0(x(0)) + int div u
    expected = standard_normal_logpdf((x - m) / s) - 3 * onp.log(s)
    return Claim("CNF: instantaneous change of variables", "negative control: + int div u (sign flipped) is wrong",
                 "min |flipped - closed form| (= 2 d log s = 3.53)", float(onp.abs(flipped - expected).min()), 1.0, op=">=")


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
    return Claim("CNF Pros: Hutchinson's trick", "the Hutchinson CNF log-likelihood is unbiased",
                 "|mean of M estimates - exact-trace value| / standard error", float(abs(est.mean() - exact) / se), K_SE,
                 note=f"M = {M} Rademacher-probe solves (probes drawn once per solve), SE = {se:.2e}")


def check_cnf_mass(quick):
    u = _mixture_flow()
    n, n_steps = 50, (16 if quick else 32)
    g = onp.linspace(-5.0, 5.0, n)
    X, Y = onp.meshgrid(g, g)
    log_p = cnf_logpdf(u, onp.stack([X.ravel(), Y.ravel()], axis=1), n_steps=n_steps, method="rk4")
    mass = float(onp.sum(onp.exp(log_p)) * (g[1] - g[0]) ** 2)
    return Claim("CNF: instantaneous change of variables", "the CNF density integrates to 1 (2-D grid)",
                 "|sum exp(log p1) dx - 1|", abs(mass - 1.0), 1e-3,
                 note=f"mass {mass:.6f} on a {n} x {n} grid over [-5, 5]^2 (Figure 4's flow, RK4 with {n_steps} steps); "
                      "budget: RK4's error dominates (2e-4 at 16 steps, 7e-6 at 32), the grid's and the tails' are below 1e-6")


def check_forward_backward_likelihood(quick):
    u = _mixture_flow()
    x0 = onp.random.default_rng(6).standard_normal((30, 2))
    n_steps = 32 if quick else 64
    x1, forward = cnf_sample(u, x0, n_steps=n_steps, method="dopri5", return_logpdf=True)
    backward = cnf_logpdf(u, x1, n_steps=n_steps, method="dopri5")
    return Claim("CNF: sampling", "log-density computed while sampling = log-density of the sample",
                 f"max |forward - backward| (dopri5, {n_steps} steps)", float(onp.abs(forward - backward).max()), 1e-6,
                 note="the gap is a round trip of the integrator: 4e-8 at 32 steps, 2e-9 at 64")


_PLANAR = {"a": onp.array([[1.2, 0.4], [-0.6, 1.0]]), "b": onp.array([[0.8, -0.9], [1.1, 0.5]]),
           "c": onp.array([0.3, -0.5])}


def check_planar_is_euler(quick):
    x0 = onp.random.default_rng(7).standard_normal((50, 2))
    K = 37
    layers, _ = planar_layers_forward(_PLANAR, x0, K)
    euler = integrate(lambda x, t: planar_velocity(_PLANAR, x, t), x0, 0.0, 1.0, K, "euler")
    return Claim("Continuous Normalizing Flows (planar reading)", "K planar layers = K Euler steps of eq. (4)",
                 "max |layers - Euler| (K = 37)", float(onp.abs(layers - euler).max()), 1e-13)


def check_planar_log_det_rate(quick):
    x0 = onp.random.default_rng(7).standard_normal((50, 2))
    _, integral = planar_ode_forward(_PLANAR, x0, n_steps=200, method="dopri5")
    Ks = onp.array([32, 64, 128, 256] if quick else [64, 128, 256, 512, 1024])
    errors = [onp.sqrt(onp.mean((planar_layers_forward(_PLANAR, x0, int(K))[1] - integral) ** 2)) for K in Ks]
    slope = onp.polyfit(onp.log(Ks), onp.log(errors), 1)[0]
    return Claim("Continuous Normalizing Flows (planar reading)",
                 "summed planar log-dets -> integrated divergence at rate 1/K",
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

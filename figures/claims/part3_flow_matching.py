"""Claims of the flow-matching part: conditional paths, Theorem 1 and Theorem 2."""

import functools

import autograd.numpy as anp
import numpy as onp
from autograd import grad
from autograd.misc import flatten

from figures.claims import Claim
from reference.continuity import continuity_terms
from reference.distributions import GaussianMixture, dataset_mixture
from reference.losses import cfm_constant, cfm_loss, fm_loss
from reference.marginal import marginal_logpdf, marginal_velocity, posterior_weights
from reference.nn import velocity_apply, velocity_init
from reference.oracles import EmpiricalOracle, GaussianMixtureOracle, conditional_quadrature, path_quadrature
from reference.paths import (
    ConicalGaussianPath,
    LinearInterpolationPath,
    OptimalTransportPath,
    VariancePreservingPath,
)

PATHS = [ConicalGaussianPath(), LinearInterpolationPath(0.2), OptimalTransportPath(0.01), VariancePreservingPath()]
MIXTURE_1D = GaussianMixture([0.4, 0.6], onp.array([[-1.5], [2.0]]), onp.array([0.3**2, 0.5**2]))


def _relative_residual(log_p, u, x, t):
    terms = continuity_terms(log_p, u, x, t)
    return onp.abs(sum(terms)) / (1.0 + sum(onp.abs(term) for term in terms))


def _path_case(path, rng, n=64, d=2):
    t = rng.uniform(0.02, 0.98, n)
    x1 = 2.0 * rng.standard_normal((n, d))
    z = (rng.standard_normal((n, d)), x1) if path.conditions_on_pairs else x1
    return path.flow(rng.standard_normal((n, d)), t, z), t, z


def _path_residuals(sign):
    rng = onp.random.default_rng(0)
    worst = []
    for path in PATHS:
        x, t, z = _path_case(path, rng)
        r = _relative_residual(lambda y, s: path.logpdf(y, s, z), lambda y, s: sign * path.velocity(y, s, z), x, t)
        worst.append(r.max())
    return worst


def check_paths_solve_continuity(quick):
    worst = _path_residuals(+1.0)
    return Claim("Examples 1-2; eq. (5)", "each conditional path solves the continuity equation with its u_cond",
                 "max |r| / (1 + |terms|) over 4 paths x 64 points", max(worst), 1e-9,
                 note="linear (sigma 0.2), conical, sigma_min OT, variance-preserving")


def check_other_sign_fails_continuity(quick):
    worst = _path_residuals(-1.0)
    return Claim("Examples 1-2; eq. (5)", "negative control: -u_cond does not solve it (every path)",
                 "min over paths of max relative residual", min(worst), 1e-2, op=">=")


def _conical_sign(sign):
    rng = onp.random.default_rng(1)
    path = ConicalGaussianPath()
    x, t, x1 = _path_case(path, rng)
    velocity = lambda y, s: sign * (x1 - y) / (1.0 - anp.reshape(s, (-1, 1)))  # noqa: E731
    return _relative_residual(lambda y, s: path.logpdf(y, s, x1), velocity, x, t).max()


def check_conical_table_sign(quick):
    return Claim("Example 2 vs summary table", "erratum: the table's u_cond = (x1 - x)/(1 - t) is the conical velocity",
                 "max relative residual of (x1 - x)/(1 - t)", _conical_sign(+1.0), 1e-9)


def check_conical_text_sign(quick):
    return Claim("Example 2 vs summary table", "erratum: the text's u_cond = (x - x1)/(1 - t) fails eq. (5)",
                 "max relative residual of (x - x1)/(1 - t)", _conical_sign(-1.0), 1e-2, op=">=")


@functools.lru_cache(maxsize=None)
def _theorem1_slope():
    rng = onp.random.default_rng(2)
    mixture, path = dataset_mixture("cross"), ConicalGaussianPath()
    oracle = GaussianMixtureOracle(mixture, path)
    n_zs = onp.array([256, 512, 1024, 2048, 4096, 8192])  # cheap (0.1 s): the same in quick mode
    reps, n_points = 16, 16
    t = rng.uniform(0.1, 0.8, n_points)
    x = path.flow(rng.standard_normal((n_points, 2)), t, mixture.sample(n_points, rng))
    exact = oracle.velocity(x, t)
    mse = onp.empty((reps, len(n_zs)))
    for r in range(reps):
        for j, n_z in enumerate(n_zs):
            u = marginal_velocity(path, x, t, mixture.sample(n_z, rng))
            mse[r, j] = onp.mean(onp.sum((u - exact) ** 2, axis=1))
    xs = onp.log(n_zs)
    c = (xs - xs.mean()) / onp.sum((xs - xs.mean()) ** 2)
    mean = mse.mean(0)
    slope = onp.sum(c * 0.5 * onp.log(mean))
    var_log_rms = (mse.std(0, ddof=1) / onp.sqrt(reps) / mean) ** 2 / 4
    band = 5.0 * onp.sqrt(onp.sum(c**2 * var_log_rms))
    return slope, band, reps


def check_theorem1_rate(quick):
    slope, band, reps = _theorem1_slope()
    return Claim("Theorem 1, eq. (9)", "Monte Carlo u(x, t) converges to the closed form at rate n_z^-1/2",
                 "|slope of log RMS error vs log n_z + 0.5|", abs(slope + 0.5), band,
                 note=f"slope {slope:.3f}; bound = 5 standard errors of the slope (delta method over {reps} repetitions)")


def check_theorem1_rate_resolution(quick):
    slope, band, _ = _theorem1_slope()
    return Claim("Theorem 1, eq. (9)", "the rate measurement tells n_z^-1/2 from n_z^-0.3 and n_z^-0.7",
                 "5 standard errors of the fitted slope", band, 0.2,
                 note="a wider band would accept rates other than -1/2")


def check_two_paths_same_field(quick):
    rng = onp.random.default_rng(3)
    data = 2.0 * rng.standard_normal((20, 2))
    x = 2.0 * rng.standard_normal((200, 2))
    t = rng.uniform(0.0, 0.99, 200)
    linear = EmpiricalOracle(data)  # linear path, sigma = 0, x0 integrated out
    conical = marginal_velocity(ConicalGaussianPath(), x, t, data)  # eq. (10) with z = the data
    diff = onp.abs(linear.velocity(x, t) - conical).max() / onp.abs(conical).max()
    return Claim("Examples 1-2; Theorem 1", "linear (sigma = 0) and conical paths give the same marginal field",
                 "max |u_linear - u_conical| / max |u| (empirical data)", diff, 1e-12)


def check_monte_carlo_pair_continuity(quick):
    rng = onp.random.default_rng(4)
    worst = 0.0
    for path in (ConicalGaussianPath(), LinearInterpolationPath(0.3)):
        m = 50
        x1 = 2.0 * rng.standard_normal((m, 2))
        z = (rng.standard_normal((m, 2)), x1) if path.conditions_on_pairs else x1
        x = 2.0 * rng.standard_normal((32, 2))
        t = rng.uniform(0.05, 0.95, 32)
        r = _relative_residual(lambda y, s: marginal_logpdf(path, y, s, z, 16),
                               lambda y, s: marginal_velocity(path, y, s, z, 16), x, t)
        worst = max(worst, r.max())
    return Claim("Theorem 1, eq. (10)", "for any finite set of z, (p_t, u) of eq. (10) solves eq. (5) exactly",
                 "max relative residual (chunked, 50 z)", worst, 1e-8)


def check_far_posterior_weights(quick):
    rng = onp.random.default_rng(5)
    x1 = rng.standard_normal((100, 2))
    w = posterior_weights(ConicalGaussianPath(), onp.full((3, 2), 1e3), onp.array([0.2, 0.5, 0.9]), x1)
    measured = onp.abs(w.sum(1) - 1).max() if onp.all(onp.isfinite(w)) else onp.inf
    return Claim("Theorem 1, eq. (10)", "posterior weights sum to 1 far away (x = 1e3, every p underflows)",
                 "max |sum_j w_j - 1|", measured, 1e-13)


@functools.lru_cache(maxsize=2)  # the constant and the gradient claims share one computation
def _theorem2(quick):
    path = ConicalGaussianPath()
    oracle = GaussianMixtureOracle(MIXTURE_1D, path)
    n_t, n_x, n_grid = (16, 16, 160) if quick else (20, 20, 200)
    t_c, z_c, x_c, w_c = conditional_quadrature(MIXTURE_1D, path, n_t, n_x)
    t_f, x_f, w_f = path_quadrature(oracle, n_t, n_grid, rule="grid")
    C = cfm_constant(oracle, n_t=n_t, n_x=n_grid)

    def L_cfm(p):
        return cfm_loss(lambda x, t: velocity_apply(p, x, t), path, t_c, z_c, x_c, w_c)

    def L_fm(p):
        return fm_loss(lambda x, t: velocity_apply(p, x, t), oracle.velocity, t_f, x_f, w_f)

    gaps, grad_err = [], 0.0
    for seed in range(3 if quick else 5):
        p = velocity_init(1, (16, 16), onp.random.default_rng(seed))
        gaps.append(L_cfm(p) - L_fm(p))
        g_c, g_f = flatten(grad(L_cfm)(p))[0], flatten(grad(L_fm)(p))[0]
        grad_err = max(grad_err, onp.abs(g_c - g_f).max() / onp.abs(g_c).max())
    return onp.array(gaps), grad_err, C


def check_theorem2_constant(quick):
    gaps, _, C = _theorem2(quick)
    return Claim("Theorem 2", "L_CFM(theta) - L_FM(theta) is the same C for every theta (1-D quadrature)",
                 "max |L_CFM - L_FM - C| over random thetas", onp.abs(gaps - C).max(), 1e-10,
                 note=f"C = {C:.6f}; spread of the gaps {onp.ptp(gaps):.1e}")


def check_theorem2_gradients(quick):
    _, grad_err, _ = _theorem2(quick)
    return Claim("Theorem 2", "grad L_CFM = grad L_FM (autograd, 1-D quadrature)",
                 "max |g_CFM - g_FM| / max |g_CFM|", grad_err, 1e-9)


def check_constant_closed_form(quick):
    path = ConicalGaussianPath()
    m = onp.array([1.5])
    two_components = GaussianMixture([0.5, 0.5], onp.stack([m, m]), onp.ones(2))  # N(1.5, 1), quadrature route
    C = cfm_constant(GaussianMixtureOracle(two_components, path), n_t=48, n_x=200)
    return Claim("Theorem 2", "C = E||u_cond||^2 - E||u||^2 = pi/2 for N(m, 1) data (derived in closed form)",
                 "|C (quadrature) - pi/2|", abs(C - onp.pi / 2), 1e-10)


CHECKS = [
    check_paths_solve_continuity,
    check_other_sign_fails_continuity,
    check_conical_table_sign,
    check_conical_text_sign,
    check_theorem1_rate,
    check_theorem1_rate_resolution,
    check_two_paths_same_field,
    check_monte_carlo_pair_continuity,
    check_far_posterior_weights,
    check_theorem2_constant,
    check_theorem2_gradients,
    check_constant_closed_form,
]

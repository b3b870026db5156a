"""Claims of the lecture's first slide: the ELBO, the mean field's gap, and flows that go beyond it."""

from functools import lru_cache

import autograd.numpy as anp
import numpy as onp
from autograd import grad
from autograd.tracer import getval
from scipy.optimize import minimize

from figures._variational import energy_fits, energy_fits_untrained, kl_star, ppca_fits, ppca_model
from figures.claims import Claim, lecture, project
from reference.flows.chain import realnvp_forward, realnvp_init
from reference.flows.coupling import SCALE_BOUND, coupling_init
from reference.variational import (
    FullCovarianceGaussian,
    MeanFieldEncoder,
    MeanFieldGaussian,
    elbo,
    encoder_init,
    gaussian_kl,
    lower_cholesky,
    mean_field_gap,
    mean_field_optimum,
    planar_layers_init,
    planar_posterior,
    realnvp_posterior,
)

K_SE = 5.0  # statistical bounds are K_SE standard errors
SECTION = "VAE slide"
PROJECT_SECTION = "variational"


@lru_cache(maxsize=1)
def _data():
    """The pPCA model of figure 0, three data, and its exact posterior quantities."""
    model, _ = ppca_model()
    x, _ = model.sample(3, onp.random.default_rng(3))
    return model, x, model.log_marginal(x), model.posterior_mean(x), model.posterior_covariance()


def _gaussian_qs():
    """Gaussian posteriors other than the exact one, with their means and covariances per datum."""
    model, x, _, m, S = _data()
    rng = onp.random.default_rng(4)
    mu, ls = rng.normal(0, 1, 2), rng.normal(0, 0.5, 2)
    L = lower_cholesky(rng.normal(0, 0.5, (2, 2)))
    mu_n, ls_n = m + rng.normal(0, 0.5, (3, 2)), rng.normal(0, 0.5, (3, 2))
    return [
        (MeanFieldGaussian(mu, ls), onp.tile(mu, (3, 1)), onp.diag(onp.exp(2 * ls))),
        (MeanFieldGaussian(mu_n, ls_n), mu_n, onp.exp(2 * ls_n)[:, :, None] * onp.eye(2)),
        (FullCovarianceGaussian(mu, L), onp.tile(mu, (3, 1)), L @ L.T),
    ]


def _halving_flow():
    """N(2 m, 4 diag(v)) pushed through T(z) = z / 2 (two RealNVP couplings, s = -log 2): the best mean field."""
    _, _, _, m, S = _data()
    v = mean_field_optimum(S)
    layers = []
    for _ in range(2):
        layer = coupling_init(2, 1, (), onp.random.default_rng(0))
        layer["s"] = [(onp.zeros((1, 1)), onp.full(1, SCALE_BOUND * onp.arctanh(-onp.log(2.0) / SCALE_BOUND)))]
        layer["t"] = [(onp.zeros((1, 1)), onp.zeros(1))]
        layers.append(layer)
    return realnvp_posterior(MeanFieldGaussian(2 * m, onp.tile(0.5 * onp.log(4 * v), (3, 1))), layers), layers


@project
def check_elbo_is_a_lower_bound(quick):
    model, x, log_p, m, S = _data()
    rng = onp.random.default_rng(5)
    base = MeanFieldGaussian(m, onp.tile(onp.log(0.5), (3, 2)))
    qs = [q for q, _, _ in _gaussian_qs()] + [
        model.posterior(x),
        MeanFieldGaussian(m, onp.tile(0.5 * onp.log(mean_field_optimum(S)), (3, 1))),
        planar_posterior(base, planar_layers_init(4, onp.zeros(2), onp.full(2, 0.5), rng, a_scale=1.0)),
        realnvp_posterior(base, realnvp_init(2, 3, (8,), rng)),
        _halving_flow()[0],
        MeanFieldEncoder(encoder_init(4, 2, (8,), rng)),
    ]
    worst = -onp.inf
    for q in qs:
        e = elbo(model.log_joint, q, x, 2000 if quick else 8000, rng)
        worst = max(worst, onp.max((e.value - log_p - K_SE * e.stderr) / (1.0 + onp.abs(log_p))))
    return Claim(PROJECT_SECTION, "ELBO <= log p(x) for 9 posteriors q (pPCA)",
                 "max over 9 q, 3 x of (ELBO - log p(x) - 5 se) / (1 + |log p(x)|)", worst, 1e-9,
                 note="q: 3 Gaussians, the exact posterior, the best mean field, planar, RealNVP, a halving flow, an encoder; "
                      "the exact posterior gives ELBO = log p(x) with se = 0: the bound is rounding")


@project
def check_elbo_without_log_det(quick):
    model, x, log_p, _, _ = _data()
    q, layers = _halving_flow()

    def without_log_det(x, S, rng):
        z0, log_q0 = q.base.sample(x, S, rng)
        z, _ = realnvp_forward(layers, z0.reshape(-1, 2))
        return z.reshape(z0.shape), log_q0

    e = elbo(model.log_joint, without_log_det, x, 4000, onp.random.default_rng(6))
    return Claim(PROJECT_SECTION, "control: a flow q without its log-det fails",
                 "min over x of (ELBO - log p(x)) / se, T(z) = z / 2 (omits 2 log 2 > KL*)",
                 onp.min((e.value - log_p) / e.stderr), K_SE, op=">=")


def _gap_errors(reverse):
    model, x, log_p, m, S = _data()
    rng = onp.random.default_rng(7)
    scores = []
    for q, mu, cov in _gaussian_qs():
        e = elbo(model.log_joint, q, x, 8000, rng)
        kl = gaussian_kl(mu, cov, m, S) if reverse else gaussian_kl(m, S, mu, cov)
        scores.append(onp.abs(log_p - e.value - kl) / e.stderr)
    return onp.array(scores)  # (q, x)


@project
def check_gap_is_the_kl(quick):
    return Claim(PROJECT_SECTION, "ELBO gap = KL(q||p(z|x)), Gaussian q",
                 "max over 3 q, 3 x of |gap - KL(q || p)| / se", onp.max(_gap_errors(True)), K_SE)


@project
def check_gap_is_not_the_forward_kl(quick):
    return Claim(PROJECT_SECTION, "control: the forward KL(p||q) is not",
                 "min over 3 q of max over x of |gap - KL(p || q)| / se", onp.min(_gap_errors(False).max(axis=1)),
                 K_SE, op=">=")


def _gradient_errors(reparameterised):
    rng = onp.random.default_rng(8)
    m, A = rng.normal(size=3), rng.normal(size=(3, 3))
    precision = A @ A.T + 0.5 * onp.eye(3)
    log_target = lambda x, z: -0.5 * anp.sum((z - m) @ precision * (z - m), axis=1)  # noqa: E731
    mu, log_sigma = rng.normal(size=3), rng.normal(0, 0.3, 3)
    exact = onp.concatenate([-precision @ (mu - m), 1.0 - onp.diag(precision) * onp.exp(2 * log_sigma)])

    def f(theta, rng):
        q = MeanFieldGaussian(theta[:3], theta[3:])
        if reparameterised:
            return elbo(log_target, q, None, 100, rng).value[0]

        def detached(x, S, rng):
            z, log_q = q.sample(x, S, rng)
            return onp.asarray(getval(z)), log_q
        return elbo(log_target, detached, None, 100, rng).value[0]

    g = onp.array([grad(f)(onp.concatenate([mu, log_sigma]), onp.random.default_rng(100 + b)) for b in range(40)])
    se = g.std(axis=0, ddof=1) / onp.sqrt(len(g))
    return onp.abs(g.mean(axis=0) - exact) / (se + 1e-12)  # without reparameterisation the mu-gradient is 0 exactly


@project
def check_reparameterised_gradient(quick):
    return Claim(PROJECT_SECTION, "reparameterised ELBO gradient = closed form",
                 "max over (mu, log sigma) of |mean of 40 estimates - exact| / se", onp.max(_gradient_errors(True)), K_SE)


@project
def check_gradient_without_reparameterisation(quick):
    return Claim(PROJECT_SECTION, "control: with z not differentiated it is not",
                 "max over (mu, log sigma) of |mean - exact| / se", onp.max(_gradient_errors(False)), K_SE, op=">=")


@project
def check_mean_field_optimum_closed_form(quick):
    _, _, _, m, S = _data()
    m = m[0]
    res = minimize(lambda t: gaussian_kl(t[:2], onp.diag(onp.exp(2 * t[2:])), m, S), onp.zeros(4), method="BFGS",
                   options={"gtol": 1e-10})
    return Claim(PROJECT_SECTION, "best mean field's KL* in closed form",
                 "|min over mean fields of KL(q || p) (BFGS) - KL*|, L = Lambda the posterior precision", abs(res.fun - mean_field_gap(S)), 1e-8,
                 note=f"KL* = {mean_field_gap(S):.4f}; the optimal precisions are diag(Lambda)")


@lru_cache(maxsize=2)
def _elbo_optimum(quick):
    model, x, log_p, m, S = _data()
    x, log_p, n_eps = x[:1], log_p[0], 5000 if quick else 20000

    def negative_elbo(theta):  # the same eps at every call: a deterministic objective
        return -elbo(model.log_joint, MeanFieldGaussian(theta[:2], theta[2:]), x, n_eps, onp.random.default_rng(9)).value[0]

    res = minimize(negative_elbo, onp.zeros(4), jac=grad(negative_elbo), method="L-BFGS-B")
    e = elbo(model.log_joint, MeanFieldGaussian(res.x[:2], res.x[2:]), x, n_eps, onp.random.default_rng(10))
    moment = gaussian_kl(m[0], onp.diag(onp.diag(S)), m[0], S)
    return log_p - e.value[0], e.stderr[0], mean_field_gap(S), moment


@project
def check_elbo_optimum_gap(quick):
    gap, se, kl, _ = _elbo_optimum(quick)
    return Claim(PROJECT_SECTION, "ELBO's mean-field optimum leaves gap KL*",
                 "|gap of the L-BFGS optimum of the ELBO (fixed eps) - KL*| / se", abs(gap - kl) / se, K_SE)


@project
def check_elbo_optimum_not_moment_matching(quick):
    gap, se, _, moment = _elbo_optimum(quick)
    return Claim(PROJECT_SECTION, "control: moment matching's KL is not",
                 "|gap - KL(N(m, diag S) || p)| / se", abs(gap - moment) / se, K_SE, op=">=")


@lecture
def check_flow_beyond_mean_field(quick):
    result = ppca_fits(quick)
    gap, se = result.gap[0, 1], result.stderr[0, 1]
    return Claim(SECTION, "a planar-flow q beats every mean field",
                 "(gap of the flow - KL*) / se", (gap - kl_star()) / se, -K_SE,
                 note=f"pPCA posterior; gap {gap:.4f} against KL* = {kl_star():.4f} (figure 0 (a)); the slide asks whether q "
                      "can go beyond the mean field")


@lecture
def check_gap_falls_with_depth(quick):
    result = energy_fits(quick)
    gap, se = result.gap, result.stderr
    j32, worst = result.depths.index(32), -onp.inf
    for j in (result.depths.index(0), result.depths.index(2)):
        worst = max(worst, onp.max((gap[:, j32] - gap[:, j]) / onp.hypot(se[:, j32], se[:, j])))
    return Claim(SECTION, "its gap falls with depth (K = 32 vs 2, 0)",
                 "max over energies of (KL_32 - KL_K) / se, K = 0 (mean field), 2", worst, -K_SE,
                 note="4 energies of Rezende and Mohamed; KL = log Z - ELBO; figure 0 (b)")


@lecture
def check_untrained_layers_do_not_help(quick):
    result = energy_fits_untrained(quick)
    gap, se = result.gap, result.stderr
    j0, j32 = result.depths.index(0), result.depths.index(32)
    return Claim(SECTION, "control: the same 32 layers untrained do not",
                 "min over energies of (KL_32 untrained - KL_0) / se", onp.min((gap[:, j32] - gap[:, j0])
                                                                              / onp.hypot(se[:, j32], se[:, j0])),
                 -K_SE, op=">=")


@lru_cache(maxsize=2)
def _integrals(quick):
    """Trapezoid integrals over [-8, 8]^2 of q (with its log-det) and of q0(T^{-1}(z)) (without), planar and RealNVP."""
    rng = onp.random.default_rng(4)
    base = MeanFieldGaussian(onp.array([0.3, -0.2]), onp.log([0.8, 0.6]))
    planar = planar_posterior(base, planar_layers_init(4, base.mu, onp.exp(base.log_sigma), rng, a_scale=1.0))
    params = realnvp_init(2, 4, (8,), rng)
    params = [{k: mlp[:-1] + [(0.5 * mlp[-1][0], 0.5 * mlp[-1][1])] for k, mlp in layer.items()} for layer in params]
    n = 161 if quick else 201
    g = onp.linspace(-8.0, 8.0, n)
    Z1, Z2 = onp.meshgrid(g, g, indexing="ij")
    z = onp.stack([Z1.ravel(), Z2.ravel()], axis=1)
    out = []
    for q in (planar, realnvp_posterior(base, params)):
        z0, log_det_inv = q.inverse(z)
        log_q0 = base.log_prob(None, z0)
        out.append([onp.trapezoid(onp.trapezoid(onp.exp(v).reshape(Z1.shape), g, axis=1), g)
                    for v in (log_q0 + log_det_inv, log_q0)])
    return onp.array(out)  # (flow, with/without)


@lecture
def check_flow_density_integrates_to_one(quick):
    return Claim("VAE; eq. (2)", "a flow q's density integrates to 1",
                 "max |trapezoid integral of q over [-8, 8]^2 - 1|", onp.max(onp.abs(_integrals(quick)[:, 0] - 1.0)),
                 1e-6, note="planar and RealNVP q; spacing 0.08-0.1 against widths >= 0.3; mass outside < 1e-12")


@lecture
def check_flow_density_without_log_det(quick):
    return Claim("VAE; eq. (2)", "control: without its log-det it does not",
                 "min |integral of q0(T^{-1}(z)) - 1|", onp.min(onp.abs(_integrals(quick)[:, 1] - 1.0)), 0.05, op=">=")


CHECKS = [
    check_elbo_is_a_lower_bound,
    check_elbo_without_log_det,
    check_gap_is_the_kl,
    check_gap_is_not_the_forward_kl,
    check_reparameterised_gradient,
    check_gradient_without_reparameterisation,
    check_mean_field_optimum_closed_form,
    check_elbo_optimum_gap,
    check_elbo_optimum_not_moment_matching,
    check_flow_beyond_mean_field,
    check_gap_falls_with_depth,
    check_untrained_layers_do_not_help,
    check_flow_density_integrates_to_one,
    check_flow_density_without_log_det,
]

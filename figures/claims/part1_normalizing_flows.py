"""Claims of the first part: change of variables, normalizing flows, RealNVP, Hutchinson's estimator."""

from functools import lru_cache, partial

import autograd.numpy as anp
import numpy as onp
from scipy import stats

from figures.claims import Claim
from reference.autodiff import hutchinson_divergence, hutchinson_variance, jacobian
from reference.change_of_variables import negative_log_likelihood, pushforward_logpdf
from reference.distributions import standard_normal_logpdf
from reference.flows.chain import (
    alternating_permutations,
    chain_forward,
    realnvp_init,
    realnvp_logpdf,
    realnvp_sample,
)
from reference.flows.coupling import coupling_forward, coupling_init, coupling_inverse
from reference.flows.planar import planar_collision, planar_constrain, planar_forward, planar_init, planar_inverse
from reference.train import train_realnvp

K_SE = 5.0  # statistical bounds are K_SE standard errors


def _affine(d, seed):
    """T(z) = z A^T + m with log|det A| = 0.8, and T^{-1}."""
    rng = onp.random.default_rng(seed)
    U, _ = onp.linalg.qr(rng.standard_normal((d, d)))
    V, _ = onp.linalg.qr(rng.standard_normal((d, d)))
    s = rng.uniform(-0.5, 0.5, d)
    A = U @ onp.diag(onp.exp(s - s.mean() + 0.8 / d)) @ V.T
    m = rng.normal(size=d)
    return A, m, lambda x: (x - m) @ onp.linalg.inv(A).T


def _affine_errors(sign):
    worst = 0.0
    for d, seed in ((1, 0), (2, 1), (3, 2), (5, 3)):
        A, m, inverse = _affine(d, seed)
        x = onp.random.default_rng(seed + 10).normal(size=(200, d)) * 2 + m
        expected = stats.multivariate_normal(m, A @ A.T).logpdf(x).reshape(-1)
        if sign > 0:
            got = pushforward_logpdf(inverse, standard_normal_logpdf, x)
        else:  # the log-det's sign flipped
            got = standard_normal_logpdf(inverse(x)) - onp.log(abs(onp.linalg.det(onp.linalg.inv(A))))
        worst = max(worst, onp.max(onp.abs(got - expected)))
    return worst


def check_affine_pushforward(quick):
    return Claim("eq. (2)", "the pushforward of N(0, I) by T(z) = A z + m is N(m, A A^T)",
                 "max |log p1 (eq. (2), autograd J) - scipy logpdf|, d = 1, 2, 3, 5", _affine_errors(+1), 1e-10)


def check_affine_pushforward_sign(quick):
    return Claim("eq. (2)", "negative control: with the log-det's sign flipped it is not",
                 "max |log p1 - scipy logpdf| (= 2 log|det A| = 1.6)", _affine_errors(-1), 1.0, op=">=")


def _nonlinear_inverse():
    """T^{-1}(x) = D h(R (x - m)), h(u) = u + alpha tanh(u), a nonlinear bijection of R^2."""
    theta, m, s, alpha = 0.7, onp.array([0.5, -0.3]), onp.array([0.6, -0.1]), onp.array([1.5, 0.8])
    R = onp.array([[onp.cos(theta), -onp.sin(theta)], [onp.sin(theta), onp.cos(theta)]])
    return lambda x: ((x - m) @ R.T + alpha * anp.tanh((x - m) @ R.T)) * anp.exp(s)


def _grid_integral(logpdf, half_width=11.0, n=201):
    g = onp.linspace(-half_width, half_width, n)
    X, Y = onp.meshgrid(g, g)
    p = onp.exp(logpdf(onp.stack([X.ravel(), Y.ravel()], axis=1))).reshape(X.shape)
    return onp.trapezoid(onp.trapezoid(p, g, axis=1), g)


def check_pushforward_integrates_to_one(quick):
    inverse = _nonlinear_inverse()
    total = _grid_integral(lambda x: pushforward_logpdf(inverse, standard_normal_logpdf, x))
    return Claim("eq. (2)", "a density pushed through a nonlinear bijection still integrates to 1",
                 "|trapezoid integral over [-11, 11]^2 - 1|", abs(total - 1.0), 1e-8,
                 note="tail mass outside the square < 2e-10; trapezoid converges geometrically")


def check_pushforward_without_log_det(quick):
    inverse = _nonlinear_inverse()
    total = _grid_integral(lambda x: standard_normal_logpdf(inverse(x)))
    return Claim("eq. (2)", "negative control: without log|det J_{T^-1}| it does not",
                 "|integral of p0(T^{-1}(x)) - 1|", abs(total - 1.0), 0.1, op=">=")


def _couplings(quick):
    """Random coupling layers over d = 2..6 and every split 1 <= d' <= d - 1."""
    rng = onp.random.default_rng(0)
    for d in range(2, 5 if quick else 7):
        for d_split in range(1, d):
            params = coupling_init(d, d_split, (8, 8), rng)
            W, b = params["s"][-1]
            params["s"][-1] = (2.0 * W, 2.0 * b)  # scales well away from 1
            yield params, d, d_split, rng.normal(size=(20, d)) * 2


def check_coupling_inverse(quick):
    worst = 0.0
    for params, d, _, x in _couplings(quick):
        for perm in (None, onp.arange(d)[::-1]):
            y, _ = coupling_forward(params, x, perm)
            worst = max(worst, onp.max(onp.abs(coupling_inverse(params, y, perm)[0] - x)))
            worst = max(worst, onp.max(onp.abs(coupling_forward(params, coupling_inverse(params, x, perm)[0], perm)[0] - x)))
    return Claim("RealNVP, inverse after eq. (3)", "the coupling is inverted in closed form (both ways)",
                 "max |phi^-1(phi(x)) - x|, |phi(phi^-1(y)) - y|, all d <= 6, d'", worst, 1e-12)


def check_coupling_log_det(quick):
    worst_det, worst_sum = 0.0, 0.0
    for params, _, _, x in _couplings(quick):
        y, log_det = coupling_forward(params, x)
        J = jacobian(lambda v: coupling_forward(params, v)[0], x)
        worst_det = max(worst_det, onp.max(onp.abs(log_det - onp.linalg.slogdet(J)[1])))
        worst_sum = max(worst_sum, onp.max(onp.abs(log_det + coupling_inverse(params, y)[1])))
    return Claim("RealNVP, eq. (3)", "log|det J_phi| = sum(s), and the inverse's log-det cancels it",
                 "max |sum s - slogdet(autograd J)| and |log_det + log_det_inv|", max(worst_det, worst_sum), 1e-10)


def check_coupling_triangular(quick):
    worst = 0.0
    for params, d, d_split, x in _couplings(quick):
        J = jacobian(lambda v: coupling_forward(params, v)[0], x)
        upper = onp.max(onp.abs(J[:, :d_split, d_split:]))
        identity = onp.max(onp.abs(J[:, :d_split, :d_split] - onp.eye(d_split)))
        worst = max(worst, upper, identity)
    return Claim("RealNVP, Jacobian after eq. (3)", "J_phi is lower triangular with an identity block",
                 "max |J[:d', d':]| and |J[:d', :d'] - I| (autograd)", worst, 0.0)


def _chain(d=4, k=4):
    rng = onp.random.default_rng(3)
    realnvp = realnvp_init(d, k, (8,), rng)
    planar = [planar_constrain(planar_init(d, rng, 2.0)) for _ in range(2)]
    perms = alternating_permutations(d, k)
    forwards = ([partial(planar_forward, planar[0])] + [partial(coupling_forward, p, perm=q) for p, q in zip(realnvp, perms)]
                + [partial(planar_forward, planar[1])])
    return forwards, rng.normal(size=(50, d))


def check_chain_rule(quick):
    forwards, z = _chain()
    _, log_det = chain_forward(forwards, z)
    J = jacobian(lambda v: chain_forward(forwards, v)[0], z)
    return Claim("Normalizing Flows (chain rule)", "log|det J_T| is the sum of the layers' log-dets at x_{k-1}",
                 "max |sum_k log|det J_phi_k(x_{k-1})| - slogdet(J_T)|, K = 6, d = 4", onp.max(onp.abs(log_det - onp.linalg.slogdet(J)[1])),
                 1e-10, note="2 planar layers around 4 couplings")


def check_chain_rule_wrong_points(quick):
    forwards, z = _chain()
    _, log_det = chain_forward(forwards, z)
    at_x0 = sum(phi(z)[1] for phi in forwards)
    return Claim("Normalizing Flows (chain rule)", "negative control: log-dets all taken at x_0 differ",
                 "max |sum_k log|det J_phi_k(x_0)| - log|det J_T||", onp.max(onp.abs(at_x0 - log_det)), 1e-2, op=">=")


def check_realnvp_density(quick):
    params = realnvp_init(2, 4, (8,), onp.random.default_rng(4))
    params = [{k: mlp[:-1] + [(0.5 * mlp[-1][0], 0.5 * mlp[-1][1])] for k, mlp in layer.items()} for layer in params]
    half = 4 * onp.abs(realnvp_sample(params, 2000, onp.random.default_rng(0))).max() + 3
    total = _grid_integral(lambda x: realnvp_logpdf(params, x), half, 201)
    return Claim("Normalizing Flows; eq. (2)", "the RealNVP density (chain rule, K = 4) integrates to 1",
                 "|trapezoid integral - 1| on a 2-D grid", abs(total - 1.0), 1e-6)


def check_realnvp_sampling_density(quick):
    params = realnvp_init(3, 4, (8,), onp.random.default_rng(5))
    x, log_p = realnvp_sample(params, 500, onp.random.default_rng(6), return_logpdf=True)
    return Claim("Normalizing Flows; Fig. 3", "log p1 of samples from the forward pass = realnvp_logpdf (inverse pass)",
                 "max |log p0(z) - log|det J_T(z)| - log p1(T(z))|", onp.max(onp.abs(log_p - realnvp_logpdf(params, x))), 1e-10)


def _planar_layers():
    rng = onp.random.default_rng(7)
    return [planar_constrain(planar_init(d, rng, 2.0)) for d in (1, 2, 3, 5) for _ in range(3)]


def check_planar_log_det(quick):
    worst = 0.0
    for params in _planar_layers():
        d = params["a"].shape[0]
        x = onp.random.default_rng(d).normal(size=(30, d)) * 2
        J = jacobian(lambda v: planar_forward(params, v)[0], x)
        worst = max(worst, onp.max(onp.abs(planar_forward(params, x)[1] - onp.linalg.slogdet(J)[1])))
    return Claim("planar flow", "log|det J| = log|1 + tanh'(b^T x + c) a^T b| (matrix-determinant lemma)",
                 "max |closed form - slogdet(autograd J)|", worst, 1e-10)


def check_planar_inverse(quick):
    worst = 0.0
    for params in _planar_layers():
        d = params["a"].shape[0]
        x = onp.random.default_rng(d).normal(size=(30, d)) * 2
        worst = max(worst, onp.max(onp.abs(planar_inverse(params, planar_forward(params, x)[0])[0] - x)))
    return Claim("planar flow", "with a^T b > -1 the layer is inverted by a 1-D root solve",
                 "max |phi^-1(phi(x)) - x|, constrained random layers", worst, 1e-12)


def check_planar_not_invertible(quick):
    params = {"a": onp.array([-2.0, 0.0]), "b": onp.array([1.0, 0.0]), "c": onp.array(0.0)}  # a^T b = -2
    x, _ = planar_collision(params)
    y, _ = planar_forward(params, x)
    ratio = onp.linalg.norm(y[0] - y[1]) / onp.linalg.norm(x[0] - x[1])
    return Claim("planar flow", "with a^T b < -1 two distinct points share an image (not invertible)",
                 "|phi(x1) - phi(x2)| / |x1 - x2| for a^T b = -2", ratio, 1e-12,
                 note=f"|x1 - x2| = {onp.linalg.norm(x[0] - x[1]):.3f}")


def _hutchinson_case():
    A = onp.array([[1.5, 0.4, -0.3], [0.2, -1.0, 0.8], [-0.6, 0.5, 0.7]])
    u = lambda x, t: anp.tanh(x @ A.T) * (1.0 + t)  # noqa: E731
    x1 = onp.array([[0.2, -0.1, 0.4]])
    J = jacobian(lambda v: u(v, 0.6), x1)[0]
    return u, x1, J


def _hutchinson_samples(noise, quick, seed):
    u, x1, J = _hutchinson_case()
    m = 10000 if quick else 40000
    est = hutchinson_divergence(u, onp.repeat(x1, m, axis=0), 0.6, onp.random.default_rng(seed), noise=noise)
    return est, J


def _check_hutchinson_unbiased(noise):
    def check(quick):
        est, J = _hutchinson_samples(noise, quick, 1)
        se = onp.sqrt(hutchinson_variance(J, noise) / est.size)
        return Claim("CNF Pros (Hutchinson)", f"Hutchinson's estimator is unbiased ({noise} probes)",
                     "|mean - tr J| / standard error", abs(est.mean() - onp.trace(J)) / se, K_SE,
                     note=f"{est.size} single-probe estimates")
    check.__name__ = f"check_hutchinson_unbiased_{noise}"
    return check


def _check_hutchinson_variance(noise):
    def check(quick):
        est, J = _hutchinson_samples(noise, quick, 2)
        c = est - est.mean()
        var = onp.mean(c**2) * est.size / (est.size - 1)
        se = onp.sqrt((onp.mean(c**4) - onp.mean(c**2) ** 2) / est.size)  # delta method
        formula = "2 ||S||_F^2" if noise == "gaussian" else "2 (||S||_F^2 - sum S_ii^2)"
        return Claim("CNF Pros (Hutchinson)", f"its variance is {formula}, S = (J + J^T)/2 ({noise})",
                     "|sample variance - formula| / standard error", abs(var - hutchinson_variance(J, noise)) / se, K_SE)
    check.__name__ = f"check_hutchinson_variance_{noise}"
    return check


def check_hutchinson_variance_other_noise(quick):
    est, J = _hutchinson_samples("rademacher", quick, 2)
    c = est - est.mean()
    se = onp.sqrt((onp.mean(c**4) - onp.mean(c**2) ** 2) / est.size)
    z = abs(onp.var(est, ddof=1) - hutchinson_variance(J, "gaussian")) / se
    return Claim("CNF Pros (Hutchinson)", "negative control: Rademacher samples reject the Gaussian variance",
                 "|sample variance - 2 ||S||_F^2| / standard error", z, K_SE, op=">=")


@lru_cache(maxsize=2)
def _gaussian_fit(quick):
    A, m = onp.array([[1.0, 0.0], [0.8, 0.5]]), onp.array([1.0, -0.5])
    data = onp.random.default_rng(0).standard_normal((2000, 2)) @ A.T + m
    n_test = 1000 if quick else 4000
    test = onp.random.default_rng(1).standard_normal((n_test, 2)) @ A.T + m
    entropy = stats.multivariate_normal(m, A @ A.T).entropy()
    p0 = realnvp_init(2, 2, (), onp.random.default_rng(5))
    trained, _ = train_realnvp(data, 300, lr=2e-2, rng=onp.random.default_rng(1), params=p0)
    nll = lambda p: negative_log_likelihood(lambda x: realnvp_logpdf(p, x), test)  # noqa: E731
    return nll(trained), nll(p0), entropy, onp.sqrt(1.0 / n_test)


def check_mle_reaches_entropy(quick):
    nll, _, entropy, se = _gaussian_fit(quick)
    return Claim("eq. (1)", "maximum likelihood fits: a trained RealNVP's held-out NLL reaches H(p_data)",
                 "|held-out NLL - entropy| / standard error (Gaussian data)", abs(nll - entropy) / se, K_SE,
                 note="2 couplings with affine s, t; Adam")


def check_untrained_misses_entropy(quick):
    _, nll0, entropy, se = _gaussian_fit(quick)
    return Claim("eq. (1)", "negative control: the untrained flow's NLL is far above H(p_data)",
                 "(held-out NLL - entropy) / standard error", (nll0 - entropy) / se, K_SE, op=">=")


CHECKS = [
    check_affine_pushforward,
    check_affine_pushforward_sign,
    check_pushforward_integrates_to_one,
    check_pushforward_without_log_det,
    check_coupling_inverse,
    check_coupling_log_det,
    check_coupling_triangular,
    check_chain_rule,
    check_chain_rule_wrong_points,
    check_realnvp_density,
    check_realnvp_sampling_density,
    check_planar_log_det,
    check_planar_inverse,
    check_planar_not_invertible,
    _check_hutchinson_unbiased("rademacher"),
    _check_hutchinson_unbiased("gaussian"),
    _check_hutchinson_variance("rademacher"),
    _check_hutchinson_variance("gaussian"),
    check_hutchinson_variance_other_noise,
    check_mle_reaches_entropy,
    check_untrained_misses_entropy,
]

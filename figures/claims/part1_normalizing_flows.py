"""Claims of the first part: change of variables, normalizing flows, RealNVP, Hutchinson's estimator."""

from functools import lru_cache, partial

import autograd.numpy as anp
import numpy as onp
from scipy import stats

from figures.claims import Claim, lecture, project
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
from reference.flows.coupling import coupling_forward, coupling_init, coupling_inverse, coupling_scale
from reference.flows.planar import planar_collision, planar_constrain, planar_forward, planar_init, planar_inverse
from reference.testing._numerics import fd_jacobian
from reference.testing._precision import FLOAT64
from reference.train import train_realnvp

K_SE = 5.0  # statistical bounds are K_SE standard errors
K_FD = 10.0  # finite-difference bounds are K_FD times the Richardson error estimate (as in check_bijection)


def _affine(d, seed):
    """T(z) = z A^T + m with log|det A| = 0.8, T^{-1} and T."""
    rng = onp.random.default_rng(seed)
    U, _ = onp.linalg.qr(rng.standard_normal((d, d)))
    V, _ = onp.linalg.qr(rng.standard_normal((d, d)))
    s = rng.uniform(-0.5, 0.5, d)
    A = U @ onp.diag(onp.exp(s - s.mean() + 0.8 / d)) @ V.T
    m = rng.normal(size=d)
    return A, m, lambda x: (x - m) @ onp.linalg.inv(A).T, lambda z: z @ A.T + m


def _affine_errors(right):
    """max |log p1 - scipy's N(m, A A^T) logpdf|, with T^{-1} in eq. (2) (right) or T in its place."""
    worst = 0.0
    for d, seed in ((1, 0), (2, 1), (3, 2), (5, 3)):
        A, m, inverse, forward = _affine(d, seed)
        x = onp.random.default_rng(seed + 10).normal(size=(200, d)) * 2 + m
        expected = stats.multivariate_normal(m, A @ A.T).logpdf(x).reshape(-1)
        got = pushforward_logpdf(inverse if right else forward, standard_normal_logpdf, x)
        worst = max(worst, onp.max(onp.abs(got - expected)))
    return worst


@lecture
def check_affine_pushforward(quick):
    return Claim("eq. (2)", "N(0, I) pushed by z -> A z + m is N(m, AA^T)",
                 "max |log p1 (eq. (2), autograd J) - scipy logpdf|, d = 1, 2, 3, 5", _affine_errors(True), 1e-10,
                 note="rounding of log-densities of size about 10")


@lecture
def check_affine_pushforward_sign(quick):
    return Claim("eq. (2)", "control: T in place of T^-1 is not",
                 "max |log p1 (eq. (2) with T) - scipy logpdf|", _affine_errors(False), 1.0, op=">=",
                 note="T^-1 and T differ by a scaling of log|det A| = 0.8 and a shift")


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


@lecture
def check_pushforward_integrates_to_one(quick):
    inverse = _nonlinear_inverse()
    total = _grid_integral(lambda x: pushforward_logpdf(inverse, standard_normal_logpdf, x))
    return Claim("eq. (2)", "p0 pushed by a nonlinear T integrates to 1",
                 "|trapezoid integral over [-11, 11]^2 - 1|", abs(total - 1.0), 1e-8,
                 note="T^{-1}(x) = D h(R (x - m)), h(u) = u + alpha tanh(u); tail mass outside the square < 2e-10; "
                      "the trapezoid rule converges geometrically for this smooth, decaying integrand")


@lecture
def check_pushforward_without_log_det(quick):
    inverse = _nonlinear_inverse()
    total = _grid_integral(lambda x: standard_normal_logpdf(inverse(x)))
    return Claim("eq. (2)", "control: without the log-det it does not",
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


def _round_trip_errors(quick, inverse_perm):
    """max |phi^-1(phi(x)) - x| and |phi(phi^-1(x)) - x| over the layers, forward with a reversing permutation too."""
    worst = 0.0
    for params, d, _, x in _couplings(quick):
        for perm in (None, onp.arange(d)[::-1]):
            y, _ = coupling_forward(params, x, perm)
            back = coupling_inverse(params, y, perm if inverse_perm else None)[0]
            worst = max(worst, onp.max(onp.abs(back - x)))
            if inverse_perm:
                worst = max(worst, onp.max(onp.abs(coupling_forward(params, coupling_inverse(params, x, perm)[0],
                                                                    perm)[0] - x)))
    return worst


@lecture
def check_coupling_inverse(quick):
    return Claim("after eq. (3)", "the coupling is inverted in closed form",
                 "max |phi^-1(phi(x)) - x|, |phi(phi^-1(y)) - y|, all d <= 6, d', with and without a permutation",
                 _round_trip_errors(quick, True), 1e-12, note="rounding: |x| <= 8, exp(s) <= e^2")


@lecture
def check_coupling_inverse_control(quick):
    return Claim("after eq. (3)", "control: inverse without the permutation",
                 "max |phi^-1(phi(x)) - x|, phi with reversed coordinates, phi^-1 without", _round_trip_errors(quick, False),
                 1e-2, op=">=")


@lecture
def check_coupling_log_det(quick):
    worst = 0.0
    for params, _, _, x in _couplings(quick):
        y, log_det = coupling_forward(params, x)
        x_back, log_det_inv = coupling_inverse(params, y)
        J = jacobian(lambda v: coupling_forward(params, v)[0], x)
        J_inv = jacobian(lambda v: coupling_inverse(params, v)[0], y)
        worst = max(worst, onp.max(onp.abs(log_det - onp.linalg.slogdet(J)[1])),
                    onp.max(onp.abs(log_det_inv - onp.linalg.slogdet(J_inv)[1])))
    return Claim("eq. (3)", "log-det = sum(s), of the inverse -sum(s)",
                 "max |sum s - slogdet(autograd J_phi(x))| and |-sum s - slogdet(autograd J_phi^-1(y))|", worst, 1e-10,
                 note="rounding of sums of |s| <= 2 per coordinate")


def _block_errors(quick, perm_of):
    """max over layers, points and structured entries of |J_fd - [[I, 0], [., diag(exp s)]]| / (K_FD x error estimate).

    J_fd is a Richardson-extrapolated central-difference Jacobian of the layer (no
    autograd), with its entrywise error estimate; the expected blocks are the lecture's,
    with ``s = s(x_{1:d'})`` from ``coupling_scale``. The lower-left block is not constrained.
    """
    worst = 0.0
    for params, d, d_split, x in _couplings(quick):
        perm = perm_of(d)
        J, err = fd_jacobian(lambda v: onp.asarray(coupling_forward(params, v, perm)[0]), x, FLOAT64)
        expected = onp.zeros_like(J)
        expected[:, :d_split, :d_split] = onp.eye(d_split)
        expected[:, d_split:, d_split:] = onp.exp(coupling_scale(params, x[:, :d_split]))[:, :, None] * onp.eye(d - d_split)
        structured = onp.ones((d, d), dtype=bool)
        structured[d_split:, :d_split] = False
        worst = max(worst, onp.max((onp.abs(J - expected) / (K_FD * err))[:, structured]))
    return worst


@lecture
def check_coupling_triangular(quick):
    return Claim("after eq. (3)", "J = [[I, 0], [*, diag(exp s)]] (finite diff)",
                 "max over the three blocks of |J_fd - lecture's block| / (10 x Richardson error estimate)",
                 _block_errors(quick, lambda d: None), 1.0,
                 note="J_fd by central differences at steps h and h/2 (no autograd); the estimate |D_h - D_h/2| "
                      "+ 3 eps |phi| / h bounds its error")


@lecture
def check_coupling_triangular_control(quick):
    return Claim("after eq. (3)", "control: a layer on reversed x is not",
                 "min over layers of the same measure, phi acting on x[:, ::-1]",
                 _block_errors(quick, lambda d: onp.arange(d)[::-1]), 1e3, op=">=",
                 note="the reversed layer's Jacobian is upper triangular in x's order")


def _chain(d=4, k=4):
    rng = onp.random.default_rng(3)
    realnvp = realnvp_init(d, k, (8,), rng)
    planar = [planar_constrain(planar_init(d, rng, 2.0)) for _ in range(2)]
    perms = alternating_permutations(d, k)
    forwards = ([partial(planar_forward, planar[0])] + [partial(coupling_forward, p, perm=q) for p, q in zip(realnvp, perms)]
                + [partial(planar_forward, planar[1])])
    return forwards, rng.normal(size=(50, d))


@lecture
def check_chain_rule(quick):
    forwards, z = _chain()
    _, log_det = chain_forward(forwards, z)
    J = jacobian(lambda v: chain_forward(forwards, v)[0], z)
    return Claim("NF: chain rule", "log-det of T = sum of layers' at x_{k-1}",
                 "max |sum_k log|det J_phi_k(x_{k-1})| - slogdet(J_T)|, K = 6, d = 4",
                 onp.max(onp.abs(log_det - onp.linalg.slogdet(J)[1])), 1e-10, note="2 planar layers around 4 couplings")


@lecture
def check_chain_rule_wrong_points(quick):
    forwards, z = _chain()
    _, log_det = chain_forward(forwards, z)
    at_x0 = sum(phi(z)[1] for phi in forwards)
    return Claim("NF: chain rule", "control: log-dets all taken at x_0 differ",
                 "max |sum_k log|det J_phi_k(x_0)| - log|det J_T||", onp.max(onp.abs(at_x0 - log_det)), 1e-2, op=">=")


@lecture
def check_realnvp_density(quick):
    params = realnvp_init(2, 4, (8,), onp.random.default_rng(4))
    params = [{k: mlp[:-1] + [(0.5 * mlp[-1][0], 0.5 * mlp[-1][1])] for k, mlp in layer.items()} for layer in params]
    half = 4 * onp.abs(realnvp_sample(params, 2000, onp.random.default_rng(0))).max() + 3
    total = _grid_integral(lambda x: realnvp_logpdf(params, x), half, 201)
    return Claim("NF: chain rule", "the RealNVP density (K = 4) integrates to 1",
                 "|trapezoid integral - 1| on a 2-D grid", abs(total - 1.0), 1e-6,
                 note="a square of 4 times the largest of 2000 samples, plus 3")


@lecture
def check_realnvp_sampling_density(quick):
    params = realnvp_init(3, 4, (8,), onp.random.default_rng(5))
    x, log_p = realnvp_sample(params, 500, onp.random.default_rng(6), return_logpdf=True)
    return Claim("RealNVP: Fig. 3", "forward-pass log p1 = inverse-pass log p1",
                 "max |log p0(z) - log|det J_T(z)| - realnvp_logpdf(T(z))| (forward vs inverse pass)",
                 onp.max(onp.abs(log_p - realnvp_logpdf(params, x))), 1e-10)


def _planar_layers():
    rng = onp.random.default_rng(7)
    return [planar_constrain(planar_init(d, rng, 2.0)) for d in (1, 2, 3, 5) for _ in range(3)]


@lecture
def check_planar_log_det(quick):
    worst = 0.0
    for params in _planar_layers():
        d = params["a"].shape[0]
        x = onp.random.default_rng(d).normal(size=(30, d)) * 2
        J = jacobian(lambda v: planar_forward(params, v)[0], x)
        worst = max(worst, onp.max(onp.abs(planar_forward(params, x)[1] - onp.linalg.slogdet(J)[1])))
    return Claim("NF: planar", "log-det = log|1 + tanh'(b.x + c) a.b|",
                 "max |closed form (matrix-determinant lemma) - slogdet(autograd J)|", worst, 1e-10,
                 note="the lecture's second constraint: a log-det at the cost of a dot product")


@lecture
def check_planar_inverse(quick):
    worst = 0.0
    for params in _planar_layers():
        d = params["a"].shape[0]
        x = onp.random.default_rng(d).normal(size=(30, d)) * 2
        worst = max(worst, onp.max(onp.abs(planar_inverse(params, planar_forward(params, x)[0])[0] - x)))
    return Claim("NF: planar", "with a.b > -1 a 1-D root solve inverts it",
                 "max |phi^-1(phi(x)) - x|, constrained random layers in d = 1, 2, 3, 5", worst, 1e-12,
                 note="the lecture's first constraint")


@lecture
def check_planar_not_invertible(quick):
    rng = onp.random.default_rng(8)
    b = rng.normal(size=3)
    a = rng.normal(size=3)
    a = a + (-2.0 - a @ b) * b / (b @ b)  # a.b = -2
    params = {"a": a, "b": b, "c": onp.array(0.7)}
    x, _ = planar_collision(params)
    y, _ = planar_forward(params, x)
    ratio = onp.linalg.norm(y[0] - y[1]) / onp.linalg.norm(x[0] - x[1])
    return Claim("NF: planar", "control: a.b = -2: two points, one image",
                 "|phi(x1) - phi(x2)| / |x1 - x2|, x1 - x2 = 2 tau a, tau = tanh(2 tau) > 0 (brentq)", ratio, 1e-12,
                 note=f"|x1 - x2| = {onp.linalg.norm(x[0] - x[1]):.3f} (d = 3, c = 0.7): the layer is not injective, "
                      "so the constraint a.b > -1 is needed; bound: rounding of phi at |x| < 3")


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
    @lecture
    def check(quick):
        est, J = _hutchinson_samples(noise, quick, 1)
        se = onp.sqrt(hutchinson_variance(J, noise) / est.size)
        return Claim("CNF pros", f"Hutchinson is unbiased, {noise} probes",
                     "|mean - tr J| / standard error", abs(est.mean() - onp.trace(J)) / se, K_SE,
                     note=f"{est.size} single-probe estimates; standard error from the variance formula")
    check.__name__ = check.__qualname__ = f"check_hutchinson_unbiased_{noise}"
    return check


def _check_hutchinson_biased_probes(quick):
    """A probe of variance 2 (eps ~ N(0, 2 I)), which estimates 2 tr J."""
    u, x1, J = _hutchinson_case()
    m = 10000 if quick else 40000
    est = 2.0 * hutchinson_divergence(u, onp.repeat(x1, m, axis=0), 0.6, onp.random.default_rng(1), noise="gaussian")
    se = onp.sqrt(hutchinson_variance(J, "gaussian") * 4.0 / est.size)
    return abs(est.mean() - onp.trace(J)) / se


@lecture
def check_hutchinson_unnormalised_probes(quick):
    return Claim("CNF pros", "control: probes of variance 2 are biased",
                 "|mean of eps^T J eps, eps ~ N(0, 2 I) - tr J| / standard error", _check_hutchinson_biased_probes(quick),
                 K_SE, op=">=", note="they estimate 2 tr J")


def _check_hutchinson_variance(noise):
    @project
    def check(quick):
        est, J = _hutchinson_samples(noise, quick, 2)
        c = est - est.mean()
        var = onp.mean(c**2) * est.size / (est.size - 1)
        se = onp.sqrt((onp.mean(c**4) - onp.mean(c**2) ** 2) / est.size)  # delta method
        formula = "2 |S|_F^2" if noise == "gaussian" else "2 (|S|_F^2 - sum S_ii^2)"
        return Claim("Hutchinson", f"Var = {formula} ({noise})",
                     "|sample variance - formula| / standard error, S = (J + J^T) / 2",
                     abs(var - hutchinson_variance(J, noise)) / se, K_SE,
                     note="standard error of the sample variance from the fourth moment")
    check.__name__ = check.__qualname__ = f"check_hutchinson_variance_{noise}"
    return check


@project
def check_hutchinson_variance_other_noise(quick):
    est, J = _hutchinson_samples("rademacher", quick, 2)
    c = est - est.mean()
    se = onp.sqrt((onp.mean(c**4) - onp.mean(c**2) ** 2) / est.size)
    z = abs(onp.var(est, ddof=1) - hutchinson_variance(J, "gaussian")) / se
    return Claim("Hutchinson", "control: Rademacher rejects 2 |S|_F^2",
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


@lecture
def check_mle_reaches_entropy(quick):
    nll, _, entropy, se = _gaussian_fit(quick)
    return Claim("eq. (1)", "max likelihood: held-out NLL -> H(p_data)",
                 "|held-out NLL - entropy| / standard error (Gaussian data, a trained RealNVP)", abs(nll - entropy) / se,
                 K_SE, note="2 couplings with affine s, t; Adam, 300 steps; se = sd of -log p (= sqrt(d/2) = 1 "
                            "for a Gaussian) / sqrt(n_test)")


@lecture
def check_untrained_misses_entropy(quick):
    _, nll0, entropy, se = _gaussian_fit(quick)
    return Claim("eq. (1)", "control: the untrained flow's NLL is not",
                 "(held-out NLL - entropy) / standard error", (nll0 - entropy) / se, K_SE, op=">=")


CHECKS = [
    check_affine_pushforward,
    check_affine_pushforward_sign,
    check_pushforward_integrates_to_one,
    check_pushforward_without_log_det,
    check_coupling_inverse,
    check_coupling_inverse_control,
    check_coupling_log_det,
    check_coupling_triangular,
    check_coupling_triangular_control,
    check_chain_rule,
    check_chain_rule_wrong_points,
    check_realnvp_density,
    check_realnvp_sampling_density,
    check_planar_log_det,
    check_planar_inverse,
    check_planar_not_invertible,
    _check_hutchinson_unbiased("rademacher"),
    _check_hutchinson_unbiased("gaussian"),
    check_hutchinson_unnormalised_probes,
    _check_hutchinson_variance("rademacher"),
    _check_hutchinson_variance("gaussian"),
    check_hutchinson_variance_other_noise,
    check_mle_reaches_entropy,
    check_untrained_misses_entropy,
]

"""``reference.losses``: Theorem 2 — L_CFM and L_FM differ by a constant C, with equal gradients."""

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, make_jvp
from autograd.misc import flatten
from hypothesis import given, strategies as st
from scipy import integrate

from reference.distributions import GaussianMixture, dataset_mixture
from reference.losses import cfm_constant, cfm_loss, conditional_velocity_second_moment, fm_loss
from reference.nn import velocity_apply, velocity_init
from reference.oracles import GaussianMixtureOracle, conditional_quadrature, path_quadrature
from reference.paths import ConicalGaussianPath, LinearInterpolationPath, OptimalTransportPath
from tests.strategies import seeds

K_SE = 5.0  # statistical tolerances below are K_SE standard errors
QUAD_TOL = 1e-10  # relative; the 1-D quadratures below reach 1e-14 to 1e-12, and the random-data property
# checks on each example that refining the nodes moves the gradients by less than QUAD_TOL / 10

MIXTURE_1D = GaussianMixture([0.4, 0.6], np.array([[-1.5], [2.0]]), np.array([0.3**2, 0.5**2]))


def model(params):
    return lambda x, t: velocity_apply(params, x, t)


def quadrature_losses(mixture, path, n_t=20, n_x=20, n_grid=200):
    """``(L_CFM(params), L_FM(params), C)`` by deterministic quadrature in 1-D.

    L_CFM: Gauss-Legendre in t, Gauss-Hermite in x1 (per component), x0 and the noise;
    L_FM: Gauss-Legendre in t, the trapezoidal rule in x against p_t (oracle); C: closed
    form for E||u_cond||^2 minus the same quadrature of E||u||^2.
    """
    oracle = GaussianMixtureOracle(mixture, path)
    t_c, z_c, x_c, w_c = conditional_quadrature(mixture, path, n_t, n_x)
    t_f, x_f, w_f = path_quadrature(oracle, n_t, n_grid, rule="grid")
    L_cfm = lambda params: cfm_loss(model(params), path, t_c, z_c, x_c, w_c)  # noqa: E731
    L_fm = lambda params: fm_loss(model(params), oracle.velocity, t_f, x_f, w_f)  # noqa: E731
    return L_cfm, L_fm, cfm_constant(oracle, n_t=n_t, n_x=n_grid)


def wrong_sign_cfm(mixture, path, n_t=20, n_x=20):
    """The CFM loss regressing on -u_cond: a negative control."""
    t_c, z_c, x_c, w_c = conditional_quadrature(mixture, path, n_t, n_x)

    def L(params):
        diff = model(params)(x_c, t_c) + path.velocity(x_c, t_c, z_c)
        return anp.sum(w_c * anp.sum(diff**2, axis=1))
    return L


@pytest.mark.parametrize("path", [ConicalGaussianPath(), LinearInterpolationPath(0.0)], ids=repr)
def test_cfm_minus_fm_is_the_same_constant_for_every_theta_by_quadrature(path):
    L_cfm, L_fm, C = quadrature_losses(MIXTURE_1D, path)
    for seed in range(3):
        params = velocity_init(1, (16, 16), np.random.default_rng(seed))
        assert abs(L_cfm(params) - L_fm(params) - C) <= QUAD_TOL
        g_cfm, _ = flatten(grad(L_cfm)(params))
        g_fm, _ = flatten(grad(L_fm)(params))
        np.testing.assert_allclose(g_cfm, g_fm, rtol=0, atol=QUAD_TOL * np.abs(g_cfm).max())
    # negative control: regressing on the wrong-sign velocity is not L_FM plus a constant
    L_wrong = wrong_sign_cfm(MIXTURE_1D, path)
    gaps = [L_wrong(p) - L_fm(p) for p in (velocity_init(1, (16, 16), np.random.default_rng(s)) for s in range(3))]
    assert np.ptp(gaps) > 1e-3


@st.composite
def mixtures_1d(draw):
    rng = np.random.default_rng(draw(seeds))
    k = draw(st.integers(1, 2))
    w = rng.uniform(0.3, 1.0, k)
    return GaussianMixture(w / w.sum(), rng.uniform(-2.5, 2.5, (k, 1)), rng.uniform(0.5, 1.0, k) ** 2)


@given(mixtures_1d(), seeds)
def test_theorem_2_holds_for_random_data_and_random_parameters(mixture, seed):
    path = ConicalGaussianPath()
    # 24 Gauss-Hermite nodes: with 16, some mixtures of this strategy leave a quadrature error near 1e-10
    L_cfm, L_fm, C = quadrature_losses(mixture, path, n_t=16, n_x=24, n_grid=160)
    rng = np.random.default_rng(seed)
    thetas = [velocity_init(1, (8, 8), rng) for _ in range(2)]
    # the quadratures have converged far below QUAD_TOL: 8 more nodes per axis move the gradients by less
    L_cfm_fine, L_fm_fine, _ = quadrature_losses(mixture, path, n_t=24, n_x=32, n_grid=240)
    for coarse, fine in ((L_cfm, L_cfm_fine), (L_fm, L_fm_fine)):
        g, g_fine = flatten(grad(coarse)(thetas[0]))[0], flatten(grad(fine)(thetas[0]))[0]
        assert np.abs(g - g_fine).max() <= QUAD_TOL / 10 * np.abs(g_fine).max()
    for params in thetas:
        g_cfm, _ = flatten(grad(L_cfm)(params))
        g_fm, _ = flatten(grad(L_fm)(params))
        np.testing.assert_allclose(g_cfm, g_fm, rtol=0, atol=QUAD_TOL * np.abs(g_cfm).max())
    np.testing.assert_allclose([L_cfm(p) - L_fm(p) for p in thetas], C, rtol=0, atol=QUAD_TOL)
    # negative control: the wrong-sign loss's gap to L_FM moves with theta
    L_wrong = wrong_sign_cfm(mixture, path, n_t=16, n_x=16)
    assert np.ptp([L_wrong(p) - L_fm(p) for p in thetas]) > 1e-6


# -- the constant C ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [ConicalGaussianPath(), LinearInterpolationPath(0.0)], ids=repr)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_constant_for_standard_gaussian_data_is_pi_over_2_per_dimension(path, d):
    # data N(m, I): C = d int_0^1 [2 - (2t - 1)^2 / (2t^2 - 2t + 1)] dt = d (2 - (2 - pi/2)) = d pi / 2
    m = np.linspace(-1.0, 2.0, d)
    one = GaussianMixtureOracle(GaussianMixture([1.0], m[None], np.eye(d)[None]), path)
    np.testing.assert_allclose(cfm_constant(one), d * np.pi / 2, rtol=1e-13)
    # the same data written as a two-component mixture takes the quadrature route
    two = GaussianMixtureOracle(GaussianMixture([0.5, 0.5], np.stack([m, m]), np.stack([np.eye(d)] * 2)), path)
    if d <= 2:
        np.testing.assert_allclose(cfm_constant(two, n_t=48, n_x=24 if d == 2 else None), d * np.pi / 2, rtol=1e-10)
    # negative control: N(m, 4 I) data have another constant
    four = GaussianMixtureOracle(GaussianMixture([1.0], m[None], 4 * np.eye(d)[None]), path)
    assert abs(cfm_constant(four) - d * np.pi / 2) > 0.1


@given(seeds, st.integers(1, 3), st.floats(0.0, 0.4))
def test_constant_for_one_gaussian_equals_scipy_quad_of_the_conditional_variance(seed, d, sigma_min):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((d, d))
    S = A @ A.T + 0.1 * np.eye(d)
    lam = np.linalg.eigvalsh(S)
    k = 1 - sigma_min  # OptimalTransportPath: alpha = t, sigma = 1 - k t; sigma' = -k
    integrand = lambda t: sum(  # noqa: E731
        l + k**2 - (t * l - k * (1 - k * t)) ** 2 / (t**2 * l + (1 - k * t) ** 2) for l in lam)
    expected = integrate.quad(integrand, 0, 1, epsabs=1e-13, epsrel=1e-13)[0]
    oracle = GaussianMixtureOracle(GaussianMixture([1.0], rng.standard_normal((1, d)), S[None]), OptimalTransportPath(sigma_min))
    np.testing.assert_allclose(cfm_constant(oracle), expected, rtol=1e-10)


def test_conditional_velocity_second_moment_of_the_lecture_paths():
    t = np.linspace(0.0, 0.99, 7)
    for path in (ConicalGaussianPath(), LinearInterpolationPath(0.0), LinearInterpolationPath(0.7)):
        np.testing.assert_allclose(conditional_velocity_second_moment(path, 3.5, 2, t), 3.5 + 2, rtol=1e-14)
    # the sigma_min path's u_cond = x1 - (1 - sigma_min) eps: E = E|x1|^2 + (1 - sigma_min)^2 d
    np.testing.assert_allclose(conditional_velocity_second_moment(OptimalTransportPath(0.2), 3.5, 2, t), 3.5 + 0.64 * 2)


# -- 2-D, statistically ----------------------------------------------------------------------------------


def sample_conditional(mixture, path, n, rng):
    t = rng.uniform(0.0, 1.0, n)
    z = path.sample_z(n, mixture.sample(n, rng), rng)
    return t, z, path.sample_x(t, z, rng)


@pytest.mark.parametrize("path", [ConicalGaussianPath(), LinearInterpolationPath(0.0)], ids=repr)
def test_cfm_minus_fm_is_the_constant_within_standard_errors_in_2d(path):
    rng = np.random.default_rng(7)
    mixture = dataset_mixture("8gaussians")
    oracle = GaussianMixtureOracle(mixture, path)
    C = cfm_constant(oracle, n_t=24, n_x=12)  # quadrature error ~1e-4, far below the standard errors (~0.05)
    n = 10000
    t, z, x = sample_conditional(mixture, path, n, rng)
    u_cond, u = path.velocity(x, t, z), oracle.velocity(x, t)
    for seed in range(2):
        params = velocity_init(2, (32, 32), np.random.default_rng(seed))
        v = model(params)(x, t)
        # per-sample L_CFM - L_FM on the same samples: its mean is C for every theta
        D = np.sum((v - u_cond) ** 2, axis=1) - np.sum((v - u) ** 2, axis=1)
        assert abs(D.mean() - C) <= K_SE * D.std(ddof=1) / np.sqrt(n)
        # the gradients agree: per sample, the directional derivative along a random delta of
        # ||v - u_cond||^2 - ||v - u||^2 is -2 (dv/d eps) . (u_cond - u), of mean zero
        flat, unflatten = flatten(params)
        delta = np.random.default_rng(100 + seed).standard_normal(flat.size)
        dv = make_jvp(lambda e: model(unflatten(flat + e * delta))(x, t))(0.0)(1.0)[1]  # (n, d)
        G = -2 * np.sum(dv * (u_cond - u), axis=1)
        assert abs(G.mean()) <= K_SE * G.std(ddof=1) / np.sqrt(n)
        # and G's mean is exactly the difference of autograd's gradients of the two sample losses
        g_cfm = flatten(grad(lambda p: cfm_loss(model(p), path, t, z, x))(params))[0]
        g_fm = flatten(grad(lambda p: fm_loss(model(p), oracle.velocity, t, x))(params))[0]
        np.testing.assert_allclose(delta @ (g_cfm - g_fm), G.mean(), rtol=1e-8, atol=1e-12)
    # negative control: regressing on -u_cond, the gap to L_FM changes with the model. For
    # v_a = a x, the paired per-sample difference of the gaps between a = 1 and a = 0 is
    # ||x + u_cond||^2 - ||x - u||^2 - ||u_cond||^2 + ||u||^2 = 2 x . (u_cond + u), of mean 4 E[x . u] > 0.
    paired = np.sum((x + u_cond) ** 2, axis=1) - np.sum((x - u) ** 2, axis=1) - np.sum(u_cond**2, axis=1) + np.sum(u**2, axis=1)
    assert abs(paired.mean()) > K_SE * paired.std(ddof=1) / np.sqrt(n)
    # (while for the right sign the same paired difference, -2 x . (u_cond - u), has mean zero)
    right = -2 * np.sum(x * (u_cond - u), axis=1)
    assert abs(right.mean()) <= K_SE * right.std(ddof=1) / np.sqrt(n)


# -- the losses themselves ---------------------------------------------------------------------------------


def test_losses_are_means_or_weighted_sums_of_squared_errors(rng):
    x, t = rng.standard_normal((5, 2)), rng.uniform(0, 0.9, 5)
    x1 = rng.standard_normal((5, 2))
    v = lambda y, s: 2.0 * y  # noqa: E731
    path = ConicalGaussianPath()
    expected = np.mean(np.sum((2 * x - (x1 - x) / (1 - t[:, None])) ** 2, axis=1))
    np.testing.assert_allclose(cfm_loss(v, path, t, x1, x), expected, rtol=1e-14)
    w = rng.uniform(0, 1, 5)
    np.testing.assert_allclose(fm_loss(v, lambda y, s: y, t, x, w), np.sum(w * np.sum(x**2, axis=1)), rtol=1e-14)
    assert fm_loss(v, v, t, x) == 0.0


X = np.zeros((3, 2))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: fm_loss(1.0, lambda x, t: x, 0.5, X), TypeError, "v must be callable"),
        (lambda: fm_loss(lambda x, t: x, lambda x, t: x[:, :1], 0.5, X), ValueError, r"u\(x, t\) must return shape \(3, 2\)"),
        (lambda: fm_loss(lambda x, t: x, lambda x, t: x, 0.5, X, weights=np.ones(2)), ValueError, r"weights must be an array of shape \(3,\) \(one weight per sample\), got shape \(2,\)"),
        (lambda: fm_loss(lambda x, t: x, lambda x, t: x, 0.5, X, weights=-np.ones(3)), ValueError, "weights must be >= 0, and not all 0"),
        (lambda: cfm_loss(lambda x, t: x, "conical", 0.5, X, X), TypeError, "path must be"),
        (lambda: cfm_loss(lambda x, t: x + np.nan, ConicalGaussianPath(), 0.5, X, X), ValueError, "non-finite"),
        (lambda: cfm_loss(lambda x, t: x, ConicalGaussianPath(), 1.0, X, X), ValueError, "sigma_t = 0 at t = 1"),
        (lambda: cfm_constant("oracle"), TypeError, r"oracle must be a reference\.oracles\.GaussianMixtureOracle, got str"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()

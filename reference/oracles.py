"""Closed-form marginal paths and velocities, for verification  [lecture: Theorem 1 (closed forms); Flow Matching (triptych)]

Three cases where Theorem 1's ``u(x, t) = E_{z | x, t}[u_cond(x, t, z)]`` has a closed form.

(a) Empirical data, the lecture's paths with sigma = 0 (``EmpiricalOracle``). With
z = (x0, x1), x0 ~ N(0, I) and x1 uniform on the data points ``y_1 .. y_N``, the point
``x_t = (1 - t) x0 + t x1`` given ``x1 = y_i`` is ``N(t y_i, (1 - t)^2 I)`` (x0 is
integrated out), so

    p_t(x) = (1/N) sum_i N(x; t y_i, (1 - t)^2 I),

and given ``x_t = x`` and ``x1 = y_i`` the start is ``x0 = (x - t y_i) / (1 - t)``, so
``u_cond = x1 - x0 = (y_i - x) / (1 - t)`` and

    u(x, t) = sum_i w_i(x, t) (y_i - x) / (1 - t),   w_i proportional to N(x; t y_i, (1 - t)^2 I):

the conical path's marginal with z = the data: the ideal field that memorises the
data (every trajectory ends on a data point). With ``sigma > 0`` in the linear path, x_t
given ``y_i`` is ``N(t y_i, ((1 - t)^2 + sigma^2) I)`` and
``E[x1 - x0 | x_t = x, y_i] = y_i - (1 - t) (x - t y_i) / ((1 - t)^2 + sigma^2)``.

(b) Gaussian-mixture data, any ``GaussianPath`` (``GaussianMixtureOracle``). With
x1 ~ sum_k w_k N(m_k, S_k) and ``x_t = alpha_t x1 + beta_t x0 + sigma_t eps`` (x0, eps ~
N(0, I) independent), given the component k the pair (x_t, u_cond) is jointly Gaussian,
``u_cond = alpha_t' x1 + beta_t' x0 + sigma_t' eps``:

    x_t | k ~ N(alpha_t m_k, C_k),        C_k = alpha_t^2 S_k + (beta_t^2 + sigma_t^2) I,
    Cov(u_cond, x_t | k) = G_k,           G_k = alpha_t alpha_t' S_k + (beta_t beta_t' + sigma_t sigma_t') I,
    E[u_cond | x_t = x, k] = alpha_t' m_k + G_k C_k^{-1} (x - alpha_t m_k),

so p_t is the mixture ``sum_k w_k N(alpha_t m_k, C_k)`` and u(x, t) is the
posterior-weighted sum ``sum_k p(k | x, t) E[u_cond | x, k]`` of affine fields. For the
lecture's paths (both give ``C_k = (1 - t)^2 I + t^2 S_k`` and
``G_k = t S_k - (1 - t) I``) the means are ``t m_k``. S_k = Q diag(lambda) Q^T makes
``C_k`` and ``G_k`` diagonal in the basis Q, so no matrix is inverted.

(c) Gaussian to Gaussian (``gaussian_flow_map``): for one component N(m, S) the field
of (b) is ``u = alpha' m + (1/2) C_t' C_t^{-1} (x - alpha_t m)``, whose flow from time s
to time t is

    x_t = alpha_t m + C_t^{1/2} C_s^{-1/2} (x_s - alpha_s m);

for the lecture's paths from s = 0: ``x_t = t m + ((1 - t)^2 I + t^2 S)^{1/2} x0``, which
maps N(0, I) at t = 0 to N(m, S) at t = 1.
"""

import autograd.numpy as np
import numpy as onp
from autograd.scipy.special import logsumexp
from autograd.tracer import getval

from ._validate import (
    as_points,
    as_real_array,
    as_time,
    as_time_array,
    check_choice,
    check_instance,
    check_count,
    check_real,
    refuse_non_finite,
)
from .distributions import GaussianMixture
from .paths import ConicalGaussianPath, GaussianPath

__all__ = [
    "EmpiricalOracle",
    "GaussianMixtureOracle",
    "gaussian_flow_map",
    "path_quadrature",
    "conditional_quadrature",
]

LOG_2PI = onp.log(2.0 * onp.pi)


def _times(t, n, low=0.0, high=1.0, name="t"):
    return np.ones(n) * as_time(t, n, name=name, low=low, high=high)


class EmpiricalOracle:
    """Exact marginal of the linear path over a finite data set, x0 integrated out  [lecture: Example 1; Theorem 1]

        p_t(x) = (1/N) sum_i N(x; t y_i, s_t^2 I),       s_t^2 = (1 - t)^2 + sigma^2,
        u(x, t) = sum_i w_i(x, t) [y_i - (1 - t)(x - t y_i) / s_t^2],   w_i ~ N(x; t y_i, s_t^2 I)

    (``(y_i - x) / (1 - t)`` for ``sigma = 0``). Singular at ``t = 1`` when ``sigma = 0``.

    Args:
        data: the points ``y_i``, shape ``(N, d)``.
        sigma: the linear path's ``sigma >= 0``.
    """

    def __init__(self, data, sigma=0.0):
        self.data = as_points(data, "data", allow_traced=False)
        self.sigma = check_real(sigma, "sigma", low=0.0)

    def _parts(self, x, t):
        x = as_points(x, d=self.data.shape[1])
        n = np.shape(x)[0]
        t = _times(t, n)
        var = (1.0 - t) ** 2 + self.sigma**2  # (n,)
        if onp.any(getval(var) <= 0.0):
            raise ValueError(f"t = 1 with sigma = {self.sigma:g}: s_t^2 = (1 - t)^2 + sigma^2 is 0 in float64, and p_t is "
                             "a sum of Dirac deltas at the data points, without a density")
        d = self.data.shape[1]
        with onp.errstate(over="ignore", invalid="ignore", divide="ignore"):
            diff = x[:, None, :] - t[:, None, None] * self.data[None]  # (n, N, d)
            log_n = -0.5 * d * (LOG_2PI + np.log(var))[:, None] - 0.5 * np.sum(diff**2, axis=2) / var[:, None]
        return x, t, var, diff, log_n

    def _refuse(self, value, what, x, var):
        return refuse_non_finite(value, what, large={"x": x, "data": self.data}, small={"s_t": np.sqrt(getval(var))})

    def logpdf(self, x, t):
        """Marginal log-density  log p_t(x) = log (1/N) sum_i N(x; t y_i, s_t^2 I), shape ``(n,)``  [lecture: Fig. 8]"""
        x, _, var, _, log_n = self._parts(x, t)
        with onp.errstate(invalid="ignore"):
            log_p = logsumexp(log_n, axis=1) - onp.log(self.data.shape[0])
        return self._refuse(log_p, "log p_t(x)", x, var)

    def velocity(self, x, t):
        """Marginal velocity  u(x, t) = sum_i w_i E[x1 - x0 | x, y_i], shape ``(n, d)``  [lecture: Theorem 1, eq. (9)]"""
        x, t, var, diff, log_n = self._parts(x, t)
        with onp.errstate(over="ignore", invalid="ignore"):
            w = np.exp(log_n - logsumexp(log_n, axis=1, keepdims=True))  # (n, N)
            u_i = self.data[None] - ((1.0 - t) / var)[:, None, None] * diff  # E[x1 - x0 | x_t, y_i]
            u = np.einsum("nj,njd->nd", w, u_i)
        return self._refuse(u, "u(x, t)", x, var)


class GaussianMixtureOracle:
    """Exact marginal path and velocity for Gaussian-mixture data under a Gaussian path  [lecture: Theorem 1, eq. (9)]

        p_t = sum_k w_k N(alpha_t m_k, C_k),  C_k = alpha_t^2 S_k + (beta_t^2 + sigma_t^2) I,
        u(x, t) = sum_k p(k | x, t) [alpha_t' m_k + G_k C_k^{-1} (x - alpha_t m_k)],
        G_k = alpha_t alpha_t' S_k + (beta_t beta_t' + sigma_t sigma_t') I.

    Args:
        mixture: a ``GaussianMixture`` (the data distribution).
        path: a ``GaussianPath``; default the conical path, whose marginal equals the
            linear path's with ``sigma = 0``.
    """

    def __init__(self, mixture, path=None):
        check_instance(mixture, GaussianMixture, "mixture", "reference.distributions.GaussianMixture")
        path = ConicalGaussianPath() if path is None else path
        check_instance(path, GaussianPath, "path", "reference.paths.GaussianPath")
        self.mixture, self.path = mixture, path
        lam, Q = onp.linalg.eigh(mixture.covs)  # S_k = Q_k diag(lam_k) Q_k^T
        self.lam, self.Q = lam, Q  # (K, d), (K, d, d)

    @property
    def dim(self):
        """The dimension d of the data  [lecture: Generative Modeling]"""
        return self.mixture.dim

    def _parts(self, x, t):
        x = as_points(x, d=self.dim)
        n = np.shape(x)[0]
        t = _times(t, n)
        (a, b, s), (da, db, ds) = self.path.schedules(t)
        c = b**2 + s**2  # (n,)
        with onp.errstate(invalid="ignore"):
            g = b * db + s * ds
        if not onp.all(onp.isfinite(getval(g))):
            raise ValueError(f"{self.path.name}: sigma_t sigma_t' is not finite at t = {onp.unique(getval(t)[~onp.isfinite(getval(g))])[:5]}")
        a_, c_ = a[:, None, None], c[:, None, None]
        var = a_**2 * self.lam[None] + c_  # eigenvalues of C_k: (n, K, d)
        if onp.any(getval(var) <= 0.0):
            raise ValueError(f"{self.path.name}: the covariance of p_t is singular at some t (sigma_t = 0 and alpha_t = 0)")
        # y = Q_k^T (x - alpha_t m_k): coordinates in the eigenbasis of S_k, (n, K, d)
        with onp.errstate(over="ignore", invalid="ignore", divide="ignore"):
            diff = x[:, None, :] - a_ * self.mixture.means[None]  # (n, K, d)
            y = np.swapaxes(np.matmul(np.swapaxes(diff, 0, 1), self.Q), 0, 1)
            log_n = -0.5 * (self.dim * LOG_2PI + np.sum(np.log(var), axis=2) + np.sum(y**2 / var, axis=2))
            log_joint = np.log(self.mixture.weights)[None] + log_n  # (n, K)
        return x, t, (a, da, g), var, y, log_joint

    def _refuse(self, value, what, x, var):
        return refuse_non_finite(value, what, large={"x": x}, small={"sqrt(C_t)": np.sqrt(getval(var))})

    def logpdf(self, x, t):
        """Marginal log-density  log p_t(x) = log sum_k w_k N(x; alpha_t m_k, C_k), shape ``(n,)``  [lecture: Flow Matching (center)]"""
        x, _, _, var, _, log_joint = self._parts(x, t)
        with onp.errstate(invalid="ignore"):
            log_p = logsumexp(log_joint, axis=1)
        return self._refuse(log_p, "log p_t(x)", x, var)

    def component_posteriors(self, x, t):
        """Posterior of the data component  p(k | x, t) = w_k N(x; alpha_t m_k, C_k) / p_t(x)  [lecture: Theorem 1, eq. (9)]

        Returns:
            shape ``(n, K)``.
        """
        x, _, _, var, _, log_joint = self._parts(x, t)
        with onp.errstate(over="ignore", invalid="ignore"):
            post = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
        return self._refuse(post, "p(k | x, t)", x, var)

    def velocity(self, x, t):
        """Marginal velocity  u(x, t) = sum_k p(k | x, t) u_k(x, t), shape ``(n, d)``  [lecture: Theorem 1, eq. (9); Flow Matching (right)]"""
        x, t, (a, da, g), var, y, log_joint = self._parts(x, t)
        a_, da_, g_ = a[:, None, None], da[:, None, None], g[:, None, None]
        with onp.errstate(over="ignore", invalid="ignore"):
            gain = (a_ * da_ * self.lam[None] + g_) / var  # eigenvalues of G_k C_k^{-1}: (n, K, d)
            back = np.swapaxes(np.matmul(np.swapaxes(gain * y, 0, 1), np.swapaxes(self.Q, 1, 2)), 0, 1)  # Q_k (gain y)
            u_k = da_ * self.mixture.means[None] + back  # (n, K, d)
            post = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
            u = np.einsum("nk,nkd->nd", post, u_k)
        return self._refuse(u, "u(x, t)", x, var)

    def conditional_variance(self, t):
        """Conditional variance  E || u_cond - u ||^2 given t, for one component, shape ``(n,)``  [lecture: Theorem 2 (C)]

            sum_i [alpha'^2 lam_i + beta'^2 + sigma'^2 - (alpha alpha' lam_i + g)^2 / (alpha^2 lam_i + c)]

        the variance of u_cond left after conditioning on x_t (eigenvalue by eigenvalue).
        """
        if self.mixture.n_components != 1:
            raise ValueError("conditional_variance has a closed form for one Gaussian component only")
        t = as_time_array(t)
        (a, b, s), (da, db, ds) = self.path.schedules(t)
        lam = self.lam[0][None]  # (1, d)
        with onp.errstate(all="ignore"):
            var_u = da[:, None] ** 2 * lam + (db**2 + ds**2)[:, None]
            cov = a[:, None] * da[:, None] * lam + (b * db + s * ds)[:, None]
            value = onp.sum(var_u - cov**2 / (a[:, None] ** 2 * lam + (b**2 + s**2)[:, None]), axis=1)
        if not onp.all(onp.isfinite(value)):
            bad = onp.unique(t[~onp.isfinite(value)])[:5]
            raise ValueError(f"t: the conditional variance is not defined at t = {bad} ({self.path.name}: sigma_t' is "
                             "infinite there, or C_t is singular)")
        return value


def gaussian_flow_map(x, t, mean, cov, path=None, s=0.0):
    """Flow of the marginal field between Gaussians  x_t = alpha_t m + C_t^{1/2} C_s^{-1/2} (x_s - alpha_s m)  [lecture: eq. (4), Fig. 4]

    For data N(m, S) and the lecture's paths (the default), from ``s = 0``:
    ``x_t = t m + ((1 - t)^2 I + t^2 S)^{1/2} x0``, carrying N(0, I) to N(m, S).

    Args:
        x: points at time ``s``, shape ``(n, d)``.
        t: the target time, a float or an array of shape ``(n,)``.
        mean: ``m``, shape ``(d,)``.
        cov: ``S``, shape ``(d, d)``, symmetric positive definite.
        path: a ``GaussianPath`` (default the conical path).
        s: the start time, a float or an array of shape ``(n,)``.

    Returns:
        shape ``(n, d)``.
    """
    x = as_points(x)
    n, d = np.shape(x)
    mean = as_real_array(mean, "mean", shape=(d,), what=f"an array of shape ({d},) like x's dimension", allow_traced=False)
    cov = as_real_array(cov, "cov", shape=(d, d), what=f"an array of shape ({d}, {d}) like x's dimension", allow_traced=False)
    if not onp.allclose(cov, cov.T, rtol=0, atol=1e-12 * (1 + onp.abs(cov).max())):
        raise ValueError("cov must be symmetric")
    path = ConicalGaussianPath() if path is None else path
    check_instance(path, GaussianPath, "path", "reference.paths.GaussianPath")
    with onp.errstate(all="ignore"):
        lam, Q = onp.linalg.eigh(cov)
    if not lam.min() > 0:
        raise ValueError("cov must be positive definite")

    def scale(time, name):  # alpha and the eigenvalues of C^{1/2}, (n,) and (n, d)
        (a, b, sg), _ = path.schedules(_times(time, n, name=name))
        return a, np.sqrt(a[:, None] ** 2 * lam[None] + (b**2 + sg**2)[:, None])

    a_s, r_s = scale(s, "s")
    a_t, r_t = scale(t, "t")
    with onp.errstate(all="ignore"):
        y = (x - a_s[:, None] * mean[None]) @ Q  # eigen-coordinates of x_s - alpha_s m
        x_t = a_t[:, None] * mean[None] + ((r_t / r_s) * y) @ Q.T
    return refuse_non_finite(x_t, "x_t", large={"x": x, "mean": mean, "cov": cov}, small={"the std at s": r_s})


_MAX_NODES = 10**8
"""The most quadrature nodes the tensor-grid rules build (n_t n_x^d of them)."""


def _check_nodes(n_t, n_x, dims, factor):
    total = float(n_t) * float(n_x) ** dims * factor
    if total > _MAX_NODES:
        raise ValueError(f"n_t = {n_t} and n_x = {n_x} in {dims} dimensions make about {total:.3g} quadrature nodes "
                         f"(more than {_MAX_NODES:.0e}); lower n_x or n_t")


def _gauss_legendre_01(n):
    if n > 10**4:  # numpy's nodes come from an n x n eigenproblem
        raise ValueError(f"n_t must be at most 10^4 (Gauss-Legendre nodes in t), got {n}")
    nodes, weights = onp.polynomial.legendre.leggauss(n)
    return 0.5 * (nodes + 1.0), 0.5 * weights


def _gauss_hermite_normal(n, d):
    """Nodes and weights for E[f(eps)], eps ~ N(0, I_d): a tensor grid of n^d points."""
    nodes, weights = onp.polynomial.hermite_e.hermegauss(n)
    weights = weights / weights.sum()
    grids = onp.meshgrid(*([nodes] * d), indexing="ij")
    wgrids = onp.meshgrid(*([weights] * d), indexing="ij")
    return onp.stack([g.ravel() for g in grids], axis=1), onp.prod(onp.stack([w.ravel() for w in wgrids]), axis=0)


def path_quadrature(oracle, n_t=32, n_x=32, rule="hermite"):
    """Nodes and weights for ``E_{t ~ U[0,1], x ~ p_t}[f(x, t)]`` with Gaussian-mixture data  [lecture: eq. (5) (FM loss)]

    Gauss-Legendre in t. In x, ``rule="hermite"``: for each component, Gauss-Hermite
    nodes of ``N(alpha_t m_k, C_k)`` (``K n_x^d`` nodes per time); ``rule="grid"``: the
    trapezoidal rule on a regular grid of ``n_x^d`` points covering every component to
    12 standard deviations, weighted by the density ``p_t`` of the oracle. The
    trapezoidal rule converges exponentially for smooth, fast-decaying integrands, also
    where the integrand holds the posterior weights ``p(k | x, t)`` that Gauss-Hermite
    nodes of one component resolve slowly. Tensor grids: for small d.

    Args:
        oracle: a ``GaussianMixtureOracle``.
        n_t, n_x: the number of nodes in t and per axis in x.
        rule: ``"hermite"`` or ``"grid"``.

    Returns:
        ``(t, x, w)`` of shapes ``(N,)``, ``(N, d)``, ``(N,)`` with ``sum w = 1`` (to the
        accuracy of the rule for ``"grid"``).
    """
    check_instance(oracle, GaussianMixtureOracle, "oracle", "reference.oracles.GaussianMixtureOracle")
    n_t, n_x = check_count(n_t, "n_t"), check_count(n_x, "n_x")
    check_choice(rule, "rule", ("hermite", "grid"))
    gm, d = oracle.mixture, oracle.dim
    _check_nodes(n_t, n_x, d, gm.n_components if rule == "hermite" else 1)
    t_nodes, t_w = _gauss_legendre_01(n_t)
    (a, b, s), _ = oracle.path.schedules(t_nodes)
    root = onp.sqrt(a[:, None, None] ** 2 * oracle.lam[None] + (b**2 + s**2)[:, None, None])  # (n_t, K, d)
    if rule == "grid":
        centres = a[:, None, None] * gm.means[None]  # (n_t, K, d)
        lo = (centres - 12 * root.max(axis=2, keepdims=True)).min(axis=(0, 1))
        hi = (centres + 12 * root.max(axis=2, keepdims=True)).max(axis=(0, 1))
        axes = [onp.linspace(lo[i], hi[i], n_x) for i in range(d)]
        cell = onp.prod([ax[1] - ax[0] for ax in axes])
        grid = onp.stack([g.ravel() for g in onp.meshgrid(*axes, indexing="ij")], axis=1)
        T = onp.repeat(t_nodes, len(grid))
        X = onp.tile(grid, (n_t, 1))
        W = onp.repeat(t_w, len(grid)) * cell * onp.exp(getval(oracle.logpdf(X, T)))
        return T, X, W
    e, e_w = _gauss_hermite_normal(n_x, d)
    T, X, W = [], [], []
    for k in range(gm.n_components):
        x = a[:, None, None] * gm.means[k] + onp.einsum("ij,tj,ej->tei", oracle.Q[k], root[:, k], e)  # (n_t, n_e, d)
        T.append(onp.repeat(t_nodes, len(e)))
        X.append(x.reshape(-1, d))
        W.append((gm.weights[k] * t_w[:, None] * e_w[None]).ravel())
    return onp.concatenate(T), onp.concatenate(X), onp.concatenate(W)


def conditional_quadrature(mixture, path, n_t=32, n_x=32):
    """Nodes and weights for ``E_{t ~ U[0,1], z ~ p(z), x ~ p(x | t, z)}[f(x, t, z)]``  [lecture: Theorem 2 (L_CFM)]

    Gauss-Legendre in t; Gauss-Hermite in x1 (per component of the mixture), in x0 (for
    ``z = (x0, x1)``) and in the noise eps of ``x = psi_t(eps)`` (skipped when
    ``sigma_t = 0`` at every node, where the path is a Dirac). Tensor grids: small d only.

    Args:
        mixture: a ``GaussianMixture`` (the data distribution of x1).
        path: a ``GaussianPath``.
        n_t, n_x: the number of nodes in t and per axis of each Gaussian variable.

    Returns:
        ``(t, z, x, w)``: ``t`` of shape ``(N,)``, ``z`` (``x1`` or ``(x0, x1)``) and
        ``x`` with ``N`` rows, ``w`` of shape ``(N,)`` with ``sum w = 1``.
    """
    check_instance(mixture, GaussianMixture, "mixture", "reference.distributions.GaussianMixture")
    check_instance(path, GaussianPath, "path", "reference.paths.GaussianPath")
    n_t, n_x = check_count(n_t, "n_t"), check_count(n_x, "n_x")
    d = mixture.dim
    _check_nodes(n_t, n_x, d * (3 if path.conditions_on_pairs else 2), mixture.n_components)
    t_nodes, t_w = _gauss_legendre_01(n_t)
    e, e_w = _gauss_hermite_normal(n_x, d)
    x1 = (mixture.means[:, None, :] + onp.einsum("kij,ej->kei", mixture.chol, e)).reshape(-1, d)
    x1_w = (mixture.weights[:, None] * e_w[None]).ravel()
    factors = [(t_nodes[:, None], t_w), (x1, x1_w)]
    if path.conditions_on_pairs:
        factors.append((e, e_w))
    (_, _, s), _ = path.schedules(t_nodes)
    noisy = onp.any(s != 0.0)
    factors.append((e, e_w) if noisy else (onp.zeros((1, d)), onp.ones(1)))
    # the tensor product of all factors: index grids over (t, x1, [x0], eps)
    idx = onp.meshgrid(*[onp.arange(len(f[1])) for f in factors], indexing="ij")
    idx = [i.ravel() for i in idx]
    t = factors[0][0][idx[0], 0]
    w = onp.prod(onp.stack([f[1][i] for f, i in zip(factors, idx)]), axis=0)
    x1_n = factors[1][0][idx[1]]
    z = (factors[2][0][idx[2]], x1_n) if path.conditions_on_pairs else x1_n
    eps = factors[-1][0][idx[-1]]
    return t, z, path.flow(eps, t, z), w

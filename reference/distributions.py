"""Base and data distributions  [lecture: Generative Modeling, Fig. 1, Fig. 2]

The base distribution is ``p0 = N(0, I)``. The data distributions are 2-D toy sets,
some of them exact Gaussian mixtures so that the closed-form oracles of ``oracles`` can
be used on them.
"""

import autograd.numpy as np
import numpy as onp
from autograd.scipy.special import logsumexp
from autograd.tracer import getval

from ._validate import as_points, as_real_array, check_bool, check_choice, check_count, check_rng, refuse_non_finite

__all__ = [
    "standard_normal_logpdf",
    "sample_standard_normal",
    "GaussianMixture",
    "DATASETS",
    "dataset_mixture",
    "make_dataset",
]

LOG_2PI = onp.log(2.0 * onp.pi)


def standard_normal_logpdf(x):
    """Log-density of the base ``p0 = N(0, I)``  [lecture: eq. (1), eq. (2)]

        log p0(x) = -d/2 log(2 pi) - |x|^2 / 2

    Args:
        x: points, shape ``(n, d)``.

    Returns:
        ``log p0(x)``, shape ``(n,)``.
    """
    x = as_points(x)
    d = x.shape[1]
    with onp.errstate(over="ignore"):  # |x|^2 beyond the float64 range is refused below, by name
        log_p = -0.5 * d * LOG_2PI - 0.5 * np.sum(x**2, axis=1)
    return refuse_non_finite(log_p, "log p0(x) = -|x|^2 / 2 - d/2 log(2 pi)", large={"x": x})


def sample_standard_normal(n, d, rng):
    """Draw ``n`` samples of ``p0 = N(0, I_d)``  [lecture: Fig. 1]

    Returns:
        shape ``(n, d)``.
    """
    n = check_count(n, "n")
    d = check_count(d, "d")
    return check_rng(rng).standard_normal((n, d))


class GaussianMixture:
    """A Gaussian mixture  sum_k w_k N(mu_k, Sigma_k)  [lecture: Fig. 1 (p_data)]

    Args:
        weights: shape ``(K,)``, positive, summing to 1.
        means: shape ``(K, d)``.
        covs: shape ``(K, d, d)`` symmetric positive definite matrices, or ``(K,)``
            variances for isotropic components ``s_k^2 I``.
    """

    def __init__(self, weights, means, covs):
        means = as_points(means, "means", allow_traced=False)
        k, d = means.shape
        weights = as_real_array(weights, "weights", allow_traced=False)
        if weights.shape != (k,):
            raise ValueError(f"weights must have shape ({k},) like means' first axis, got {weights.shape}")
        if onp.any(weights <= 0):
            raise ValueError("weights must be > 0")
        if abs(weights.sum() - 1.0) > 1e-10:
            raise ValueError(f"weights must sum to 1, got sum {weights.sum()!r}")
        covs = as_real_array(covs, "covs", allow_traced=False)
        if covs.shape == (k,):
            if onp.any(covs <= 0):
                raise ValueError("covs must be > 0 (variances of isotropic components)")
            covs = covs[:, None, None] * onp.eye(d)
        if covs.shape != (k, d, d):
            raise ValueError(f"covs must have shape ({k}, {d}, {d}) or ({k},) (K = {k} components in d = {d} dimensions, "
                             f"like weights and means), got {covs.shape}")
        scale = onp.max(onp.abs(covs), axis=(1, 2), keepdims=True)
        if not onp.all(onp.abs(covs - onp.swapaxes(covs, 1, 2)) <= 1e-12 * scale):
            raise ValueError("covs must be symmetric")
        with onp.errstate(all="ignore"):
            try:
                chol = onp.linalg.cholesky(covs)
                inv = onp.linalg.inv(covs)
            except onp.linalg.LinAlgError as err:
                raise ValueError("covs must be positive definite") from err
            logdet = 2.0 * onp.sum(onp.log(onp.diagonal(chol, axis1=1, axis2=2)), axis=1)  # log det Sigma_k
        if not (onp.all(onp.isfinite(chol)) and onp.all(onp.isfinite(inv)) and onp.all(onp.isfinite(logdet))):
            raise ValueError("covs must be positive definite with an inverse and a log-determinant representable "
                             "in float64")
        self.weights, self.means, self.covs, self.chol = weights, means, covs, chol
        self._inv = inv
        self._logdet = logdet

    @property
    def dim(self):
        return self.means.shape[1]

    @property
    def n_components(self):
        return self.means.shape[0]

    def sample(self, n, rng, return_components=False):
        """Draw ``n`` points: pick a component by its weight, then ``mu_k + L_k e``.

        Args:
            n: number of samples.
            rng: ``numpy.random.Generator``.
            return_components: also return which component drew each point.

        Returns:
            shape ``(n, d)`` (and the component indices, shape ``(n,)``).
        """
        n = check_count(n, "n")
        rng = check_rng(rng)
        return_components = check_bool(return_components, "return_components")
        k = rng.choice(self.n_components, size=n, p=self.weights)
        e = rng.standard_normal((n, self.dim))
        x = self.means[k] + onp.einsum("nij,nj->ni", self.chol[k], e)
        return (x, k) if return_components else x

    def component_logpdf(self, x):
        """``log N(x; mu_k, Sigma_k)`` for every point and component, shape ``(n, K)``."""
        x = as_points(x, d=self.dim)
        return refuse_non_finite(self._component_logpdf(x), "log N(x; mu_k, Sigma_k)", large={"x": x})

    def _component_logpdf(self, x):
        with onp.errstate(over="ignore", invalid="ignore"):  # callers refuse what is not finite
            diff = x[:, None, :] - self.means[None, :, :]  # (n, K, d)
            maha = np.einsum("nki,kij,nkj->nk", diff, self._inv, diff)  # (x - mu_k)^T Sigma_k^-1 (x - mu_k)
            return -0.5 * (self.dim * LOG_2PI + self._logdet + maha)

    def logpdf(self, x):
        """``log sum_k w_k N(x; mu_k, Sigma_k)`` by log-sum-exp, shape ``(n,)``.

        Finite wherever one component's log-density is; a point too far from every
        component for float64 is refused with a ``ValueError`` naming ``x``.
        """
        x = as_points(x, d=self.dim)
        log_joint = np.log(self.weights) + self._component_logpdf(x)
        if not onp.all(onp.isfinite(onp.max(getval(log_joint), axis=1))):
            refuse_non_finite(onp.max(getval(log_joint), axis=1), "log p(x)", large={"x": x})
        with onp.errstate(invalid="ignore"):
            return logsumexp(log_joint, axis=1)

    def mean(self):
        """The mixture mean ``sum_k w_k mu_k``, shape ``(d,)``."""
        return self.weights @ self.means

    def covariance(self):
        """The mixture covariance (law of total covariance), shape ``(d, d)``."""
        m = self.mean()
        centred = self.means - m
        return onp.einsum("k,kij->ij", self.weights, self.covs) + (self.weights[:, None] * centred).T @ centred

    def __repr__(self):
        return f"GaussianMixture(K={self.n_components}, d={self.dim})"


def _eight_gaussians():
    angles = onp.arange(8) * onp.pi / 4
    means = 4.0 * onp.stack([onp.cos(angles), onp.sin(angles)], axis=1)
    return GaussianMixture(onp.full(8, 1 / 8), means, onp.full(8, 0.35**2))


def _cross():
    # Four arms of a cross, each an elongated Gaussian pointing away from the origin.
    long, short = 1.2**2, 0.25**2
    means = onp.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    covs = onp.array([onp.diag([long, short]), onp.diag([long, short]),
                      onp.diag([short, long]), onp.diag([short, long])])
    return GaussianMixture(onp.full(4, 0.25), means, covs)


_MIXTURES = {"8gaussians": _eight_gaussians, "cross": _cross}


def dataset_mixture(name):
    """The exact Gaussian mixture p_data = sum_k w_k N(mu_k, Sigma_k) behind a toy data set  [lecture: Fig. 1, Fig. 2]

    For the closed-form oracles of ``reference.oracles``.

    Args:
        name: ``"8gaussians"`` or ``"cross"`` (the others are not mixtures).
    """
    if not isinstance(name, str) or name not in _MIXTURES:
        raise (ValueError if isinstance(name, str) else TypeError)(
            f"name must be one of {sorted(_MIXTURES)} (the mixture data sets), got {name!r}")
    return _MIXTURES[name]()


def _moons(n, rng):
    n_up = n // 2
    a = rng.uniform(0, onp.pi, n)
    up = onp.arange(n) < n_up
    x = onp.where(up, onp.cos(a), 1 - onp.cos(a))
    y = onp.where(up, onp.sin(a), 0.5 - onp.sin(a))
    pts = onp.stack([x, y], axis=1) + 0.05 * rng.standard_normal((n, 2))
    return 2.0 * (pts - [0.5, 0.25])


def _checkerboard(n, rng):
    # The eight dark squares of a 4 x 4 board on [-2, 2]^2, scaled by 1.5 to [-3, 3]^2.
    x1 = rng.uniform(-2, 2, n)
    x2 = rng.uniform(0, 1, n) + rng.integers(-2, 2, n)
    x2 = x2 + ((onp.floor(x1) + onp.floor(x2)) % 2 != 0)
    x2 = (x2 + 2) % 4 - 2
    return 1.5 * onp.stack([x1, x2], axis=1)


def _spirals(n, rng):
    r = onp.sqrt(rng.uniform(0, 1, n)) * 3 * onp.pi
    sign = onp.where(onp.arange(n) % 2 == 0, 1.0, -1.0)
    pts = sign[:, None] * onp.stack([r * onp.cos(r), r * onp.sin(r)], axis=1) / 2.5
    return pts + 0.1 * rng.standard_normal((n, 2))


def _rings(n, rng):
    radii = onp.array([1.0, 2.0, 3.0])
    r = radii[rng.integers(0, 3, n)]
    a = rng.uniform(0, 2 * onp.pi, n)
    return onp.stack([r * onp.cos(a), r * onp.sin(a)], axis=1) + 0.08 * rng.standard_normal((n, 2))


_GENERATORS = {
    "moons": _moons,
    "8gaussians": lambda n, rng: dataset_mixture("8gaussians").sample(n, rng),
    "checkerboard": _checkerboard,
    "cross": lambda n, rng: dataset_mixture("cross").sample(n, rng),
    "spirals": _spirals,
    "rings": _rings,
}

DATASETS = tuple(_GENERATORS)
"""The names of the toy data sets of ``make_dataset``."""


def make_dataset(name, n, rng):
    """Sample ``n`` points of a 2-D toy data distribution ``p_data``  [lecture: Fig. 1, Fig. 2]

    ``"cross"`` is the cross-shaped target of Fig. 2; ``"8gaussians"`` and ``"cross"``
    are exact Gaussian mixtures (see ``dataset_mixture``).

    Args:
        name: one of ``"moons"``, ``"8gaussians"``, ``"checkerboard"``, ``"cross"``,
            ``"spirals"``, ``"rings"``.
        n: number of points.
        rng: ``numpy.random.Generator``.

    Returns:
        shape ``(n, 2)``, float64.
    """
    check_choice(name, "name", DATASETS)
    n = check_count(n, "n")
    rng = check_rng(rng)
    return onp.asarray(_GENERATORS[name](n, rng), dtype=onp.float64)

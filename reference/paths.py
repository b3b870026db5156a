"""Conditional probability paths p(x | t, z) and their velocities  [lecture: Modeling Choices; Example 1; Example 2]

Every path here is Gaussian with a mean that is affine in the conditioning variable z
and a standard deviation that depends on t only:

    p(x | t, z) = N(mu_t(z), sigma_t^2 I),   mu_t(z) = alpha_t x1 + beta_t x0,

with ``z = x1`` (no ``x0`` term) or ``z = (x0, x1)``. Writing a sample as the
conditional flow ``x_t = psi_t(eps) = mu_t(z) + sigma_t eps`` with ``eps ~ N(0, I)`` and
differentiating in t gives the conditional velocity

    u_cond(x, t, z) = d/dt mu_t(z) + (d/dt sigma_t / sigma_t) (x - mu_t(z)),

which solves the continuity equation (5) together with p(x | t, z). ``GaussianPath``
computes it with the time derivatives of the schedules taken by autograd; the lecture's
two paths also carry their hand-written velocity, and the tests check the two agree.

| path | z | alpha_t | beta_t | sigma_t |
| --- | --- | --- | --- | --- |
| ``LinearInterpolationPath(sigma)`` (Example 1) | (x0, x1) | t | 1 - t | sigma |
| ``ConicalGaussianPath()`` (Example 2) | x1 | t | 0 | 1 - t |
| ``OptimalTransportPath(sigma_min)`` (Lipman et al. 2023, eq. 20) | x1 | t | 0 | 1 - (1 - sigma_min) t |
| ``VariancePreservingPath(beta_min, beta_max)`` (Lipman et al. 2023, eq. 19) | x1 | a(1 - t) | 0 | sqrt(1 - a(1 - t)^2) |

Singular points. Where ``sigma_t = 0`` the conditional path is a Dirac delta:
``sample_x`` returns the mean there, ``logpdf`` refuses with a ``ValueError`` naming t
(a Dirac has no density), and ``velocity`` refuses where ``sigma_t = 0`` while
``d/dt sigma_t != 0`` (the conical path at ``t = 1``: ``(x1 - x) / (1 - t)`` is 0/0 on
its support). Where ``sigma_t`` is constant (``d/dt sigma_t = 0``, the linear path) the
term ``(d/dt sigma_t / sigma_t)(x - mu_t)`` is zero by definition, also for
``sigma = 0``: the conditional flow is then a pure translation. To train or integrate up
to ``t = 1`` without the singularity, use ``OptimalTransportPath(sigma_min > 0)``.
"""

import numbers

import autograd.numpy as np
import numpy as onp
from autograd import elementwise_grad
from autograd.tracer import getval

from ._validate import (
    as_points,
    as_real_array,
    as_time,
    as_time_array,
    check_callable,
    check_finite_number,
    check_count,
    check_real,
    check_rng,
    refuse_non_finite,
)

__all__ = [
    "gaussian_logpdf",
    "gaussian_path_velocity",
    "linear_interpolation_velocity",
    "conical_velocity",
    "GaussianPath",
    "LinearInterpolationPath",
    "ConicalGaussianPath",
    "OptimalTransportPath",
    "VariancePreservingPath",
]

LOG_2PI = onp.log(2.0 * onp.pi)


def _broadcast(name, shape, *others):
    """Raise a ValueError naming ``name`` unless ``shape`` broadcasts with each ``(other_name, other_shape)``."""
    for other, other_shape in others:
        try:
            onp.broadcast_shapes(shape, other_shape)
        except ValueError:
            raise ValueError(f"{name} of shape {shape} and {other} of shape {other_shape} do not broadcast together") from None


def gaussian_logpdf(x, mean, std):
    """Isotropic Gaussian log-density  log N(x; mu_t(z), sigma_t^2 I)  [lecture: Example 1, Example 2]

        log p(x | t, z) = -d/2 log(2 pi) - d log sigma_t - |x - mu_t(z)|^2 / (2 sigma_t^2)

    Broadcasts over leading axes (the marginal evaluates it for every pair of a point and
    a z).

    Args:
        x: points, shape ``(..., d)``.
        mean: ``mu_t(z)``, shape broadcastable with ``x``.
        std: ``sigma_t > 0``, shape broadcastable with ``x[..., 0]``.

    Returns:
        shape ``x.shape[:-1]`` broadcast with ``mean.shape[:-1]``.

    Raises:
        ValueError: a point so far from its mean (or a ``std`` so small) that the
            log-density is below the float64 range; shapes that do not broadcast.
    """
    x = as_real_array(x, "x", ndim=tuple(range(1, 33)), what="an array of shape (..., d)")
    mean = as_real_array(mean, "mean")
    std = as_real_array(std, "std")
    _broadcast("mean", np.shape(mean), ("x", np.shape(x)))
    _broadcast("std", np.shape(std), ("x[..., 0]", np.shape(x)[:-1]))
    if onp.any(getval(std) <= 0.0):
        raise ValueError("std must be > 0 (a Gaussian with sigma_t = 0 is a Dirac delta, without a density)")
    with onp.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        log_p = _gaussian_logpdf(x, mean, std)
    return refuse_non_finite(log_p, "log N(x; mean, std^2 I)", large={"x": x, "mean": mean}, small={"std": std})


def _gaussian_logpdf(x, mean, std):
    """``gaussian_logpdf`` without checks, for callers that checked their inputs."""
    d = np.shape(x)[-1]
    sq = np.sum((x - mean) ** 2, axis=-1)
    return -0.5 * d * LOG_2PI - d * np.log(std) - 0.5 * sq / std**2


def gaussian_path_velocity(x, mean, dmean, std, dstd):
    """Conditional velocity of a Gaussian path  [lecture: Example 2 (general form); eq. (5)]

        u_cond(x, t, z) = d/dt mu_t(z) + (d/dt sigma_t / sigma_t) (x - mu_t(z))

    with the ratio taken as 0 where ``d/dt sigma_t = 0`` (a constant std: a translation).
    Broadcasts over leading axes like ``gaussian_logpdf``.

    Args:
        x: points, shape ``(..., d)``.
        mean, dmean: ``mu_t(z)`` and ``d/dt mu_t(z)``, broadcastable with ``x``.
        std, dstd: ``sigma_t >= 0`` and ``d/dt sigma_t``, broadcastable with ``x[..., 0]``;
            ``std > 0`` wherever ``dstd != 0``.

    Returns:
        the broadcast shape of ``x`` and ``mean``.
    """
    x = as_real_array(x, "x", ndim=tuple(range(1, 33)), what="an array of shape (..., d)")
    mean, dmean = as_real_array(mean, "mean"), as_real_array(dmean, "dmean")
    std, dstd = as_real_array(std, "std"), as_real_array(dstd, "dstd")
    _broadcast("mean", np.shape(mean), ("x", np.shape(x)))
    _broadcast("dmean", np.shape(dmean), ("x", np.shape(x)), ("mean", np.shape(mean)))
    _broadcast("std", np.shape(std), ("x[..., 0]", np.shape(x)[:-1]))
    _broadcast("dstd", np.shape(dstd), ("x[..., 0]", np.shape(x)[:-1]), ("std", np.shape(std)))
    s, ds = onp.broadcast_arrays(getval(std), getval(dstd))
    if onp.any(s < 0.0):
        raise ValueError("std must be >= 0 (a standard deviation)")
    if onp.any((s == 0.0) & (ds != 0.0)):
        raise ValueError("std must be > 0 wherever dstd != 0: the ratio d/dt sigma_t / sigma_t is undefined there")
    with onp.errstate(over="ignore", invalid="ignore", divide="ignore"):
        u = _gaussian_path_velocity(x, mean, dmean, std, dstd)
    return refuse_non_finite(u, "u_cond", large={"x": x, "mean": mean, "dmean": dmean, "dstd": dstd}, small={"std": std})


def _gaussian_path_velocity(x, mean, dmean, std, dstd):
    """``gaussian_path_velocity`` without checks, for callers that checked their inputs."""
    constant = getval(dstd) == 0.0
    ratio = np.where(constant, 0.0, dstd / np.where(constant, 1.0, std))
    return dmean + ratio[..., None] * (x - mean)


def _point_pair(a, b, a_name, b_name):
    a = as_points(a, a_name)
    b = as_points(b, b_name, d=np.shape(a)[1], like=a_name)
    if np.shape(b)[0] != np.shape(a)[0]:
        raise ValueError(f"{a_name} and {b_name} must hold the same number of points, got {np.shape(a)[0]} and {np.shape(b)[0]}")
    return a, b


def linear_interpolation_velocity(x0, x1):
    """Conditional velocity of the linear interpolation path  [lecture: Example 1]

        u_cond(x, t, z = (x0, x1)) = x1 - x0   (independent of x and t)

    Args:
        x0, x1: shape ``(n, d)`` each.

    Returns:
        shape ``(n, d)``.
    """
    x0, x1 = _point_pair(x0, x1, "x0", "x1")
    with onp.errstate(over="ignore", invalid="ignore"):
        u = x1 - x0
    return refuse_non_finite(u, "x1 - x0", large={"x0": x0, "x1": x1})


def conical_velocity(x, t, x1):
    """Conditional velocity of the conical Gaussian path  [lecture: Example 2; summary table, step 3]

        u_cond(x, t, z = x1) = (x1 - x) / (1 - t)

    The sign of the summary table. The text of Example 2 prints (x - x1) / (1 - t);
    the continuity equation (5) rejects it (see tests/test_paths.py). Undefined at t = 1:
    refused there with a ``ValueError`` naming t.

    Args:
        x: points, shape ``(n, d)``.
        t: a float or an array of shape ``(n,)``, every entry in ``[0, 1)``.
        x1: shape ``(n, d)``.

    Returns:
        shape ``(n, d)``.
    """
    x, x1 = _point_pair(x, x1, "x", "x1")
    t = as_time(t, np.shape(x)[0], low=0.0, high=1.0, like="x")
    if onp.any(onp.asarray(getval(t)) >= 1.0):
        raise ValueError("t must be < 1: the conical velocity (x1 - x) / (1 - t) is undefined at t = 1 "
                         "(the path is a Dirac delta at x1 there)")
    one_minus_t = 1.0 - np.reshape(t, (-1, 1)) if np.ndim(t) else 1.0 - t  # (n, 1) or a float
    with onp.errstate(over="ignore", invalid="ignore"):
        u = (x1 - x) / one_minus_t
    return refuse_non_finite(u, "(x1 - x) / (1 - t)", large={"x": x, "x1": x1}, small={"1 - t": onp.atleast_1d(getval(one_minus_t))})


def _time_vector(t, n):
    """A float or ``(n,)`` time as an ``(n,)`` array (autograd boxes pass through)."""
    return np.ones(n) * t


def _ddt(f, t_vec):
    """Elementwise d/dt of a schedule ``f: (n,) -> (n,)`` by autograd."""
    return elementwise_grad(lambda s: f(s) + 0.0 * s)(t_vec)  # + 0 s: a constant f is still traced


def _describe_times(t_vec, mask):
    bad = onp.unique(onp.asarray(getval(t_vec))[mask])
    return ", ".join(f"{v:.6g}" for v in bad[:5])


_GRID = onp.linspace(0.0, 1.0, 9)
"""Times at which a new path's schedules are checked (every use checks its own times too)."""


class GaussianPath:
    """A Gaussian conditional path  p(x | t, z) = N(alpha_t x1 + beta_t x0, sigma_t^2 I)  [lecture: Modeling Choices]

    The schedules are callables of t (an ``(n,)`` array) written in ``autograd.numpy``;
    their time derivatives are taken by autograd. ``z = x1`` (an ``(n, d)`` array) when
    ``beta`` is None, else ``z = (x0, x1)`` (a tuple of two ``(n, d)`` arrays) with
    ``x0 ~ N(0, I)``. Each schedule must return, for times in ``[0, 1]``, finite real
    numbers of shape ``(n,)`` (or a float), with ``sigma_t >= 0``: they are checked on a
    grid of ``[0, 1]`` when the path is made, and at the times of every use.

    Args:
        alpha: ``t -> alpha_t``, the weight of ``x1`` in the mean.
        sigma: ``t -> sigma_t >= 0``, the standard deviation.
        beta: ``t -> beta_t``, the weight of ``x0`` in the mean, or None (``z = x1``).
        name: used in error messages and ``repr``.
    """

    _slopes = None
    """``(alpha', beta', sigma')`` of a path whose schedules are affine in t (constants), or None:
    autograd differentiates the schedules. Saves three autograd traces per call of
    ``velocity`` or ``schedules``; ``tests/test_paths.py`` checks them against autograd."""

    def __init__(self, alpha, sigma, beta=None, name="GaussianPath"):
        self.alpha = check_callable(alpha, "alpha")
        self.sigma = check_callable(sigma, "sigma")
        self.beta = None if beta is None else check_callable(beta, "beta")
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        self.name = name
        self._values(_GRID)

    @property
    def conditions_on_pairs(self):
        """Whether ``z = (x0, x1)`` (True) or ``z = x1`` (False)  [lecture: Example 1, Example 2]"""
        return self.beta is not None

    def __repr__(self):
        return f"{self.name}()"

    # -- schedules: evaluated and checked ----------------------------------------------------

    def _schedule(self, f, which, t_vec):
        """``f(t)`` as an ``(n,)`` array, refused by the schedule's name unless real, finite and of the right shape."""
        value = f(t_vec)
        raw = getval(value)
        n = onp.shape(getval(t_vec))[0]
        if isinstance(raw, onp.ndarray):
            kind, shape = raw.dtype.kind, raw.shape
        elif isinstance(raw, numbers.Real) and not isinstance(raw, bool):
            kind, shape = "f", ()
        else:
            kind, shape = None, None
        if kind is None or kind not in "iuf":
            raise TypeError(f"{self.name}: the schedule {which}(t) must return real numbers, got "
                            f"{type(raw).__name__}" + (f" of dtype {raw.dtype}" if isinstance(raw, onp.ndarray) else ""))
        if shape not in ((), (n,)):
            raise ValueError(f"{self.name}: the schedule {which}(t) must return shape ({n},) for t of shape ({n},), "
                             f"got {shape}")
        if not onp.isfinite(raw).all():
            bad = onp.broadcast_to(~onp.isfinite(raw), (n,))
            raise ValueError(f"{self.name}: the schedule {which}(t) is not finite at t = {_describe_times(t_vec, bad)}")
        if which == "sigma" and (raw < 0.0).any():
            negative = onp.broadcast_to(raw < 0.0, (n,))
            raise ValueError(f"{self.name}: the schedule sigma(t) gives sigma_t < 0 at t = "
                             f"{_describe_times(t_vec, negative)}; a standard deviation must be >= 0")
        return value if shape == (n,) else value + 0.0 * t_vec

    def _values(self, t_vec):
        alpha = self._schedule(self.alpha, "alpha", t_vec)
        beta = 0.0 * t_vec if self.beta is None else self._schedule(self.beta, "beta", t_vec)
        return alpha, beta, self._schedule(self.sigma, "sigma", t_vec)

    # -- z ---------------------------------------------------------------------------------

    def split_z(self, z, d=None, like=None):
        """Check the conditioning variable and return ``(x0, x1)``  [lecture: Modeling Choices (z)]

        ``x0`` is None when ``z = x1``.

        Args:
            z: ``x1`` of shape ``(m, d)``, or ``(x0, x1)`` with both of shape ``(m, d)``.
            d: the expected dimension, or None.
            like: the name of the argument ``d`` comes from, for messages.
        """
        if d is not None:
            d = check_count(d, "d")
        if self.conditions_on_pairs:
            if not isinstance(z, (tuple, list)) or len(z) != 2:
                raise TypeError(
                    f"z must be a tuple (x0, x1) of two (m, d) arrays for {self.name}, "
                    f"got {type(getval(z)).__name__}" + (f" of length {len(z)}" if isinstance(z, (tuple, list)) else "")
                )
            x0 = as_points(z[0], "z[0] (x0)", d=d, like=like)
            x1 = as_points(z[1], "z[1] (x1)", d=d, like=like)
            if np.shape(x0) != np.shape(x1):
                raise ValueError(f"x0 and x1 of z must have the same shape, got {np.shape(x0)} and {np.shape(x1)}")
            return x0, x1
        if isinstance(z, (tuple, list)):
            raise TypeError(f"z must be an (m, d) array of x1 for {self.name}, got a {type(z).__name__}")
        return None, as_points(z, "z (x1)", d=d, like=like)

    def sample_z(self, n, data, rng):
        """Draw ``z ~ p(z)``: ``x1`` resampled from ``data``, with ``x0 ~ N(0, I)`` for pairs  [lecture: summary table, step 1]

        Args:
            n: number of samples.
            data: data points, shape ``(m, d)``, drawn with replacement.
            rng: ``numpy.random.Generator``.

        Returns:
            ``x1`` of shape ``(n, d)``, or the tuple ``(x0, x1)``.
        """
        n = check_count(n, "n")
        data = as_points(data, "data", allow_traced=False)
        rng = check_rng(rng)
        x1 = data[rng.integers(0, data.shape[0], size=n)]
        if self.conditions_on_pairs:
            return rng.standard_normal(x1.shape), x1
        return x1

    # -- schedules -------------------------------------------------------------------------

    def mean(self, t, z):
        """The mean  mu_t(z) = alpha_t x1 + beta_t x0  [lecture: Example 1, Example 2]

        Args:
            t: a float or an array of shape ``(n,)``.
            z: ``x1`` or ``(x0, x1)`` with ``n`` rows.

        Returns:
            shape ``(n, d)``.
        """
        x0, x1 = self.split_z(z)
        n = np.shape(x1)[0]
        t_vec = _time_vector(as_time(t, n, low=0.0, high=1.0, like="z"), n)
        alpha, beta, _ = self._values(t_vec)
        with onp.errstate(over="ignore", invalid="ignore"):
            mean = self._mean(alpha, beta, x0, x1)
        return refuse_non_finite(mean, "mu_t(z)", large={"z": x1 if x0 is None else np.concatenate([x0, x1])})

    def std(self, t):
        """The standard deviation  sigma_t  [lecture: Example 1, Example 2]

        Args:
            t: a float or an array of shape ``(n,)``.

        Returns:
            a float or an array like ``t``.
        """
        value = getval(as_real_array(t, "t", ndim=(0, 1), what="a float or a 1-D array of times"))
        t = as_time(t, onp.size(value) if onp.ndim(value) else 1, low=0.0, high=1.0)
        sigma = self._schedule(self.sigma, "sigma", np.ones(onp.size(getval(t))) * t)
        return sigma if onp.ndim(getval(t)) else sigma[0]

    @staticmethod
    def _mean(alpha, beta, x0, x1):
        mean = alpha[:, None] * x1
        if x0 is not None:
            mean = mean + beta[:, None] * x0
        return mean

    def _derivatives(self, t_vec, sigma=None):
        """``(alpha', beta', sigma')`` by autograd (or ``_slopes``, for the affine schedules of the paths below).

        ``sigma'`` may be infinite or NaN where ``sigma_t = 0`` (a square-root schedule
        there has no derivative); everywhere else every derivative must be finite.
        """
        if self._slopes is not None:  # constant derivatives, the same numbers autograd gives (tested)
            return tuple(slope + 0.0 * t_vec for slope in self._slopes)
        beta = self.beta if self.beta is not None else (lambda s: 0.0 * s)
        with onp.errstate(all="ignore"):  # sigma_t' is infinite where a sqrt schedule hits 0
            derivatives = (_ddt(self.alpha, t_vec), _ddt(beta, t_vec), _ddt(self.sigma, t_vec))
        if sigma is None:
            sigma = self._schedule(self.sigma, "sigma", t_vec)
        at_zero = onp.asarray(getval(sigma)) <= 0.0
        for which, dv in zip(("alpha", "beta", "sigma"), derivatives):
            raw = onp.asarray(getval(dv))
            bad = ~onp.isfinite(raw) & (~at_zero if which == "sigma" else True)
            if onp.any(bad):
                raise ValueError(f"{self.name}: the time derivative of the schedule {which}(t) is not finite "
                                 f"at t = {_describe_times(t_vec, bad)}")
        return derivatives

    def schedules(self, t):
        """``(alpha_t, beta_t, sigma_t)`` and their time derivatives, by autograd  [lecture: Modeling Choices]

        Args:
            t: an array of shape ``(n,)`` (or a float), times in ``[0, 1]``.

        Returns:
            ``(alpha, beta, sigma), (dalpha, dbeta, dsigma)``, each of shape ``(n,)``
            (``beta = dbeta = 0`` when ``z = x1``; ``dsigma`` is infinite where a
            square-root schedule reaches ``sigma_t = 0``, the variance-preserving path at ``t = 1``,
            and NaN where its derivative is 0 / 0 there; finite everywhere else).
        """
        value = getval(t)
        if value is t:
            t = as_time_array(t)
        else:
            as_time_array(value)
        t = np.ones(np.shape(getval(t))) * t
        values = self._values(t)
        return values, self._derivatives(t, values[2])

    # -- the path --------------------------------------------------------------------------

    def _parse(self, x, t, z, name="x"):
        x0, x1 = self.split_z(z)
        n, d = np.shape(x1)
        x = as_points(x, name, d=d, like="z")
        if np.shape(x)[0] != n:
            raise ValueError(f"{name} and z must have the same number of rows, got {np.shape(x)[0]} and {n}")
        t_vec = _time_vector(as_time(t, n, low=0.0, high=1.0, like=name), n)
        return x, t_vec, x0, x1

    def _check_std(self, t_vec, std):
        negative = onp.asarray(getval(std)) < 0.0
        if onp.any(negative):
            raise ValueError(f"{self.name}: the schedule gives sigma_t < 0 at t = {_describe_times(t_vec, negative)}; "
                             "a standard deviation must be >= 0")
        return std

    def _refuse_dirac(self, t_vec, std, what):
        self._check_std(t_vec, std)
        mask = onp.asarray(getval(std)) <= 0.0
        if onp.any(mask):
            raise ValueError(
                f"{self.name}: sigma_t = 0 at t = {_describe_times(t_vec, mask)}, where p(x | t, z) is a "
                f"Dirac delta at mu_t(z) and {what}; use t where sigma_t > 0"
                + (" (or OptimalTransportPath(sigma_min > 0))" if not self.conditions_on_pairs else " (sigma > 0)")
            )

    def _culprits(self, x, x0, x1, name="x"):
        return {name: x, "z": x1 if x0 is None else np.concatenate([x0, x1])}

    def flow(self, eps, t, z):
        """Conditional flow  psi_t(eps) = mu_t(z) + sigma_t eps  [lecture: Example 1, Example 2]

        ``eps ~ N(0, I)`` gives ``x ~ p(x | t, z)``; d/dt psi_t(eps) = u_cond(psi_t(eps), t, z).

        Args:
            eps: shape ``(n, d)``.
            t: a float or an array of shape ``(n,)``.
            z: ``x1`` or ``(x0, x1)`` with ``n`` rows.

        Returns:
            shape ``(n, d)``.
        """
        eps, t_vec, x0, x1 = self._parse(eps, t, z, name="eps")
        alpha, beta, sigma = self._values(t_vec)
        with onp.errstate(over="ignore", invalid="ignore"):
            x = self._mean(alpha, beta, x0, x1) + sigma[:, None] * eps
        return refuse_non_finite(x, "psi_t(eps) = mu_t(z) + sigma_t eps", large=self._culprits(eps, x0, x1, "eps"))

    def sample_x(self, t, z, rng):
        """Draw  x ~ p(x | t, z) = N(mu_t(z), sigma_t^2 I)  [lecture: summary table, step 4]

        Where ``sigma_t = 0`` (a Dirac) the sample is the mean ``mu_t(z)``.

        Args:
            t: a float or an array of shape ``(n,)``.
            z: ``x1`` or ``(x0, x1)`` with ``n`` rows.
            rng: ``numpy.random.Generator``.

        Returns:
            shape ``(n, d)``.
        """
        rng = check_rng(rng)
        _, x1 = self.split_z(z)
        return self.flow(rng.standard_normal(np.shape(x1)), t, z)

    def logpdf(self, x, t, z):
        """Log-density  log p(x | t, z) = log N(x; mu_t(z), sigma_t^2 I)  [lecture: Example 1, Example 2]

        Args:
            x: points, shape ``(n, d)``.
            t: a float or an array of shape ``(n,)``.
            z: ``x1`` or ``(x0, x1)`` with ``n`` rows (row i conditions point i).

        Returns:
            shape ``(n,)``.

        Raises:
            ValueError: where ``sigma_t = 0`` (a Dirac delta has no density), and where the
                log-density is below the float64 range (a point too far from its mean, or
                a ``sigma_t`` too small), naming the argument.
        """
        x, t_vec, x0, x1 = self._parse(x, t, z)
        alpha, beta, std = self._values(t_vec)
        self._refuse_dirac(t_vec, std, "has no density")
        with onp.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            log_p = _gaussian_logpdf(x, self._mean(alpha, beta, x0, x1), std)
        return refuse_non_finite(log_p, "log p(x | t, z)", large=self._culprits(x, x0, x1), small={"sigma_t": std})

    def velocity(self, x, t, z):
        """Conditional velocity  u_cond(x, t, z) = mu_t'(z) + sigma_t'/sigma_t (x - mu_t(z)), by autograd  [lecture: Example 2; eq. (5)]

        Args:
            x: points, shape ``(n, d)``.
            t: a float or an array of shape ``(n,)``.
            z: ``x1`` or ``(x0, x1)`` with ``n`` rows.

        Returns:
            shape ``(n, d)``.

        Raises:
            ValueError: where ``sigma_t = 0`` and ``sigma_t' != 0`` (the velocity is 0/0).
        """
        x, t_vec, x0, x1 = self._parse(x, t, z)
        alpha, beta, std = self._values(t_vec)
        dalpha, dbeta, dstd = self._derivatives(t_vec, std)
        singular = (onp.asarray(getval(std)) <= 0.0) & (onp.asarray(getval(dstd)) != 0.0)
        if onp.any(singular):
            self._refuse_dirac(t_vec, onp.where(singular, 0.0, 1.0), "the velocity (d/dt sigma_t / sigma_t) is undefined")
        with onp.errstate(over="ignore", invalid="ignore", divide="ignore"):
            u = _gaussian_path_velocity(x, self._mean(alpha, beta, x0, x1), self._mean(dalpha, dbeta, x0, x1), std, dstd)
        return refuse_non_finite(u, "u_cond(x, t, z)", large=self._culprits(x, x0, x1), small={"sigma_t": std})


class LinearInterpolationPath(GaussianPath):
    """Linear interpolation  p(x | t, z = (x0, x1)) = N((1 - t) x0 + t x1, sigma^2 I)  [lecture: Example 1]

    ``z = (x0, x1) ~ p0 x p_data`` and ``u_cond = x1 - x0``. With ``sigma = 0`` (the
    lecture's choice, needed for the exact boundary conditions) the path is a Dirac
    delta: ``logpdf`` refuses, ``sample_x`` is the deterministic interpolant. With
    ``sigma > 0`` the boundary marginals are ``p0`` and ``p_data`` blurred by
    ``N(0, sigma^2 I)``.

    Args:
        sigma: the constant standard deviation, ``>= 0``.
    """

    def __init__(self, sigma=0.0):
        check_finite_number(sigma, "sigma", nonnegative=True)
        self.sigma_value = float(getval(sigma))
        super().__init__(
            alpha=lambda t: t, beta=lambda t: 1.0 - t, sigma=lambda t: self.sigma_value + 0.0 * t,
            name=f"LinearInterpolationPath(sigma={self.sigma_value:g})",
        )
        self._slopes = (1.0, -1.0, 0.0)

    def __repr__(self):
        return self.name

    def velocity(self, x, t, z):
        """Conditional velocity  u_cond(x, t, z = (x0, x1)) = x1 - x0  [lecture: Example 1; summary table, step 3]

        Args:
            x: points, shape ``(n, d)`` (unused but checked).
            t: a float or an array of shape ``(n,)`` (unused but checked).
            z: ``(x0, x1)``, each of shape ``(n, d)``.

        Returns:
            shape ``(n, d)``.
        """
        x, _, x0, x1 = self._parse(x, t, z)
        with onp.errstate(over="ignore", invalid="ignore"):
            u = x1 - x0 + 0.0 * x  # + 0 x: traced in x, so div u = 0 by autograd
        return refuse_non_finite(u, "x1 - x0", large=self._culprits(x, x0, x1, "z"))


class ConicalGaussianPath(GaussianPath):
    """Conical Gaussian path  p(x | t, z = x1) = N(t x1, (1 - t)^2 I)  [lecture: Example 2]

    ``z = x1 ~ p_data`` and ``u_cond = (x1 - x) / (1 - t)``. At ``t = 1`` the path is the
    Dirac delta at ``x1``: ``sample_x`` returns ``x1``; ``logpdf`` and ``velocity`` raise
    a ``ValueError`` naming t (use ``t < 1``, or ``OptimalTransportPath(sigma_min)``).
    """

    def __init__(self):
        super().__init__(alpha=lambda t: t, sigma=lambda t: 1.0 - t, name="ConicalGaussianPath")
        self._slopes = (1.0, 0.0, -1.0)

    def velocity(self, x, t, z):
        """Conditional velocity  u_cond(x, t, z = x1) = (x1 - x) / (1 - t)  [lecture: Example 2; summary table, step 3]

        Args:
            x: points, shape ``(n, d)``.
            t: a float or an array of shape ``(n,)`` with every entry < 1.
            z: ``x1``, shape ``(n, d)``.

        Returns:
            shape ``(n, d)``.

        Raises:
            ValueError: at ``t = 1``.
        """
        x, t_vec, _, x1 = self._parse(x, t, z)
        self._refuse_dirac(t_vec, 1.0 - getval(t_vec), "the velocity (x1 - x) / (1 - t) is undefined")
        with onp.errstate(over="ignore", invalid="ignore"):
            u = (x1 - x) / (1.0 - np.reshape(t_vec, (-1, 1)))
        return refuse_non_finite(u, "(x1 - x) / (1 - t)", large={"x": x, "z": x1}, small={"1 - t": 1.0 - getval(t_vec)})


class OptimalTransportPath(GaussianPath):
    """Conditional optimal-transport path of Lipman et al. (2023)  N(t x1, (1 - (1 - sigma_min) t)^2 I)  [lecture: Example 2 (sigma_min variant)]

        mu_t(x1) = t x1,  sigma_t = 1 - (1 - sigma_min) t,
        u_cond(x, t, x1) = (x1 - (1 - sigma_min) x) / (1 - (1 - sigma_min) t)

    (Lipman et al., "Flow Matching for Generative Modeling", ICLR 2023, eqs. 20-21).
    ``sigma_min = 0`` is the conical path; ``sigma_min > 0`` keeps ``sigma_1 = sigma_min``
    so the path and its velocity are defined on all of ``[0, 1]``, at the price of
    ``p(x | 1, x1) = N(x1, sigma_min^2 I)`` instead of a Dirac.

    Args:
        sigma_min: ``sigma_1``, in ``[0, 1)``.
    """

    def __init__(self, sigma_min=1e-4):
        check_finite_number(sigma_min, "sigma_min", nonnegative=True)
        if float(getval(sigma_min)) >= 1.0:
            raise ValueError(f"sigma_min must be in [0, 1), got {sigma_min}")
        self.sigma_min = float(getval(sigma_min))
        super().__init__(
            alpha=lambda t: t, sigma=lambda t: 1.0 - (1.0 - self.sigma_min) * t,
            name=f"OptimalTransportPath(sigma_min={self.sigma_min:g})",
        )
        self._slopes = (1.0, 0.0, -(1.0 - self.sigma_min))

    def __repr__(self):
        return self.name


class VariancePreservingPath(GaussianPath):
    """Variance-preserving diffusion path, in flow-matching time  [lecture: Modeling Choices (diffusion paths)]

    Diffusion models run time from data (s = 0) to noise (s = 1) with the forward SDE
    ``dx = -beta(s)/2 x ds + sqrt(beta(s)) dW``, ``beta(s) = beta_min + s (beta_max -
    beta_min)``, whose transition is ``N(a(s) x1, (1 - a(s)^2) I)`` with

        a(s) = exp(-T(s) / 2),   T(s) = int_0^s beta = beta_min s + (beta_max - beta_min) s^2 / 2.

    Here ``t = 1 - s`` (t = 0 noise, t = 1 data), as in Lipman et al. (2023), eq. (19):

        mu_t(x1) = a(1 - t) x1,  sigma_t = sqrt(1 - a(1 - t)^2).

    At ``t = 0`` the path is ``N(a(1) x1, (1 - a(1)^2) I)``, close to but not exactly
    ``p0`` (``a(1) = exp(-5.025) = 6.6e-3`` for the defaults 0.1 and 20). At ``t = 1``,
    ``sigma_1 = 0``: ``logpdf`` and ``velocity`` refuse there like the conical path.

    Args:
        beta_min, beta_max: the noise rates ``beta(0)`` and ``beta(1)``, ``0 <= beta_min <= beta_max``
            with ``beta_max > 0``.
    """

    def __init__(self, beta_min=0.1, beta_max=20.0):
        beta_min = check_real(beta_min, "beta_min", low=0.0)
        beta_max = check_real(beta_max, "beta_max", low=0.0, low_open=True)
        if beta_max < beta_min:
            raise ValueError(f"beta_max must be >= beta_min, got beta_min={beta_min}, beta_max={beta_max}")
        self.beta_min, self.beta_max = beta_min, beta_max
        super().__init__(alpha=self._a_of_t, sigma=self._sigma_of_t,
                         name=f"VariancePreservingPath(beta_min={self.beta_min:g}, beta_max={self.beta_max:g})")

    def __repr__(self):
        return self.name

    def integrated_rate(self, s):
        """Integrated noise rate  T(s) = int_0^s beta = beta_min s + (beta_max - beta_min) s^2 / 2  [lecture: Modeling Choices (diffusion paths)]

        Args:
            s: diffusion time (``s = 1 - t``), a float or a 1-D array of times in ``[0, 1]``.

        Returns:
            a float, or an array like ``s``.
        """
        arr = as_time_array(s, "s")
        rate = self._integrated_rate(arr)
        return float(rate[0]) if onp.ndim(s) == 0 else rate

    def _integrated_rate(self, s):
        return self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s**2

    def _a_of_t(self, t):
        return np.exp(-0.5 * self._integrated_rate(1.0 - t))

    def _sigma_of_t(self, t):
        return np.sqrt(-np.expm1(-self._integrated_rate(1.0 - t)))  # sqrt(1 - a^2), accurate near t = 1

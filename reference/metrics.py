"""Sample-quality distances between two sample sets, and their noise floor  [lecture: Flow Matching In Practice, step 5]

Step 5 of the lecture's summary samples ``p_1 ~ p_data``; these distances measure the
``~`` from samples alone. Each takes ``x`` of shape ``(n, d)`` and ``y`` of shape
``(m, d)``:

- ``energy_distance``: ``E(P, Q) = 2 E|X - Y| - E|X - X'| - E|Y - Y'|`` (Szekely and
  Rizzo), as the unbiased U-statistic (default; may be slightly negative) or the
  V-statistic (the energy distance between the two empirical measures, always ``>= 0``);
- ``mmd2``: the squared maximum mean discrepancy with a Gaussian kernel
  ``k(a, b) = exp(-|a - b|^2 / (2 h^2))``, unbiased by default (Gretton et al. 2012),
  the bandwidth ``h`` given or set by the median heuristic;
- ``sliced_wasserstein2``: the squared sliced Wasserstein-2 distance, the average over
  random unit directions ``theta`` of the squared 1-D Wasserstein-2 distance between the
  projected samples; with ``n != m`` the 1-D distance is the exact integral of the
  squared difference of the two empirical quantile functions (no resampling).

A value means little alone: ``noise_floor`` measures the same metric between two
independent draws of the data, which is what a perfect model would score with the same
sample sizes. The distance matrices take ``O(n m)`` memory.

``path_length_ratio`` measures trajectories rather than samples: how far a sampled path
``x(t)`` departs from the straight chord from ``x(0)`` to ``x(1)``.
"""

from typing import NamedTuple

import numpy as onp
from scipy.spatial.distance import cdist, pdist

from ._validate import (
    as_points,
    as_real_array,
    check_bool,
    check_callable,
    check_count,
    check_real,
    check_rng,
    refuse_non_finite,
)

__all__ = [
    "energy_distance",
    "gaussian_kernel",
    "median_bandwidth",
    "mmd2",
    "wasserstein2_1d",
    "sliced_wasserstein2",
    "NoiseFloor",
    "noise_floor",
    "path_length_ratio",
]


def _sample_pair(x, y, min_points=1):
    x = as_points(x, "x", allow_traced=False)
    y = as_points(y, "y", d=x.shape[1], allow_traced=False, like="x")
    for name, s in (("x", x), ("y", y)):
        if s.shape[0] < min_points:
            raise ValueError(
                f"{name} must hold at least {min_points} points for the unbiased (U-statistic) "
                f"estimator, got {s.shape[0]}; use unbiased=False for the V-statistic"
            )
    return x, y


_BIG = 2.0**300
"""Beyond this size, points are scaled by a power of two before their distances are taken
(a power of two scales exactly, so nothing changes but the range): squared distances of
points near 1e154 would overflow float64."""


def _scale_of(*arrays):
    """A power of two ``c`` with ``max |a| / c <= 1`` when the arrays are that large, else 1."""
    m = max(float(onp.max(onp.abs(a))) for a in arrays)
    return 1.0 if m <= _BIG else float(2.0 ** onp.ceil(onp.log2(m)))


def _within_mean(K, unbiased):
    """Mean of a symmetric within-sample matrix: over i != j (U-statistic) or all i, j (V)."""
    n = K.shape[0]
    if unbiased:
        return (K.sum() - onp.trace(K)) / (n * (n - 1))
    return K.mean()


def energy_distance(x, y, unbiased=True):
    """Energy distance between two samples  [lecture: Flow Matching In Practice, step 5]

        E(P, Q) = 2 E|X - Y| - E|X - X'| - E|Y - Y'|,   X, X' ~ P,  Y, Y' ~ Q,

    zero exactly when ``P = Q``. The cross term is the mean over all ``n m`` pairs; the
    within-sample terms are means over ``i != j`` (unbiased U-statistic: its expectation
    is ``E(P, Q)``, and it can be negative when ``P = Q``) or over all ``i, j``
    (V-statistic: the energy distance between the two empirical measures, ``>= 0``,
    larger by ``E|X - X'| / n + E|Y - Y'| / m`` in expectation).

    Args:
        x: samples of ``P``, shape ``(n, d)`` (``n >= 2`` if unbiased).
        y: samples of ``Q``, shape ``(m, d)`` (``m >= 2`` if unbiased).
        unbiased: U-statistic (True) or V-statistic (False).

    Returns:
        a float.
    """
    unbiased = check_bool(unbiased, "unbiased")
    x, y = _sample_pair(x, y, 2 if unbiased else 1)
    c = _scale_of(x, y)
    x, y = x / c, y / c  # E(c x, c y) = c E(x, y)
    cross = cdist(x, y).mean()
    with onp.errstate(over="ignore"):
        value = c * (2.0 * cross - _within_mean(cdist(x, x), unbiased) - _within_mean(cdist(y, y), unbiased))
    return float(refuse_non_finite(value, "the energy distance", large={"x": x * c, "y": y * c}))


def gaussian_kernel(x, y, bandwidth):
    """Gaussian kernel matrix  k(x_i, y_j) = exp(-|x_i - y_j|^2 / (2 h^2))  [lecture: Flow Matching In Practice, step 5]

    Args:
        x: shape ``(n, d)``.
        y: shape ``(m, d)``.
        bandwidth: ``h > 0``.

    Returns:
        shape ``(n, m)``.
    """
    x, y = _sample_pair(x, y)
    h = check_real(bandwidth, "bandwidth", low=0.0, low_open=True)
    c = _scale_of(x, y)
    if c == 1.0 and h >= 1.0 / _BIG:
        return onp.exp(-cdist(x, y, "sqeuclidean") / (2.0 * h * h))
    # far points or a tiny bandwidth: |x - y| / h from scaled distances; an overflow to inf gives k = 0, as it should
    dist = cdist(x / c, y / c)
    with onp.errstate(over="ignore"):
        ratio = onp.where(dist == 0.0, 0.0, dist * (c / h))
        return onp.exp(-0.5 * ratio * ratio)


def median_bandwidth(x, y):
    """Median heuristic  h = median_{a != b} |a - b| over the pooled sample  [lecture: Flow Matching In Practice, step 5]

    Args:
        x: shape ``(n, d)``.
        y: shape ``(m, d)``.

    Returns:
        ``h``, a float ``> 0``.
    """
    x, y = _sample_pair(x, y)
    c = _scale_of(x, y)
    pooled = onp.concatenate([x, y]) / c  # at least two points: x and y have one each
    with onp.errstate(over="ignore"):
        h = float(onp.median(pdist(pooled))) * c
    if h <= 0:
        raise ValueError("x and y: the median heuristic gives h = 0 (more than half of the pairs of points coincide); "
                         "pass a bandwidth")
    return float(refuse_non_finite(h, "the median distance", large={"x": x, "y": y}))


def mmd2(x, y, bandwidth=None, unbiased=True):
    """Squared MMD with a Gaussian kernel  [lecture: Flow Matching In Practice, step 5]

        MMD^2(P, Q) = E k(X, X') + E k(Y, Y') - 2 E k(X, Y),
        k(a, b) = exp(-|a - b|^2 / (2 h^2)).

    Within-sample means are over ``i != j`` (unbiased, Gretton et al. 2012, eq. (3):
    expectation ``MMD^2`` for a fixed ``h``, can be negative) or over all ``i, j``
    (V-statistic, ``>= 0``). With ``bandwidth=None`` the median heuristic chooses ``h``
    from the pooled sample; ``h`` then depends on the data, and the estimator is
    unbiased only conditionally on it.

    Args:
        x: samples of ``P``, shape ``(n, d)``.
        y: samples of ``Q``, shape ``(m, d)``.
        bandwidth: ``h > 0``, or None for ``median_bandwidth(x, y)``.
        unbiased: U-statistic (True) or V-statistic (False).

    Returns:
        a float.
    """
    unbiased = check_bool(unbiased, "unbiased")
    x, y = _sample_pair(x, y, 2 if unbiased else 1)
    h = median_bandwidth(x, y) if bandwidth is None else check_real(bandwidth, "bandwidth", low=0.0, low_open=True)
    k_xy = gaussian_kernel(x, y, h).mean()
    k_xx = _within_mean(gaussian_kernel(x, x, h), unbiased)
    k_yy = _within_mean(gaussian_kernel(y, y, h), unbiased)
    return float(k_xx + k_yy - 2.0 * k_xy)


def wasserstein2_1d(a, b):
    """Squared 1-D Wasserstein-2 distance between empirical measures  [lecture: Flow Matching In Practice, step 5]

        W2^2 = int_0^1 (F_a^{-1}(q) - F_b^{-1}(q))^2 dq,

    with ``F^{-1}`` the empirical quantile functions (uniform weights ``1/n`` and
    ``1/m``). Both are step functions, with steps at ``k/n`` and ``k/m``; between
    consecutive points of the merged set of steps the integrand is constant, so the
    integral is an exact finite sum. When ``n = m`` it is the mean squared difference of
    the sorted samples (the monotone coupling is optimal in 1-D).

    Args:
        a: shape ``(L, n)``: ``L`` one-dimensional samples of size ``n``.
        b: shape ``(L, m)``.

    Returns:
        shape ``(L,)``.
    """
    a = as_real_array(a, "a", ndim=2, what="an array of shape (L, n)", allow_traced=False)
    b = as_real_array(b, "b", ndim=2, what="an array of shape (L, m)", allow_traced=False)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must have shapes (L, n) and (L, m) with the same L, got {a.shape} and {b.shape}")
    for name, v in (("a", a), ("b", b)):
        if v.shape[0] < 1 or v.shape[1] < 1:
            raise ValueError(f"{name} must hold at least one sample of at least one value, got shape {v.shape}")
    c = _scale_of(a, b)
    with onp.errstate(over="ignore"):
        w2 = c * c * _w2_sorted(onp.sort(a / c, axis=1), onp.sort(b / c, axis=1))  # W2^2(c a, c b) = c^2 W2^2(a, b)
    return refuse_non_finite(w2, "W2^2", large={"a": a, "b": b})


def _w2_sorted(a, b):
    n, m = a.shape[1], b.shape[1]
    if n == m:
        return onp.mean((a - b) ** 2, axis=1)
    q = onp.sort(onp.concatenate([onp.arange(1, n + 1) / n, onp.arange(1, m + 1) / m]))
    widths = onp.diff(q, prepend=0.0)
    mid = q - 0.5 * widths  # inside each interval: both quantile functions are constant there
    i = onp.minimum((mid * n).astype(int), n - 1)
    j = onp.minimum((mid * m).astype(int), m - 1)
    return ((a[:, i] - b[:, j]) ** 2) @ widths


def sliced_wasserstein2(x, y, rng, n_projections=128):
    """Squared sliced Wasserstein-2 distance  [lecture: Flow Matching In Practice, step 5]

        SW2^2(P, Q) = E_theta W2^2(theta^T # P, theta^T # Q),   theta ~ uniform on S^{d-1},

    estimated with ``n_projections`` directions drawn from ``rng`` and the exact 1-D
    ``W2^2`` of ``wasserstein2_1d`` between the projected samples (unequal sizes handled
    exactly through the quantile functions). Between ``N(m1, s1^2 I)`` and
    ``N(m2, s2^2 I)`` in ``d`` dimensions it equals ``|m1 - m2|^2 / d + (s1 - s2)^2``.
    With finite samples it is biased upwards (it is ``> 0`` for two draws of the same
    distribution); see ``noise_floor``.

    Args:
        x: shape ``(n, d)``.
        y: shape ``(m, d)``.
        rng: ``numpy.random.Generator`` for the directions.
        n_projections: number of directions ``L``.

    Returns:
        a float.
    """
    x, y = _sample_pair(x, y)
    rng = check_rng(rng)
    n_projections = check_count(n_projections, "n_projections")
    theta = rng.standard_normal((n_projections, x.shape[1]))
    theta /= onp.linalg.norm(theta, axis=1, keepdims=True)  # uniform on the sphere
    c = _scale_of(x, y)
    pa, pb = theta @ (x / c).T, theta @ (y / c).T
    with onp.errstate(over="ignore"):
        value = c * c * float(onp.mean(_w2_sorted(onp.sort(pa, axis=1), onp.sort(pb, axis=1))))
    return float(refuse_non_finite(value, "SW2^2", large={"x": x, "y": y}))


class _NoiseFloorFields(NamedTuple):
    mean: float
    se: float


class NoiseFloor(_NoiseFloorFields):
    """Noise floor of a sample metric: its mean over pairs of data draws and the standard error  [lecture: Flow Matching In Practice, step 5]

    Args:
        mean: a finite real number.
        se: its standard error, finite and ``>= 0``.
    """

    __slots__ = ()

    def __new__(cls, mean, se):
        return super().__new__(cls, check_real(mean, "mean"), check_real(se, "se", low=0.0))


def noise_floor(metric, sampler, n, rng, n_repeats=10):
    """Noise floor of a sample metric: its value between two independent draws of the data  [lecture: Flow Matching In Practice, step 5]

        floor = mean_r metric(X_r, Y_r),   X_r, Y_r ~ p_data independent, n points each,
        se    = std_r(metric(X_r, Y_r)) / sqrt(n_repeats).

    A model whose samples score within the spread of this floor is indistinguishable
    from the data by that metric at that sample size.

    Args:
        metric: ``metric(x, y) -> float`` (bind extra arguments such as the ``rng`` of
            ``sliced_wasserstein2`` with ``functools.partial``).
        sampler: ``sampler(n, rng) -> (n, d)``, e.g. ``lambda n, rng: make_dataset("moons", n, rng)``.
        n: points in each draw.
        rng: ``numpy.random.Generator``.
        n_repeats: number of independent pairs (``>= 2``).

    Returns:
        ``NoiseFloor(mean, se)``.
    """
    check_callable(metric, "metric")
    check_callable(sampler, "sampler")
    n = check_count(n, "n")
    rng = check_rng(rng)
    n_repeats = check_count(n_repeats, "n_repeats", minimum=2)
    values = []
    for _ in range(n_repeats):
        x = as_points(sampler(n, rng), "sampler(n, rng)")
        if x.shape[0] != n:
            raise ValueError(f"sampler(n, rng) must return {n} points, got shape {x.shape}")
        y = as_points(sampler(n, rng), "sampler(n, rng)", d=x.shape[1])
        if y.shape[0] != n:
            raise ValueError(f"sampler(n, rng) must return {n} points, got shape {y.shape}")
        values.append(_metric_value(metric(x, y)))
    values = onp.asarray(values)
    return NoiseFloor(float(values.mean()), float(values.std(ddof=1) / onp.sqrt(n_repeats)))


def _metric_value(value):
    """A metric's value as a float: a finite real number (a 0-d array or a 1-element one too)."""
    arr = onp.asarray(value)
    if arr.dtype.kind not in "iuf" or arr.size != 1:
        raise TypeError(f"metric(x, y) must return a real number, got {type(value).__name__}"
                        + (f" of shape {arr.shape} and dtype {arr.dtype}" if isinstance(value, onp.ndarray) else ""))
    v = float(arr.reshape(()))
    if not onp.isfinite(v):
        raise ValueError(f"metric(x, y) returned a non-finite value ({v})")
    return v


def path_length_ratio(path):
    """Length of each trajectory over its chord  L_i / |x_i(1) - x_i(0)|  [lecture: Flow Matching In Practice, step 5]

        L_i = sum_k |x_i(t_{k+1}) - x_i(t_k)|,   ratio_i = L_i / |x_i(t_K) - x_i(t_0)| >= 1,

    with equality exactly for a straight, monotone trajectory. Straight trajectories are
    what one Euler step integrates exactly.

    Args:
        path: states along the trajectories, shape ``(K + 1, n, d)`` (as returned by
            ``ode.integrate(..., return_path=True)``), ``K >= 1``.

    Returns:
        shape ``(n,)``.
    """
    path = as_real_array(path, "path", ndim=3, what="an array of shape (K + 1, n, d)", allow_traced=False)
    if path.shape[0] < 2 or path.shape[1] < 1 or path.shape[2] < 1:
        raise ValueError(f"path must have shape (K + 1, n, d) with K >= 1, got {path.shape}")
    path = path / _scale_of(path)  # the ratio does not change under scaling
    length = onp.sum(onp.linalg.norm(onp.diff(path, axis=0), axis=2), axis=0)
    chord = onp.linalg.norm(path[-1] - path[0], axis=1)
    if onp.any(chord == 0.0):
        raise ValueError(
            f"path: trajectory {int(onp.argmax(chord == 0.0))} ends where it starts: its length ratio is undefined"
        )
    return length / chord

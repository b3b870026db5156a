"""Minibatch optimal-transport pairing of base and data points  [lecture: Flow Matching In Practice, step 4 (z = (x0, x1))]

The linear-interpolation path conditions on ``z = (x0, x1) ~ p0 x p_data``: in a
minibatch, ``x0_i`` and ``x1_i`` are drawn independently. Minibatch OT (Pooladian et
al. 2023; Tong et al. 2023) keeps both marginals but re-pairs the batch by the
permutation ``sigma`` that minimises the total squared distance

    sum_i |x0_i - x1_sigma(i)|^2,

an exact assignment problem solved by ``scipy.optimize.linear_sum_assignment``.
Conditional straight lines then cross less, the marginal field they average to bends
less, and its trajectories are straighter.
"""

import numpy as onp
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from ._validate import as_points, refuse_non_finite

_BIG = 2.0**300
"""Beyond this size, points are scaled by a power of two (exactly) before their costs are compared."""

__all__ = ["squared_cost_matrix", "ot_permutation", "ot_pair", "pairing_cost"]


def _batch_pair(x0, x1):
    x0 = as_points(x0, "x0", allow_traced=False)
    x1 = as_points(x1, "x1", d=x0.shape[1], allow_traced=False, like="x0")
    if x1.shape[0] != x0.shape[0]:
        raise ValueError(f"x0 and x1 must hold the same number of points, got {x0.shape[0]} and {x1.shape[0]}")
    return x0, x1


def squared_cost_matrix(x0, x1):
    """Squared Euclidean cost  C_ij = |x0_i - x1_j|^2  [lecture: Flow Matching In Practice, step 4]

    Args:
        x0: shape ``(n, d)``.
        x1: shape ``(n, d)``.

    Returns:
        shape ``(n, n)``.
    """
    x0, x1 = _batch_pair(x0, x1)
    with onp.errstate(over="ignore"):
        cost = cdist(x0, x1, "sqeuclidean")
    return refuse_non_finite(cost, "|x0_i - x1_j|^2", large={"x0": x0, "x1": x1})


def _scaled(x0, x1):
    """The pair divided by one power of two when it is large: the optimal pairing does not change."""
    m = max(float(onp.max(onp.abs(x0))), float(onp.max(onp.abs(x1))))
    c = 1.0 if m <= _BIG else float(2.0 ** onp.ceil(onp.log2(m)))
    return x0 / c, x1 / c


def ot_permutation(x0, x1):
    """Optimal assignment  sigma = argmin_sigma sum_i |x0_i - x1_sigma(i)|^2  [lecture: Flow Matching In Practice, step 4]

    Args:
        x0: base points, shape ``(n, d)``.
        x1: data points, shape ``(n, d)``.

    Returns:
        ``sigma``, an integer array of shape ``(n,)`` (a permutation of ``0..n-1``):
        ``x0[i]`` is paired with ``x1[sigma[i]]``.
    """
    x0, x1 = _batch_pair(x0, x1)
    rows, cols = linear_sum_assignment(cdist(*_scaled(x0, x1), "sqeuclidean"))
    return cols[onp.argsort(rows)]  # rows come back sorted; argsort keeps that explicit


def ot_pair(x0, x1):
    """Pair a minibatch by exact optimal transport  (x0_i, x1_sigma(i))  [lecture: Flow Matching In Practice, step 4]

    Args:
        x0: base points, shape ``(n, d)``.
        x1: data points, shape ``(n, d)``.

    Returns:
        ``(x0, x1[sigma])``: a copy of ``x0`` (never the caller's array, so that updating one cannot change
        the other) and ``x1`` reordered by ``ot_permutation``, so that row ``i`` of both is an optimally paired
        ``z_i``.
    """
    x0, x1 = _batch_pair(x0, x1)
    return x0.copy(), x1[ot_permutation(x0, x1)]


def pairing_cost(x0, x1):
    """Total squared cost of the row-wise pairing  sum_i |x0_i - x1_i|^2  [lecture: Flow Matching In Practice, step 4]

    Args:
        x0: shape ``(n, d)``.
        x1: shape ``(n, d)``.

    Returns:
        a float.
    """
    x0, x1 = _batch_pair(x0, x1)
    with onp.errstate(over="ignore", invalid="ignore"):
        cost = float(onp.sum((x0 - x1) ** 2))
    return float(refuse_non_finite(cost, "sum_i |x0_i - x1_i|^2", large={"x0": x0, "x1": x1}))

"""The planar flow  phi(x) = x + sigma(b^T x + c) a  [lecture: Continuous Normalizing Flows (planar flow)]

Letters as in the lecture: ``a`` is the direction the layer moves points along, ``b``
the normal of the hyperplanes it acts on, ``c`` a bias, and ``sigma = tanh``.

- Jacobian: ``J = I + sigma'(b^T x + c) a b^T``, so by the matrix-determinant lemma
  ``log |det J| = log |1 + sigma'(b^T x + c) a^T b|``.
- Invertibility: ``sigma' = tanh'`` takes every value in ``(0, 1]``, so
  ``1 + sigma' a^T b > 0`` everywhere exactly when ``a^T b >= -1``. ``planar_constrain``
  enforces it by moving ``a`` along ``b`` (Rezende and Mohamed, 2015):
  ``a_hat = a + (m(a^T b) - a^T b) b / |b|^2`` with ``m(s) = -1 + softplus(s)``, so that
  ``a_hat^T b = m(a^T b) > -1``.
- Inverse: with ``s = b^T x + c``, ``y = x + tanh(s) a`` gives the scalar equation
  ``b^T y + c = s + tanh(s) a^T b``, increasing in ``s`` when ``a^T b > -1``; its root is
  found by bisection, then ``x = y - tanh(s) a``.

Parameters are a dict ``{"a": (d,), "b": (d,), "c": ()}``.
"""

import autograd.numpy as np
import numpy as onp

from .._validate import as_points, check_positive_int, check_rng

__all__ = [
    "planar_init",
    "planar_constrain",
    "planar_is_invertible",
    "planar_forward",
    "planar_log_det",
    "planar_inverse",
]


def planar_init(d, rng, scale=1.0):
    """Random planar-layer parameters ``{"a", "b", "c"}`` with entries ``N(0, scale^2 / d)``.

    They need not satisfy the invertibility condition: pass them through
    ``planar_constrain`` for a layer that is guaranteed invertible.
    """
    d = check_positive_int(d, "d")
    rng = check_rng(rng)
    std = scale / onp.sqrt(d)
    return {"a": rng.normal(0, std, d), "b": rng.normal(0, std, d), "c": onp.array(rng.normal(0, std))}


def _check_params(params, d=None):
    if not isinstance(params, dict) or set(params) != {"a", "b", "c"}:
        raise TypeError("params must be a dict with keys 'a', 'b', 'c'")
    a, b, c = params["a"], params["b"], params["c"]
    if np.ndim(a) != 1 or np.shape(a) != np.shape(b) or np.ndim(c) != 0:
        raise ValueError(
            f"params must hold a and b of shape (d,) and a scalar c, got {np.shape(a)}, {np.shape(b)}, {np.shape(c)}"
        )
    if d is not None and np.shape(a)[0] != d:
        raise ValueError(f"params are for d = {np.shape(a)[0]}, x has d = {d}")
    return a, b, c


def planar_constrain(params):
    """Reparametrise ``a`` so that ``a^T b > -1`` (the layer is invertible)  [lecture: planar flow]

        a_hat = a + (m(a^T b) - a^T b) b / |b|^2,   m(s) = -1 + log(1 + e^s)

    Differentiable, so ``params`` can be trained unconstrained and used through this map.
    """
    a, b, c = _check_params(params)
    ab = np.dot(a, b)
    m = -1.0 + np.logaddexp(0.0, ab)
    a_hat = a + (m - ab) * b / (np.dot(b, b) + 1e-300)
    return {"a": a_hat, "b": b, "c": c}


def planar_is_invertible(params):
    """Whether ``a^T b >= -1``, the condition under which a tanh planar layer is invertible."""
    a, b, _ = _check_params(params)
    return bool(onp.dot(a, b) >= -1.0)


def planar_log_det(params, x):
    """log |det J_phi(x)| = log |1 + tanh'(b^T x + c) a^T b|  [lecture: planar flow; eq. (2)]

    Returns:
        shape ``(n,)``.
    """
    x = as_points(x)
    a, b, c = _check_params(params, x.shape[1])
    s = x @ b + c
    return np.log(np.abs(1.0 + (1.0 - np.tanh(s) ** 2) * np.dot(a, b)))


def planar_forward(params, x):
    """Planar layer  phi(x) = x + tanh(b^T x + c) a  and its log-determinant  [lecture: planar flow]

    Args:
        params: ``{"a": (d,), "b": (d,), "c": ()}``.
        x: points, shape ``(n, d)``.

    Returns:
        ``(y, log_det)``: shapes ``(n, d)`` and ``(n,)``.
    """
    x = as_points(x)
    a, b, c = _check_params(params, x.shape[1])
    s = x @ b + c  # (n,)
    y = x + np.tanh(s)[:, None] * a
    return y, planar_log_det(params, x)


def planar_inverse(params, y, tol=1e-13, max_iter=200):
    """Inverse planar layer by a one-dimensional root solve  [lecture: planar flow]

    Solves ``b^T y + c = s + tanh(s) a^T b`` for ``s`` by bisection (the left side is
    increasing in ``s`` when ``a^T b > -1``), then ``x = y - tanh(s) a``.

    Args:
        params: an invertible layer (``a^T b > -1``).
        y: points, shape ``(n, d)``.
        tol: absolute tolerance on ``s``.

    Returns:
        ``(x, log_det_inv)`` with ``log_det_inv = -log |det J_phi(x)|``.

    Raises:
        ValueError: the layer violates ``a^T b > -1`` and has no inverse.
    """
    y = as_points(y, "y")
    a, b, c = (onp.asarray(v, dtype=onp.float64) for v in _check_params(params, y.shape[1]))
    ab = float(onp.dot(a, b))
    if ab <= -1.0:
        raise ValueError(f"params violate the invertibility condition a^T b > -1 (a^T b = {ab:.6g})")
    target = y @ b + c  # = s + tanh(s) a^T b
    # s + tanh(s) ab lies within |ab| of s, so the root is within |ab| of the target
    lo, hi = target - abs(ab) - 1.0, target + abs(ab) + 1.0
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        above = mid + onp.tanh(mid) * ab > target
        hi, lo = onp.where(above, mid, hi), onp.where(above, lo, mid)
        if onp.max(hi - lo) < tol:
            break
    s = 0.5 * (lo + hi)
    x = y - onp.tanh(s)[:, None] * a
    return x, -planar_log_det(params, x)

"""The planar flow  phi(x) = x + sigma(b^T x + c) a  [lecture: Continuous Normalizing Flows (planar flow)]

Letters as in the lecture: ``a`` is the direction the layer moves points along, ``b``
the normal of the hyperplanes it acts on, ``c`` a bias, and ``sigma = tanh``.

- Jacobian: ``J = I + sigma'(b^T x + c) a b^T``, so by the matrix-determinant lemma
  ``log |det J| = log |1 + sigma'(b^T x + c) a^T b|``.
- Invertibility: ``sigma' = tanh'`` takes every value in ``(0, 1]``, so
  ``1 + sigma' a^T b > 0`` everywhere exactly when ``a^T b > -1``: then the layer is a
  diffeomorphism, as eq. (2) needs. At ``a^T b = -1`` it is still a bijection but its
  Jacobian is singular on the hyperplane ``b^T x + c = 0``; below ``-1`` it folds space
  and two distinct points share an image (``planar_collision`` exhibits them).
  ``planar_constrain`` enforces the condition by moving ``a`` along ``b`` as Rezende and
  Mohamed (2015) do: ``a_hat = a + (m(a^T b) - a^T b) b / |b|^2``, so that
  ``a_hat^T b = m(a^T b) > -1``. Their ``m(s) = -1 + softplus(s)`` is shifted here to
  ``m(s) = -1 + delta + softplus(s + 1 - delta)``, which tends to ``s`` for large ``s``
  (``0 < m(s) - s <= exp(-(s + 1 - delta))``): a layer well inside the invertible region
  is left nearly as it is, where theirs would lower its ``a^T b`` by one. The margin
  ``delta = PLANAR_MARGIN = 1e-6`` keeps ``a_hat^T b`` above ``-1`` after rounding, where
  the softplus alone would underflow (``s < -37``).
- Inverse: with ``s = b^T x + c``, ``y = x + tanh(s) a`` gives the scalar equation
  ``b^T y + c = s + tanh(s) a^T b``, increasing in ``s`` when ``a^T b > -1``; its root is
  found by bisection, then ``x = y - tanh(s) a``. One Newton step taken in autograd's
  arithmetic at the root makes the inverse differentiable (its derivative is the one of
  the implicit function theorem), so a chain of planar layers can be trained by maximum
  likelihood through its inverse.

Parameters are a dict ``{"a": (d,), "b": (d,), "c": ()}``.
"""

import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval
from scipy.optimize import brentq

from .._validate import as_points, as_real_array, check_finite_number, check_count, check_rng, refuse_non_finite

__all__ = [
    "planar_init",
    "planar_constrain",
    "planar_is_invertible",
    "planar_forward",
    "planar_log_det",
    "planar_inverse",
    "planar_collision",
    "PLANAR_MARGIN",
]

PLANAR_MARGIN = 1e-6
"""``delta`` of ``planar_constrain``: the constrained layers have ``a^T b >= -1 + delta``."""


def planar_init(d, rng, scale=1.0):
    """Random planar-layer parameters, entries ``N(0, scale^2 / d)``  [lecture: planar flow]

    They need not satisfy the invertibility condition ``a^T b > -1``: pass them through
    ``planar_constrain`` for a layer that is guaranteed invertible.

    Args:
        d: the dimension.
        rng: ``numpy.random.Generator``.
        scale: the standard deviation of ``sqrt(d)`` times an entry.

    Returns:
        ``{"a": (d,), "b": (d,), "c": ()}``.
    """
    d = check_count(d, "d")
    rng = check_rng(rng)
    scale = float(check_finite_number(scale, "scale", positive=True))
    std = scale / onp.sqrt(d)
    return {"a": rng.normal(0, std, d), "b": rng.normal(0, std, d), "c": onp.array(rng.normal(0, std))}


def _check_params(params, d=None, x_name="x"):
    raw = getval(params)  # a dict, also when autograd differentiates with respect to it
    if not isinstance(raw, dict) or set(raw) != {"a", "b", "c"}:
        raise TypeError(f"params must be a dict with keys 'a', 'b', 'c', got {type(raw).__name__}"
                        + (f" with keys {sorted(map(str, raw))}" if isinstance(raw, dict) else ""))
    a, b, c = (as_real_array(params[k], f"params[{k!r}]") for k in ("a", "b", "c"))
    if np.ndim(a) != 1 or np.shape(a)[0] < 1 or np.shape(a) != np.shape(b) or np.ndim(c) != 0:
        raise ValueError(
            f"params must hold a and b of shape (d,) and a scalar c, got {np.shape(a)}, {np.shape(b)}, {np.shape(c)}"
        )
    if d is not None and np.shape(a)[0] != d:
        raise ValueError(f"params are for d = {np.shape(a)[0]}, {x_name} has d = {d}")
    return a, b, c


def _finite(value, what, params, **points):
    """``value``, or a ValueError naming the argument that made it overflow."""
    leaves = onp.concatenate([onp.ravel(getval(params[k])) for k in ("a", "b", "c")])
    return refuse_non_finite(value, what, large=dict(points, params=leaves))


def planar_constrain(params):
    """Reparametrise ``a`` so that ``a^T b > -1`` (the layer is invertible)  [lecture: planar flow]

        a_hat = a + (m(a^T b) - a^T b) b / |b|^2,   m(s) = -1 + delta + log(1 + e^(s + 1 - delta))

    so that ``a_hat^T b = m(a^T b)`` (``a`` moves along ``b`` only). ``m`` is an increasing
    bijection from R onto ``(-1 + delta, inf)`` with ``delta = PLANAR_MARGIN``, so every
    layer with ``a^T b > -1 + delta`` is ``planar_constrain`` of some unconstrained one;
    and ``0 < m(s) - s <= exp(-(s + 1 - delta))``, so ``|a_hat - a| <= exp(-(a^T b + 1 -
    delta)) / |b|``: a layer well inside the invertible region is nearly unchanged.
    Differentiable, so ``params`` can be trained unconstrained and used through this
    map. Not idempotent: apply it once.

    Args:
        params: ``{"a": (d,), "b": (d,), "c": ()}``, any values.

    Returns:
        ``{"a": a_hat, "b": b, "c": c}`` with ``a_hat^T b > -1``.
    """
    a, b, c = _check_params(params)
    with onp.errstate(over="ignore", invalid="ignore"):
        ab = np.dot(a, b)
        m = -1.0 + PLANAR_MARGIN + np.logaddexp(0.0, ab + 1.0 - PLANAR_MARGIN)
        a_hat = a + (m - ab) * b / (np.dot(b, b) + 1e-300)
    return {"a": _finite(a_hat, "a_hat", params), "b": b, "c": c}


def planar_is_invertible(params):
    """Whether ``a^T b > -1``: the layer is a diffeomorphism  [lecture: planar flow; eq. (2)]"""
    a, b, _ = _check_params(params)
    with onp.errstate(over="ignore", invalid="ignore"):
        ab = onp.dot(getval(a), getval(b))
    _finite(ab, "a^T b", params)
    return bool(ab > -1.0)


def planar_log_det(params, x):
    """log |det J_phi(x)| = log |1 + tanh'(b^T x + c) a^T b|  [lecture: planar flow; eq. (2)]

    By the matrix-determinant lemma, ``det(I + sigma' a b^T) = 1 + sigma' a^T b``.

    Args:
        params: ``{"a": (d,), "b": (d,), "c": ()}``.
        x: points, shape ``(n, d)``.

    Returns:
        shape ``(n,)``.
    """
    x = as_points(x)
    a, b, c = _check_params(params, x.shape[1])
    with onp.errstate(over="ignore", invalid="ignore", divide="ignore"):
        log_det = _log_det(a, b, c, x)
    return _finite(log_det, "log |det J_phi(x)| (-inf where the Jacobian is singular)", params, x=x)


def _log_det(a, b, c, x):
    s = x @ b + c
    return np.log(np.abs(1.0 + (1.0 - np.tanh(s) ** 2) * np.dot(a, b)))


def planar_forward(params, x):
    """Planar layer  phi(x) = x + tanh(b^T x + c) a  and its log-determinant  [lecture: planar flow]

    Args:
        params: ``{"a": (d,), "b": (d,), "c": ()}``.
        x: points, shape ``(n, d)``.

    Returns:
        ``(y, log_det)``: shapes ``(n, d)`` and ``(n,)``, ``log_det = log |det J_phi(x)|``.
    """
    x = as_points(x)
    a, b, c = _check_params(params, x.shape[1])
    with onp.errstate(over="ignore", invalid="ignore", divide="ignore"):
        s = x @ b + c  # (n,)
        y = x + np.tanh(s)[:, None] * a
        log_det = _log_det(a, b, c, x)
    return _finite(y, "phi(x)", params, x=x), _finite(log_det, "log |det J_phi(x)|", params, x=x)


def _bisect_root(target, ab, max_iter):
    """The root ``s`` of ``s + tanh(s) ab = target`` (``ab > -1``), elementwise, by bisection.

    Raises a ValueError if ``max_iter`` halvings do not bring the bracket to rounding.
    """
    # s + tanh(s) ab lies within |ab| of s, so the root lies within |ab| of the target
    lo, hi = target - abs(ab) - 1.0, target + abs(ab) + 1.0
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        above = mid + onp.tanh(mid) * ab > target
        hi, lo = onp.where(above, mid, hi), onp.where(above, lo, mid)
        if onp.all(hi - lo <= 4 * onp.spacing(onp.abs(mid) + 1.0)):
            return 0.5 * (lo + hi)
    raise ValueError(
        f"max_iter = {max_iter} bisection steps did not find the root of s + tanh(s) a^T b = b^T y + c to rounding "
        f"(params give a^T b = {ab:.3g}: the bracket was {2 * (abs(ab) + 1):.3g} wide); raise max_iter"
    )


def planar_inverse(params, y, max_iter=200):
    """Inverse planar layer by a one-dimensional root solve  [lecture: planar flow]

    Solves ``b^T y + c = s + tanh(s) a^T b`` for ``s`` by bisection (the right side is
    increasing in ``s`` when ``a^T b > -1``) to rounding, then ``x = y - tanh(s) a``. A
    final Newton step ``s <- s - F(s) / F'(s)`` with ``F(s) = s + tanh(s) a^T b - b^T y - c``
    is taken in autograd's arithmetic: it leaves the value unchanged (``F(s) = 0`` to
    rounding) and gives ``ds = -dF / F'(s)``, the implicit-function derivative, so
    ``planar_inverse`` is differentiable in ``params`` and ``y``.

    Args:
        params: an invertible layer (``a^T b > -1``).
        y: points, shape ``(n, d)``.
        max_iter: at most this many bisection steps (about 60 reach rounding).

    Returns:
        ``(x, log_det_inv)`` with ``log_det_inv = log |det J_{phi^{-1}}(y)| = -log |det J_phi(x)|``.

    Raises:
        ValueError: the layer violates ``a^T b > -1`` (it has no differentiable inverse).
    """
    y = as_points(y, "y")
    max_iter = check_count(max_iter, "max_iter")
    a, b, c = _check_params(params, y.shape[1], "y")
    ab = np.dot(a, b)
    ab_value = float(getval(ab))
    if ab_value <= -1.0:
        raise ValueError(
            f"params violate the invertibility condition a^T b > -1 (a^T b = {ab_value:.6g}): "
            "the layer is not a diffeomorphism (use planar_constrain)"
        )
    with onp.errstate(over="ignore", invalid="ignore", divide="ignore"):
        target = y @ b + c  # = s + tanh(s) a^T b
        _finite(getval(target), "b^T y + c", params, y=y)
        s0 = _bisect_root(onp.asarray(getval(target), dtype=onp.float64), ab_value, max_iter)
        sech2 = 1.0 - onp.tanh(s0) ** 2
        s = s0 - (s0 + onp.tanh(s0) * ab - target) / (1.0 + sech2 * ab)  # Newton step (traced)
        x = y - np.tanh(s)[:, None] * a
        log_det_inv = -_log_det(a, b, c, x)
    return _finite(x, "phi^{-1}(y)", params, y=y), _finite(log_det_inv, "log |det J_{phi^{-1}}(y)|", params, y=y)


def planar_collision(params):
    """Two distinct points with the same image under a layer with ``a^T b < -1``  [lecture: planar flow]

    On the line ``x = p + tau a`` through ``p = -c b / |b|^2`` (a point of the hyperplane
    ``b^T x + c = 0``), ``b^T x + c = tau a^T b``, so with ``kappa = -a^T b``

        phi(p + tau a) = p + (tau - tanh(kappa tau)) a.

    For ``kappa > 1``, ``tau - tanh(kappa tau)`` vanishes at ``tau = 0`` and at
    ``tau = +-tau*`` with ``tau* = tanh(kappa tau*) in (0, 1)``: the points
    ``p + tau* a`` and ``p - tau* a`` (and ``p`` itself) all map to ``p``.

    Args:
        params: a layer with ``a^T b < -1``.

    Returns:
        ``(x, y)``: ``x`` of shape ``(2, d)`` holds ``p + tau* a`` and ``p - tau* a``;
        ``y = p`` of shape ``(1, d)`` is the image of both.

    Raises:
        ValueError: ``a^T b >= -1``; then the layer is injective and no collision exists.
    """
    a, b, c = (onp.asarray(getval(v), dtype=onp.float64) for v in _check_params(params))
    with onp.errstate(over="ignore", invalid="ignore"):
        kappa = -float(a @ b)
    _finite(kappa, "a^T b", params)
    if kappa <= 1.0:
        raise ValueError(f"params: the layer is injective (a^T b = {-kappa:.6g} >= -1), no two points share an image")
    g = lambda tau: tau - onp.tanh(kappa * tau)  # noqa: E731
    # g < 0 just right of 0 (slope 1 - kappa) and g(1) = 1 - tanh(kappa) > 0
    lo = min(0.5 * onp.sqrt(3.0 * (kappa - 1.0)), 0.5)
    if not g(lo) < 0:
        raise ValueError(f"params: a^T b = {-kappa!r} is too close to -1 to resolve two preimages in float64")
    tau = brentq(g, lo, 1.0, xtol=1e-15, rtol=4 * onp.finfo(float).eps)
    with onp.errstate(over="ignore", invalid="ignore", divide="ignore"):
        p = -c * b / (b @ b)
        x = onp.stack([p + tau * a, p - tau * a])
    return _finite(x, "the colliding points", params), _finite(p[None, :], "their image", params)

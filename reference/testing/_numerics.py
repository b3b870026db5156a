"""Finite differences with an a-posteriori error estimate, for black-box callables.

The implementation under test need not be differentiable by autograd, so derivatives
are taken by central differences. Each is computed at two steps ``h`` and ``h / 2``: the
Richardson combination ``(4 D_{h/2} - D_h) / 3`` cancels the ``h^2`` term, and
``|D_h - D_{h/2}|`` estimates the truncation error that remains, to which the
round-off error of a central difference, ``eps |f| / h``, is added. The checkers turn
that estimate into a tolerance by a safety factor (``K_SAFETY``).
"""

import numpy as onp

from ._report import fd_step

__all__ = ["fd_jacobian", "fd_time_derivative"]


def _central(f, x, h, j):
    e = onp.zeros_like(x)
    e[:, j] = h[:, 0]
    return (onp.asarray(f(x + e), dtype=onp.float64) - onp.asarray(f(x - e), dtype=onp.float64)) / (2.0 * h)


def fd_jacobian(f, x, eps):
    """Jacobian of a row-wise map by central differences, with an error estimate.

    Args:
        f: ``(n, d) -> (n, d_out)`` NumPy callable acting on each row separately.
        x: points, shape ``(n, d)``, float64.
        eps: the unit round-off of ``f``'s arithmetic (sets the step ``eps^(1/3)``).

    Returns:
        ``(J, err)``: the Richardson-extrapolated Jacobian ``(n, d_out, d)`` and an
        entrywise bound on its error, same shape.
    """
    x = onp.asarray(x, dtype=onp.float64)
    n, d = x.shape
    h = fd_step(eps) * (1.0 + onp.max(onp.abs(x), axis=1, keepdims=True))  # (n, 1)
    f_scale = 1.0 + onp.max(onp.abs(onp.asarray(f(x), dtype=onp.float64)), axis=1)  # (n,)
    J_h = onp.stack([_central(f, x, h, j) for j in range(d)], axis=2)
    J_h2 = onp.stack([_central(f, x, h / 2.0, j) for j in range(d)], axis=2)
    J = (4.0 * J_h2 - J_h) / 3.0
    roundoff = 3.0 * eps * f_scale[:, None, None] / h[:, :, None]
    return J, onp.abs(J_h - J_h2) + roundoff


def fd_time_derivative(g, t, eps, scale):
    """``d/dt g(t)`` by central differences at times ``t`` (one per row), with an error estimate.

    Args:
        g: ``t (n,) -> (n, d)``.
        t: times, shape ``(n,)``, at least ``2 eps^(1/3)`` away from where ``g`` is not defined.
        eps: the unit round-off of ``g``'s arithmetic.
        scale: ``(n,)`` magnitudes of ``g`` for the round-off term.

    Returns:
        ``(D, err)``, each of shape ``(n, d)``.
    """
    h = fd_step(eps)

    def central(step):
        return (onp.asarray(g(t + step), dtype=onp.float64) - onp.asarray(g(t - step), dtype=onp.float64)) / (2 * step)

    D_h, D_h2 = central(h), central(h / 2)
    D = (4.0 * D_h2 - D_h) / 3.0
    return D, onp.abs(D_h - D_h2) + 3.0 * eps * (1.0 + onp.asarray(scale))[:, None] / h

"""Finite differences with an a-posteriori error estimate, for black-box callables.

The implementation under test need not be differentiable by autograd, so derivatives
are taken by central differences. Each is computed at two steps ``h`` and ``h / 2``: the
Richardson combination ``(4 D_{h/2} - D_h) / 3`` cancels the ``h^2`` term, and
``|D_h - D_{h/2}|`` estimates the truncation error that remains, to which the
round-off error of a central difference, ``eps |f| / h``, is added. The checkers turn
that estimate into a tolerance by a safety factor (``K_SAFETY``).

The points ``x +- h e_j`` are rounded to the implementation's precision before they are
handed over, and the step actually taken is read back from the rounded points, so a
float32 or bfloat16 implementation is differentiated at exactly the points it sees.
All the shifted points go to the implementation in one batch (its rows must not depend
on each other, which the checkers test separately).
"""

import numpy as onp

from ._report import fd_step

__all__ = ["fd_jacobian", "fd_time_derivative"]


def fd_jacobian(f, x, precision, max_rows=200_000):
    """Jacobian of a row-wise map by central differences, with an error estimate.

    Args:
        f: ``(m, d) -> (m, d_out)`` NumPy callable acting on each row separately (float64 out).
        x: points, shape ``(n, d)``, float64, already representable in ``precision``.
        precision: the ``Precision`` of ``f``'s arithmetic (sets the step ``eps^(1/3)``).
        max_rows: the largest batch handed to ``f`` at once.

    Returns:
        ``(J, err)``: the Richardson-extrapolated Jacobian ``(n, d_out, d)`` and an
        entrywise bound on its error, same shape.
    """
    x = onp.asarray(x, dtype=onp.float64)
    n, d = x.shape
    eps = precision.eps
    h = fd_step(eps) * (1.0 + onp.max(onp.abs(x), axis=1))  # (n,)
    blocks, steps = [], []
    for j in range(d):
        for scale in (1.0, 0.5):
            plus, minus = x.copy(), x.copy()
            plus[:, j] = precision.round(x[:, j] + scale * h)
            minus[:, j] = precision.round(x[:, j] - scale * h)
            blocks += [plus, minus]
            steps.append(plus[:, j] - minus[:, j])  # the step actually taken, 2 h (rounded)
    stacked = onp.concatenate(blocks, axis=0)
    rows_per_call = max(2 * n, (max_rows // (2 * n)) * 2 * n)
    values = onp.concatenate([onp.asarray(f(stacked[i:i + rows_per_call]), dtype=onp.float64)
                              for i in range(0, len(stacked), rows_per_call)], axis=0)
    values = values.reshape(2 * d, 2, n, -1)  # (column j and scale, plus/minus, n, d_out)
    diffs = (values[:, 0] - values[:, 1]) / onp.stack(steps)[:, :, None]  # (2d, n, d_out)
    J_h = onp.moveaxis(diffs[0::2], 0, 2)  # (n, d_out, d)
    J_h2 = onp.moveaxis(diffs[1::2], 0, 2)
    J = (4.0 * J_h2 - J_h) / 3.0
    f_scale = 1.0 + onp.max(onp.abs(values), axis=(0, 1, 3))  # (n,)
    roundoff = 3.0 * eps * f_scale[:, None, None] / h[:, None, None]
    return J, onp.abs(J_h - J_h2) + roundoff


def fd_time_derivative(g, t, precision, scale, margin=None):
    """``d/dt g(t)`` by central differences at times ``t`` (one per row), with an error estimate.

    Args:
        g: ``t (k, n) -> (k, n, d)``: evaluates at ``k`` sets of times in one call.
        t: times, shape ``(n,)``, representable in ``precision``.
        precision: the ``Precision`` of ``g``'s arithmetic.
        scale: ``(n,)`` magnitudes of ``g`` for the round-off term.
        margin: ``(n,)`` distances to where ``g`` is not defined (the ends of [0, 1]);
            the step is at most a quarter of it.

    Returns:
        ``(D, err)``, each of shape ``(n, d)``.
    """
    t = onp.asarray(t, dtype=onp.float64)
    eps = precision.eps
    h = onp.full(t.shape, fd_step(eps))
    if margin is not None:
        h = onp.minimum(h, 0.25 * onp.asarray(margin))
    grid = onp.stack([precision.round(t + h), precision.round(t - h),
                      precision.round(t + h / 2), precision.round(t - h / 2)])  # (4, n)
    values = onp.asarray(g(grid), dtype=onp.float64)  # (4, n, d)
    D_h = (values[0] - values[1]) / (grid[0] - grid[1])[:, None]
    D_h2 = (values[2] - values[3]) / (grid[2] - grid[3])[:, None]
    D = (4.0 * D_h2 - D_h) / 3.0
    return D, onp.abs(D_h - D_h2) + 3.0 * eps * (1.0 + onp.asarray(scale))[:, None] / h[:, None]

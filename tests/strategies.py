"""Hypothesis strategies shared by the tests.

They *build* well-conditioned inputs rather than filtering them: bounded weights so that
``exp(s)`` stays finite, times away from the ``t = 1`` singularity of the conical path,
and seeds drawn by hypothesis so that a Monte Carlo failure shrinks and replays.
"""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference.testing import strategies as user_strategies

# the strategies the package offers its users (reference.testing.strategies), used here too
dims, seeds, rngs = user_strategies.dims, user_strategies.seeds, user_strategies.rngs
points, well_conditioned_matrices = user_strategies.points, user_strategies.well_conditioned_matrices

times = user_strategies.times()
"""A time in [0, 1]."""

times_inside = user_strategies.times(inside=True)
"""A time in [0.05, 0.95], away from both ends (the conical path is singular at t = 1)."""

bounded = st.floats(min_value=-3.0, max_value=3.0, allow_nan=False, allow_infinity=False)
"""A moderate real number."""


@st.composite
def matrices(draw, d, scale=1.0):
    """A ``d x d`` matrix with entries in ``[-scale, scale]``."""
    return draw(hnp.arrays(np.float64, (d, d), elements=st.floats(-scale, scale, allow_nan=False)))


@st.composite
def affine_maps(draw, d, min_abs_log_det=0.1, max_abs_log_det=2.0):
    """An affine map ``z -> z A^T + m``: ``(A, m)`` with ``A = U diag(exp(s)) V^T``.

    ``log |det A| = sum(s)`` is built to lie in ``+-[min_abs_log_det, max_abs_log_det]``
    (so a sign error in a log-determinant is visible), each ``|s_i| <= 2``.
    """
    rng = np.random.default_rng(draw(seeds))
    U, _ = np.linalg.qr(rng.standard_normal((d, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    log_det = draw(st.floats(min_abs_log_det, max_abs_log_det)) * draw(st.sampled_from([-1.0, 1.0]))
    s = rng.uniform(-0.5, 0.5, d)
    s = s - s.mean() + log_det / d
    m = draw(hnp.arrays(np.float64, (d,), elements=st.floats(-2.0, 2.0)))
    return U @ np.diag(np.exp(s)) @ V.T, m


# -- conditional paths (tests/test_paths.py, tests/test_marginal.py) ---------------------------


def gaussian_paths():
    """One of the Gaussian conditional paths of ``reference.paths`` with moderate parameters."""
    from reference.paths import (
        ConicalGaussianPath,
        LinearInterpolationPath,
        OptimalTransportPath,
        VariancePreservingPath,
    )

    return st.one_of(
        st.just(ConicalGaussianPath()),
        st.floats(0.05, 1.0).map(LinearInterpolationPath),
        st.floats(1e-3, 0.5).map(OptimalTransportPath),
        st.tuples(st.floats(0.05, 1.0), st.floats(1.0, 20.0)).map(lambda b: VariancePreservingPath(*b)),
    )


@st.composite
def path_cases(draw, path=None, n_max=6, d=None, t=times_inside):
    """``(path, x, t, z)``: a path, ``n`` points near the conditional means, a time per point, ``z``.

    Built from a drawn seed: ``z`` from N(0, 4 I) (with ``x0 ~ N(0, I)`` for pairs) and
    ``x = mu_t(z) + sigma_t eps`` with ``eps ~ N(0, I)``, so every point sits where the
    path has its mass and ``x1 - x0`` is not degenerate.
    """
    path = draw(gaussian_paths()) if path is None else path
    n = draw(st.integers(1, n_max))
    d = draw(dims) if d is None else d
    t_value = np.array([draw(t) for _ in range(n)])
    rng = np.random.default_rng(draw(seeds))
    x1 = 2.0 * rng.standard_normal((n, d))
    z = (rng.standard_normal((n, d)), x1) if path.conditions_on_pairs else x1
    x = path.flow(rng.standard_normal((n, d)), t_value, z)
    return path, x, t_value, z


@st.composite
def planar_layers(draw, d, invertible=True):
    """Planar-layer params ``{"a", "b", "c"}`` in dimension ``d`` with a chosen ``a^T b``.

    ``|b|`` in ``[0.5, 2]``; ``a^T b`` in ``[-0.9, -0.3] u [0.3, 3]`` if ``invertible``
    (away from 0, so the layer is visibly not the identity, and from the boundary -1),
    else in ``[-4, -1.2]``; ``a`` has a component orthogonal to ``b`` of norm up to 1.
    """
    rng = np.random.default_rng(draw(seeds))
    b_dir = rng.standard_normal(d)
    b = b_dir / np.linalg.norm(b_dir) * draw(st.floats(0.5, 2.0))
    if invertible:
        ab = draw(st.one_of(st.floats(-0.9, -0.3), st.floats(0.3, 3.0)))
    else:
        ab = draw(st.floats(-4.0, -1.2))
    perp = rng.standard_normal(d)
    perp = perp - (perp @ b) / (b @ b) * b
    norm = np.linalg.norm(perp)
    perp = perp / norm * draw(st.floats(0.0, 1.0)) if norm > 1e-12 else 0.0 * perp
    a = ab / (b @ b) * b + perp
    return {"a": a, "b": b, "c": np.array(draw(st.floats(-1.0, 1.0)))}


@st.composite
def coupling_layers(draw, min_d=2, max_d=6):
    """``(params, d, d_split)`` of a random affine coupling layer of ``reference.flows.coupling``.

    ``d`` in ``[min_d, max_d]``, any split ``1 <= d' <= d - 1``, one or two hidden layers;
    the last layer of ``s`` is multiplied by a factor in ``[0.5, 3]`` so that the soft
    scale bound is exercised, and that of ``t`` by one in ``[0.5, 2]``.
    """
    from reference.flows.coupling import coupling_init

    d = draw(st.integers(min_d, max_d))
    d_split = draw(st.integers(1, d - 1))
    hidden = tuple(draw(st.lists(st.integers(1, 8), min_size=1, max_size=2)))
    params = coupling_init(d, d_split, hidden, np.random.default_rng(draw(seeds)))
    for name, (lo, hi) in (("s", (0.5, 3.0)), ("t", (0.5, 2.0))):
        factor = draw(st.floats(lo, hi))
        W, b = params[name][-1]
        params[name][-1] = (factor * W, factor * b)
    return params, d, d_split


# -- the Gaussian-to-Gaussian path (tests/test_continuity.py, tests/test_cnf.py) ---------------


@st.composite
def gaussian_to_gaussian(draw, d=None, contracting=False):
    """``(m, s)`` of the path from N(0, I) to N(m, s^2 I) with ``mu_t = t m``, ``sigma_t = 1 - t + t s``.

    ``|m|`` in ``[0.5, 3]`` and ``s`` in ``[0.3, 0.8] u [1.25, 2.5]`` (only ``[0.3, 0.8]``
    if ``contracting``): the path moves and changes its scale (so a wrong velocity is
    visible), and ``sigma_t >= 0.3`` on ``[0, 1]``.
    """
    d = draw(dims) if d is None else d
    direction = np.random.default_rng(draw(seeds)).standard_normal(d)
    m = direction / np.linalg.norm(direction) * draw(st.floats(0.5, 3.0))
    shrink = st.floats(0.3, 0.8)
    s = draw(shrink if contracting else st.one_of(shrink, st.floats(1.25, 2.5)))
    return m, s

"""Hypothesis strategies shared by the tests.

They *build* well-conditioned inputs rather than filtering them: bounded weights so that
``exp(s)`` stays finite, times away from the ``t = 1`` singularity of the conical path,
and seeds drawn by hypothesis so that a Monte Carlo failure shrinks and replays.
"""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

dims = st.integers(min_value=1, max_value=5)
"""A dimension ``d``."""

seeds = st.integers(min_value=0, max_value=2**32 - 1)
"""A seed for ``numpy.random.default_rng``."""

rngs = seeds.map(np.random.default_rng)
"""A seeded ``numpy.random.Generator`` (shrinks through its seed)."""

bounded = st.floats(min_value=-3.0, max_value=3.0, allow_nan=False, allow_infinity=False)
"""A moderate real number."""

times = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
"""A time in [0, 1]."""

times_inside = st.floats(min_value=0.05, max_value=0.95, allow_nan=False)
"""A time away from both ends (the conical path is singular at t = 1)."""


def points(n=None, d=None, scale=3.0):
    """A batch of points of shape ``(n, d)`` with entries in ``[-scale, scale]``."""
    n_st = st.integers(1, 6) if n is None else st.just(n)
    d_st = dims if d is None else st.just(d)
    elements = st.floats(-scale, scale, allow_nan=False, allow_infinity=False)
    return st.tuples(n_st, d_st).flatmap(lambda s: hnp.arrays(np.float64, s, elements=elements))


@st.composite
def matrices(draw, d, scale=1.0):
    """A ``d x d`` matrix with entries in ``[-scale, scale]``."""
    return draw(hnp.arrays(np.float64, (d, d), elements=st.floats(-scale, scale, allow_nan=False)))


@st.composite
def well_conditioned_matrices(draw, d, max_log_sv=1.0):
    """An invertible ``d x d`` matrix built as ``U diag(exp(s)) V^T`` with ``|s| <= max_log_sv``."""
    rng = np.random.default_rng(draw(seeds))
    U, _ = np.linalg.qr(rng.standard_normal((d, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    s = draw(hnp.arrays(np.float64, (d,), elements=st.floats(-max_log_sv, max_log_sv)))
    return U @ np.diag(np.exp(s)) @ V.T


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

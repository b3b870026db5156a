"""Hypothesis strategies shared by the tests.

They *build* well-conditioned inputs rather than filtering them: bounded weights so that
``exp(s)`` stays finite, times away from the ``t = 1`` singularity of the conical path,
and seeds drawn by hypothesis so that a Monte Carlo failure shrinks and replays.

Edge cases are covered but never the bulk. Left to itself, hypothesis favours the
simplest values: ``d = 1`` (where a Jacobian is its own trace and Rademacher Hutchinson
is exact), all-zero arrays, a zero orthogonal part, the first alternative of a
``one_of``. So the bulk of each example is built from a drawn seed with uniform
choices (``d`` uniform in 2..5, entries uniform in their range), and an edge case
(``d = 1``, a batch from hypothesis's own array strategy with its zeros and bounds, a
zero field, a planar ``a`` parallel to ``b``) comes up in about ``EDGE_RATE`` of the
examples; ``tests/test_strategies.py`` measures these proportions.
"""

import numpy as np
from hypothesis import strategies as st

from reference.testing import strategies as user_strategies

seeds, rngs = user_strategies.seeds, user_strategies.rngs
well_conditioned_matrices = user_strategies.well_conditioned_matrices

EDGE_RATE = 0.1
"""About one example in ten is an edge case (``d = 1``, zeros, a degenerate direction)."""


def is_edge(rng, rate=EDGE_RATE):
    """True with probability ``rate`` (an edge case), from the example's own generator."""
    return bool(rng.random() < rate)


@st.composite
def dimensions(draw, low=2, high=5):
    """A dimension ``d``: 1 in about ``EDGE_RATE`` of the examples, else uniform in ``[low, high]``."""
    rng = np.random.default_rng(draw(seeds))
    return 1 if is_edge(rng) else int(rng.integers(low, high + 1))


dims = dimensions()
"""A dimension in 1..5, mostly 2..5 (``d = 1`` is an edge case)."""


@st.composite
def points(draw, n=None, d=None, scale=3.0):
    """A batch ``(n, d)`` of float64 points with entries in ``[-scale, scale]``.

    ``n`` in 1..8 and ``d`` from ``dims`` by default. Entries uniform in the range; in about
    ``EDGE_RATE`` of the examples an edge case instead: half of them the all-zero batch,
    half hypothesis's own array of that shape (the bounds, tiny values:
    ``reference.testing.strategies.points``).
    """
    rng = np.random.default_rng(draw(seeds))
    d = draw(dims) if d is None else d
    n = int(rng.integers(1, 9)) if n is None else n
    if is_edge(rng):
        if rng.random() < 0.5:
            return np.zeros((n, d))
        return draw(user_strategies.points(n=n, d=d, scale=scale))
    return rng.uniform(-scale, scale, size=(n, d))


times = user_strategies.times()
"""A time in [0, 1]."""

times_inside = user_strategies.times(inside=True)
"""A time in [0.05, 0.95], away from both ends (the conical path is singular at t = 1)."""

bounded = st.floats(min_value=-3.0, max_value=3.0, allow_nan=False, allow_infinity=False)
"""A moderate real number."""


@st.composite
def matrices(draw, d, scale=1.0):
    """A ``d x d`` matrix with entries uniform in ``[-scale, scale]``; the zero matrix in about ``EDGE_RATE``."""
    rng = np.random.default_rng(draw(seeds))
    return np.zeros((d, d)) if is_edge(rng) else rng.uniform(-scale, scale, size=(d, d))


@st.composite
def affine_maps(draw, d, min_abs_log_det=0.1, max_abs_log_det=2.0):
    """An affine map ``z -> z A^T + m``: ``(A, m)`` with ``A = U diag(exp(s)) V^T``.

    ``log |det A| = sum(s)`` is built to lie in ``+-[min_abs_log_det, max_abs_log_det]``
    (so a sign error in a log-determinant is visible), each ``|s_i| <= 2``; ``m`` uniform
    in ``[-2, 2]^d``.
    """
    rng = np.random.default_rng(draw(seeds))
    U, _ = np.linalg.qr(rng.standard_normal((d, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    log_det = rng.uniform(min_abs_log_det, max_abs_log_det) * rng.choice([-1.0, 1.0])
    s = rng.uniform(-0.5, 0.5, d)
    s = s - s.mean() + log_det / d
    m = rng.uniform(-2.0, 2.0, d)
    return U @ np.diag(np.exp(s)) @ V.T, m


# -- conditional paths (tests/test_paths.py, tests/test_marginal.py) ---------------------------


@st.composite
def gaussian_paths(draw):
    """One of the Gaussian conditional paths of ``reference.paths`` (each about a quarter of the time), moderate parameters."""
    from reference.paths import (
        ConicalGaussianPath,
        LinearInterpolationPath,
        OptimalTransportPath,
        VariancePreservingPath,
    )

    rng = np.random.default_rng(draw(seeds))
    kind = int(rng.integers(4))
    if kind == 0:
        return ConicalGaussianPath()
    if kind == 1:
        return LinearInterpolationPath(float(rng.uniform(0.05, 1.0)))
    if kind == 2:
        return OptimalTransportPath(float(rng.uniform(1e-3, 0.5)))
    return VariancePreservingPath(float(rng.uniform(0.05, 1.0)), float(rng.uniform(1.0, 20.0)))


@st.composite
def path_cases(draw, path=None, n_max=6, d=None, t=times_inside):
    """``(path, x, t, z)``: a path, ``n`` points (uniform in 1..n_max) near the conditional means, a time per point, ``z``.

    Built from a drawn seed: ``z`` from N(0, 4 I) (with ``x0 ~ N(0, I)`` for pairs) and
    ``x = mu_t(z) + sigma_t eps`` with ``eps ~ N(0, I)``, so every point sits where the
    path has its mass and ``x1 - x0`` is not degenerate.
    """
    path = draw(gaussian_paths()) if path is None else path
    d = draw(dims) if d is None else d
    rng = np.random.default_rng(draw(seeds))
    n = int(rng.integers(1, n_max + 1))
    t_value = np.array([draw(t) for _ in range(n)])
    x1 = 2.0 * rng.standard_normal((n, d))
    z = (rng.standard_normal((n, d)), x1) if path.conditions_on_pairs else x1
    x = path.flow(rng.standard_normal((n, d)), t_value, z)
    return path, x, t_value, z


@st.composite
def planar_layers(draw, d, invertible=True):
    """Planar-layer params ``{"a", "b", "c"}`` in dimension ``d`` with a chosen ``a^T b``.

    ``|b|`` uniform in ``[0.5, 2]``; ``a^T b`` uniform in ``[-0.9, -0.3]`` or ``[0.3, 3]``
    (one or the other with even odds) if ``invertible`` (away from 0, so the layer is
    visibly not the identity, and from the boundary -1), else in ``[-4, -1.2]``; ``a``
    has a component orthogonal to ``b`` of norm uniform in ``[0.1, 1]`` (none, ``a``
    parallel to ``b``, in about ``EDGE_RATE`` of the examples, and always for ``d = 1``);
    ``c`` uniform in ``[-1, 1]``.
    """
    rng = np.random.default_rng(draw(seeds))
    b_dir = rng.standard_normal(d)
    b = b_dir / np.linalg.norm(b_dir) * rng.uniform(0.5, 2.0)
    if invertible:
        ab = rng.uniform(-0.9, -0.3) if rng.random() < 0.5 else rng.uniform(0.3, 3.0)
    else:
        ab = rng.uniform(-4.0, -1.2)
    perp = rng.standard_normal(d)
    perp = perp - (perp @ b) / (b @ b) * b
    norm = np.linalg.norm(perp)
    parallel = is_edge(rng) or norm <= 1e-12
    perp = 0.0 * perp if parallel else perp / norm * rng.uniform(0.1, 1.0)
    a = ab / (b @ b) * b + perp
    return {"a": a, "b": b, "c": np.array(rng.uniform(-1.0, 1.0))}


@st.composite
def coupling_layers(draw, min_d=2, max_d=6):
    """``(params, d, d_split)`` of a random affine coupling layer of ``reference.flows.coupling``.

    ``d`` uniform in ``[min_d, max_d]``, the split ``1 <= d' <= d - 1`` uniform, one or
    two hidden layers of 1 to 8 units; the last layer of ``s`` is multiplied by a factor in
    ``[0.5, 3]`` so that the soft scale bound is exercised, and that of ``t`` by one in
    ``[0.5, 2]``.
    """
    from reference.flows.coupling import coupling_init

    rng = np.random.default_rng(draw(seeds))
    d = int(rng.integers(min_d, max_d + 1))
    d_split = int(rng.integers(1, d))
    hidden = tuple(int(h) for h in rng.integers(1, 9, size=rng.integers(1, 3)))
    params = coupling_init(d, d_split, hidden, rng)
    for name, (lo, hi) in (("s", (0.5, 3.0)), ("t", (0.5, 2.0))):
        factor = rng.uniform(lo, hi)
        W, b = params[name][-1]
        params[name][-1] = (factor * W, factor * b)
    return params, d, d_split


@st.composite
def velocity_networks(draw):
    """``(params, x, t)``: a random ``velocity_init`` network (d in 1..4, zero to three hidden layers of
    1 to 9 units) with 1 to 6 points and times to evaluate it at."""
    from reference.nn import velocity_init

    d = draw(st.integers(1, 4))
    hidden = tuple(draw(st.lists(st.integers(1, 9), min_size=0, max_size=3)))
    params = velocity_init(d, hidden, np.random.default_rng(draw(seeds)))
    rng = np.random.default_rng(draw(seeds))
    n = draw(st.integers(1, 6))
    return params, rng.normal(scale=2.0, size=(n, d)), rng.uniform(size=n)


# -- the Gaussian-to-Gaussian path (tests/test_continuity.py, tests/test_cnf.py) ---------------


@st.composite
def gaussian_to_gaussian(draw, d=None, contracting=False):
    """``(m, s)`` of the path from N(0, I) to N(m, s^2 I) with ``mu_t = t m``, ``sigma_t = 1 - t + t s``.

    ``|m|`` uniform in ``[0.5, 3]`` and ``s`` in ``[0.3, 0.8]`` or ``[1.25, 2.5]`` with
    even odds (only ``[0.3, 0.8]`` if ``contracting``): the path moves and changes its
    scale (so a wrong velocity is visible), and ``sigma_t >= 0.3`` on ``[0, 1]``.
    """
    d = draw(dims) if d is None else d
    rng = np.random.default_rng(draw(seeds))
    direction = rng.standard_normal(d)
    m = direction / np.linalg.norm(direction) * rng.uniform(0.5, 3.0)
    s = rng.uniform(0.3, 0.8) if contracting or rng.random() < 0.5 else rng.uniform(1.25, 2.5)
    return m, s

"""Hypothesis strategies that build well-conditioned inputs for flow-matching tests.

For property tests of your own implementation::

    from hypothesis import given
    from reference.testing import strategies as fst

    @given(fst.points(d=2), fst.times(inside=True))
    def test_my_path_starts_at_the_noise(x0, t): ...

They *build* their values rather than filter them (times kept away from the conical
path's singularity at ``t = 1``, matrices with bounded singular values, mixture
covariances bounded away from singular), and draw seeds rather than floats where a
random generator is needed, so that failures shrink and replay. Requires
``hypothesis`` (the package's ``test`` extra).
"""

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "reference.testing.strategies needs hypothesis: pip install 'flow-matching-reference[test]'"
    ) from err

import numpy as onp

__all__ = [
    "dims",
    "seeds",
    "rngs",
    "times",
    "points",
    "well_conditioned_matrices",
    "gaussian_mixtures",
    "linear_fields",
    "noise_data_pairs",
]

dims = st.integers(min_value=1, max_value=5)
"""A dimension ``d`` in 1..5."""

seeds = st.integers(min_value=0, max_value=2**32 - 1)
"""A seed for ``numpy.random.default_rng``."""

rngs = seeds.map(onp.random.default_rng)
"""A seeded ``numpy.random.Generator`` (shrinks through its seed)."""


def times(inside=False, margin=0.05):
    """A time in ``[0, 1]``, or in ``[margin, 1 - margin]`` with ``inside=True``."""
    low, high = (margin, 1.0 - margin) if inside else (0.0, 1.0)
    return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)


def points(n=None, d=None, scale=3.0):
    """A batch ``(n, d)`` of float64 points with entries in ``[-scale, scale]`` (``n`` in 1..8 and ``d`` from ``dims`` by default)."""
    n_st = st.integers(1, 8) if n is None else st.just(n)
    d_st = dims if d is None else st.just(d)
    elements = st.floats(-scale, scale, allow_nan=False, allow_infinity=False)
    return st.tuples(n_st, d_st).flatmap(lambda shape: hnp.arrays(onp.float64, shape, elements=elements))


@st.composite
def well_conditioned_matrices(draw, d, max_log_sv=1.0):
    """An invertible ``d x d`` matrix ``U diag(exp(s)) V^T`` with ``|s| <= max_log_sv``."""
    rng = onp.random.default_rng(draw(seeds))
    U, _ = onp.linalg.qr(rng.standard_normal((d, d)))
    V, _ = onp.linalg.qr(rng.standard_normal((d, d)))
    s = draw(hnp.arrays(onp.float64, (d,), elements=st.floats(-max_log_sv, max_log_sv)))
    return U @ onp.diag(onp.exp(s)) @ V.T


@st.composite
def gaussian_mixtures(draw, d=None, max_components=4):
    """A ``reference.distributions.GaussianMixture`` with weights in ``[0.2, 1]`` (normalised)
    and covariances ``A A^T + 0.1 I``."""
    from ..distributions import GaussianMixture

    d = draw(st.integers(1, 3)) if d is None else d
    k = draw(st.integers(1, max_components))
    rng = onp.random.default_rng(draw(seeds))
    w = rng.uniform(0.2, 1.0, k)
    A = 0.5 * rng.standard_normal((k, d, d))
    covs = A @ onp.swapaxes(A, 1, 2) + 0.1 * onp.eye(d)
    return GaussianMixture(w / w.sum(), 2.0 * rng.standard_normal((k, d)), covs)


@st.composite
def linear_fields(draw, d=None, max_norm=1.5):
    """A linear velocity field ``u(x, t) = x A^T`` with its exact flow and log-density.

    Returns:
        ``(u, flow, log_p1)``: the field; ``flow(x0, t) = x0 expm(t A)^T``; and the
        log-density of ``p1 = flow(., 1) # N(0, I)``, ``log p0(expm(-A) x) - tr A``.
    """
    from scipy.linalg import expm

    d = draw(dims) if d is None else d
    A = draw(hnp.arrays(onp.float64, (d, d), elements=st.floats(-max_norm / d, max_norm / d)))

    def u(x, t):
        return x @ A.T

    def flow(x0, t):
        return x0 @ expm(t * A).T

    def log_p1(x):
        z = x @ expm(-A).T
        return -0.5 * d * onp.log(2 * onp.pi) - 0.5 * onp.sum(z**2, axis=1) - onp.trace(A)

    return u, flow, log_p1


@st.composite
def noise_data_pairs(draw, n=None, d=None):
    """``(x0, x1)``: noise ``N(0, I)`` and data shifted away from it, each ``(n, d)``, from a drawn seed."""
    n = draw(st.integers(2, 8)) if n is None else n
    d = draw(dims) if d is None else d
    rng = onp.random.default_rng(draw(seeds))
    return rng.standard_normal((n, d)), 0.5 * rng.standard_normal((n, d)) + 2.0

"""Hypothesis strategies that build well-conditioned inputs for flow-matching tests.

For property tests of your own implementation::

    from hypothesis import given
    from reference.testing import strategies as fst

    @given(fst.points(d=2), fst.times(inside=True))
    def test_my_path_starts_at_the_noise(x0, t): ...

They *build* their values rather than filter them (times kept away from the conical
path's singularity at ``t = 1``, matrices with bounded singular values, mixture
covariances bounded away from singular), and draw seeds rather than floats where a
random generator is needed, so that failures shrink and replay. The cases they
generate are mostly generic (random points, fields with a Jacobian of order one, every
dimension from 1 to 5); the degenerate ones (all-zero or constant points, the zero
field, ``d = 1``) come up as edge cases, about one example in eight or less (the tests
measure the proportions under the ``ci`` profile). Requires ``hypothesis`` (the
package's ``test`` extra). Every strategy checks its arguments when it is built.
"""

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "reference.testing.strategies needs hypothesis: pip install 'flow-matching-reference[test]'"
    ) from err

import math
import numbers

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

dims = st.sampled_from((2, 3, 5, 1, 4))
"""A dimension ``d`` in 1..5, each equally likely (shrinks towards 2)."""

seeds = st.integers(min_value=0, max_value=2**32 - 1)
"""A seed for ``numpy.random.default_rng``."""

rngs = seeds.map(onp.random.default_rng)
"""A seeded ``numpy.random.Generator`` (shrinks through its seed)."""

_EDGE_ONE_IN = 8  # degenerate cases (zeros, constants, the zero field): about one example in this many


_DIMS = (1, 2, 3, 4, 5)
_DIM_WEIGHTS = (0.1, 0.25, 0.25, 0.15, 0.25)  # d = 1 is an edge case


def _rng(draw):
    """A generator from a drawn seed: sizes, dimensions and edge cases are drawn from it, so their
    proportions are the ones written here (hypothesis's own choices favour the smallest values)."""
    return onp.random.default_rng([draw(seeds), _SALT])


_SALT = 12345  # mixed into the seed: hypothesis draws small and structured seeds, and repeats them


def _dim(rng):
    return int(rng.choice(_DIMS, p=_DIM_WEIGHTS))


def _int(value, name, minimum, maximum, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, onp.integer)):
        raise TypeError(f"{name} must be {'None or ' if allow_none else ''}an integer in {minimum}..{maximum}, got "
                        f"{type(value).__name__} {value!r}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be an integer in {minimum}..{maximum}, got {value}")
    return int(value)


def _real(value, name, low, high, low_open=False):
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, onp.floating, onp.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
        raise ValueError(f"{name} must be in {'(' if low_open else '['}{low}, {high}], got {value}")
    return value


def times(inside=False, margin=0.05):
    """A time in ``[0, 1]``, or in ``[margin, 1 - margin]`` with ``inside=True``.

    Args:
        inside: keep away from both ends.
        margin: the distance to the ends with ``inside=True``, in ``[0, 0.5)`` (a
            negative margin would let ``t`` leave ``[0, 1]``).
    """
    if not isinstance(inside, (bool, onp.bool_)):
        raise TypeError(f"inside must be a bool, got {type(inside).__name__}")
    margin = _real(margin, "margin", 0.0, 0.5)
    if margin >= 0.5:
        raise ValueError(f"margin must be below 0.5 (the interval [margin, 1 - margin] would be empty), got {margin}")
    low, high = (margin, 1.0 - margin) if inside else (0.0, 1.0)
    return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)


@st.composite
def _points(draw, n, d, scale):
    rng = _rng(draw)
    n = int(rng.integers(1, 9)) if n is None else n
    d = _dim(rng) if d is None else d
    if rng.random() < 1 / _EDGE_ONE_IN:  # an edge case: hypothesis's own arrays (zeros, constants, ...)
        elements = st.floats(-scale, scale, allow_nan=False, allow_infinity=False)
        return draw(hnp.arrays(onp.float64, (n, d), elements=elements))
    return rng.uniform(-scale, scale, (n, d))


def points(n=None, d=None, scale=3.0):
    """A batch ``(n, d)`` of float64 points with entries in ``[-scale, scale]``.

    Mostly uniform random entries from a drawn seed; about one example in eight is an
    array built by hypothesis element by element (all zeros, constants, extremes).

    Args:
        n: the number of points (1..100000), or None for 1..8.
        d: the dimension (1..64), or None for ``dims``.
        scale: the largest magnitude of an entry, > 0.
    """
    n = _int(n, "n", 1, 100_000)
    d = _int(d, "d", 1, 64)
    scale = _real(scale, "scale", 0.0, 1e6, low_open=True)
    return _points(n, d, scale)


@st.composite
def _well_conditioned_matrices(draw, d, max_log_sv):
    rng = onp.random.default_rng(draw(seeds))
    U, _ = onp.linalg.qr(rng.standard_normal((d, d)))
    V, _ = onp.linalg.qr(rng.standard_normal((d, d)))
    s = draw(hnp.arrays(onp.float64, (d,), elements=st.floats(-max_log_sv, max_log_sv)))
    return U @ onp.diag(onp.exp(s)) @ V.T


def well_conditioned_matrices(d, max_log_sv=1.0):
    """An invertible ``d x d`` matrix ``U diag(exp(s)) V^T`` with ``|s| <= max_log_sv``.

    Args:
        d: the dimension (1..64).
        max_log_sv: the bound on the log singular values, in ``[0, 20]``.
    """
    d = _int(d, "d", 1, 64, allow_none=False)
    max_log_sv = _real(max_log_sv, "max_log_sv", 0.0, 20.0)
    return _well_conditioned_matrices(d, max_log_sv)


@st.composite
def _gaussian_mixtures(draw, d, max_components):
    from ..distributions import GaussianMixture

    rng = _rng(draw)
    d = int(rng.choice((1, 2, 3), p=(0.2, 0.4, 0.4))) if d is None else d
    k = int(rng.integers(1, max_components + 1))
    w = rng.uniform(0.2, 1.0, k)
    A = 0.5 * rng.standard_normal((k, d, d))
    covs = A @ onp.swapaxes(A, 1, 2) + 0.1 * onp.eye(d)
    return GaussianMixture(w / w.sum(), 2.0 * rng.standard_normal((k, d)), covs)


def gaussian_mixtures(d=None, max_components=4):
    """A ``reference.distributions.GaussianMixture`` with weights in ``[0.2, 1]`` (normalised)
    and covariances ``A A^T + 0.1 I``.

    Args:
        d: the dimension (1..16), or None for 1, 2 or 3.
        max_components: the largest number of components (1..32).
    """
    d = _int(d, "d", 1, 16)
    max_components = _int(max_components, "max_components", 1, 32, allow_none=False)
    return _gaussian_mixtures(d, max_components)


@st.composite
def _linear_fields(draw, d, max_norm):
    from scipy.linalg import expm

    rng = _rng(draw)
    d = _dim(rng) if d is None else d
    if rng.random() < 1 / (2 * _EDGE_ONE_IN):  # the zero field, an edge case
        A = onp.zeros((d, d))
    else:
        B = rng.standard_normal((d, d))
        A = rng.uniform(0.2, 1.0) * max_norm * B / onp.linalg.norm(B, 2)  # spectral norm in [0.2, 1] max_norm

    def u(x, t):
        return x @ A.T

    def flow(x0, t):
        return x0 @ expm(t * A).T

    def log_p1(x):
        z = x @ expm(-A).T
        return -0.5 * d * onp.log(2 * onp.pi) - 0.5 * onp.sum(z**2, axis=1) - onp.trace(A)

    return u, flow, log_p1


def linear_fields(d=None, max_norm=1.5):
    """A linear velocity field ``u(x, t) = x A^T`` with its exact flow and log-density.

    ``A`` is a random matrix whose spectral norm is drawn in ``[0.2, 1] max_norm``; about
    one example in sixteen is the zero field, about one in ten has ``d = 1``.

    Args:
        d: the dimension (1..16), or None for ``dims``.
        max_norm: the largest spectral norm of ``A``, in ``(0, 10]``.

    Returns:
        ``(u, flow, log_p1)``: the field; ``flow(x0, t) = x0 expm(t A)^T``; and the
        log-density of ``p1 = flow(., 1) # N(0, I)``, ``log p0(expm(-A) x) - tr A``.
    """
    d = _int(d, "d", 1, 16)
    max_norm = _real(max_norm, "max_norm", 0.0, 10.0, low_open=True)
    return _linear_fields(d, max_norm)


@st.composite
def _noise_data_pairs(draw, n, d):
    rng = _rng(draw)
    n = int(rng.integers(2, 9)) if n is None else n
    d = _dim(rng) if d is None else d
    return rng.standard_normal((n, d)), 0.5 * rng.standard_normal((n, d)) + 2.0


def noise_data_pairs(n=None, d=None):
    """``(x0, x1)``: noise ``N(0, I)`` and data shifted away from it, each ``(n, d)``, from a drawn seed.

    Args:
        n: the number of pairs (1..100000), or None for 2..8.
        d: the dimension (1..64), or None for ``dims``.
    """
    n = _int(n, "n", 1, 100_000)
    d = _int(d, "d", 1, 64)
    return _noise_data_pairs(n, d)

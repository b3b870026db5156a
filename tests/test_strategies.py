"""``tests/strategies.py``: edge cases come up in a few examples, never in the bulk.

Each strategy is drawn ``N`` times the way the ``ci`` profile draws it (derandomized)
and the share of each edge case (``d = 1``, a zero field, an all-zero batch, a planar
``a`` parallel to ``b``, ...) is measured. The strategies make an edge case with
probability ``EDGE_RATE`` (a tenth) from a drawn seed, but hypothesis does not draw
seeds independently (it mutates earlier examples, and which examples it keeps depends on
what else the session imported), so the shares are checked against stated bounds
rather than a binomial standard error: every edge case in at most ``MAX_SHARE`` (a
fifth) of the examples, and at least once. The negative control measures the strategy
the autodiff tests used before (hypothesis's dimensions, arrays and floats left to
themselves) with the same statistic and finds trivial cases (``d = 1``, a zero matrix or
all-zero points) in bulk.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from reference.testing import strategies as user_strategies
from tests import strategies as S
from tests.test_autodiff import fields

N = 100
MAX_SHARE = 2 * S.EDGE_RATE
"""An edge case may come up in at most a fifth of the examples (it is built to in about a tenth)."""

PATHS = ("ConicalGaussianPath", "LinearInterpolationPath", "OptimalTransportPath", "VariancePreservingPath")


def examples(strategy, n=N):
    """``n`` examples of ``strategy``, generated as under the ``ci`` profile (derandomized)."""
    seen = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value):
        seen.append(value)

    collect()
    return seen


def share(values, predicate):
    return float(np.mean([bool(predicate(v)) for v in values]))


def assert_an_edge_case(values, predicate, what):
    hits = share(values, predicate)
    assert 0 < hits <= MAX_SHARE, f"{what}: {hits:.3f} of {len(values)} examples (want some, at most {MAX_SHARE})"


@pytest.fixture(scope="module")
def drawn():
    strategies = {"fields": fields(), "dims": S.dims, "points": S.points(), "matrices": S.matrices(3),
                  "path_cases": S.path_cases(), "planar_layers": S.planar_layers(3),
                  "coupling_layers": S.coupling_layers(), "gaussian_to_gaussian": S.gaussian_to_gaussian()}
    return {name: examples(strategy) for name, strategy in strategies.items()}


def trivial_field(case):
    """``d = 1`` (Rademacher Hutchinson is exact, a Jacobian is its trace), ``A = 0`` or all points at 0."""
    d, A, _, x, _ = case
    return d == 1 or not np.any(A) or not np.any(x)


def test_autodiff_fields_are_mostly_nontrivial(drawn):
    cases = drawn["fields"]
    assert_an_edge_case(cases, lambda c: c[0] == 1, "d = 1")
    assert_an_edge_case(cases, lambda c: not np.any(c[1]) and c[2] == 0, "zero field")
    assert share(cases, trivial_field) <= MAX_SHARE  # all the trivial kinds together


@st.composite
def fields_left_to_hypothesis(draw):
    """The construction the autodiff tests used before: hypothesis's dimensions, arrays and floats as they come."""
    d = draw(user_strategies.dims)
    A = draw(hnp.arrays(np.float64, (d, d), elements=st.floats(-1.5, 1.5, allow_nan=False)))
    c = draw(st.floats(-1, 1))
    x = draw(user_strategies.points(d=d))
    return d, A, c, x, draw(st.floats(0, 1))


def test_negative_control_fields_left_to_hypothesis_are_often_trivial():
    # about half of them: d = 1, A = 0 or x = 0 (measured 0.43 to 0.53 as the session's imports vary)
    cases = examples(fields_left_to_hypothesis())
    assert share(cases, trivial_field) > MAX_SHARE


def test_dimensions_points_and_matrices_are_mostly_nontrivial(drawn):
    assert_an_edge_case(drawn["dims"], lambda d: d == 1, "dims: d = 1")
    assert_an_edge_case(drawn["points"], lambda x: x.shape[1] == 1, "points: d = 1")
    assert_an_edge_case(drawn["points"], lambda x: not np.any(x), "points: all zero")
    assert_an_edge_case(drawn["matrices"], lambda A: not np.any(A), "matrices: zero")


def test_paths_and_layers_are_mostly_nontrivial(drawn):
    cases = drawn["path_cases"]
    assert_an_edge_case(cases, lambda c: c[1].shape[1] == 1, "path_cases: d = 1")
    assert_an_edge_case(cases, lambda c: c[1].shape[0] == 1, "path_cases: n = 1")
    for kind in PATHS:  # built to be a quarter each; none starved (before: the conical path in 1 of 200 gaussian_paths)
        assert share(cases, lambda c: type(c[0]).__name__ == kind) >= 0.05, kind

    def parallel(p):
        a, b = p["a"], p["b"]
        return abs(abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)) - 1) < 1e-12

    assert_an_edge_case(drawn["planar_layers"], parallel, "planar_layers: a parallel to b")
    # d' = 1 is forced for d = 2; for d >= 4 a uniform split makes it at most a third
    wide = [c for c in drawn["coupling_layers"] if c[1] >= 4]
    assert wide and share(wide, lambda c: c[2] == 1) <= 0.5
    assert_an_edge_case(drawn["gaussian_to_gaussian"], lambda c: c[0].shape[0] == 1, "gaussian_to_gaussian: d = 1")

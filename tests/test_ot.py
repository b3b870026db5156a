"""``reference.ot``: exact minibatch optimal-transport pairing of (x0, x1)."""

import itertools

import numpy as np
import pytest
from hypothesis import given, strategies as st

from reference.ot import ot_pair, ot_permutation, pairing_cost, squared_cost_matrix
from tests.strategies import points, seeds


@st.composite
def batches(draw, max_n=7, d=None):
    """A pair of batches (x0, x1) of n <= max_n points in general position (no ties in the cost)."""
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, 3)) if d is None else d
    rng = np.random.default_rng(draw(seeds))
    return rng.standard_normal((n, d)), 2.0 + rng.standard_normal((n, d))


def brute_force_minimum(x0, x1):
    n = len(x0)
    return min(sum(np.sum((x0[i] - x1[p[i]]) ** 2) for i in range(n)) for p in itertools.permutations(range(n)))


@given(batches())
def test_ot_pair_returns_x0_and_a_permutation_of_x1(batch):
    x0, x1 = batch
    a, b = ot_pair(x0, x1)
    sigma = ot_permutation(x0, x1)
    assert np.array_equal(np.sort(sigma), np.arange(len(x0)))
    np.testing.assert_array_equal(a, x0)
    np.testing.assert_array_equal(b, x1[sigma])
    # the rows of b are exactly the rows of x1 (a multiset comparison, order-free)
    np.testing.assert_array_equal(b[np.lexsort(b.T)], x1[np.lexsort(x1.T)])


@given(batches(max_n=7))
def test_ot_pairing_attains_the_brute_force_minimum(batch):
    x0, x1 = batch
    best = brute_force_minimum(x0, x1)
    np.testing.assert_allclose(pairing_cost(*ot_pair(x0, x1)), best, rtol=1e-12)
    # negative control: swapping two partners of the optimal pairing costs strictly more
    n = len(x0)
    if n >= 2:
        sigma = ot_permutation(x0, x1)
        swapped = sigma.copy()
        swapped[[0, 1]] = swapped[[1, 0]]
        assert pairing_cost(x0, x1[swapped]) > best * (1 + 1e-12)


@given(batches(max_n=7), seeds)
def test_no_permutation_beats_the_ot_pairing(batch, seed):
    x0, x1 = batch
    perm = np.random.default_rng(seed).permutation(len(x0))
    assert pairing_cost(x0, x1[perm]) >= pairing_cost(*ot_pair(x0, x1)) * (1 - 1e-12)


@given(batches(max_n=30, d=1))
def test_in_one_dimension_the_ot_pairing_is_the_monotone_pairing(batch):
    x0, x1 = batch
    a, b = ot_pair(x0, x1)
    # the k-th smallest x0 goes with the k-th smallest x1
    np.testing.assert_array_equal(np.argsort(a[:, 0]), np.argsort(b[:, 0]))
    # negative control: the anti-monotone pairing fails the same check and costs more (n >= 2)
    if len(x0) >= 2:
        anti = np.sort(x1[:, 0])[::-1][np.argsort(np.argsort(x0[:, 0]))]
        assert not np.array_equal(np.argsort(x0[:, 0]), np.argsort(anti))
        assert pairing_cost(x0, anti[:, None]) > pairing_cost(a, b)


@given(points(n=4, d=2), points(n=4, d=2))
def test_cost_matrix_entries_are_squared_distances(x0, x1):
    by_hand = np.array([[np.sum((a - b) ** 2) for b in x1] for a in x0])
    np.testing.assert_allclose(squared_cost_matrix(x0, x1), by_hand, rtol=1e-14, atol=1e-14)
    # negative control: Euclidean (unsquared) distances differ unless all distances are 0 or 1
    if not np.all(np.isin(np.round(by_hand, 12), [0.0, 1.0])):
        assert not np.allclose(squared_cost_matrix(x0, x1), np.sqrt(by_hand), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: ot_pair(np.zeros((3, 2)), np.zeros((4, 2))), ValueError, "the same number of points, got 3 and 4"),
        (lambda: ot_pair(np.zeros((3, 2)), np.zeros((3, 3))), ValueError, "x1 must have dimension d = 2"),
        (lambda: ot_pair(np.zeros(3), np.zeros((3, 1))), ValueError, r"x0 must have shape \(n, d\)"),
        (lambda: ot_permutation(np.zeros((2, 2)), np.full((2, 2), np.inf)), ValueError, "x1 holds 4 non-finite"),
        (lambda: pairing_cost(None, np.zeros((2, 2))), TypeError, "x0 must be an array"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()

"""``check_ot_pairing``: minibatch optimal-transport pairing against brute force  [lecture: Flow Matching In Practice, step 4]"""

import itertools
import numbers

import numpy as onp

from .._validate import check_callable, check_positive_int
from ._args import DEFAULT_DIMS, check_dims, check_precision, check_seed
from ._guard import Impl, Stop, as_array, continuing, run_checker
from ._report import Recorder, assert_twin, roundoff_tol

__all__ = ["check_ot_pairing", "assert_ot_pairing"]


def _batches(sizes, dims, rng):
    """Batches whose optimal pairing is unique by a clear margin (redrawn otherwise), for each d and size."""
    for d in dims:
        shift = onp.resize(onp.array([1.5, 0.5, -0.8, 1.0, 0.3]), d)
        for n in sizes:
            perms = onp.array(list(itertools.permutations(range(n))))
            while True:
                x0 = rng.standard_normal((n, d))
                x1 = 0.7 * rng.standard_normal((n, d)) + shift
                C = ((x0[:, None, :] - x1[None, :, :]) ** 2).sum(-1)
                costs = C[onp.arange(n), perms].sum(axis=1)
                order = onp.argsort(costs)
                if costs[order[1]] - costs[order[0]] > 1e-3 * costs[order[0]]:
                    yield d, x0, x1, perms, costs, C
                    break


def _row_indices(rows, source, tol):
    """For each row of ``rows`` the index of the equal row of ``source`` (-1 if none)."""
    dist = onp.max(onp.abs(rows[:, None, :] - source[None, :, :]), axis=2)
    idx = onp.argmin(dist, axis=1)
    return onp.where(dist[onp.arange(len(rows)), idx] <= tol, idx, -1)


def _alternative_pairings(x0, x1, perms, costs):
    """The permutation each named mistake would produce on this batch (unique optimum or None)."""
    n, d = x0.shape
    opt = perms[onp.argmin(costs)]
    diff = x0[:, None, :] - x1[None, :, :]
    out = {"no re-pairing": onp.arange(n), "inverse permutation applied": onp.argsort(opt)}

    def best(cost_matrix, maximise=False):
        c = cost_matrix[onp.arange(n), perms].sum(axis=1)
        c = -c if maximise else c
        order = onp.argsort(c)
        return perms[order[0]] if c[order[1]] - c[order[0]] > 1e-9 * (1 + abs(c[order[0]])) else None

    out["cost not squared"] = best(onp.sqrt((diff**2).sum(-1)))
    out["cost maximised"] = best((diff**2).sum(-1), maximise=True)
    for q in range(1, d):
        out[f"cost on the first {q} coordinate{'s' if q > 1 else ''} only"] = best((diff[:, :, :q] ** 2).sum(-1))
    return opt, out


_ADVICE = {
    "no re-pairing": "the batch is returned in its original pairing",
    "inverse permutation applied": "x1 is reordered by the inverse of the optimal assignment: with rows, cols = "
                                   "linear_sum_assignment(C), x0[i] pairs with x1[cols[i]], so take x1[cols]",
    "cost not squared": "the pairing is optimal for |x0 - x1|, not for |x0 - x1|^2 (on every batch)",
    "cost maximised": "the pairing maximises the total cost (the cost's sign is flipped)",
}


class _Skip(Stop):
    """This batch is judged (its failure recorded): go on with the next."""


def _body(rec, pair, sizes, dims, seed, declared):
    impl = Impl(pair, "pair", rec, ("x0", "x1"), declared)
    rng = onp.random.default_rng(seed)
    found = []  # (d, n, sigma, alternatives) for batches where the pairing is a permutation
    optimal_everywhere = True
    for d, x0, x1, perms, costs, C in _batches(sizes, dims, rng):
        with continuing(rec):
            n = x0.shape[0]
            where = f"in d = {d}"
            out = impl(x0, x1, where=where)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                rec.fail(f"pair must return a pair (x0_paired, x1_paired), got {type(out).__name__}")
                raise Stop
            a = as_array(out[0], "x0_paired", rec, where=where)
            b = as_array(out[1], "x1_paired", rec, where=where)
            if a.shape != (n, d) or b.shape != (n, d):
                rec.fail(f"pair returned shapes {a.shape} and {b.shape} for batches of shape {(n, d)} ({where})")
                raise Stop
            eps = rec.precision.eps
            tol = roundoff_tol(eps) * (1 + max(onp.abs(x0).max(), onp.abs(x1).max()))
            i0, i1 = _row_indices(a, x0, tol), _row_indices(b, x1, tol)
            if onp.any(i0 < 0) or onp.any(i1 < 0):
                if onp.all(_row_indices(a, x1, tol) >= 0) and onp.all(_row_indices(b, x0, tol) >= 0):
                    rec.diagnose("x0 and x1 swapped", "pair returns (x1_paired, x0_paired): noise first, data second")
                rec.fail(f"n = {n}, {where}: the paired points are not rows of the inputs (changed, not reordered)")
                optimal_everywhere = False
                raise _Skip
            if len(set(i0)) < n or len(set(i1)) < n:
                rec.fail(f"n = {n}, {where}: the pairs are not a permutation of the inputs ({n - len(set(i0))} row(s) of "
                         f"x0 and {n - len(set(i1))} of x1 repeated, as many dropped)")
                rec.diagnose("pairs drawn with replacement",
                             "the pairs are a sample drawn with replacement (e.g. from the OT plan), not the optimal "
                             "permutation; draw without replacement or apply the assignment itself")
                opt = perms[onp.argmin(costs)]
                rec.measure(f"pairs_on_optimal_plan_n{n}_d{d}", float(onp.sum(opt[i0] == i1)) / n, None,
                            what=f"fraction of the {n} drawn pairs that are pairs of the optimal assignment ({where})")
                optimal_everywhere = False
                raise _Skip
            sigma = onp.empty(n, dtype=int)
            sigma[i0] = i1  # x0[i] is paired with x1[sigma[i]]
            cost = C[onp.arange(n), sigma].sum()
            best = costs.min()
            gap = (cost - best) / best
            ok = rec.measure(f"excess_cost_n{n}_d{d}", gap, roundoff_tol(eps),
                             what=f"(cost - brute-force minimum) / minimum on a batch of {n} in d = {d} (sqrt(eps))",
                             fail=f"n = {n}, d = {d}: total squared cost {cost:.6g} exceeds the brute-force minimum "
                                  f"{best:.6g} by {100 * gap:.3g}%")
            optimal_everywhere &= ok
            opt, alts = _alternative_pairings(x0, x1, perms, costs)
            found.append((d, n, sigma, opt, alts, ok))
    if not optimal_everywhere and found:
        # a name is given only if the pairing is that mistake's on every batch where the mistake differs from
        # the optimum (and there is at least one such batch)
        labels = set().union(*(set(alts) for *_, alts, _ in found))
        for label in sorted(labels):
            defined = [(sigma, alts[label], opt) for _, _, sigma, opt, alts, _ in found
                       if alts.get(label) is not None]
            informative = [1 for _, alt, opt in defined if not onp.array_equal(alt, opt)]
            if informative and all(onp.array_equal(sigma, alt) for sigma, alt, _ in defined):
                if label.startswith("cost on the first"):
                    advice = ("the pairing is optimal for a cost on the first coordinates only (a cost written for "
                              "2-D points, x[:, 0] and x[:, 1]): sum the squared differences over all d coordinates")
                else:
                    advice = _ADVICE[label]
                rec.diagnose(label, advice)
    rec.cover(f"d = {', '.join(map(str, dims))}; batches of {', '.join(map(str, sizes))} points "
              "(every permutation enumerated)")
    return (f"the pairs are permutations of the inputs with the brute-force minimal cost on batches of "
            f"{', '.join(map(str, sizes))} points in d = {', '.join(map(str, dims))}.")


def check_ot_pairing(pair, *, sizes=(4, 6, 7), d=None, seed=0, precision=None):
    """Check a minibatch OT pairing against the brute-force optimum  [lecture: Flow Matching In Practice, step 4]

    ``pair(x0, x1) -> (x0_paired, x1_paired)`` re-pairs a minibatch of noise ``x0`` and data
    ``x1`` so that ``sum_i |x0_paired_i - x1_paired_i|^2`` is minimal. On batches of each
    size in ``sizes`` (every permutation is enumerated, so keep them <= 8), in each
    dimension of ``d`` (default 1, 2, 3, 5):

    - ``x0_paired`` is a permutation of the rows of ``x0`` and ``x1_paired`` of ``x1``
      (nothing dropped, repeated or changed);
    - the total squared cost equals the brute-force minimum (to ``sqrt(eps)`` relative);
    - the inputs are not modified and no result shares memory with them (return
      ``x0.copy()``, or ``x0[rows]``, rather than ``x0`` itself).

    On failure it names a mistake only when the pairing is the one that mistake gives on
    every batch where that differs from the optimum: pairs drawn with replacement (a
    sample from the plan), no re-pairing, the inverse of the optimal permutation, a
    pairing optimal for the distance instead of the squared distance, the cost
    maximised, a cost on the first coordinates only, ``x0`` and ``x1`` swapped. Any other
    wrong pairing (a standardised cost, say) fails without a name.

    Args:
        pair: ``pair(x0, x1) -> (x0_paired, x1_paired)``, each ``(n, d)``.
        sizes: batch sizes to test, each in 2..8.
        d: a dimension or a sequence of dimensions (default ``1, 2, 3, 5``).
        seed: seed of the batches (an integer >= 0).
        precision: the precision the implementation computes in, if lower than its outputs' dtype says.

    Returns:
        ``CheckReport``.
    """
    check_callable(pair, "pair")
    if isinstance(sizes, (numbers.Integral, str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"sizes must be a sequence of integers, got {type(sizes).__name__}")
    sizes = tuple(check_positive_int(s, "sizes[...]", minimum=2) for s in sizes)
    if not sizes:
        raise ValueError("sizes must hold at least one batch size")
    if max(sizes) > 8:
        raise ValueError(f"sizes must be <= 8 (every permutation is enumerated), got {sizes}")
    dims = DEFAULT_DIMS if d is None else check_dims(d, "d")
    seed = check_seed(seed)
    declared = check_precision(precision)
    rec = Recorder("check_ot_pairing")
    return run_checker(rec, _body, pair, sizes, dims, seed, declared)


assert_ot_pairing = assert_twin(check_ot_pairing)

"""``check_ot_pairing``: minibatch optimal-transport pairing against brute force  [lecture: Flow Matching In Practice, step 4]"""

import itertools

import numpy as onp

from .._validate import check_callable, check_positive_int
from ._report import Recorder, as_numpy, assert_twin, machine_eps, roundoff_tol

__all__ = ["check_ot_pairing", "assert_ot_pairing"]


def _batches(sizes, d, rng):
    """Batches whose optimal pairing is unique by a clear margin (redrawn otherwise)."""
    for n in sizes:
        while True:
            x0 = rng.standard_normal((n, d))
            x1 = 0.7 * rng.standard_normal((n, d)) + onp.r_[1.5, 0.5, onp.zeros(max(d - 2, 0))][:d]
            perms = onp.array(list(itertools.permutations(range(n))))
            C = ((x0[:, None, :] - x1[None, :, :]) ** 2).sum(-1)
            costs = C[onp.arange(n), perms].sum(axis=1)
            order = onp.argsort(costs)
            if costs[order[1]] - costs[order[0]] > 1e-3 * costs[order[0]]:
                yield x0, x1, perms, costs, C
                break


def _row_indices(rows, source, tol):
    """For each row of ``rows`` the index of the equal row of ``source`` (-1 if none)."""
    dist = onp.max(onp.abs(rows[:, None, :] - source[None, :, :]), axis=2)
    idx = onp.argmin(dist, axis=1)
    return onp.where(dist[onp.arange(len(rows)), idx] <= tol, idx, -1)


def check_ot_pairing(pair, *, sizes=(4, 6, 7), d=2, seed=0):
    """Check a minibatch OT pairing against the brute-force optimum  [lecture: Flow Matching In Practice, step 4]

    ``pair(x0, x1) -> (x0_paired, x1_paired)`` re-pairs a minibatch of noise ``x0`` and data
    ``x1`` so that ``sum_i |x0_paired_i - x1_paired_i|^2`` is minimal. On batches of each
    size in ``sizes`` (every permutation is enumerated, so keep them <= 8):

    - ``x0_paired`` is a permutation of the rows of ``x0`` and ``x1_paired`` of ``x1``
      (nothing dropped, repeated or changed);
    - the total squared cost equals the brute-force minimum (to ``sqrt(eps)`` relative).

    On failure it names: pairs drawn with replacement (a sample from the plan, not a
    permutation), no re-pairing at all, the inverse of the optimal permutation applied,
    a pairing optimal for the distance instead of the squared distance, the cost
    maximised, ``x0`` and ``x1`` swapped in the output.

    Args:
        pair: ``pair(x0, x1) -> (x0_paired, x1_paired)``, each ``(n, d)``.
        sizes: batch sizes to test.
        d: dimension.
        seed: seed of the batches.

    Returns:
        ``CheckReport``.
    """
    check_callable(pair, "pair")
    sizes = tuple(check_positive_int(s, "sizes[...]", minimum=2) for s in sizes)
    if max(sizes) > 8:
        raise ValueError(f"sizes must be <= 8 (every permutation is enumerated), got {sizes}")
    d = check_positive_int(d, "d")
    rec = Recorder("check_ot_pairing")
    rng = onp.random.default_rng(seed)

    for x0, x1, perms, costs, C in itertools.islice(_batches(sizes, d, rng), len(sizes)):
        n = x0.shape[0]
        out = pair(x0.copy(), x1.copy())
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            rec.fail(f"pair must return a pair (x0_paired, x1_paired), got {type(out).__name__}")
            return rec.report()
        a, b = as_numpy(out[0], "x0_paired").astype(onp.float64), as_numpy(out[1], "x1_paired").astype(onp.float64)
        if a.shape != (n, d) or b.shape != (n, d):
            rec.fail(f"pair returned shapes {a.shape} and {b.shape} for batches of shape {(n, d)}")
            return rec.report()
        tol = roundoff_tol(machine_eps(out[0], out[1])) * (1 + max(onp.abs(x0).max(), onp.abs(x1).max()))
        i0, i1 = _row_indices(a, x0, tol), _row_indices(b, x1, tol)
        if onp.any(i0 < 0) or onp.any(i1 < 0):
            if onp.all(_row_indices(a, x1, tol) >= 0) and onp.all(_row_indices(b, x0, tol) >= 0):
                rec.diagnose("x0 and x1 swapped", "pair returns (x1_paired, x0_paired): noise first, data second")
            rec.fail(f"n = {n}: the paired points are not rows of the inputs (they were changed, not reordered)")
            continue
        if len(set(i0)) < n or len(set(i1)) < n:
            rec.fail(f"n = {n}: the pairs are not a permutation of the inputs ({n - len(set(i0))} row(s) of x0 and "
                     f"{n - len(set(i1))} of x1 repeated, as many dropped)")
            rec.diagnose("pairs drawn with replacement",
                         "the pairs are a sample drawn with replacement (e.g. from the OT plan), not the optimal "
                         "permutation; draw without replacement or apply the assignment itself")
            opt = perms[onp.argmin(costs)]
            on_plan = int(onp.sum(opt[i0] == i1))
            rec.measure(f"pairs_on_optimal_plan_n{n}", on_plan / n, None,
                        what=f"fraction of the {n} drawn pairs that are pairs of the optimal assignment")
            continue
        sigma = onp.empty(n, dtype=int)
        sigma[i0] = i1  # x0[i] is paired with x1[sigma[i]]
        cost = C[onp.arange(n), sigma].sum()
        best = costs.min()
        gap = (cost - best) / best
        if not rec.measure(f"excess_cost_n{n}", gap, roundoff_tol(machine_eps(out[0], out[1])),
                           what=f"(cost - brute-force minimum) / minimum on a batch of {n} (sqrt(eps) relative)",
                           fail=f"n = {n}: total squared cost {cost:.6g} exceeds the brute-force minimum {best:.6g} "
                                f"by {100 * gap:.3g}%"):
            opt = perms[onp.argmin(costs)]
            dist_costs = onp.sqrt(C)[onp.arange(n), perms].sum(axis=1)
            if onp.array_equal(sigma, onp.arange(n)):
                rec.diagnose("no re-pairing", "the batch is returned in its original pairing")
            elif onp.array_equal(sigma, onp.argsort(opt)):
                rec.diagnose("inverse permutation applied",
                             "x1 is reordered by the inverse of the optimal assignment: with rows, cols = "
                             "linear_sum_assignment(C), x0[i] pairs with x1[cols[i]], so take x1[cols]")
            elif onp.array_equal(sigma, perms[onp.argmin(dist_costs)]):
                rec.diagnose("cost not squared", "the pairing is optimal for |x0 - x1|, not for |x0 - x1|^2")
            elif onp.array_equal(sigma, perms[onp.argmax(costs)]):
                rec.diagnose("cost maximised", "the pairing maximises the total cost (the cost's sign is flipped)")
    return rec.report(f"the pairs are permutations of the inputs with the brute-force minimal cost on batches of "
                      f"{', '.join(map(str, sizes))} points.")


assert_ot_pairing = assert_twin(check_ot_pairing)

"""Where an estimator's randomness lives, and the mean and standard error that follow from it.

A stochastic estimator (Hutchinson's divergence, a likelihood that uses it) may draw
its random numbers

- per point: each row of a batch gets its own probe (the rows are independent);
- per call (or per solve): one probe shared by the whole batch, fresh at each call;
- nowhere: it is deterministic (or reseeds itself the same way at each call).

The checkers repeat each point ``m`` times in one batch (tiled, so that repeats of a
point are far apart in the batch). Repeats that differ within a call are independent
draws (tested with a second call: the two calls' means must agree within what the
within-call spread predicts, else the calls' means are the samples); repeats that are
equal within a call (to ``100 eps``) mean the randomness, if any, is per call: the
calls themselves are then the samples (``n_calls`` of them; if 16 calls agree, the
estimator is deterministic).
Either way the mean and its standard error are computed from samples that are
independent, so an unbiased estimator is judged unbiased wherever its randomness lives.
"""

import math

import numpy as onp

__all__ = ["locate_and_average"]

_Z_CORRELATED = 6.0  # two calls' means this many standard errors apart: rows are not independent


def locate_and_average(call_repeated, call_single, n, m, n_calls, eps):
    """Mean and standard error per point, wherever the randomness lives.

    Args:
        call_repeated: ``call_repeated(c) -> (m * n,)``: the estimates for the ``n`` points
            tiled ``m`` times (row ``r n + i`` is point ``i``), call number ``c``.
        call_single: ``call_single(c) -> (n,)``: one estimate per point, call number ``c``.
        n, m: points and repeats.
        n_calls: how many calls to average when the randomness is per call.
        eps: the implementation's machine epsilon, or a callable giving it after the first call (repeats closer than ``100 eps`` are equal).

    Returns:
        ``(mean, se, samples, where, n_samples)``: ``(n,)`` means and standard errors,
        the ``(n, k)`` samples, where the randomness lives (``"per point"``, ``"per
        call"``, ``"none"``) and the number of samples per point.
    """
    first = onp.asarray(call_repeated(0), dtype=onp.float64).reshape(m, n)
    eps = eps() if callable(eps) else eps
    tiny = 100.0 * eps * (1.0 + onp.abs(first.mean(axis=0)))
    if onp.all(first.std(axis=0) <= tiny):
        # every repeat of a point is the same within a call: the calls are the samples
        calls = [first.mean(axis=0)]
        for c in range(n_calls):
            calls.append(onp.asarray(call_single(1 + c), dtype=onp.float64))
            if c == 15 and onp.all(onp.ptp(onp.stack(calls), axis=0) <= tiny):
                return calls[0], onp.zeros(n), onp.stack(calls, axis=1), "none", len(calls)
        samples = onp.stack(calls, axis=1)
        k = samples.shape[1]
        return samples.mean(axis=1), samples.std(axis=1, ddof=1) / math.sqrt(k), samples, "per call", k
    second = onp.asarray(call_repeated(1), dtype=onp.float64).reshape(m, n)
    var = onp.concatenate([first, second]).var(axis=0, ddof=1)
    z = onp.abs(first.mean(axis=0) - second.mean(axis=0)) / onp.sqrt(2 * onp.maximum(var, 1e-300) / m)
    if onp.max(z) > _Z_CORRELATED:
        # repeats within a call are correlated (probes shared by parts of the batch): use per-call means
        means = [first.mean(axis=0), second.mean(axis=0)]
        means += [onp.asarray(call_repeated(2 + c), dtype=onp.float64).reshape(m, n).mean(axis=0)
                  for c in range(max(n_calls // 4, 8))]
        samples = onp.stack(means, axis=1)
        k = samples.shape[1]
        return (samples.mean(axis=1), samples.std(axis=1, ddof=1) / math.sqrt(k), samples,
                "per call (shared by parts of the batch)", k)
    samples = onp.concatenate([first, second]).T
    k = samples.shape[1]
    return samples.mean(axis=1), samples.std(axis=1, ddof=1) / math.sqrt(k), samples, "per point", k

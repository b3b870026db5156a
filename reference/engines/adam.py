"""Adam in place on one flat parameter vector: the fast engine of ``train.adam_update``  [lecture: Flow Matching In Practice, step 4]

``train.adam_update`` is the readable update (new arrays at every step, as the formula
reads). ``FlatAdam`` keeps ``theta`` and Adam's moments in preallocated arrays and does
the same arithmetic in place, operation for operation, so both give the same iterates bit
for bit (``tests/test_engines.py``), as does ``autograd.misc.optimizers.adam``.
"""

import numpy as onp

from .._validate import as_real_array, check_real

__all__ = ["FlatAdam"]


class FlatAdam:
    """Adam on one flat parameter vector, updated in place  [lecture: Flow Matching In Practice, step 4]

        m <- (1 - b1) g + b1 m,   v <- (1 - b2) g^2 + b2 v,
        theta <- theta - lr (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) + eps)

    The same arithmetic, operation for operation, as ``train.adam_update`` and
    ``autograd.misc.optimizers.adam`` (so all three give the same iterates, bit for bit),
    with its state kept in preallocated arrays instead of new ones at every step.

    Args:
        theta: the flat parameters, a 1-D float64 NumPy array (finite), updated in place by ``step``.
        lr: the step size, ``> 0``.
        b1, b2: the moments' decay rates, in ``[0, 1)``.
        eps: ``> 0``, added to the root of the second moment.
    """

    def __init__(self, theta, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        if not isinstance(theta, onp.ndarray) or theta.dtype != onp.float64:
            raise TypeError(f"theta must be a float64 NumPy array (it is updated in place), got "
                            f"{type(theta).__name__}" + (f" of dtype {theta.dtype}" if isinstance(theta, onp.ndarray) else ""))
        as_real_array(theta, "theta", ndim=1, what="a 1-D array (flat parameters)")
        if not theta.flags.writeable:
            raise ValueError("theta must be writeable: it is updated in place")
        self.theta = theta
        self.lr = check_real(lr, "lr", low=0.0, low_open=True)
        self.b1 = check_real(b1, "b1", low=0.0, high=1.0, high_open=True)
        self.b2 = check_real(b2, "b2", low=0.0, high=1.0, high_open=True)
        self.eps = check_real(eps, "eps", low=0.0, low_open=True)
        self.m, self.v = onp.zeros_like(theta), onp.zeros_like(theta)
        self._a, self._b = onp.empty_like(theta), onp.empty_like(theta)
        self.k = 0

    def step(self, g):
        """One update with the gradient ``g``: a real, finite array of ``theta``'s shape  [lecture: Flow Matching In Practice, step 4]"""
        g = as_real_array(g, "g", shape=self.theta.shape, what=f"an array of shape {self.theta.shape} like theta",
                          allow_traced=False)
        return self._step(g)

    def _step(self, g):
        """``step`` without its checks, for the training loop (its gradient is checked there)."""
        self.k += 1
        a, b = self._a, self._b
        onp.multiply(1 - self.b1, g, out=a)
        self.m *= self.b1
        self.m += a  # m = (1 - b1) g + b1 m
        onp.multiply(g, g, out=a)
        a *= 1 - self.b2
        self.v *= self.b2
        self.v += a  # v = (1 - b2) g^2 + b2 v
        onp.divide(self.v, 1 - self.b2**self.k, out=b)
        onp.sqrt(b, out=b)
        b += self.eps  # sqrt(vhat) + eps
        onp.divide(self.m, 1 - self.b1**self.k, out=a)
        a *= self.lr  # lr mhat
        a /= b
        self.theta -= a
        return self.theta

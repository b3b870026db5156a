"""The posterior weights of Theorem 1  [lecture: Theorem 1, eq. (10)]"""

import numpy as np


def posterior_weights(x, t, x1):
    """w_ij = p(x_i | t_i, z_j) / sum_k p(x_i | t_i, z_k), p(x | t, z = x1) = N(t x1, (1 - t)^2 I)  [lecture: eq. (10)]

    In log space: log w_ij = l_ij - max_k l_ik - log sum_k exp(l_ik - max_k l_ik).
    """
    var = (1 - t) ** 2                                                  # (n,)
    sq = np.sum((x[:, None, :] - t[:, None, None] * x1[None]) ** 2, axis=2)  # (n, m)
    log_p = -sq / (2 * var[:, None])            # the Gaussian's constant is the same for every j: it cancels
    log_p = log_p - np.max(log_p, axis=1, keepdims=True)
    w = np.exp(log_p)
    return w / np.sum(w, axis=1, keepdims=True)

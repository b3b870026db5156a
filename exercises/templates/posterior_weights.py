"""Exercise: the posterior weights of Theorem 1  [lecture: Theorem 1, eq. (10)]

Grade it with:  python -m exercises grade posterior_weights posterior_weights.py
"""

import numpy as np


def posterior_weights(x, t, x1):
    """w_ij = p(z_j | x_i, t_i) = p(x_i | t_i, z_j) / sum_k p(x_i | t_i, z_k)  [lecture: Theorem 1, eq. (10)]

    For a finite set z_1, ..., z_m (the data points x1, with the conical path of
    Example 2, p(x | t, z = x1) = N(t x1, (1 - t)^2 I)), eq. (10) reads

        u(x, t) = sum_j w_j(x, t) u_cond(x, t, z_j),
        w_j(x, t) = p(x | t, z_j) / sum_k p(x | t, z_k),

    the ratio p(x | t, z) / p(x | t) of eq. (10), which is the posterior p(z | x, t) of
    eq. (9). Return the weights w_ij for every point x_i (rows) and data point z_j
    (columns); each row sums to 1.

    Careful: far from the data (the grader uses points 25 away) every p(x_i | t_i, z_j)
    underflows to 0 in floating point, and 0 / 0 is NaN. Work with the log-densities
    l_ij = log p(x_i | t_i, z_j) and subtract max_j l_ij before exponentiating
    (log-sum-exp). The constant -d/2 log(2 pi (1 - t)^2) is the same for every j.

    Graded on the weights (finite, >= 0, rows summing to 1) and by
    reference.testing.check_marginal_velocity on u(x, t) = sum_j w_ij (x1_j - x_i) / (1 - t_i).

    Args:
        x: points, shape (n, d).
        t: one time per point in [0, 1), shape (n,).
        x1: the data points z_j, shape (m, d).

    Returns:
        the weights, shape (n, m).
    """
    raise NotImplementedError  # TODO: your code here

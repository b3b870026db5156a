"""Exercise: Hutchinson's estimator of the divergence  [lecture: CNF Pros]

Grade it with:  python -m exercises grade hutchinson hutchinson.py
"""

import numpy as np


def jacobian_vector_product(u, x, t, v, h=1e-5):
    """J_u(x, t) v for each row, by central differences (given: you do not need to change it).

    Args:
        u: the field, u(x, t) of shape (n, d).
        x: points, shape (n, d).
        t: time(s), a float or shape (n,).
        v: one vector per point, shape (n, d).

    Returns:
        shape (n, d): row i is J_u(x_i, t_i) v_i.
    """
    return (u(x + h * v, t) - u(x - h * v, t)) / (2 * h)


def hutchinson(u, x, t, rng):
    """div u(x, t) = tr J_u(x, t), estimated by eps^T J_u(x, t) eps  [lecture: CNF Pros]

    Hutchinson's trick: for a random probe eps with E[eps eps^T] = I (independent
    entries +1 or -1 with probability 1/2 each, "Rademacher", or standard normal),

        E[eps^T J eps] = tr(J E[eps eps^T]) = tr J.

    Draw one probe per point from rng, compute J eps with jacobian_vector_product and
    return eps^T (J eps) for each point: one cheap evaluation instead of d.

    Graded by reference.testing.check_divergence_estimator: the mean of many estimates
    must be within 5 standard errors of the exact trace, in d = 1, 2, 3 and 5.

    Args:
        u: the velocity field, u(x, t) of shape (n, d).
        x: points, shape (n, d).
        t: times, shape (n,).
        rng: a numpy.random.Generator; draw every random number from it.

    Returns:
        the estimates, shape (n,).
    """
    raise NotImplementedError  # TODO: your code here

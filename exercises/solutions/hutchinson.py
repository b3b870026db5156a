"""Hutchinson's estimator of the divergence  [lecture: CNF Pros]"""

import numpy as np


def jacobian_vector_product(u, x, t, v, h=1e-5):
    """J_u(x, t) v by central differences: (u(x + h v, t) - u(x - h v, t)) / (2 h), row by row."""
    return (u(x + h * v, t) - u(x - h * v, t)) / (2 * h)


def hutchinson(u, x, t, rng):
    """div u(x, t) = tr J_u(x, t) estimated by eps^T J_u(x, t) eps, one Rademacher probe per point  [lecture: CNF Pros]

    E[eps eps^T] = I for eps with independent entries +-1, so E[eps^T J eps] = tr J.
    """
    eps = rng.choice([-1.0, 1.0], size=x.shape)
    return np.sum(eps * jacobian_vector_product(u, x, t, eps), axis=1)

"""Exercise: the log-likelihood of a continuous normalizing flow  [lecture: Continuous Normalizing Flows]

Grade it with:  python -m exercises grade cnf_log_likelihood cnf_log_likelihood.py
"""

import numpy as np


def divergence(u, x, t, h=1e-5):
    """div u(x, t) = sum_j d u_j / d x_j, by central differences (given: you do not need to change it).

    Args:
        u: the field, u(x, t) of shape (n, d).
        x: points, shape (n, d).
        t: a float.

    Returns:
        shape (n,).
    """
    n, d = x.shape
    total = np.zeros(n)
    for j in range(d):
        e = np.zeros(d)
        e[j] = h
        total = total + (u(x + e, t)[:, j] - u(x - e, t)[:, j]) / (2 * h)
    return total


def cnf_log_likelihood(u, x):
    """log p1(x) = log p0(x(0)) - int_0^1 div u(x(t), t) dt, where x(1) = x  [lecture: Continuous Normalizing Flows]

    The flow of dx/dt = u(x, t) (eq. (4)) carries p0 = N(0, I) at t = 0 to p1 at t = 1.
    Along a trajectory the log-density changes by d/dt log p_t(x(t)) = -div u(x(t), t)
    (the continuity equation (5) read along the flow), so the likelihood needs no
    inverse map and no log-determinant, only the trace of the Jacobian (CNF Pros).

    Integrate the pair [x, l] with d/dt [x, l] = [u(x, t), div u(x, t)] from t = 1, where
    [x, l] = [x, 0], back to t = 0 (negative steps): then x(0) is where the point came
    from, and l = int_1^0 div u dt = -int_0^1 div u dt. Use RK4 with 16 steps (or your
    rk4_step); log p0(z) = -|z|^2 / 2 - d/2 log(2 pi).

    Graded by reference.testing.check_log_likelihood: closed forms and an accurate CNF
    in d = 1, 2, 3 and 5, to 1e-3 nats.

    Args:
        u: the velocity field, u(x, t) of shape (n, d) for x of shape (n, d), t a float.
        x: points at t = 1, shape (n, d).

    Returns:
        log p1(x), shape (n,).
    """
    raise NotImplementedError  # TODO: your code here

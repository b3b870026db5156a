"""The log-likelihood of a continuous normalizing flow  [lecture: Continuous Normalizing Flows]"""

import numpy as np


def divergence(u, x, t, h=1e-5):
    """div u(x, t) = sum_j d u_j / d x_j, each term by central differences."""
    n, d = x.shape
    total = np.zeros(n)
    for j in range(d):
        e = np.zeros(d)
        e[j] = h
        total = total + (u(x + e, t)[:, j] - u(x - e, t)[:, j]) / (2 * h)
    return total


def cnf_log_likelihood(u, x, n_steps=16):
    """log p1(x) = log p0(x(0)) - int_0^1 div u(x(t), t) dt, with x(1) = x  [lecture: Continuous Normalizing Flows]

    Solve d/dt [x, l] = [u(x, t), div u(x, t)] from t = 1 back to t = 0 by RK4, starting
    from [x, 0]: at t = 0, l = int_1^0 div u dt = -int_0^1 div u dt.
    """
    n, d = x.shape

    def f(z, t):
        return u(z, t), divergence(u, z, t)

    h = -1.0 / n_steps  # backwards in time
    z, l = x, np.zeros(n)
    for k in range(n_steps):
        t = 1.0 + k * h
        k1, m1 = f(z, t)
        k2, m2 = f(z + h / 2 * k1, t + h / 2)
        k3, m3 = f(z + h / 2 * k2, t + h / 2)
        k4, m4 = f(z + h * k3, t + h)
        z = z + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        l = l + h / 6 * (m1 + 2 * m2 + 2 * m3 + m4)
    log_p0 = -0.5 * np.sum(z**2, axis=1) - 0.5 * d * np.log(2 * np.pi)
    return log_p0 + l  # l = -int_0^1 div u dt

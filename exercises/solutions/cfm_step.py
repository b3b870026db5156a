"""One training step of conditional flow matching  [lecture: Flow Matching In Practice]"""

import autograd.numpy as np
from autograd import value_and_grad


def cfm_step(v, theta, x1, rng, lr):
    """theta - lr grad L(theta), L = mean_i || v(theta, x_t_i, t_i) - (x1_i - x0_i) ||^2  [lecture: Flow Matching In Practice]

    Step 4 with the linear path (Example 1, sigma = 0): t ~ U[0, 1] and x0 ~ N(0, I) per
    example, x_t = (1 - t) x0 + t x1, u_cond = x1 - x0 (Theorem 2's L_CFM, estimated on
    the batch).
    """
    n, d = x1.shape
    t = rng.uniform(0.0, 1.0, size=n)
    x0 = rng.standard_normal((n, d))
    x_t = (1 - t)[:, None] * x0 + t[:, None] * x1
    u_cond = x1 - x0

    def loss(theta):
        return np.mean(np.sum((v(theta, x_t, t) - u_cond) ** 2, axis=1))

    value, g = value_and_grad(loss)(theta)
    return theta - lr * g, value

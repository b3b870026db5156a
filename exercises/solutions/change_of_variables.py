"""The change-of-variables formula  [lecture: eq. (2)]"""

import numpy as np


def change_of_variables(inverse, x):
    """log p1(x) = log p0(T^{-1}(x)) + log |det J_{T^{-1}}(x)|, p0 = N(0, I)  [lecture: eq. (2)]

    The Jacobian of T^{-1} at each point by central differences, column j:
    J[:, :, j] = (T^{-1}(x + h e_j) - T^{-1}(x - h e_j)) / (2 h).
    """
    n, d = x.shape
    h = 1e-5
    z = inverse(x)
    J = np.zeros((n, d, d))
    for j in range(d):
        e = np.zeros(d)
        e[j] = h
        J[:, :, j] = (inverse(x + e) - inverse(x - e)) / (2 * h)
    _, log_abs_det = np.linalg.slogdet(J)
    log_p0 = -0.5 * np.sum(z**2, axis=1) - 0.5 * d * np.log(2 * np.pi)
    return log_p0 + log_abs_det

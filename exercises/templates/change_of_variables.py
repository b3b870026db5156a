"""Exercise: the change-of-variables formula  [lecture: Normalizing Flows, eq. (2)]

Grade it with:  python -m exercises grade change_of_variables change_of_variables.py
"""

import numpy as np


def change_of_variables(inverse, x):
    """log p1(x) = log p0(T^{-1}(x)) + log |det J_{T^{-1}}(x)|,  p0 = N(0, I)  [lecture: eq. (2)]

    p1 = T # p0 is the law of T(z) for z ~ p0; you are given the inverse map T^{-1}.

    - log p0(z) = -|z|^2 / 2 - d/2 log(2 pi) for the standard normal in d dimensions.
    - J_{T^{-1}}(x) is the d x d Jacobian of T^{-1} at x (one per point). Compute it by
      central differences, one column per coordinate j (h = 1e-5 is a good step):

          J[:, :, j] = (inverse(x + h e_j) - inverse(x - h e_j)) / (2 h)

      (or with autograd: the maps are written with numpy functions autograd knows).
    - log |det J|: numpy.linalg.slogdet returns the sign and log |det| of a batch of
      matrices. The determinant may be negative.

    Graded against closed forms in d = 1, 2, 3 and 5, to 1e-5 nats.

    Args:
        inverse: T^{-1}, a function taking points of shape (n, d) to points of shape (n, d)
            (row i of the result depends on row i of the input only).
        x: points, shape (n, d).

    Returns:
        log p1(x), shape (n,).
    """
    raise NotImplementedError  # TODO: your code here

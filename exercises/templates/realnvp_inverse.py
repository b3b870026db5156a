"""Exercise: the inverse of RealNVP's affine coupling layer  [lecture: RealNVP, eq. (3)]

Grade it with:  python -m exercises grade realnvp_inverse realnvp_inverse.py
"""

import numpy as np


def realnvp_inverse(y, s, t, d_split):
    """x = phi^{-1}(y) and log |det J_{phi^{-1}}(y)| for the coupling layer of eq. (3)  [lecture: RealNVP]

    The forward layer (eq. (3)) keeps the first d' coordinates and scales and shifts the
    others:

        phi(x)_{1:d'}   = x_{1:d'}
        phi(x)_{d'+1:d} = x_{d'+1:d} * exp(s(x_{1:d'})) + t(x_{1:d'})

    Write its inverse (the formula after eq. (3) in the lecture):

        phi^{-1}(y)_{1:d'}   = y_{1:d'}
        phi^{-1}(y)_{d'+1:d} = (y_{d'+1:d} - t(y_{1:d'})) * exp(-s(y_{1:d'}))

    and the log-determinant of the inverse's Jacobian. The Jacobian of phi is lower
    triangular with diagonal (1, ..., 1, exp(s)), so log |det J_phi(x)| = sum(s); the
    inverse's is its opposite: log |det J_{phi^{-1}}(y)| = -sum_i s(y_{1:d'})_i.

    Here t is the translation network, not a time.

    Args:
        y: points, shape (n, d).
        s: the scale network, s(h) of shape (n, d - d') for h of shape (n, d').
        t: the translation network, t(h) of shape (n, d - d') for h of shape (n, d').
        d_split: d', the number of coordinates passed through unchanged (1 <= d' <= d - 1).

    Returns:
        (x, log_det_inv): shapes (n, d) and (n,).
    """
    raise NotImplementedError  # TODO: your code here

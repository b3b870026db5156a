"""The inverse of RealNVP's affine coupling layer  [lecture: RealNVP, eq. (3)]"""

import numpy as np


def realnvp_inverse(y, s, t, d_split):
    """x = phi^{-1}(y) and log |det J_{phi^{-1}}(y)|  [lecture: RealNVP, eq. (3)]

        x_{1:d'}   = y_{1:d'}
        x_{d'+1:d} = (y_{d'+1:d} - t(y_{1:d'})) * exp(-s(y_{1:d'}))
        log |det J_{phi^{-1}}(y)| = -sum s(y_{1:d'})
    """
    y1, y2 = y[:, :d_split], y[:, d_split:]
    scale = s(y1)
    x2 = (y2 - t(y1)) * np.exp(-scale)
    return np.concatenate([y1, x2], axis=1), -np.sum(scale, axis=1)

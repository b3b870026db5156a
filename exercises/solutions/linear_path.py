"""The linear interpolation path and its conditional velocity  [lecture: Example 1]"""


def linear_path(x0, x1, t):
    """x_t = (1 - t) x0 + t x1 and u_cond = x1 - x0  [lecture: Example 1]"""
    t = t[:, None]  # one time per row, broadcast over the d coordinates
    return (1 - t) * x0 + t * x1, x1 - x0

"""The conical Gaussian path: a sample and its conditional velocity  [lecture: Example 2]"""


def conical_path(x1, t, eps):
    """x = t x1 + (1 - t) eps ~ N(t x1, (1 - t)^2 I) and u_cond(x, t, x1) = (x1 - x) / (1 - t)  [lecture: Example 2]"""
    t = t[:, None]
    x = t * x1 + (1 - t) * eps
    return x, (x1 - x) / (1 - t)

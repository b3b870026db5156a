"""Exercise: the linear interpolation path  [lecture: Example 1]

Grade it with:  python -m exercises grade linear_path linear_path.py
"""


def linear_path(x0, x1, t):
    """x_t = (1 - t) x0 + t x1 and its conditional velocity u_cond = x1 - x0  [lecture: Example 1]

    With z = (x0, x1), x0 ~ p0 = N(0, I) (the noise, t = 0) and x1 ~ p_data (the data,
    t = 1), and sigma = 0, the conditional path is the Dirac delta at the point that
    moves on the straight line from x0 to x1; its velocity is the time derivative of
    that point.

    Graded by reference.testing.check_conditional_path: x_t = x0 at t = 0, x_t = x1 at
    t = 1, u_t = d x_t / dt, in d = 1, 2, 3 and 5.

    Args:
        x0: noise points, shape (n, d).
        x1: data points, shape (n, d).
        t: one time per point, shape (n,) (t[:, None] has shape (n, 1) and broadcasts
            against (n, d)).

    Returns:
        (x_t, u_t): shapes (n, d) and (n, d).
    """
    raise NotImplementedError  # TODO: your code here

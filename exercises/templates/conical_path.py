"""Exercise: the conical Gaussian path  [lecture: Example 2]

Grade it with:  python -m exercises grade conical_path conical_path.py
"""


def conical_path(x1, t, eps):
    """A sample x of N(t x1, (1 - t)^2 I) and its conditional velocity u_cond(x, t, x1)  [lecture: Example 2]

    With z = x1 ~ p_data, the conditional path p(x | t, z = x1) = N(t x1, (1 - t)^2 I)
    translates and shrinks the base N(0, I) onto x1. A sample is

        x = t x1 + (1 - t) eps,   eps ~ N(0, I),

    and the conditional velocity that moves it is

        u_cond(x, t, x1) = (x1 - x) / (1 - t).

    Careful: the lecture's text writes (x - x1) / (1 - t); the summary table writes
    (x1 - x) / (1 - t). Only one of them makes x move towards x1 (see the README's
    erratum 1, or take d/dt of the sample above).

    Graded by reference.testing.check_conditional_path (which calls eps "x0", the noise
    end of the path): x = eps at t = 0, x = x1 at t = 1, u_cond = dx/dt, in d = 1, 2, 3, 5.

    Args:
        x1: data points, shape (n, d).
        t: one time per point in [0, 1), shape (n,).
        eps: standard normal noise, shape (n, d).

    Returns:
        (x, u_cond): shapes (n, d) and (n, d).
    """
    raise NotImplementedError  # TODO: your code here

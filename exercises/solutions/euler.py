"""Forward Euler for dx/dt = u(x, t): the sampler of "Flow Matching In Practice", step 5  [lecture: eq. (4); Flow Matching In Practice]"""


def euler(u, x0, t0, t1, n_steps):
    """x(t1) from x(t0) = x0 by n_steps Euler steps  [lecture: eq. (4); Flow Matching In Practice]

        h = (t1 - t0) / n_steps,   t_k = t0 + k h,   x_{k+1} = x_k + h u(x_k, t_k)
    """
    h = (t1 - t0) / n_steps
    x = x0
    for k in range(n_steps):
        x = x + h * u(x, t0 + k * h)
    return x

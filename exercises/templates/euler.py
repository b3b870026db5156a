"""Exercise: the Euler scheme, the sampler of "Flow Matching In Practice"  [lecture: eq. (4); Flow Matching In Practice, step 5]

Grade it with:  python -m exercises grade euler euler.py
"""


def euler(u, x0, t0, t1, n_steps):
    """x(t1) for dx/dt = u(x, t), x(t0) = x0, by n_steps forward Euler steps  [lecture: eq. (4); Flow Matching In Practice]

        h = (t1 - t0) / n_steps,   t_k = t0 + k h,   x_{k+1} = x_k + h u(x_k, t_k)

    (the summary table's step 5 with N = n_steps, from t0 = 0 to t1 = 1; note that the
    field is evaluated at the current time t_k of each step). With t1 < t0 the step h is
    negative and the same loop integrates backwards in time, which inverts the flow.

    Graded by reference.testing.check_ode_solver(euler, order=1): first order forwards
    and backwards on problems with known solutions, exact for a constant field.

    Args:
        u: the velocity field, u(x, t) of shape (n, d) for x of shape (n, d), t a float.
        x0: the initial points, shape (n, d). Do not modify it in place.
        t0, t1: the start and end times (floats; t1 < t0 is allowed).
        n_steps: the number of steps (an integer >= 1).

    Returns:
        x(t1), shape (n, d).
    """
    raise NotImplementedError  # TODO: your code here

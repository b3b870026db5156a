"""Exercise: one step of the classic Runge-Kutta method  [lecture: eq. (4)]

Grade it with:  python -m exercises grade rk4_step rk4_step.py
"""


def rk4_step(u, x, t, h):
    """x(t + h) from x(t) = x by one classic RK4 step for dx/dt = u(x, t)  [lecture: eq. (4)]

        k1 = u(x, t)
        k2 = u(x + h/2 k1, t + h/2)
        k3 = u(x + h/2 k2, t + h/2)
        k4 = u(x + h k3, t + h)
        x(t + h) = x + h/6 (k1 + 2 k2 + 2 k3 + k4)

    The grader calls your step in a loop of n_steps steps of h = (t1 - t0) / n_steps
    (h < 0 when integrating backwards) and checks that the result converges at order 4
    (reference.testing.check_ode_solver) on autonomous and non-autonomous problems.

    Args:
        u: the velocity field, u(x, t) of shape (n, d) for x of shape (n, d), t a float.
        x: the points at time t, shape (n, d). Do not modify it in place.
        t: the current time (a float).
        h: the step (a float, possibly negative).

    Returns:
        the points at time t + h, shape (n, d).
    """
    raise NotImplementedError  # TODO: your code here

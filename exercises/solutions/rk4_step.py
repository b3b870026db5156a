"""One step of the classic Runge-Kutta method for dx/dt = u(x, t)  [lecture: eq. (4)]"""


def rk4_step(u, x, t, h):
    """x(t + h) from x(t) by one classic RK4 step  [lecture: eq. (4)]

        k1 = u(x, t)
        k2 = u(x + h/2 k1, t + h/2)
        k3 = u(x + h/2 k2, t + h/2)
        k4 = u(x + h k3, t + h)
        x_new = x + h/6 (k1 + 2 k2 + 2 k3 + k4)
    """
    k1 = u(x, t)
    k2 = u(x + h / 2 * k1, t + h / 2)
    k3 = u(x + h / 2 * k2, t + h / 2)
    k4 = u(x + h * k3, t + h)
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

"""diffrax's Runge-Kutta solvers at constant step sizes through ``check_ode_solver`` (fifth order: Dopri5, Tsit5).

Skipped, with the install command as the reason, when diffrax (and JAX) are missing.
"""

import functools
import importlib.util

import pytest

from reference.testing import check_ode_solver, from_jax

# diffrax is imported inside the tests (slow ones): importing it costs seconds even when they are deselected
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("diffrax") is None or importlib.util.find_spec("jax") is None,
    reason="diffrax is missing: pip install 'jax==0.10.2' 'diffrax==0.7.2' (the project's jax extra)")


@functools.lru_cache(maxsize=None)
def _compiled(solver_name, u):
    """diffeqsolve at constant steps, jitted once per solver and field (interval and step traced)."""
    import diffrax
    import jax

    term = diffrax.ODETerm(lambda t, y, args: u(y, t))
    solver = getattr(diffrax, solver_name)()

    @jax.jit
    def run(x0, t0, t1, dt0):
        sol = diffrax.diffeqsolve(term, solver, t0=t0, t1=t1, dt0=dt0, y0=x0,
                                  stepsize_controller=diffrax.ConstantStepSize(), max_steps=4096)
        return sol.ys[-1]

    return run


def _solver(name):
    def solve(u, x0, t0, t1, n):
        import jax.numpy as jnp

        t0, t1 = jnp.asarray(t0, x0.dtype), jnp.asarray(t1, x0.dtype)
        return _compiled(name, u)(x0, t0, t1, (t1 - t0) / n)
    return from_jax(solve)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["Dopri5", "Tsit5"])
def test_diffrax_fifth_order_solvers_at_constant_steps_have_order_5_both_ways(name):
    report = check_ode_solver(_solver(name), 5)
    assert report, str(report)


@pytest.mark.slow
def test_diffrax_heun_is_second_order_and_not_fourth():
    assert check_ode_solver(_solver("Heun"), 2)
    wrong = check_ode_solver(_solver("Heun"), 4)
    assert not wrong and wrong.diagnosis == "order 2, not 4", str(wrong)

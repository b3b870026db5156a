"""torchdiffeq's ``odeint``: observed orders, which method its ``"rk4"`` is, and adaptive Dormand-Prince."""

import numpy as np
import pytest

from reference.testing import ODE_PROBLEMS, check_ode_solver, from_torch
from tests.interop import require

torch = require("torch")
torchdiffeq = require("torchdiffeq")


def _fixed_grid(method):
    def solve(u, x0, t0, t1, n):
        grid = torch.linspace(float(t0), float(t1), n + 1, dtype=torch.float64)  # exactly n steps
        return torchdiffeq.odeint(lambda t, y: u(y, t), x0, grid, method=method)[-1]
    return from_torch(solve)


def _dopri5_fixed(u, x0, t0, t1, n):
    """Dormand-Prince's fifth-order solution at fixed steps: the step is pinned by first/min/max_step."""
    h = abs(float(t1) - float(t0)) / n
    grid = torch.linspace(float(t0), float(t1), n + 1, dtype=torch.float64)
    span = torch.tensor([float(t0), float(t1)], dtype=torch.float64)
    options = dict(first_step=h, min_step=h, max_step=h, step_t=grid)
    return torchdiffeq.odeint(lambda t, y: u(y, t), x0, span, method="dopri5", options=options)[-1]


@pytest.mark.parametrize("method, order", [("euler", 1), ("midpoint", 2), ("rk4", 4), ("heun3", 3)])
def test_fixed_grid_methods_have_their_order_forwards_and_backwards(method, order):
    report = check_ode_solver(_fixed_grid(method), order)
    assert report, str(report)


def test_dopri5_at_fixed_steps_is_fifth_order():
    report = check_ode_solver(from_torch(_dopri5_fixed), 5, steps=[4, 8, 16])  # torchdiffeq pins steps slowly
    assert report, str(report)


def test_torchdiffeq_rk4_is_kuttas_three_eighths_rule_not_the_classic_rk4():
    from reference.ode import integrate

    def u(x, t):
        return np.sin(3.0 * x) * np.cos(t) + t * x

    x0 = np.array([[0.3, -0.7], [1.2, 0.4]])
    one_step = from_torch(lambda u, x: torchdiffeq.odeint(lambda t, y: u(y, t), x, torch.tensor([0.0, 0.5],
                                                          dtype=torch.float64), method="rk4")[-1])(u, x0)
    np.testing.assert_allclose(one_step, integrate(u, x0, 0.0, 0.5, 1, method="rk38"), rtol=0, atol=1e-15)
    assert np.max(np.abs(one_step - integrate(u, x0, 0.0, 0.5, 1, method="rk4"))) > 1e-4


@pytest.mark.parametrize("problem", ODE_PROBLEMS, ids=lambda p: p.name.split(" ")[0])
def test_adaptive_dopri5_meets_its_tolerance_and_agrees_with_the_reference(problem):
    from reference.ode import integrate_adaptive

    def solve(u, x0, t0, t1, rtol):
        span = torch.tensor([float(t0), float(t1)], dtype=torch.float64)
        return torchdiffeq.odeint(lambda t, y: u(y, t), x0, span, method="dopri5", rtol=rtol, atol=rtol * 1e-3)[-1]

    exact = problem.exact(problem.x0, problem.t0, problem.t1)
    errors = []
    for rtol in (1e-5, 1e-8):
        x_lib = from_torch(solve)(problem.u, problem.x0, problem.t0, problem.t1, rtol)
        x_ref = integrate_adaptive(problem.u, problem.x0, problem.t0, problem.t1, rtol=rtol, atol=rtol * 1e-3).x
        errors.append(np.max(np.abs(x_lib - exact)))
        # a local tolerance rtol gives a global error of the same order (the interval is of length <= 1):
        # 10 rtol (1 + |x|) bounds both solvers
        bound = 10 * rtol * (1 + np.max(np.abs(exact)))
        assert errors[-1] <= bound and np.max(np.abs(np.asarray(x_ref) - exact)) <= bound
    assert errors[1] < errors[0] / 10  # the error shrinks with the tolerance

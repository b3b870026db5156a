"""Meta's flow_matching: the affine path with the CondOT scheduler, the ODE solver and its likelihood."""

import numpy as np
import pytest

from reference.paths import LinearInterpolationPath
from reference.testing import check_conditional_path, check_log_likelihood, check_ode_solver, from_torch
from tests.interop import require

torch = require("torch")
fm_path = require("flow_matching.path")
fm_scheduler = require("flow_matching.path.scheduler")
fm_solver = require("flow_matching.solver")


def test_affine_path_with_cond_ot_scheduler_is_the_linear_interpolation_path():
    rng = np.random.default_rng(0)
    x0, x1 = rng.standard_normal((8, 3)), rng.standard_normal((8, 3)) + 2.0
    path = fm_path.AffineProbPath(scheduler=fm_scheduler.CondOTScheduler())

    def sample(a, b, t):
        s = path.sample(x_0=a, x_1=b, t=t)
        return s.x_t, s.dx_t

    report = check_conditional_path(from_torch(sample), x0, x1, path=LinearInterpolationPath())
    assert report, str(report)


def _grid(t0, t1, n):
    return torch.linspace(float(t0), float(t1), n + 1, dtype=torch.float64)


@pytest.mark.parametrize("method, order", [("euler", 1), ("midpoint", 2), ("rk4", 4)])
def test_ode_solver_sample_has_the_order_of_its_method_both_ways(method, order):
    def solve(u, x0, t0, t1, n):
        return fm_solver.ODESolver(velocity_model=u).sample(x_init=x0, step_size=None, method=method,
                                                            time_grid=_grid(t0, t1, n))

    report = check_ode_solver(from_torch(solve), order)
    assert report, str(report)


def _log_p0(z):
    return -0.5 * (z**2).sum(1) - 0.5 * z.shape[1] * np.log(2 * np.pi)


def test_compute_likelihood_with_exact_divergence_matches_closed_forms_and_the_reference_cnf():
    def log_likelihood(u, x):  # the checker hands a PyTorch field and a float64 tensor
        solver = fm_solver.ODESolver(velocity_model=u)
        _, log_p = solver.compute_likelihood(x_1=x, log_p0=_log_p0, step_size=None, method="rk4",
                                             time_grid=_grid(1.0, 0.0, 50), exact_divergence=True)
        return log_p

    # RK4 with 50 steps: errors ~1e-8 on these fields; 1e-6 nats leaves room and catches any slip. One
    # dimension, 3 (the PyTorch catalogue covers the others), keeps the solves few
    report = check_log_likelihood(log_likelihood, framework="torch", atol=1e-6, n=8, dims=(3,))
    assert report, str(report)


def test_compute_likelihood_with_hutchinson_is_unbiased_in_float64_once_the_default_dtype_is_float64():
    def log_likelihood(u, x):
        solver = fm_solver.ODESolver(velocity_model=u)
        return solver.compute_likelihood(x_1=x, log_p0=_log_p0, step_size=None, method="midpoint",
                                         time_grid=_grid(1.0, 0.0, 40), exact_divergence=False)[1]

    x = torch.zeros((2, 2), dtype=torch.float64)
    # flow_matching 1.0.10 builds the Rademacher probes as `(randn_like(x) < 0) * 2.0 - 1.0`, which has the
    # default dtype (float32) whatever x's dtype: float64 inputs fail in einsum
    with pytest.raises(RuntimeError, match="Double"):
        log_likelihood(lambda x, t: x, x)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        # midpoint, 40 steps: discretisation error ~1e-3 nats; Hutchinson's noise is covered by k standard errors
        report = check_log_likelihood(log_likelihood, framework="torch", atol=5e-3, stochastic=True, n=4,
                                      n_repeats=100, dims=(2,))
    finally:
        torch.set_default_dtype(previous)
    assert report, str(report)

"""Checkers for other implementations of the lecture's mathematics  [lecture: all sections]

Each checker takes the implementation under test as plain callables on NumPy arrays,
runs the relevant properties with ``reference`` as the oracle and returns a
``CheckReport``: ``bool(report)`` is whether it passed, ``report.figures`` holds the
measured figures, ``report.message`` says what failed and which mistake it looks like
(``report.diagnosis`` names it), ``print(report)`` shows every figure with its bound.
Each ``check_*`` has an ``assert_*`` twin for pytest that raises ``AssertionError`` with
the report. Wrap a PyTorch callable with ``from_torch`` (PyTorch is imported only then).

Conventions are the lecture's: ``t = 0`` is the noise ``N(0, I)``, ``t = 1`` the data;
points are ``(n, d)``; velocities are ``u(x, t)``. Tolerances are derived, not tuned:
round-off ``sqrt(eps)`` of the implementation's precision, finite-difference errors
estimated by Richardson extrapolation (times ``K_SAFETY = 10``), statistical bounds of
``K_SE = 5`` standard errors, orders within 0.5 of the claim.

| checker | checks |
| --- | --- |
| ``check_bijection(forward, inverse, x)`` | round trips, log-dets against finite-difference ``slogdet``, their sum |
| ``check_conditional_path(sample, x0, x1)`` | boundary conditions, ``u_t = d x_t / dt``, a reference path |
| ``check_ode_solver(solve, order)`` | observed order forwards and backwards on known solutions |
| ``check_log_likelihood(log_likelihood)`` | CNF log-likelihood against closed forms and the reference CNF |
| ``check_divergence_estimator(estimate)`` | unbiased within k standard errors; its variance |
| ``check_ot_pairing(pair)`` | a permutation with the brute-force minimal squared cost |
| ``check_marginal_velocity(estimate)`` | Theorem 1's field of empirical data, exactly |
| ``check_velocity_field(v, data)`` | the exact FM loss of a learned field against the true field |

Hypothesis strategies for your own tests are in ``reference.testing.strategies`` (it
needs ``hypothesis``, which only the ``test`` extra installs).
"""

from ._report import K_SAFETY, K_SE, CheckReport, Measurement
from .adapters import from_torch, is_torch_native, to_torch, torch_native
from .bijection import assert_bijection, check_bijection
from .conditional_path import assert_conditional_path, check_conditional_path
from .likelihood import (
    assert_divergence_estimator,
    assert_log_likelihood,
    check_divergence_estimator,
    check_log_likelihood,
)
from .marginal import assert_marginal_velocity, assert_velocity_field, check_marginal_velocity, check_velocity_field
from .pairing import assert_ot_pairing, check_ot_pairing
from .solvers import ODE_PROBLEMS, OdeProblem, assert_ode_solver, check_ode_solver

__all__ = [
    "CheckReport",
    "Measurement",
    "K_SAFETY",
    "K_SE",
    "from_torch",
    "to_torch",
    "torch_native",
    "is_torch_native",
    "check_bijection",
    "assert_bijection",
    "check_conditional_path",
    "assert_conditional_path",
    "check_ode_solver",
    "assert_ode_solver",
    "ODE_PROBLEMS",
    "OdeProblem",
    "check_log_likelihood",
    "assert_log_likelihood",
    "check_divergence_estimator",
    "assert_divergence_estimator",
    "check_ot_pairing",
    "assert_ot_pairing",
    "check_marginal_velocity",
    "assert_marginal_velocity",
    "check_velocity_field",
    "assert_velocity_field",
]

"""Checkers for other implementations of the lecture's mathematics  [lecture: all sections]

Each checker takes the implementation under test as plain callables on NumPy arrays,
runs the relevant properties with ``reference`` as the oracle and returns a
``CheckReport``: ``bool(report)`` is whether it passed, ``report.figures`` holds the
measured figures, ``report.message`` says what failed and which mistake it looks like
(``report.diagnosis`` names it, only where the measurements show it is the cause),
``report.coverage`` lists what was covered, ``print(report)`` shows every figure with
its bound. Each ``check_*`` has an ``assert_*`` twin for pytest that raises
``AssertionError`` with the report. Wrap a PyTorch callable with ``from_torch`` and a
JAX one with ``from_jax`` (each framework is imported only then).

Conventions are the lecture's: ``t = 0`` is the noise ``N(0, I)``, ``t = 1`` the data;
points are ``(n, d)``; velocities are ``u(x, t)``. Tolerances are derived, not tuned,
in the implementation's own precision (float64, float32, float16, bfloat16: read from
what it returns, or from ``precision=``): round-off ``sqrt(eps)``, finite-difference
errors estimated by Richardson extrapolation (times ``K_SAFETY = 10``), statistical
bounds of ``K_SE = 5`` standard errors, orders within 0.5 of the claim fitted only above
the round-off floor. Every call gets private copies of its inputs; writing into them,
or returning a view of them, is reported by name. Checkers that make their own probes
cover d = 1, 2, 3 and 5 by default.

| checker | checks |
| --- | --- |
| ``check_bijection(forward, inverse, x)`` | round trips, log-dets against finite-difference ``slogdet``, their sum, caching, batch splits |
| ``check_conditional_path(sample, x0, x1)`` | boundary conditions, ``u_t = d x_t / dt`` (also near both ends), a reference path |
| ``check_ode_solver(solve, order)`` | observed order forwards and backwards on known solutions; ``n_steps = 1`` |
| ``check_log_likelihood(log_likelihood)`` | CNF log-likelihood against closed forms and an accurate CNF |
| ``check_divergence_estimator(estimate)`` | unbiased within k standard errors wherever its randomness lives; its variance |
| ``check_ot_pairing(pair)`` | a permutation with the brute-force minimal squared cost |
| ``check_marginal_velocity(estimate)`` | Theorem 1's field of empirical data (up to 5000 points), exactly |
| ``check_velocity_field(v, data)`` | the exact FM loss of a learned field against the true field |

Hypothesis strategies for your own tests are in ``reference.testing.strategies`` (it
needs ``hypothesis``, which only the ``test`` extra installs).
"""

from ._report import K_SAFETY, K_SE, CheckReport, Measurement
from .adapters import (
    from_jax,
    from_torch,
    is_jax_native,
    is_torch_native,
    jax_native,
    to_jax,
    to_torch,
    torch_native,
)
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
    "from_jax",
    "to_jax",
    "jax_native",
    "is_jax_native",
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

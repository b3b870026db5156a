"""``check_ode_solver``: the observed order of a fixed-step ODE solver  [lecture: eq. (4)]

The solver is run on initial value problems whose solutions are known in closed form,
with the number of steps doubled three times; the observed order is the slope of
``log error`` against ``log step`` over the last doubling whose errors are still above
round-off. A method of order ``p`` has error ``C h^p (1 + O(h))``, so the slope tends to
``p``; the bound ``|observed - claimed| <= 0.5`` is halfway to the neighbouring orders,
so a method is never mistaken for the next one; the pre-asymptotic bias at the step
sizes used here is below 0.2 for every method from Euler to Dormand-Prince (measured
on the reference's methods, ``tests/test_testing.py``).
"""

import math
from dataclasses import dataclass

import numpy as onp
from scipy.linalg import expm

from .._validate import check_callable, check_finite_number, check_positive_int
from ._report import K_SAFETY, Recorder, as_numpy, assert_twin, machine_eps

__all__ = ["check_ode_solver", "assert_ode_solver", "ODE_PROBLEMS", "OdeProblem"]

ORDER_TOL = 0.5
"""Halfway between neighbouring orders."""


@dataclass(frozen=True)
class OdeProblem:
    """An initial value problem ``dx/dt = u(x, t), x(t0) = x0`` with its solution in closed form.

    Attributes:
        name: a short name.
        u: the velocity ``u(x, t) -> (n, d)``.
        x0: initial values ``(n, d)``.
        t0, t1: the interval (the solver is also run from ``t1`` back to ``t0``).
        exact: ``exact(x_start, s, s_end) -> x(s_end)`` for ``x(s) = x_start``.
        reversed_exact: the solution of ``dx/dt = u(x, t0 + t1 - t)`` (time running the
            wrong way inside the solver), or None where it equals ``exact``.
        frozen_exact: the solution of ``dx/dt = u(x, s)`` (time never advanced), or None.
    """

    name: str
    u: object
    x0: onp.ndarray
    t0: float
    t1: float
    exact: object
    reversed_exact: object = None
    frozen_exact: object = None

    @property
    def autonomous(self):
        return self.reversed_exact is None


def _spiral():
    """``dx/dt = A x``: a decaying rotation, ``x(t) = expm(A (t - s)) x(s)``."""
    A = onp.array([[-0.5, -2.0], [2.0, -0.5]])

    def u(x, t):
        return x @ A.T

    def exact(x, s, s_end):
        return x @ expm(A * (s_end - s)).T

    x0 = onp.array([[1.0, 0.0], [0.3, -0.8], [-0.5, 0.5]])
    return OdeProblem("linear system dx/dt = A x (expm)", u, x0, 0.0, 1.0, exact)


_OMEGA = 3.0
_C = onp.array([1.0, -2.0])


def _forced(theta, sign=1.0):
    """Solution of ``dx/dt = -x + c cos(sign * omega t + theta)``."""
    w = sign * _OMEGA

    def particular(t):
        return _C * (onp.cos(w * t + theta) + w * onp.sin(w * t + theta)) / (1.0 + w**2)

    def exact(x, s, s_end):
        return particular(s_end) + math.exp(-(s_end - s)) * (x - particular(s))

    return exact


def _forced_linear():
    """``dx/dt = -x + c cos(omega t)``: non-autonomous, so a stage at the wrong time shows."""
    t0, t1 = 0.2, 0.9

    def u(x, t):
        return -x + _C * onp.cos(_OMEGA * onp.reshape(t, (-1, 1)) if onp.ndim(t) else _OMEGA * t)

    def frozen(x, s, s_end):
        f = _C * math.cos(_OMEGA * s)
        return f + math.exp(-(s_end - s)) * (x - f)

    x0 = onp.array([[0.5, -1.0], [2.0, 0.3], [-1.0, 1.5]])
    # u(x, t0 + t1 - t) = -x + c cos(-omega t + omega (t0 + t1))
    return OdeProblem("forced linear dx/dt = -x + c cos(3 t)", u, x0, t0, t1, _forced(0.0),
                      reversed_exact=_forced(_OMEGA * (t0 + t1), sign=-1.0), frozen_exact=frozen)


def _riccati():
    """``dx/dt = -2 t x^2``: nonlinear and non-autonomous, ``x(t) = 1 / (1 / x(s) + t^2 - s^2)``."""
    def u(x, t):
        return -2.0 * (onp.reshape(t, (-1, 1)) if onp.ndim(t) else t) * x**2

    def exact(x, s, s_end):
        return 1.0 / (1.0 / x + s_end**2 - s**2)

    x0 = onp.array([[0.2, 0.7], [0.5, 0.1], [0.9, 0.4]])
    return OdeProblem("Riccati dx/dt = -2 t x^2", u, x0, 0.0, 1.0, exact)


ODE_PROBLEMS = (_spiral(), _forced_linear(), _riccati())
"""The problems ``check_ode_solver`` runs, each with its closed-form solution."""


def _base_steps(order):
    return {1: 16, 2: 8, 3: 8}.get(order, 4)


def _solve(solve, u, x0, t0, t1, n, rec, label):
    with onp.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a wrong solver may blow up: reported
        out = solve(u, x0, t0, t1, n)
    arr = as_numpy(out, "solve(...)")
    if arr.shape != x0.shape:
        rec.fail(f"solve returned shape {arr.shape} for x0 of shape {x0.shape} ({label})")
        return None
    if not onp.all(onp.isfinite(arr)):
        rec.note(f"solve returned non-finite values on {label} with n_steps = {n}")
    return arr.astype(onp.float64)


def _errors(solve, u, x_start, s, s_end, exact, steps, rec, label):
    x_true = exact(x_start, s, s_end)
    results, errors = [], []
    for n in steps:
        x = _solve(solve, u, x_start.copy(), s, s_end, n, rec, label)
        if x is None:
            return None, None, x_true
        results.append(x)
        err = float(onp.max(onp.abs(x - x_true)) / (1.0 + onp.max(onp.abs(x_true))))
        errors.append(err if math.isfinite(err) else math.inf)
    return onp.array(errors), results, x_true


def _observed_order(errors, steps, floor):
    """log(e_i / e_{i+1}) / log(n_{i+1} / n_i) over the last pair of step counts whose errors exceed the floor, or nan."""
    slopes = [math.log(errors[i] / errors[i + 1]) / math.log(steps[i + 1] / steps[i]) for i in range(len(errors) - 1)
              if errors[i] > floor and errors[i + 1] > floor and onp.isfinite(errors[i] + errors[i + 1])]
    return slopes[-1] if slopes else float("nan")


def check_ode_solver(solve, order, *, steps=None, k=K_SAFETY):
    """Check a fixed-step ODE solver's order of convergence and its reverse-time run  [lecture: eq. (4)]

    On each problem of ``ODE_PROBLEMS`` (a linear system, a forced linear system that
    is non-autonomous, a nonlinear non-autonomous Riccati equation) the solver is run
    with ``n, 2n, 4n, 8n`` steps, forwards from ``t0`` to ``t1`` and backwards from the
    exact ``x(t1)`` to ``t0``. Properties:

    - the observed order, forwards and backwards, is within 0.5 of ``order``;
    - integrating forwards then backwards with the finest grid returns the start, to
      ``k`` times the sum of the two one-way errors.

    On failure it names what it recognises: time running the wrong way inside the solver
    (it matches the solution of ``dx/dt = u(x, t0 + t1 - t)``), time never advanced
    (``u`` always evaluated at the start time), a stage evaluated at the wrong time (full
    order on the autonomous problem only), no support for ``t1 < t0``, a different order
    than claimed.

    Args:
        solve: ``solve(u, x0, t0, t1, n_steps) -> x(t1)``; ``u(x, t)`` is a NumPy field
            (called with ``t`` a float), ``x0`` has shape ``(n, d)``, ``t1 < t0`` must
            integrate backwards.
        order: the claimed order (1 Euler, 2 midpoint/Heun, 4 RK4 or 3/8 rule, 5 Dormand-Prince).
        steps: the numbers of steps to use (default ``n0 * (1, 2, 4, 8)`` with ``n0`` 16,
            8 or 4 for orders 1, 2-3, 4 and more).
        k: safety factor of the round-trip bound.

    Returns:
        ``CheckReport`` with the observed orders and errors.
    """
    check_callable(solve, "solve")
    order = check_positive_int(order, "order")
    check_finite_number(k, "k", positive=True)
    if steps is None:
        n0 = _base_steps(order)
        steps = [n0, 2 * n0, 4 * n0, 8 * n0]
    steps = [check_positive_int(s, "steps[...]") for s in steps]
    if len(steps) < 2 or any(b <= a for a, b in zip(steps[:-1], steps[1:])):
        raise ValueError(f"steps must be at least two increasing integers, got {steps}")
    rec = Recorder("check_ode_solver")
    observed = {}

    for idx, prob in enumerate(ODE_PROBLEMS):
        label = f"P{idx + 1}"
        fwd, fwd_runs, x_end = _errors(solve, prob.u, prob.x0, prob.t0, prob.t1, prob.exact, steps, rec, label)
        if fwd is None:
            return rec.report()
        bwd, _, _ = _errors(solve, prob.u, x_end, prob.t1, prob.t0, prob.exact, steps, rec, label + " backwards")
        if bwd is None:
            return rec.report()
        floor = 1e3 * machine_eps(*fwd_runs)
        p_f, p_b = _observed_order(fwd, steps, floor), _observed_order(bwd, steps, floor)
        observed[label] = (p_f, p_b, fwd, bwd)
        errs = ", ".join(f"{e:.2e}" for e in fwd)
        ok_f = rec.measure(f"order_{label}", abs(p_f - order) if math.isfinite(p_f) else float("inf"), ORDER_TOL,
                           what=f"|observed - claimed| forwards on {label} {prob.name}: observed {p_f:.2f} "
                                f"(errors {errs} at n = {steps})",
                           fail=f"on {label} ({prob.name}) the observed order forwards is {p_f:.2f}, not {order}")
        ok_b = rec.measure(f"order_{label}_backwards", abs(p_b - order) if math.isfinite(p_b) else float("inf"),
                           ORDER_TOL, what=f"|observed - claimed| backwards (t1 -> t0) on {label}: observed {p_b:.2f}",
                           fail=f"on {label} integrating backwards from t1 to t0 the observed order is {p_b:.2f} "
                                f"(errors {', '.join(f'{e:.2e}' for e in bwd)})")
        if not math.isfinite(p_f) and onp.all(fwd <= floor):
            rec.diagnose("errors at round-off",
                         f"on {label} every error is at round-off ({errs}): an adaptive or exact solver has no "
                         "order to measure; pass larger steps or check it with a fixed-step setting")
        if ok_f and not ok_b:
            rec.diagnose("no reverse-time integration",
                         "forwards is right but integrating from t1 back to t0 does not return the start: "
                         "the solver must take negative steps h = (t1 - t0) / n_steps when t1 < t0")

        # round trip with the finest grid
        there = fwd_runs[-1]
        back = _solve(solve, prob.u, there.copy(), prob.t1, prob.t0, steps[-1], rec, label + " round trip")
        if back is None:
            return rec.report()
        rt = float(onp.max(onp.abs(back - prob.x0)) / (1 + onp.max(onp.abs(prob.x0))))
        rt = rt if math.isfinite(rt) else math.inf
        bound = k * (fwd[-1] + bwd[-1]) + floor
        rec.measure(f"round_trip_{label}", rt, bound,
                    what=f"|solve back(solve forward(x0)) - x0| with n = {steps[-1]} (k x the one-way errors)",
                    fail=f"on {label} integrating forwards then backwards does not return the start ({rt:.3g})")

        if not ok_f and prob.reversed_exact is not None:
            rev, _, _ = _errors(solve, prob.u, prob.x0, prob.t0, prob.t1, prob.reversed_exact, steps, rec, label)
            frz, _, _ = _errors(solve, prob.u, prob.x0, prob.t0, prob.t1, prob.frozen_exact, steps, rec, label)
            if rev is not None and rev[-1] < 0.1 * fwd[-1] and rev[-1] < rev[0]:
                rec.diagnose("time runs the wrong way",
                             f"on {label} the result solves dx/dt = u(x, t0 + t1 - t): the solver evaluates u at "
                             "reversed times (e.g. a field written for data at t = 0, or t = 1 - t inside)")
            elif frz is not None and frz[-1] < 0.1 * fwd[-1]:
                rec.diagnose("time not advanced",
                             f"on {label} the result solves dx/dt = u(x, t0): the solver never advances t")

    p1 = observed.get("P1", (float("nan"),))[0]
    others = [observed[key][0] for key in ("P2", "P3") if key in observed]
    named_time = any(lab in ("time runs the wrong way", "time not advanced") for lab, _ in rec.diagnoses)
    if not named_time and math.isfinite(p1) and abs(p1 - order) <= ORDER_TOL and any(abs(p - order) > ORDER_TOL for p in others):
        rec.diagnose("stage at the wrong time",
                     "full order on the autonomous problem but not on the non-autonomous ones: a stage evaluates "
                     "u at the wrong time (check the c_i of the tableau: stage i at t + c_i h)")
    finite = [v[0] for v in observed.values() if math.isfinite(v[0])]
    if finite and all(abs(p - round(p)) <= ORDER_TOL / 2 for p in finite) and len({round(p) for p in finite}) == 1 \
            and round(finite[0]) != order:
        q = round(finite[0])
        rec.diagnose(f"order {q}, not {order}",
                     f"every problem shows order {q}: a wrong weight or coefficient in the tableau?" if q < order
                     else f"every problem shows order {q}, more than the claimed {order}")
    summary = ", ".join(f"{key} {v[0]:.2f}/{v[1]:.2f}" for key, v in observed.items())
    return rec.report(f"observed order forwards/backwards {summary} (claimed {order}); "
                      "forwards then backwards returns the start.")


assert_ode_solver = assert_twin(check_ode_solver)

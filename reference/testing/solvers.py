"""``check_ode_solver``: the observed order of a fixed-step ODE solver  [lecture: eq. (4)]

The solver is run on initial value problems whose solutions are known in closed form,
in d = 1, 2, 3 and 5, forwards and backwards, with step counts from 2 (3 for a
first-order claim) up (2, 3, 4, 6, 8, 12, 16, 24: most of them not powers of two). The
observed order is the slope of ``log error`` against ``log n`` over a doubling
``(n, 2n)``, the finest one where

- both errors are above the round-off floor of the implementation's precision,
  ``16 eps (16 + n)`` relative (measured round-off of Euler to Dormand-Prince in
  float32, float16 and bfloat16 stays below ``eps (16 + n)``), so that round-off moves
  the slope by at most 0.2; and
- ``n`` is at least where every method of the claimed order in a set of textbook
  tableaus (Euler; Heun, Ralston, midpoint; Kutta, Heun and SSP third order; RK4 and
  the 3/8 rule; Dormand-Prince's, Cash-Karp's and Tsitouras's fifth-order solutions) shows its order
  within 0.3 on that problem (``OdeProblem.asymptotic_from``, measured in float64).

So a correct method's slope is within 0.5 of its order whenever it is measured, and
``|observed - claimed| <= 0.5`` (halfway to the neighbouring orders) is the test. Where
no doubling qualifies (a fifth-order method in float32 errs below the floor almost
at once; in float16 and bfloat16 nothing can be measured), the order is not fitted and
the report says so; the errors must then stay below ten times those of the textbook
methods of the claimed order plus the floor. A constant field, whose solution every
consistent method reproduces exactly, is run with ``n_steps = 1`` and ``3``: a solver
that takes ``n_steps - 1`` steps (a loop over ``linspace(t0, t1, n_steps)``) returns
``x0`` there and is named.
"""

import functools
import math
from dataclasses import dataclass

import numpy as onp
from scipy.linalg import expm

from .._validate import as_points, check_callable, check_finite_number, check_positive_int
from ._args import check_k, check_precision
from ._guard import Impl, Stop, as_array, continuing, run_checker
from ._report import K_SAFETY, Recorder, assert_twin

__all__ = ["check_ode_solver", "assert_ode_solver", "ODE_PROBLEMS", "OdeProblem"]

ORDER_TOL = 0.5
"""Halfway between neighbouring orders."""

FLOOR_FACTOR = 16.0
"""Errors count for an order only when above ``FLOOR_FACTOR`` times the round-off floor."""

ENVELOPE_FACTOR = 10.0
"""Where no order can be measured, errors must stay below this times a textbook method's."""


def _floor(eps, n):
    """The round-off floor of a solve with ``n`` steps: ``eps (16 + n)`` relative."""
    return eps * (16.0 + n)


@dataclass(frozen=True)
class OdeProblem:
    """An initial value problem ``dx/dt = u(x, t), x(t0) = x0`` with its solution in closed form.

    Attributes:
        name: a short name.
        u: the velocity ``u(x, t) -> (n, d)``.
        x0: initial values ``(n, d)``.
        t0, t1: the interval (the solver is also run from ``t1`` back to ``t0``); ``t0 != t1``.
        exact: ``exact(x_start, s, s_end) -> x(s_end)`` for ``x(s) = x_start``.
        reversed_exact: the solution of ``dx/dt = u(x, t0 + t1 - t)`` (time running the
            wrong way inside the solver), or None where it equals ``exact``.
        frozen_exact: the solution of ``dx/dt = u(x, s)`` (time never advanced), or None.
        asymptotic_from: for claimed orders 1..5, the smallest ``n`` of a doubling
            ``(n, 2n)`` from which the textbook methods of that order show it within 0.3,
            or 0 where none of the default doublings does.
    """

    name: str
    u: object
    x0: onp.ndarray
    t0: float
    t1: float
    exact: object
    reversed_exact: object = None
    frozen_exact: object = None
    asymptotic_from: tuple = (1, 1, 1, 1, 1)

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a non-empty str, got {type(self.name).__name__}")
        if not self.name.strip():
            raise ValueError("name must be a non-empty str")
        check_callable(self.u, "u")
        check_callable(self.exact, "exact")
        for attr in ("reversed_exact", "frozen_exact"):
            if getattr(self, attr) is not None:
                check_callable(getattr(self, attr), attr)
        x0 = as_points(self.x0, "x0", allow_traced=False)
        x0.setflags(write=False)
        object.__setattr__(self, "x0", x0)
        t0 = float(check_finite_number(self.t0, "t0"))
        t1 = float(check_finite_number(self.t1, "t1"))
        if t0 == t1:
            raise ValueError(f"t0 and t1 must differ, got {t0}")
        object.__setattr__(self, "t0", t0)
        object.__setattr__(self, "t1", t1)
        frm = self.asymptotic_from
        if not isinstance(frm, tuple) or len(frm) != 5:
            raise TypeError("asymptotic_from must be a tuple of 5 integers (orders 1 to 5)")
        object.__setattr__(self, "asymptotic_from", tuple(check_positive_int(v, "asymptotic_from[...]", minimum=0)
                                                         for v in frm))

    @property
    def autonomous(self):
        return self.reversed_exact is None

    @property
    def dim(self):
        return self.x0.shape[1]


def _typed(raw):
    """``u`` computing in float64 and returning the dtype of ``x`` (a float32 solver gets float32)."""
    def u(x, t):
        x = onp.asarray(x)
        out = raw(x.astype(onp.float64) if x.dtype != onp.float64 else x, t)
        return out.astype(x.dtype) if x.dtype.kind == "f" and x.dtype != onp.float64 else out
    u.__name__ = raw.__name__
    return u


def _tcol(t):
    t = onp.asarray(t, dtype=onp.float64)
    return t.reshape(-1, 1) if t.ndim else float(t)


def _flow_map(A):
    """``dt -> expm(A dt)``, cached (the checker asks for the same few intervals again and again)."""
    @functools.lru_cache(maxsize=32)
    def flow(dt):
        return expm(A * dt)
    return flow


def _spiral():
    """``dx/dt = A x`` in 2-D: a decaying rotation, ``x(t) = expm(A (t - s)) x(s)``."""
    A = onp.array([[-0.5, -2.0], [2.0, -0.5]])
    flow = _flow_map(A)

    def spiral(x, t):
        return x @ A.T

    def exact(x, s, s_end):
        return x @ flow(float(s_end - s)).T

    x0 = onp.array([[1.0, 0.0], [0.3, -0.8], [-0.5, 0.5]])
    return OdeProblem("linear system dx/dt = A x in d = 2 (expm)", _typed(spiral), x0, 0.0, 1.0, exact,
                      asymptotic_from=(3, 2, 2, 2, 16))


_OMEGA = 3.0
_C = onp.array([1.0, -2.0, 0.5])


def _forced(theta, sign=1.0):
    """Solution of ``dx/dt = -x + c cos(sign * omega t + theta)``."""
    w = sign * _OMEGA

    def particular(t):
        return _C * (onp.cos(w * t + theta) + w * onp.sin(w * t + theta)) / (1.0 + w**2)

    def exact(x, s, s_end):
        return particular(s_end) + math.exp(-(s_end - s)) * (x - particular(s))

    return exact


def _forced_linear():
    """``dx/dt = -x + c cos(omega t)`` in 3-D: non-autonomous, so a stage at the wrong time shows."""
    t0, t1 = 0.2, 0.9

    def forced(x, t):
        return -x + _C * onp.cos(_OMEGA * _tcol(t))

    def frozen(x, s, s_end):
        f = _C * math.cos(_OMEGA * s)
        return f + math.exp(-(s_end - s)) * (x - f)

    x0 = onp.array([[0.5, -1.0, 0.2], [2.0, 0.3, -0.4], [-1.0, 1.5, 0.7]])
    # u(x, t0 + t1 - t) = -x + c cos(-omega t + omega (t0 + t1))
    return OdeProblem("forced linear dx/dt = -x + c cos(3 t) in d = 3", _typed(forced), x0, t0, t1, _forced(0.0),
                      reversed_exact=_forced(_OMEGA * (t0 + t1), sign=-1.0), frozen_exact=frozen,
                      asymptotic_from=(3, 3, 4, 3, 24))


def _riccati():
    """``dx/dt = -2 t x^2`` in 1-D: nonlinear and non-autonomous, ``1 / x(t) = 1 / x(s) + t^2 - s^2``.

    The equation is separable, so a solver whose time runs the wrong way reaches the same
    ``x(t1)`` (the integral of ``2 t`` over ``[t0, t1]`` is that of ``2 (t0 + t1 - t)``):
    a reversal shows on the forced linear system, not here.
    """
    def riccati(x, t):
        return -2.0 * _tcol(t) * x**2

    def exact(x, s, s_end):
        return 1.0 / (1.0 / x + s_end**2 - s**2)

    def reversed_exact(x, s, s_end):  # dx/dt = -2 (1 - t) x^2
        return 1.0 / (1.0 / x + (2 * s_end - s_end**2) - (2 * s - s**2))

    def frozen(x, s, s_end):  # dx/dt = -2 s x^2
        return 1.0 / (1.0 / x + 2 * s * (s_end - s))

    x0 = onp.array([[0.2], [0.7], [0.5], [0.1], [0.9], [0.4]])
    return OdeProblem("Riccati dx/dt = -2 t x^2 in d = 1", _typed(riccati), x0, 0.0, 1.0, exact,
                      reversed_exact=reversed_exact, frozen_exact=frozen, asymptotic_from=(3, 12, 12, 8, 24))


def _linear_5d():
    """``dx/dt = A x`` in 5-D with a non-normal ``A`` (rotations of two speeds, decay, coupling)."""
    rng = onp.random.default_rng(7)
    B = rng.standard_normal((5, 5))
    A = 1.5 * ((B - B.T) / 2 - 0.3 * onp.eye(5) + 0.2 * onp.triu(rng.standard_normal((5, 5)), 1))
    flow = _flow_map(A)

    def linear5(x, t):
        return x @ A.T

    def exact(x, s, s_end):
        return x @ flow(float(s_end - s)).T

    return OdeProblem("linear system dx/dt = A x in d = 5 (non-normal A, expm)", _typed(linear5),
                      rng.standard_normal((3, 5)), 0.0, 1.0, exact, asymptotic_from=(3, 2, 2, 2, 16))


ODE_PROBLEMS = (_spiral(), _forced_linear(), _riccati(), _linear_5d())
"""The problems ``check_ode_solver`` runs, each with its closed-form solution (d = 2, 3, 1, 5)."""

_CONSTANT_C = onp.array([0.7, -1.3, 0.4, 2.0, -0.5])
_CONSTANT_X0 = onp.array([[0.3, -0.2, 1.1, -0.7, 0.05], [1.5, 0.2, -0.3, 0.9, -1.2]])

# textbook tableaus (c, a, b) by order: the reference for where an order is measurable and for the
# envelope of errors when it is not
_ZOO = {
    1: [([0.0], [[]], [1.0])],
    2: [([0.0, 1.0], [[], [1.0]], [0.5, 0.5]), ([0.0, 2 / 3], [[], [2 / 3]], [0.25, 0.75]),
        ([0.0, 0.5], [[], [0.5]], [0.0, 1.0])],
    3: [([0.0, 0.5, 1.0], [[], [0.5], [-1.0, 2.0]], [1 / 6, 2 / 3, 1 / 6]),
        ([0.0, 1 / 3, 2 / 3], [[], [1 / 3], [0.0, 2 / 3]], [0.25, 0.0, 0.75]),
        ([0.0, 1.0, 0.5], [[], [1.0], [0.25, 0.25]], [1 / 6, 1 / 6, 2 / 3])],
    4: [([0.0, 0.5, 0.5, 1.0], [[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        ([0.0, 1 / 3, 2 / 3, 1.0], [[], [1 / 3], [-1 / 3, 1.0], [1.0, -1.0, 1.0]], [1 / 8, 3 / 8, 3 / 8, 1 / 8])],
    5: [([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0],
         [[], [1 / 5], [3 / 40, 9 / 40], [44 / 45, -56 / 15, 32 / 9],
          [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
          [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656]],
         [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]),
        ([0.0, 1 / 5, 3 / 10, 3 / 5, 1.0, 7 / 8],
         [[], [1 / 5], [3 / 40, 9 / 40], [3 / 10, -9 / 10, 6 / 5], [-11 / 54, 5 / 2, -70 / 27, 35 / 27],
          [1631 / 55296, 175 / 512, 575 / 13824, 44275 / 110592, 253 / 4096]],
         [37 / 378, 0.0, 250 / 621, 125 / 594, 0.0, 512 / 1771]),
        # Tsitouras (2011), the 5(4) pair with small principal error: its fifth-order solution
        ([0.0, 0.161, 0.327, 0.9, 0.98002554090450968573, 1.0, 1.0],
         [[], [0.161], [-0.008480655492356989, 0.335480655492357],
          [2.897153057105493, -6.359448489975075, 4.3622954328695815],
          [5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525],
          [5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401, -0.028269050394068383],
          [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081, 2.324710524099774]],
         [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081, 2.324710524099774,
          0.0])],
}


def _zoo_solve(tableau, u, x0, t0, t1, n):
    c, a, b = tableau
    h = (t1 - t0) / n
    x = onp.array(x0, dtype=float)
    for step in range(n):
        t = t0 + step * h
        ks = []
        for ci, row in zip(c, a):
            xi = x + h * sum((aij * kj for aij, kj in zip(row, ks)), onp.zeros_like(x))
            ks.append(u(xi, t + ci * h))
        x = x + h * sum(bi * ki for bi, ki in zip(b, ks))
    return x


def _relative_error(x, x_true):
    return float(onp.max(onp.linalg.norm(x - x_true, axis=1)) / (1.0 + onp.max(onp.linalg.norm(x_true, axis=1))))


@functools.lru_cache(maxsize=64)
def _zoo_errors(problem_index, order, steps, backwards):
    """The largest error among the textbook methods of ``order`` at each step count (float64)."""
    prob = ODE_PROBLEMS[problem_index]
    q = min(order, 5)
    start = prob.exact(prob.x0, prob.t0, prob.t1) if backwards else prob.x0
    s, s_end = (prob.t1, prob.t0) if backwards else (prob.t0, prob.t1)
    x_true = prob.exact(start, s, s_end)
    return tuple(max(_relative_error(_zoo_solve(tab, prob.u, start, s, s_end, n), x_true) for tab in _ZOO[q])
                 for n in steps)


def asymptotic_table(steps_by_order=None, tol=0.3):
    """Recompute ``OdeProblem.asymptotic_from`` for every problem from the textbook tableaus.

    For each problem and order, the smallest ``n`` of a doubling ``(n, 2n)`` of the default
    steps from which every textbook method of that order, forwards and backwards, has a
    slope within ``tol`` of its order (0 if none). ``tests`` compare it with the table.
    """
    rows = []
    for prob in ODE_PROBLEMS:
        row = []
        for order in range(1, 6):
            steps = (steps_by_order or {}).get(order, _default_steps(order))
            pairs = [(a, 2 * a) for a in steps if 2 * a in steps]
            bad = 0
            for tab in _ZOO[order]:
                for backwards in (False, True):
                    start = prob.exact(prob.x0, prob.t0, prob.t1) if backwards else prob.x0
                    s, s_end = (prob.t1, prob.t0) if backwards else (prob.t0, prob.t1)
                    x_true = prob.exact(start, s, s_end)
                    e = {m: _relative_error(_zoo_solve(tab, prob.u, start, s, s_end, m), x_true) for m in steps}
                    eps = float(onp.finfo(onp.float64).eps)
                    for a, b in pairs:  # only pairs the checker would use: both errors above its float64 floor
                        if min(e[a] - FLOOR_FACTOR * _floor(eps, a), e[b] - FLOOR_FACTOR * _floor(eps, b)) > 0 \
                                and abs(math.log(e[a] / e[b]) / math.log(2) - order) > tol:
                            bad = max(bad, a)
            row.append(min([a for a, _ in pairs if a > bad], default=0))
        rows.append(tuple(row))
    return tuple(rows)


def _default_steps(order):
    if order == 1:
        return (3, 4, 6, 8, 12, 16, 24, 32, 48)
    if order >= 5:  # fifth-order methods with a small principal error (Tsitouras) reach their order later
        return (2, 3, 4, 6, 8, 12, 16, 24, 32, 48)
    return (2, 3, 4, 6, 8, 12, 16, 24)


class _Counted:
    """A field that counts its evaluations (calls) for the consistency probe."""

    def __init__(self, u):
        self.u, self.calls = u, 0
        self.__name__ = getattr(u, "__name__", "u")

    def __call__(self, x, t):
        self.calls += 1
        return self.u(x, t)


def _solve(impl, u, x0, t0, t1, n, rec, label, where):
    out = impl(u, x0, t0, t1, n, where=where)
    arr = as_array(out, "solve(...)", rec, finite=False, where=where)
    if arr.shape != x0.shape:
        rec.fail(f"solve returned shape {arr.shape} for x0 of shape {x0.shape} ({label})")
        raise Stop
    if not onp.all(onp.isfinite(arr)):
        rec.note(f"solve returned non-finite values on {label} with n_steps = {n}")
    return arr


def _errors(impl, u, x_start, s, s_end, exact, steps, rec, label, where):
    x_true = exact(x_start, s, s_end)
    results, errors = [], []
    for n in steps:
        x = _solve(impl, u, x_start, s, s_end, n, rec, label, where)
        results.append(x)
        err = _relative_error(x, x_true)
        errors.append(err if math.isfinite(err) else math.inf)
    return onp.array(errors), results


def _fit(errors, steps, eps, n_min, default):
    """The observed order and the pair it was fitted on, or (nan, None)."""
    floor = [FLOOR_FACTOR * _floor(eps, n) for n in steps]
    index = {n: i for i, n in enumerate(steps)}
    if default:
        pairs = [(index[a], index[2 * a]) for a in steps if 2 * a in index and a >= n_min > 0]
    else:
        pairs = [(i, i + 1) for i in range(len(steps) - 1)]
    usable = [(i, j) for i, j in pairs if errors[i] > floor[i] and errors[j] > floor[j]
              and math.isfinite(errors[i] + errors[j])]
    if not usable:
        return float("nan"), None
    i, j = usable[-1]
    return math.log(errors[i] / errors[j]) / math.log(steps[j] / steps[i]), (steps[i], steps[j])


def _converges_to(alt, errors, steps, eps, n_min, default, order):
    """How the results converge to another problem's solution, or None if they do not.

    ``alt`` are the errors of the same results against the solution of a wrong problem
    (time reversed, time frozen), ``errors`` those against the true solution. The wrong
    problem is the measured cause when the results converge to its solution at the
    claimed order (the slope fitted as for the true solution is within ``ORDER_TOL``),
    or reach its solution to round-off, while staying at least twice as far from the
    true one at the finest step count. A fixed ratio of the two errors would not do: a
    first-order method is still a few per cent away from the wrong solution at 48 steps.

    Returns:
        None, or how it converges, in words (``"at order 1.02 over n = 24..48"``).
    """
    if not (math.isfinite(alt[-1]) and alt[-1] < 0.5 * errors[-1]):
        return None
    if alt[-1] <= FLOOR_FACTOR * _floor(eps, steps[-1]):
        return "to round-off"
    p, pair = _fit(alt, steps, eps, n_min, default)
    if pair is not None and abs(p - order) <= ORDER_TOL:
        return f"at order {p:.2f} over n = {pair[0]}..{pair[1]}"
    return None


def _consistency(rec, impl, eps):
    """A constant field: every consistent method returns ``x0 + (t1 - t0) c`` exactly, for any ``n_steps``."""
    x0 = _CONSTANT_X0
    for (t0, t1, n) in ((0.2, 0.9, 1), (0.2, 0.9, 3), (0.9, 0.2, 1)):
        u = _Counted(_typed(lambda x, t: onp.broadcast_to(_CONSTANT_C, onp.shape(x)).copy()))
        x = _solve(impl, u, x0, t0, t1, n, rec, f"the constant field (n_steps = {n})", "in d = 5")
        eps = rec.precision.eps
        x0_r = rec.precision.round(x0)
        x_true = x0_r + (t1 - t0) * _CONSTANT_C
        err = _relative_error(x, x_true)
        direction = "backwards" if t1 < t0 else "forwards"
        ok = rec.measure(f"constant_field_n{n}_{direction}", err, FLOOR_FACTOR * _floor(eps, n),
                         what=f"|solve - (x0 + (t1 - t0) c)| for dx/dt = c, n_steps = {n}, {direction} "
                              f"(exact for every consistent method; evaluations of u: {u.calls})",
                         fail=f"on dx/dt = c with n_steps = {n} ({direction}) the solver is off by {err:.3g}: every "
                              "consistent method is exact there")
        if not ok:
            if _relative_error(x, x0_r) <= FLOOR_FACTOR * _floor(eps, n) or (n > 1 and _relative_error(
                    x, x0_r + (n - 1) / n * (t1 - t0) * _CONSTANT_C) <= FLOOR_FACTOR * _floor(eps, n)):
                rec.diagnose("takes n_steps - 1 steps",
                             f"with n_steps = {n} the result is x0 moved by {n - 1} steps: a loop over "
                             "linspace(t0, t1, n_steps) takes n_steps - 1 steps (use n_steps + 1 points), and "
                             "n_steps = 1 returns x0")
            elif u.calls == 0:
                rec.diagnose("field never evaluated", f"with n_steps = {n} the solver never called u")
        if n == 3 and u.calls:
            rec.note(f"evaluations of u per step: {u.calls / 3:g}")


def _body(rec, solve, order, steps, k, declared):
    impl = Impl(solve, "solve", rec, ("u", "x0", "t0", "t1", "n_steps"), declared)
    default = steps is None
    steps = _default_steps(order) if default else tuple(steps)
    with continuing(rec):
        _consistency(rec, impl, rec.precision.eps)
    prec = rec.precision
    eps = prec.eps
    observed = {}
    measured_any = False
    # a solver that takes n_steps - 1 steps shows every other symptom as a consequence (orders fitted on the wrong
    # n, a backward run off): only that is named
    short = any(lab == "takes n_steps - 1 steps" for lab, _ in rec.diagnoses)
    for idx, prob in enumerate(ODE_PROBLEMS):
        with continuing(rec):
            label = f"P{idx + 1}"
            where = f"in d = {prob.dim}"
            x0 = prec.round(prob.x0)
            fwd, fwd_runs = _errors(impl, prob.u, x0, prob.t0, prob.t1, prob.exact, steps, rec, label, where)
            x_end = prec.round(prob.exact(x0, prob.t0, prob.t1))
            bwd, _ = _errors(impl, prob.u, x_end, prob.t1, prob.t0, prob.exact, steps, rec, label + " backwards", where)
            n_min = prob.asymptotic_from[min(order, 5) - 1]
            p_f, pair_f = _fit(fwd, steps, eps, n_min, default)
            p_b, pair_b = _fit(bwd, steps, eps, n_min, default)
            observed[label] = (p_f, p_b, fwd, bwd, pair_f)
            errs = ", ".join(f"{e:.2e}" for e in fwd)
            ok_f = ok_b = True
            for direction, p, pair, errors in (("forwards", p_f, pair_f, fwd), ("backwards", p_b, pair_b, bwd)):
                suffix = "" if direction == "forwards" else "_backwards"
                if pair is not None:
                    measured_any = True
                    ok = rec.measure(f"order_{label}{suffix}", abs(p - order), ORDER_TOL,
                                     what=f"|observed - claimed| {direction} on {label} {prob.name}: observed {p:.2f} "
                                          f"fitted over n = {pair[0]}..{pair[1]} (errors {', '.join(f'{e:.2e}' for e in errors)} "
                                          f"at n = {list(steps)})",
                                     fail=f"on {label} ({prob.name}) the observed order {direction} is {p:.2f}, not {order} "
                                          f"(n = {pair[0]}..{pair[1]})")
                    rec.cover(f"{label} {direction}: order fitted over n = {pair[0]}..{pair[1]}")
                else:
                    zoo = onp.array(_zoo_errors(idx, order, steps, direction == "backwards"))
                    bound = ENVELOPE_FACTOR * zoo + 2.0 * onp.array([_floor(eps, n) for n in steps])
                    ratio = onp.max(errors / bound)
                    ok = rec.measure(f"envelope_{label}{suffix}", ratio, 1.0,
                                     what=f"max over n of error / (10 x a textbook order-{min(order, 5)} method's error + "
                                          f"round-off) {direction} on {label} (no doubling of n here is both above the "
                                          f"{prec.name} round-off floor and in the calibrated asymptotic range)",
                                     fail=f"on {label} {direction} the errors ({', '.join(f'{e:.2e}' for e in errors)}) "
                                          f"exceed those of an order-{min(order, 5)} method by more than 10x")
                    rec.cover(f"{label} {direction}: order not measured (no doubling above the {prec.name} round-off "
                              f"floor 16 eps (16 + n) in the calibrated range); errors compared with textbook "
                              f"order-{min(order, 5)} methods")
                if direction == "forwards":
                    ok_f = ok
                else:
                    ok_b = ok
            floor_f = FLOOR_FACTOR * onp.array([_floor(eps, n) for n in steps])
            zoo_f = onp.array(_zoo_errors(idx, order, steps, False))
            if pair_f is None and onp.all(fwd <= floor_f) and onp.max(zoo_f / floor_f) > 10:
                rec.fail(f"on {label} every error is at round-off ({errs}) where a method of order {order} errs by up to "
                         f"{zoo_f.max():.2e}")
                rec.diagnose("errors at round-off",
                             f"on {label} every error is at round-off ({errs}): an adaptive or exact solver has no "
                             "order to measure; pass larger steps or check it with a fixed-step setting")
            if ok_f and not ok_b and not short and (bwd[-1] > 0.1 or bwd[-1] > 0.5 * bwd[0]):
                rec.diagnose("no reverse-time integration",
                             "forwards is right but integrating from t1 back to t0 does not return the start: "
                             "the solver must take negative steps h = (t1 - t0) / n_steps when t1 < t0")

            # round trip with the finest grid
            there = prec.round(fwd_runs[-1])
            back = _solve(impl, prob.u, there, prob.t1, prob.t0, steps[-1], rec, label + " round trip", where)
            rt = _relative_error(back, x0)
            rt = rt if math.isfinite(rt) else math.inf
            bound = k * (fwd[-1] + bwd[-1]) + FLOOR_FACTOR * _floor(eps, 2 * steps[-1])
            rec.measure(f"round_trip_{label}", rt, bound,
                        what=f"|solve back(solve forward(x0)) - x0| with n = {steps[-1]} (k x the one-way errors)",
                        fail=f"on {label} integrating forwards then backwards does not return the start ({rt:.3g})")

            if not ok_f and prob.reversed_exact is not None and not short:
                rev, _ = _errors(impl, prob.u, x0, prob.t0, prob.t1, prob.reversed_exact, steps, rec, label, where)
                frz, _ = _errors(impl, prob.u, x0, prob.t0, prob.t1, prob.frozen_exact, steps, rec, label, where)
                p_rev = _converges_to(rev, fwd, steps, eps, n_min, default, order)
                p_frz = _converges_to(frz, fwd, steps, eps, n_min, default, order)
                if p_rev is not None:
                    rec.diagnose("time runs the wrong way",
                                 f"on {label} the result converges to the solution of dx/dt = u(x, t0 + t1 - t) "
                                 f"({p_rev}), not to that of dx/dt = u(x, t): the solver evaluates u at reversed times (e.g. a "
                                 "field written for data at t = 0, or t = 1 - t inside)")
                elif p_frz is not None:
                    rec.diagnose("time not advanced",
                                 f"on {label} the result converges to the solution of dx/dt = u(x, t0) ({p_frz}), "
                                 "not to that of dx/dt = u(x, t): the solver never advances t")

    auto = [observed[f"P{i + 1}"][0] for i, p in enumerate(ODE_PROBLEMS) if p.autonomous and f"P{i + 1}" in observed]
    non_auto = [observed[f"P{i + 1}"][0] for i, p in enumerate(ODE_PROBLEMS)
                if not p.autonomous and f"P{i + 1}" in observed]
    named_time = short or any(lab in ("time runs the wrong way", "time not advanced") for lab, _ in rec.diagnoses)
    auto_ok = [p for p in auto if math.isfinite(p)]
    if not named_time and auto_ok and all(abs(p - order) <= ORDER_TOL for p in auto_ok) and any(
            math.isfinite(p) and abs(p - order) > ORDER_TOL for p in non_auto):
        rec.diagnose("stage at the wrong time",
                     "full order on the autonomous problems but not on the non-autonomous ones: a stage evaluates "
                     "u at the wrong time (check the c_i of the tableau: stage i at t + c_i h)")
    finite = [v[0] for v in observed.values() if math.isfinite(v[0])]
    if finite and all(abs(p - round(p)) <= ORDER_TOL / 2 for p in finite) and len({round(p) for p in finite}) == 1 \
            and round(finite[0]) != order and not named_time:
        q = round(finite[0])
        rec.diagnose(f"order {q}, not {order}",
                     f"every problem shows order {q}: a wrong weight or coefficient in the tableau?" if q < order
                     else f"every problem shows order {q}, more than the claimed {order}")
    if not measured_any:
        rec.note(f"the order could not be measured above the {prec.name} round-off floor on any problem: the errors "
                 f"were compared with textbook methods of order {min(order, 5)} instead")
    rec.cover(f"d = 1, 2, 3, 5 (problems P3, P1, P2, P4) and a constant field in d = 5; n_steps = 1, 3 and "
              f"{', '.join(map(str, steps))}; forwards and backwards")
    summary = ", ".join(f"{key} {v[0]:.2f}/{v[1]:.2f}" for key, v in observed.items())
    return (f"observed order forwards/backwards {summary} (claimed {order}; nan where not measurable above "
            f"{prec.name} round-off); forwards then backwards returns the start.")


def check_ode_solver(solve, order, *, steps=None, k=K_SAFETY, precision=None):
    """Check a fixed-step ODE solver's order of convergence and its reverse-time run  [lecture: eq. (4)]

    On each problem of ``ODE_PROBLEMS`` (a linear system in d = 2, a forced linear system
    in d = 3 that is non-autonomous, a nonlinear non-autonomous Riccati equation in d = 1,
    a non-normal linear system in d = 5) the solver is run with the default step counts
    (2, 3, 4, 6, 8, 12, 16, 24; 3 to 48 for a first-order claim), forwards from ``t0`` to
    ``t1`` and backwards from the exact ``x(t1)`` to ``t0``, in the implementation's own
    precision. Properties:

    - the observed order, forwards and backwards, is within 0.5 of ``order``, fitted on
      the finest doubling of ``n`` whose errors are above the round-off floor of the
      precision and in the asymptotic range (the report says which ``n`` were used);
      where no such doubling exists the errors must stay within 10x of those of textbook
      methods of the claimed order (plus round-off), and the report says so;
    - integrating forwards then backwards with the finest grid returns the start, to
      ``k`` times the sum of the two one-way errors;
    - on ``dx/dt = c`` the result is exact for ``n_steps = 1`` and ``3``, forwards and
      backwards;
    - the solver does not write into ``x0`` (integrating in place in the caller's array)
      and returns no view of it.

    On failure it names what it recognises: time running the wrong way inside the solver
    (the results converge at the claimed order to the solution of
    ``dx/dt = u(x, t0 + t1 - t)``), time never advanced (they converge to that of
    ``dx/dt = u(x, t0)``: ``u`` always evaluated at the start time), a stage evaluated at the wrong time (full
    order on the autonomous problems only), no support for ``t1 < t0``, a different
    order than claimed, ``n_steps - 1`` steps (``linspace(t0, t1, n_steps)``), writing
    into ``x0``, raising in some dimension.

    Args:
        solve: ``solve(u, x0, t0, t1, n_steps) -> x(t1)``; ``u(x, t)`` is a NumPy field
            (called with ``t`` a float; it returns the dtype of ``x``), ``x0`` has shape
            ``(n, d)``, ``t1 < t0`` must integrate backwards.
        order: the claimed order (1 Euler, 2 midpoint/Heun, 4 RK4 or 3/8 rule, 5 Dormand-Prince).
        steps: the numbers of steps to use, at least two increasing integers (the order is
            then fitted on the finest consecutive pair above round-off, without the
            asymptotic-range table).
        k: safety factor of the round-trip bound.
        precision: the precision the solver computes in, if lower than its output's dtype says.

    Returns:
        ``CheckReport`` with the observed orders and errors.
    """
    check_callable(solve, "solve")
    order = check_positive_int(order, "order")
    if order > 12:
        raise ValueError(f"order must be an integer between 1 and 12, got {order}")
    k = check_k(k)
    if steps is not None:
        if isinstance(steps, (str, bytes)) or not hasattr(steps, "__iter__"):
            raise TypeError(f"steps must be a sequence of integers, got {type(steps).__name__}")
        steps = [check_positive_int(s, "steps[...]") for s in steps]
        if len(steps) < 2 or any(b <= a for a, b in zip(steps[:-1], steps[1:])):
            raise ValueError(f"steps must be at least two increasing integers, got {steps}")
        if steps[-1] > 100_000:
            raise ValueError(f"steps must be at most 100000, got {steps[-1]}")
    declared = check_precision(precision)
    rec = Recorder("check_ode_solver")
    return run_checker(rec, _body, solve, order, steps, k, declared)


assert_ode_solver = assert_twin(check_ode_solver)

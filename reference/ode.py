"""Integrators for the ODE  dx/dt = u(x, t)  [lecture: eq. (4); CNF Pros (adaptive steps)]

Every explicit Runge-Kutta method here is its Butcher tableau ``(c, a, b)``, data that
checks its own consistency, and one short function, ``rk_step``, takes a step of any of
them:

    k_i     = u(x + h sum_{j<i} a_ij k_j,  t + c_i h),   i = 1..s
    x_new   = x + h sum_i b_i k_i

Forward Euler, ``x_{k+1} = x_k + h u(x_k, t_k)``, is the one-stage tableau; it is how
the lecture reads a stack of planar layers (section "Continuous Normalizing Flows").

``integrate`` takes ``n_steps`` equal steps from ``t0`` to ``t1``; ``t1 < t0`` runs the
reverse-time ODE, which inverts the flow (the lecture's argument that ``T`` is
invertible). ``integrate_adaptive`` is Dormand-Prince 5(4) with its embedded error
estimate and a standard step-size controller. ``flow`` is the lecture's ``f^u(x, t)``
and ``push_samples`` draws the probability path ``p_t = f^u(., t) # p0`` by pushing
samples of ``p0``.

Comparing with torchdiffeq: its fixed-grid ``method="rk4"`` takes Kutta's 3/8-rule step
(``rk4_alt_step_func`` in ``torchdiffeq/_impl/rk_common.py``, called by ``RK4`` in
``fixed_grid.py``), which is ``"rk38"`` here; ``"rk4"`` here is the classic method.

Batches: ``x`` has shape ``(n, d)`` and the ``n`` rows are ``n`` initial values of the
same ODE, integrated together. Everything is written with ``autograd.numpy`` and
without in-place writes, so a fixed-step solution can be differentiated with respect
to its initial value (``autodiff.jacobian`` of ``x0 -> integrate(u, x0)``).
"""

import math
from dataclasses import dataclass

import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

import numbers

from ._validate import (
    as_points,
    as_real_array,
    as_time,
    check_bool,
    check_callable,
    check_field_output,
    check_finite_number,
    check_count,
    check_real,
    refuse_non_finite,
)

__all__ = [
    "IntegrationError",
    "ButcherTableau",
    "EULER",
    "MIDPOINT",
    "RK4",
    "RK38",
    "DOPRI5",
    "TABLEAUS",
    "get_tableau",
    "rk_step",
    "integrate",
    "AdaptiveResult",
    "integrate_adaptive",
    "initial_step",
    "flow",
    "flow_inverse",
    "push_samples",
]

_TOL = 1e-14  # consistency checks on tableau coefficients written as decimal fractions
_MAX_STEPS = 1e8  # push_samples refuses to plan more steps than this


class IntegrationError(ValueError):
    """A solve of eq. (4) that could not be continued, with the time and the reason  [lecture: eq. (4)]

    Raised when the state or the field stops being finite, the step size underflows or
    ``max_steps`` runs out. A ``ValueError``, so callers may catch either.
    """


def _check_coefficients(v, name):
    """A tableau's row of coefficients: a tuple or list of real numbers (no bool, complex or str)."""
    if isinstance(v, (str, bytes)) or not isinstance(v, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of real numbers, got {type(v).__name__}")
    for k, value in enumerate(v):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name}[{k}] must be a real number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name}[{k}] must be finite, got {value!r}")


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge-Kutta method as data  [lecture: eq. (4)]

        k_i = u(x + h sum_{j<i} a_ij k_j, t + c_i h),   x_new = x + h sum_i b_i k_i

    Construction checks consistency: ``a`` is ``s x s`` and strictly lower triangular
    (the method is explicit), each row of ``a`` sums to its ``c_i`` (stage ``i`` is a
    first-order accurate guess of ``x(t + c_i h)``, so the stage is evaluated at the
    right time), and the weights ``b`` sum to 1 (the method is consistent: it has order
    at least 1). An embedded pair also carries ``b_err``, the weights of the solution of
    order ``err_order``, which must also sum to 1.

    Attributes:
        name: the method's name, e.g. ``"rk4"``.
        order: the order ``p`` of the solution ``b`` (global error ``O(h^p)``).
        c: nodes, length ``s``.
        a: stage coefficients, ``s`` rows of length ``s``.
        b: weights of the solution, length ``s``.
        b_err: weights of the embedded solution (for an error estimate), or None.
        err_order: the order of the embedded solution, or None.
        doc: one line saying what the method is.
    """

    name: str
    order: int
    c: tuple
    a: tuple
    b: tuple
    b_err: tuple = None
    err_order: int = None
    doc: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {type(self.name).__name__}")
        if not isinstance(self.doc, str):
            raise TypeError(f"doc must be a str, got {type(self.doc).__name__}")
        for field_name in ("c", "b") + (("b_err",) if self.b_err is not None else ()):
            _check_coefficients(getattr(self, field_name), field_name)
        if isinstance(self.a, (str, bytes)) or not isinstance(self.a, (tuple, list)):
            raise TypeError(f"a must be a tuple of rows of real numbers, got {type(self.a).__name__}")
        for i, row in enumerate(self.a):
            _check_coefficients(row, f"a[{i}]")
        if self.err_order is not None:
            check_count(self.err_order, "err_order")
        s = len(self.c)
        if s < 1 or len(self.b) != s or len(self.a) != s or any(len(row) != s for row in self.a):
            raise ValueError(
                f"tableau {self.name!r}: c, b must have length s and a must be s x s, got "
                f"len(c) = {len(self.c)}, len(b) = {len(self.b)}, a rows {[len(r) for r in self.a]}"
            )
        a = onp.asarray(self.a, dtype=float)
        if not onp.all(onp.isfinite(a)) or not onp.all(onp.isfinite(self.b)) or not onp.all(onp.isfinite(self.c)):
            raise ValueError(f"tableau {self.name!r}: coefficients must be finite")
        if onp.any(onp.triu(a) != 0):
            raise ValueError(
                f"tableau {self.name!r}: a must be strictly lower triangular (an explicit method), "
                f"got non-zero entries on or above the diagonal"
            )
        row_sums = a.sum(axis=1)
        bad = onp.flatnonzero(onp.abs(row_sums - onp.asarray(self.c)) > _TOL)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"tableau {self.name!r}: row {i} of a sums to {float(row_sums[i])!r} but c[{i}] = {float(self.c[i])!r}; "
                f"each row of a must sum to its node c_i"
            )
        if abs(sum(self.b) - 1.0) > _TOL:
            raise ValueError(f"tableau {self.name!r}: the weights b must sum to 1, got {float(sum(self.b))!r}")
        if self.b_err is not None:
            if len(self.b_err) != s:
                raise ValueError(f"tableau {self.name!r}: b_err must have length {s}, got {len(self.b_err)}")
            if abs(sum(self.b_err) - 1.0) > _TOL:
                raise ValueError(f"tableau {self.name!r}: the weights b_err must sum to 1, got {float(sum(self.b_err))!r}")
            if self.err_order is None:
                raise ValueError(f"tableau {self.name!r}: an embedded pair needs err_order")
        check_count(self.order, "order")

    @property
    def stages(self):
        """The number of stages ``s`` (function evaluations per step, before FSAL)."""
        return len(self.c)

    @property
    def fsal(self):
        """First Same As Last: the last stage is ``u(x_new, t + h)``, the next step's first.

        True when ``c_s = 1`` and the last row of ``a`` equals ``b`` (Dormand-Prince).
        """
        return self.stages > 1 and self.c[-1] == 1.0 and tuple(self.a[-1]) == tuple(self.b)


EULER = ButcherTableau(
    "euler", 1, c=(0.0,), a=((0.0,),), b=(1.0,),
    doc="Forward Euler: x_new = x + h u(x, t); the lecture's reading of a planar layer.",
)

MIDPOINT = ButcherTableau(
    "midpoint", 2,
    c=(0.0, 0.5),
    a=((0.0, 0.0),
       (0.5, 0.0)),
    b=(0.0, 1.0),
    doc="Explicit midpoint: x_new = x + h u(x + h/2 u(x, t), t + h/2).",
)

RK4 = ButcherTableau(
    "rk4", 4,
    c=(0.0, 0.5, 0.5, 1.0),
    a=((0.0, 0.0, 0.0, 0.0),
       (0.5, 0.0, 0.0, 0.0),
       (0.0, 0.5, 0.0, 0.0),
       (0.0, 0.0, 1.0, 0.0)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
    doc="The classic fourth-order Runge-Kutta method (weights 1/6, 1/3, 1/3, 1/6).",
)

RK38 = ButcherTableau(
    "rk38", 4,
    c=(0.0, 1 / 3, 2 / 3, 1.0),
    a=((0.0, 0.0, 0.0, 0.0),
       (1 / 3, 0.0, 0.0, 0.0),
       (-1 / 3, 1.0, 0.0, 0.0),
       (1.0, -1.0, 1.0, 0.0)),
    b=(1 / 8, 3 / 8, 3 / 8, 1 / 8),
    doc=(
        "Kutta's 3/8 rule, fourth order (weights 1/8, 3/8, 3/8, 1/8). torchdiffeq's fixed-grid "
        "method='rk4' takes this step (its rk4_alt_step_func), not the classic one, so compare "
        "against 'rk38' here."
    ),
)

DOPRI5 = ButcherTableau(
    "dopri5", 5,
    c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
    a=((0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
       (1 / 5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
       (3 / 40, 9 / 40, 0.0, 0.0, 0.0, 0.0, 0.0),
       (44 / 45, -56 / 15, 32 / 9, 0.0, 0.0, 0.0, 0.0),
       (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0.0, 0.0, 0.0),
       (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0.0, 0.0),
       (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)),
    b=(35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0),
    b_err=(5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40),
    err_order=4,
    doc=(
        "Dormand-Prince 5(4): the fifth-order solution, with an embedded fourth-order one for "
        "the error estimate; seven stages, the last one FSAL (six evaluations per step)."
    ),
)

TABLEAUS = {tab.name: tab for tab in (EULER, MIDPOINT, RK4, RK38, DOPRI5)}
"""The fixed-step methods by name."""


def get_tableau(method):
    """The Butcher tableau of a method, by name or as given  [lecture: eq. (4)]

    Args:
        method: one of ``TABLEAUS`` (``"euler"``, ``"midpoint"``, ``"rk4"``, ``"rk38"``,
            ``"dopri5"``), or a ``ButcherTableau``.
    """
    if isinstance(method, ButcherTableau):
        return method
    if isinstance(method, str) and method in TABLEAUS:
        return TABLEAUS[method]
    raise ValueError(f"method must be one of {sorted(TABLEAUS)} or a ButcherTableau, got {method!r}")


def _checked_field(u, n, d, context=""):
    """``u`` wrapped so that a wrong shape or a non-finite value names the time it happened at (and ``context``)."""
    def field(x, t):
        out = u(x, t)
        try:
            check_field_output(out, n, d)
        except ValueError as err:
            wrong_shape = onp.shape(getval(out)) != (n, d)  # bad input, not a failed solve
            kind = ValueError if wrong_shape else IntegrationError
            raise kind(f"{err}, at t = {float(getval(t)):.17g}{context}") from None
        return out
    return field


def rk_step(u, x, t, h, tableau, k1=None):
    """One explicit Runge-Kutta step of any tableau  [lecture: eq. (4)]

        k_i = u(x + h sum_{j<i} a_ij k_j, t + c_i h),   x_new = x + h sum_i b_i k_i

    Args:
        u: velocity field ``u(x, t) -> (n, d)``.
        x: state at ``t``, shape ``(n, d)``.
        t: current time (float).
        h: step (float; negative to integrate backwards).
        tableau: a ``ButcherTableau``.
        k1: ``u(x, t)`` if already known (the FSAL stage of the previous step), or None.

    Returns:
        ``(x_new, ks)``: the state at ``t + h``, shape ``(n, d)``, and the list of the ``s``
        stage values ``k_i``, each ``(n, d)``.

    Raises:
        ValueError, TypeError: bad arguments; ``u`` returning the wrong shape, complex or
            non-finite values; a step whose result overflows float64.
    """
    check_callable(u, "u")
    x = as_points(x)
    n, d = np.shape(x)
    t = float(check_finite_number(t, "t"))
    h = float(check_finite_number(h, "h"))
    if not isinstance(tableau, ButcherTableau):
        raise TypeError(f"tableau must be a reference.ode.ButcherTableau (e.g. reference.ode.RK4), got {type(tableau).__name__}")
    if k1 is not None:
        k1 = as_real_array(k1, "k1", shape=(n, d), what=f"an array of shape {(n, d)} like x (u(x, t))")
    with onp.errstate(over="ignore", invalid="ignore"):
        x_new, ks = _rk_step(_checked_field(u, n, d, f" (in a step of h = {h:.6g} from t = {t:.6g})"), x, t, h, tableau, k1)
    return refuse_non_finite(x_new, "the step's result", large={"x": x, "h": onp.array([h])}), ks


def _rk_step(u, x, t, h, tableau, k1=None):
    """``rk_step`` without its checks, for the solvers (which check every stage's output)."""
    ks = []
    for i in range(tableau.stages):
        if i == 0 and k1 is not None:
            ks.append(k1)
            continue
        x_i = x
        for a_ij, k_j in zip(tableau.a[i][:i], ks):
            if a_ij != 0.0:
                x_i = x_i + (h * a_ij) * k_j
        ks.append(u(x_i, t + tableau.c[i] * h))
    return x + h * _combine(tableau.b, ks), ks


def _combine(weights, ks):
    """``sum_i w_i k_i``, skipping zero weights."""
    total = 0.0
    for w, k in zip(weights, ks):
        if w != 0.0:
            total = total + w * k
    return total


def _check_finite_state(x, t, h):
    value = getval(x)
    if not onp.all(onp.isfinite(value)):
        bad = int(onp.sum(~onp.isfinite(value)))
        raise IntegrationError(
            f"the state stopped being finite ({bad} NaN or inf value(s)) at t = {t:.17g} "
            f"after a step h = {h:.3g}; the solution blows up or the step is too large"
        )


def integrate(u, x0, t0=0.0, t1=1.0, n_steps=100, method="rk4", return_path=False):
    """Solve  dx/dt = u(x, t), x(t0) = x0  with ``n_steps`` equal Runge-Kutta steps  [lecture: eq. (4)]

        t_k = t0 + k h,  h = (t1 - t0) / n_steps,  x_{k+1} = rk_step(u, x_k, t_k, h)

    With ``t1 < t0`` the step is negative and this solves the reverse-time ODE, which
    inverts the flow: ``integrate(u, integrate(u, x0, 0, 1), 1, 0) ~ x0``.

    Args:
        u: velocity field ``u(x, t) -> (n, d)``; it is called with ``t`` a float.
        x0: initial values, shape ``(n, d)``.
        t0, t1: start and end times (floats).
        n_steps: number of steps, ``>= 1``.
        method: ``"euler"`` (order 1), ``"midpoint"`` (2), ``"rk4"`` (4, classic), ``"rk38"``
            (4, Kutta's 3/8 rule, torchdiffeq's fixed-grid ``"rk4"``), ``"dopri5"`` (5, the
            Dormand-Prince fifth-order solution at fixed steps), or a ``ButcherTableau``.
        return_path: also return every intermediate state.

    Returns:
        ``x(t1)`` of shape ``(n, d)``; or, with ``return_path=True``, ``(path, times)``
        with ``path`` of shape ``(n_steps + 1, n, d)`` (``path[0] = x0``,
        ``path[-1] = x(t1)``) and ``times`` of shape ``(n_steps + 1,)``.

    Raises:
        TypeError: ``u`` is not callable, or ``n_steps`` is not an integer.
        ValueError: a bad ``x0``, ``n_steps < 1``, an unknown method, non-finite times,
            ``u`` returning the wrong shape or non-finite values, or a state that stops
            being finite (the message gives the time).
    """
    check_callable(u, "u")
    x = as_points(x0, "x0")
    n, d = np.shape(x)
    t0 = float(check_finite_number(t0, "t0"))
    t1 = float(check_finite_number(t1, "t1"))
    n_steps = check_count(n_steps, "n_steps")
    tableau = get_tableau(method)
    return_path = check_bool(return_path, "return_path")
    field = _checked_field(u, n, d, f" (solving from t0 = {t0:.6g} to t1 = {t1:.6g})")
    times = onp.linspace(t0, t1, n_steps + 1)
    path = [x]
    k1 = None
    for k in range(n_steps):
        t, h = times[k], times[k + 1] - times[k]
        with onp.errstate(over="ignore", invalid="ignore"):  # reported below, with the time
            x, ks = _rk_step(field, x, t, h, tableau, k1)
        _check_finite_state(x, times[k + 1], h)
        k1 = ks[-1] if tableau.fsal else None
        if return_path:
            path.append(x)
    if return_path:
        return np.stack(path), times
    return x


@dataclass(frozen=True)
class AdaptiveResult:
    """The solution of ``integrate_adaptive`` and how it was obtained  [lecture: CNF Pros (adaptive steps)]

    Attributes:
        x: the solution at ``t1``, shape ``(n, d)``.
        times: the accepted times ``t0 = s_0, s_1, ..., s_m = t1``, shape ``(m + 1,)``.
        states: the solution at ``times``, shape ``(m + 1, n, d)``, or None unless asked for.
        n_fev: number of evaluations of ``u`` (each on the whole batch).
        n_accepted: accepted steps ``m``.
        n_rejected: rejected steps.
    """

    x: onp.ndarray
    times: onp.ndarray
    states: onp.ndarray
    n_fev: int
    n_accepted: int
    n_rejected: int

    def __post_init__(self):
        x = as_points(self.x, "x")
        times = as_real_array(self.times, "times", ndim=1, what="a 1-D array of times")
        if times.size < 1:
            raise ValueError("times must hold at least t0")
        steps = onp.diff(times)
        if not (onp.all(steps > 0) or onp.all(steps < 0)):
            raise ValueError("times must be strictly monotone (the accepted times of one solve)")
        if self.states is not None:
            as_real_array(self.states, "states", shape=(times.size,) + tuple(onp.shape(getval(x))),
                          what=f"an array of shape {(times.size,) + tuple(onp.shape(getval(x)))} (one state per time)")
        for name in ("n_fev", "n_accepted", "n_rejected"):
            check_count(getattr(self, name), name, minimum=0)
        if self.n_accepted != times.size - 1:
            raise ValueError(f"n_accepted must be len(times) - 1 = {times.size - 1}, got {self.n_accepted}")


def _error_norm(err, x, x_new, rtol, atol):
    """Per-point RMS of ``err / (atol + rtol max(|x|, |x_new|))``, then the worst point.

    For one point this is the usual norm of Hairer, Norsett and Wanner (and of
    ``scipy.integrate.solve_ivp``); taking the worst point keeps each point's accuracy
    independent of how many other points share the batch.
    """
    scale = atol + rtol * onp.maximum(onp.abs(x), onp.abs(x_new))
    return float(onp.max(onp.sqrt(onp.mean((err / scale) ** 2, axis=1))))


def initial_step(u, x0, t0, t1, rtol, atol, order, f0=None):
    """A first step size from the field's scale at x0 (Hairer, Norsett and Wanner, II.4)  [lecture: CNF Pros (adaptive steps)]

        d0 = ||x0||, d1 = ||u(x0, t0)||  (weighted RMS norms, weights 1 / (atol + rtol |x0|))
        h0 = 0.01 d0 / d1  (1e-6 if either is tiny),  x1 = x0 + h0 u(x0, t0)
        d2 = ||u(x1, t0 + h0) - u(x0, t0)|| / h0
        h1 = (0.01 / max(d1, d2)) ^ (1 / (order + 1))
        h  = min(100 h0, h1, |t1 - t0|)

    Costs one evaluation of ``u`` (two if ``f0`` is not given). Where the weighted
    norms overflow (tiny tolerances: ``rtol = 0`` and ``atol = 1e-300``), they are taken
    in logs, so the step is finite and positive whatever the tolerances.

    Args:
        u: velocity field ``u(x, t) -> (n, d)``.
        x0: initial values, shape ``(n, d)``.
        t0, t1: start and end times, ``t1 != t0``.
        rtol, atol: tolerances, ``rtol >= 0``, ``atol > 0``.
        order: the order of the error estimate (4 for Dormand-Prince 5(4)).
        f0: ``u(x0, t0)`` if already known, shape ``(n, d)``.

    Returns:
        ``(h, n_fev)``: the step size (positive) and the number of evaluations used.
    """
    check_callable(u, "u")
    x0 = as_points(x0, "x0")
    n, d = np.shape(x0)
    t0 = check_real(t0, "t0")
    t1 = check_real(t1, "t1")
    if t1 == t0:
        raise ValueError(f"t1 must differ from t0 (there is no step to take), got t0 = t1 = {t0}")
    rtol = check_real(rtol, "rtol", low=0.0)
    atol = check_real(atol, "atol", low=0.0, low_open=True)
    order = check_count(order, "order")
    if f0 is not None:
        f0 = as_real_array(f0, "f0", shape=(n, d), what=f"an array of shape {(n, d)} like x0 (u(x0, t0))")
    return _initial_step(_checked_field(u, n, d, f" (from t0 = {t0:.6g} towards t1 = {t1:.6g})"), x0, t0, t1, rtol, atol, order, f0)


def _log_norm(v, log_scale):
    """``log max_rows sqrt(mean_j (v_j / scale_j)^2)`` computed in logs (``-inf`` for v = 0)."""
    with onp.errstate(divide="ignore", invalid="ignore"):
        lv = onp.log(onp.abs(v)) - log_scale  # (n, d)
        m = onp.max(lv, axis=1, keepdims=True)
        row = m[:, 0] + 0.5 * onp.log(onp.mean(onp.exp(2.0 * (lv - onp.where(onp.isfinite(m), m, 0.0))), axis=1))
    return float(onp.max(onp.where(onp.isfinite(m[:, 0]), row, -onp.inf)))


def _log_scale(x0, rtol, atol):
    """``log(atol + rtol |x0|)``, without overflow or a warning at x0 = 0."""
    if rtol == 0.0:
        return onp.full(onp.shape(x0), onp.log(atol))
    with onp.errstate(divide="ignore"):
        return onp.logaddexp(onp.log(atol), onp.log(rtol) + onp.log(onp.abs(x0)))


def _initial_step(u, x0, t0, t1, rtol, atol, order, f0=None):
    """``initial_step`` without its checks (``u`` checked by the caller)."""
    n_fev = 0
    if f0 is None:
        f0, n_fev = u(x0, t0), 1
    x0, f0 = onp.asarray(getval(x0)), onp.asarray(getval(f0))
    span = abs(t1 - t0)
    direction = 1.0 if t1 >= t0 else -1.0
    with onp.errstate(over="ignore", invalid="ignore", divide="ignore"):
        scale = atol + rtol * onp.abs(x0)
        norm = lambda v: float(onp.max(onp.sqrt(onp.mean((v / scale) ** 2, axis=1))))  # noqa: E731
        d0, d1 = norm(x0), norm(f0)
    if onp.isfinite(d0) and onp.isfinite(d1):
        h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    else:  # the weighted norms overflow (tolerances far below the state's size): their ratio in logs
        log_scale = _log_scale(x0, rtol, atol)
        l0, l1 = _log_norm(x0, log_scale), _log_norm(f0, log_scale)
        h0 = 1e-6 if l0 < onp.log(1e-5) or l1 < onp.log(1e-5) else float(onp.exp(onp.log(0.01) + l0 - l1))
    h0 = min(h0, span)
    f1 = onp.asarray(getval(u(x0 + direction * h0 * f0, t0 + direction * h0)))
    n_fev += 1
    with onp.errstate(over="ignore", invalid="ignore", divide="ignore"):
        d2 = norm(f1 - f0) / h0
    if onp.isfinite(d1) and onp.isfinite(d2):
        if d1 <= 1e-15 and d2 <= 1e-15:
            h1 = max(1e-6, h0 * 1e-3)
        else:
            h1 = (0.01 / max(d1, d2)) ** (1.0 / (order + 1))
    else:
        log_scale = _log_scale(x0, rtol, atol)
        l1, l2 = _log_norm(f0, log_scale), _log_norm(f1 - f0, log_scale) - onp.log(h0)
        h1 = float(onp.exp((onp.log(0.01) - max(l1, l2)) / (order + 1)))
    return min(100 * h0, h1, span), n_fev


_STABILITY_EDGE = 3.3
"""Where Dormand-Prince's stability region meets the negative real axis: ``|h lambda|`` about 3.3."""

_STIFF_WINDOW = 20  # accepted steps that the stiffness diagnosis looks back over


def _stiffness_estimate(ks, h, tableau):
    """``|h| rho``, the step times an estimate of the Jacobian's largest eigenvalue in modulus (worst point).

    The last two stages of Dormand-Prince are evaluated at the same time ``t + h``, so
    ``rho = |k_7 - k_6| / |x_7 - x_6|`` (with ``x_7 - x_6 = h sum_j (a_7j - a_6j) k_j``)
    is a difference quotient of the field along one direction (Hairer and Wanner,
    Solving ODEs II, IV.2). A step limited by stability rather than accuracy has
    ``|h| rho`` near ``_STABILITY_EDGE``; an accurate step of a non-stiff problem,
    far below it.
    """
    k = [onp.asarray(getval(k_i)) for k_i in ks]
    dx = h * _combine(tuple(a7 - a6 for a7, a6 in zip(tableau.a[-1], tableau.a[-2])), k)
    num, den = _row_norms(k[-1] - k[-2]), _row_norms(dx)
    with onp.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rho = onp.where(den > 0, num / onp.where(den > 0, den, 1.0), 0.0)
    rho = rho[onp.isfinite(rho)]  # a quotient of overflowing norms says nothing about stiffness
    return abs(h) * float(onp.max(rho, initial=0.0))


def _row_norms(a):
    """Euclidean norm of each row, scaled by the row's largest entry so that squares cannot overflow."""
    scale = onp.max(onp.abs(a), axis=1)
    safe = onp.where(scale > 0, scale, 1.0)
    with onp.errstate(over="ignore"):
        return scale * onp.sqrt(onp.sum((a / safe[:, None]) ** 2, axis=1))


def _out_of_steps(max_steps, t, t1, h_abs, recent):
    """The error for ``max_steps`` reached: stiff (steps held by stability) or just too many steps."""
    where = f"max_steps = {max_steps} steps reached at t = {t:.17g} before t1 = {t1}"
    if len(recent) >= _STIFF_WINDOW // 2:
        h_rho = float(onp.median([r[0] for r in recent]))
        E = float(onp.median([r[1] for r in recent]))
        if h_rho >= 0.5 * _STABILITY_EDGE and E >= 0.1:
            return IntegrationError(
                f"{where}: the problem looks stiff. The step size collapsed to |h| = {h_abs:.3g} (about "
                f"{abs(t1 - t) / h_abs:.3g} more steps to t1) while the error estimate stayed at the tolerance "
                f"(median E = {E:.2f} over the last {len(recent)} accepted steps): the steps sit at the edge of "
                f"Dormand-Prince's stability region (median |h| rho = {h_rho:.2f}, the edge is about "
                f"{_STABILITY_EDGE}; rho estimates the Jacobian's largest eigenvalue in modulus), so "
                f"stability, not accuracy, limits them and a looser tolerance will not help. Use an implicit "
                f"solver, for example scipy.integrate.solve_ivp with method='Radau' or 'BDF'"
            )
    return IntegrationError(f"{where}; raise max_steps or loosen rtol/atol")


def _check_attainable(x0, rtol, atol):
    """Refuse tolerances below float64's resolution of the initial state: no step could meet them."""
    size = onp.abs(onp.asarray(getval(x0)))
    too_fine = atol + rtol * size < onp.finfo(onp.float64).eps * size
    if onp.any(too_fine):
        worst = float(size[too_fine].max())
        raise ValueError(
            f"atol = {atol:.3g} and rtol = {rtol:.3g} ask for an error below float64's resolution of x0 "
            f"(atol + rtol |x| < eps |x| for |x| = {worst:.3g}): no step can meet them; raise atol or rtol"
        )


def integrate_adaptive(u, x0, t0=0.0, t1=1.0, rtol=1e-6, atol=1e-9, max_steps=10_000,
                       first_step=None, safety=0.9, min_factor=0.2, max_factor=10.0,
                       return_states=False):
    """Dormand-Prince 5(4) with adaptive steps  [lecture: CNF Pros (adaptive time-step solvers)]

    Each step computes the fifth-order solution ``x_new`` and the error estimate
    ``err = h sum_i (b_i - b_err_i) k_i`` (the difference to the embedded fourth-order
    solution). With

        E = max over points of RMS_j( err_j / (atol + rtol max(|x_j|, |x_new_j|)) ),

    the step is accepted when ``E <= 1``, and the next step is
    ``h * clip(safety * E^(-1/5), min_factor, max_factor)`` (at most ``h`` right after a
    rejection). The last stage is FSAL, so a step costs six evaluations of ``u``
    (accepted or rejected), plus one at the start, plus one for the first-step heuristic
    when ``first_step`` is None:  ``n_fev = 1 + 6 (accepted + rejected) [+ 1]``.
    With ``t1 < t0`` it integrates the reverse-time ODE.

    Args:
        u: velocity field ``u(x, t) -> (n, d)``; called with ``t`` a float.
        x0: initial values, shape ``(n, d)``.
        t0, t1: start and end times.
        rtol, atol: relative (``>= 0``) and absolute (``> 0``) tolerances; ``atol > 0``
            keeps the error's scale positive where a component of the state is 0.
        max_steps: the most steps (accepted plus rejected) before giving up.
        first_step: the size of the first step, or None for ``initial_step``'s heuristic.
        safety: factor ``< 1`` on the optimal step.
        min_factor, max_factor: bounds on the ratio of successive steps
            (``0 < min_factor < 1 < max_factor``).
        return_states: also keep the solution at every accepted time.

    Returns:
        an ``AdaptiveResult`` (solution, accepted times, optional states, counts).

    Raises:
        ValueError: bad tolerances or options; the step size underflowed (the message
            gives the time: the solution may blow up there); ``max_steps`` reached (the
            message says when the problem looks stiff: the step size collapsed to the edge
            of the stability region while the error estimate stayed at the tolerance, so
            that only an implicit solver helps; otherwise raise ``max_steps`` or loosen
            the tolerances); the state stopped being finite.
    """
    check_callable(u, "u")
    x = as_points(x0, "x0")
    n, d = x.shape
    t0 = float(check_finite_number(t0, "t0"))
    t1 = float(check_finite_number(t1, "t1"))
    rtol = float(check_finite_number(rtol, "rtol", nonnegative=True))
    atol = float(check_finite_number(atol, "atol", positive=True))
    _check_attainable(x, rtol, atol)
    max_steps = check_count(max_steps, "max_steps")
    safety = float(check_finite_number(safety, "safety", positive=True))
    if safety >= 1.0:
        raise ValueError(f"safety must be in (0, 1), got {safety}")
    min_factor = float(check_finite_number(min_factor, "min_factor", positive=True))
    max_factor = float(check_finite_number(max_factor, "max_factor", positive=True))
    if not min_factor < 1.0 < max_factor:
        raise ValueError(f"need 0 < min_factor < 1 < max_factor, got min_factor = {min_factor}, max_factor = {max_factor}")
    if first_step is not None:
        first_step = float(check_finite_number(first_step, "first_step", positive=True))
    return_states = check_bool(return_states, "return_states")

    tableau = DOPRI5
    field = _checked_field(u, n, d, f" (solving from t0 = {t0:.6g} to t1 = {t1:.6g})")
    direction = 1.0 if t1 >= t0 else -1.0
    span = abs(t1 - t0)
    times, states = [t0], [x]
    if span == 0.0:
        return AdaptiveResult(x, onp.array(times), onp.stack(states) if return_states else None, 0, 0, 0)

    k1 = field(x, t0)
    n_fev = 1
    if first_step is None:
        h_abs, extra = _initial_step(field, x, t0, t1, rtol, atol, tableau.err_order, f0=k1)
        n_fev += extra
    else:
        h_abs = first_step
    exponent = -1.0 / (tableau.err_order + 1)
    b_diff = tuple(b - be for b, be in zip(tableau.b, tableau.b_err))
    t = t0
    n_accepted = n_rejected = 0
    rejected_last = False
    recent = []  # (|h| rho, E) of the last accepted steps, for the stiffness diagnosis
    while direction * (t1 - t) > 0.0:
        if n_accepted + n_rejected >= max_steps:
            raise _out_of_steps(max_steps, t, t1, h_abs, recent)
        min_step = 10.0 * abs(onp.nextafter(t, t + direction) - t)
        if h_abs < min_step:
            raise IntegrationError(
                f"step size underflow at t = {t:.17g}: the controller asks for |h| = {h_abs:.3g}, "
                f"below 10 ulp of t ({min_step:.3g}); the solution may blow up near this time"
            )
        h_abs = min(h_abs, direction * (t1 - t))
        h = direction * h_abs
        t_new = t1 if h_abs == direction * (t1 - t) else t + h
        with onp.errstate(over="ignore", invalid="ignore"):  # reported below, with the time
            x_new, ks = _rk_step(field, x, t, h, tableau, k1)
        n_fev += tableau.stages - 1
        x_val, x_new_val = onp.asarray(getval(x)), onp.asarray(getval(x_new))
        if not onp.all(onp.isfinite(x_new_val)):
            raise IntegrationError(
                f"the state stopped being finite in the step from t = {t:.17g} with h = {h:.3g}"
            )
        err = h * onp.asarray(getval(_combine(b_diff, ks)))
        E = _error_norm(err, x_val, x_new_val, rtol, atol)
        if E <= 1.0:
            factor = max_factor if E == 0.0 else min(max_factor, max(min_factor, safety * E**exponent))
            if rejected_last:
                factor = min(factor, 1.0)
            recent = recent[1 - _STIFF_WINDOW:] + [(_stiffness_estimate(ks, h, tableau), E)]
            t, x, k1 = t_new, x_new, ks[-1]
            n_accepted += 1
            rejected_last = False
            times.append(t)
            if return_states:
                states.append(x)
        else:
            factor = min(1.0, max(min_factor, safety * E**exponent))
            n_rejected += 1
            rejected_last = True
        h_abs = h_abs * factor
    return AdaptiveResult(
        x=x,
        times=onp.array(times),
        states=onp.stack([onp.asarray(getval(s)) for s in states]) if return_states else None,
        n_fev=n_fev,
        n_accepted=n_accepted,
        n_rejected=n_rejected,
    )


def flow(u, x, t, n_steps=100, method="rk4"):
    """The flow  f^u(x, t) = x(t)  where  dx/ds = u(x, s), x(0) = x  [lecture: eq. (4), the flow]

    With one time per point (``t`` of shape ``(n,)``) every point is integrated over its
    own interval by rescaling time: ``y(r) = x(r t_i)`` for ``r`` in ``[0, 1]`` solves
    ``dy/dr = t_i u(y, r t_i)``, so one batched solve with ``n_steps`` steps serves all.

    Args:
        u: velocity field ``u(x, t) -> (n, d)``.
        x: starting points ``x(0)``, shape ``(n, d)``.
        t: a float, or an array of shape ``(n,)``; negative times run the flow backwards.
        n_steps: steps over ``[0, t]`` (over ``[0, t_i]`` for each point).
        method: a method of ``integrate``.

    Returns:
        shape ``(n, d)``.
    """
    check_callable(u, "u")
    x = as_points(x)
    n, d = np.shape(x)
    t = as_time(t, n, like="x")
    if np.ndim(t) == 0:
        return integrate(u, x, 0.0, t, n_steps, method)
    t_col = onp.asarray(t)[:, None]

    def rescaled(y, r):
        return t_col * check_field_output(u(y, r * onp.asarray(t)), n, d)

    return integrate(rescaled, x, 0.0, 1.0, n_steps, method)


def flow_inverse(u, y, t, n_steps=100, method="rk4"):
    """The inverse flow  x = (f^u(., t))^{-1}(y)  by the reverse-time ODE from ``t`` to 0  [lecture: eq. (4)]

    Args:
        u: velocity field.
        y: points at time ``t``, shape ``(n, d)``.
        t: a float.
        n_steps, method: as in ``integrate``.

    Returns:
        shape ``(n, d)``: the starting points ``x(0)``.
    """
    t = float(check_finite_number(t, "t"))
    y = as_points(y, "y")
    return integrate(u, y, t, 0.0, n_steps, method)


def push_samples(u, x0, times, n_steps=100, method="rk4"):
    """Samples of the probability path  p_t = f^u(., t) # p0  [lecture: Continuous Normalizing Flows (the probability path)]

    If ``x0`` holds samples of ``p0``, row ``i`` of the result's ``j``-th slice is a
    sample of ``p_{times[j]}``. The solve runs once through the sorted times; the
    segment between consecutive times gets ``ceil(n_steps |dt|)`` steps (at least one),
    so ``n_steps`` is the number of steps per unit of time.

    Args:
        u: velocity field.
        x0: samples of ``p0``, shape ``(n, d)``.
        times: increasing times ``>= 0``, shape ``(m,)`` (or a float).
        n_steps: steps per unit of time.
        method: a method of ``integrate``.

    Returns:
        shape ``(m, n, d)`` (``(n, d)`` for a float ``times``).
    """
    check_callable(u, "u")
    x = as_points(x0, "x0")
    ts = as_real_array(times, "times", ndim=(0, 1), what="a float or a 1-D array of times")
    scalar = ts.ndim == 0
    ts = onp.atleast_1d(ts)
    if ts.size < 1 or onp.any(ts < 0) or onp.any(onp.diff(ts) < 0):
        raise ValueError(f"times must be >= 0 and non-decreasing, got {ts!r}")
    n_steps = check_count(n_steps, "n_steps")
    get_tableau(method)
    total = n_steps * float(ts[-1])
    if total > _MAX_STEPS:
        raise ValueError(f"times up to {ts[-1]:.3g} at n_steps = {n_steps} per unit of time would take about {total:.3g} "
                         f"steps (more than {_MAX_STEPS:.0e})")
    out, t_prev = [], 0.0
    for t_next in ts:
        if t_next > t_prev:
            k = max(1, math.ceil(n_steps * (t_next - t_prev) - 1e-9))
            x = integrate(u, x, t_prev, float(t_next), k, method)
        out.append(x)
        t_prev = float(t_next)
    return out[0] if scalar else np.stack(out)

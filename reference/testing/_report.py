"""The report every checker returns, and the numerical helpers they share.

A checker measures a handful of figures (an error, an observed order, a number of
standard errors), compares each with a bound derived from the numerics of the check,
and, when something fails, tries to *name* the mistake by comparing the implementation
with known wrong variants (the sign flipped, time reversed, a term missing). A name is
given only when the implementation matches that variant within the check's own
tolerance; otherwise the report says what failed and by how much, and names nothing.
"""

import math
import numbers
from dataclasses import dataclass, field

import numpy as onp

from ._precision import FLOAT64, Precision

__all__ = ["CheckReport", "Measurement", "assert_twin", "K_SAFETY", "K_SE"]

K_SAFETY = 10.0
"""Safety factor on an a-posteriori error estimate (finite differences, Richardson)."""

K_SE = 5.0
"""Statistical tolerances are ``K_SE`` standard errors (a false alarm rate below 1e-6)."""

_OPS = ("<=", ">=")


def _check_str(value, name, allow_empty=True):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise ValueError(f"{name} must be a non-empty str")
    return value


def _check_real(value, name, allow_none=False, finite=False):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, onp.bool_)) or not isinstance(value, (numbers.Real, onp.floating, onp.integer)):
        raise TypeError(f"{name} must be a real number{' or None' if allow_none else ''}, got {type(value).__name__}")
    value = float(value)
    if finite and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if math.isnan(value) and finite:
        raise ValueError(f"{name} must not be NaN")
    return value


@dataclass(frozen=True)
class Measurement:
    """One measured figure and the bound it must meet.

    A non-finite ``value`` (a figure that could not be computed, such as an order of
    convergence where every error is at round-off) never meets a bound; a figure without
    a bound is only reported.

    Attributes:
        name: a short identifier, the key in ``CheckReport.figures``.
        value: the measured figure (a real number; NaN or inf when it could not be measured).
        bound: the bound (a finite real), or None for a figure that is only reported.
        op: ``"<="`` or ``">="``.
        what: what was measured, in words (and how the bound was derived).
    """

    name: str
    value: float
    bound: float | None = None
    op: str = "<="
    what: str = ""

    def __post_init__(self):
        _check_str(self.name, "name", allow_empty=False)
        object.__setattr__(self, "value", _check_real(self.value, "value"))
        object.__setattr__(self, "bound", _check_real(self.bound, "bound", allow_none=True, finite=True))
        if self.op not in _OPS:
            raise ValueError(f"op must be one of {_OPS}, got {self.op!r}")
        _check_str(self.what, "what")

    @property
    def ok(self):
        if self.bound is None:
            return True
        if not math.isfinite(self.value):
            return False
        return self.value <= self.bound if self.op == "<=" else self.value >= self.bound


def _fmt(v):
    if isinstance(v, (bool, onp.bool_)):
        return str(bool(v))
    v = float(v)
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    return f"{v:.3e}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.4g}"


def _str_tuple(values, name):
    if isinstance(values, str) or not isinstance(values, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of str, got {type(values).__name__}")
    for v in values:
        _check_str(v, f"{name}[...]")
    return tuple(values)


@dataclass
class CheckReport:
    """The outcome of a checker: ``bool(report)`` is ``report.passed``.

    Attributes:
        name: the checker (``"check_bijection"``, ...).
        passed: whether every property held.
        figures: the measured figures, by name.
        message: what was found, in words a person can act on: on failure, what failed,
            by how much, and the mistake it looks like.
        diagnosis: the names of the mistakes recognised, joined by ``"; "``
            (``"reversed time convention"``, ``"writes into its input x0"``, ...), or None.
            A name is given only where the measurements show it is the cause.
        measurements: every measured figure with its bound.
        notes: remarks that are not failures (which noise a Hutchinson estimator seems
            to use, where its randomness lives, a figure only reported, ...).
        coverage: what was covered (dimensions, sizes, step counts, times, the precision
            and the range above its round-off floor that was used).
    """

    name: str
    passed: bool
    figures: dict
    message: str
    diagnosis: str | None = None
    measurements: tuple = ()
    notes: tuple = ()
    coverage: tuple = ()

    def __post_init__(self):
        _check_str(self.name, "name", allow_empty=False)
        if not isinstance(self.passed, (bool, onp.bool_)):
            raise TypeError(f"passed must be a bool, got {type(self.passed).__name__}")
        self.passed = bool(self.passed)
        if not isinstance(self.figures, dict):
            raise TypeError(f"figures must be a dict of name -> number, got {type(self.figures).__name__}")
        for key, value in self.figures.items():
            _check_str(key, "figures key")
            _check_real(value, f"figures[{key!r}]")
        _check_str(self.message, "message")
        if self.diagnosis is not None:
            _check_str(self.diagnosis, "diagnosis", allow_empty=False)
        if not isinstance(self.measurements, (tuple, list)) or not all(
                isinstance(m, Measurement) for m in self.measurements):
            raise TypeError("measurements must be a tuple of Measurement")
        self.measurements = tuple(self.measurements)
        self.notes = _str_tuple(self.notes, "notes")
        self.coverage = _str_tuple(self.coverage, "coverage")

    def __bool__(self):
        return bool(self.passed)

    def __str__(self):
        head = f"{self.name}: {'PASSED' if self.passed else 'FAILED'}"
        lines = [head, self.message]
        if self.measurements:
            width = max(len(m.name) for m in self.measurements)
            lines.append("")
            for m in self.measurements:
                bound = "" if m.bound is None else f" {m.op} {_fmt(m.bound)}"
                flag = "  " if m.ok else "!!"
                lines.append(f"  {flag} {m.name.ljust(width)}  {_fmt(m.value)}{bound}   {m.what}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        for item in self.coverage:
            lines.append(f"  covered: {item}")
        return "\n".join(lines)

    def __repr__(self):
        return f"CheckReport(name={self.name!r}, passed={self.passed}, diagnosis={self.diagnosis!r})"


@dataclass
class Recorder:
    """Collects measurements, failures, diagnoses, notes and coverage while a checker runs."""

    name: str
    measurements: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    diagnoses: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    coverage: list = field(default_factory=list)
    precision: Precision = FLOAT64
    by_dimension: dict = field(default_factory=dict)  # "in d = 3" -> problems seen there (empty: it worked)

    def measure(self, name, value, bound=None, op="<=", what="", fail=None):
        """Record a figure; if it misses its bound, record ``fail`` (or a default sentence)."""
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = math.nan
        if bound is not None and not math.isfinite(float(bound)):  # derived from non-finite results: fails
            what = f"{what} (its bound could not be computed: non-finite results)"
            bound, value = 0.0, math.nan
        m = Measurement(name, value, None if bound is None else float(bound), op, what)
        self.measurements.append(m)
        if not m.ok:
            self.failures.append(fail or f"{what or name}: measured {_fmt(value)}, must be {op} {_fmt(bound)}")
        return m.ok

    def fail(self, sentence):
        """Record a failure that is not a figure (a wrong shape, a non-permutation, ...)."""
        if sentence not in self.failures:
            self.failures.append(sentence)

    def diagnose(self, label, sentence):
        """Record a recognised mistake: a short label and what to do about it."""
        if label not in [lab for lab, _ in self.diagnoses]:
            self.diagnoses.append((label, sentence))

    def note(self, sentence):
        if sentence not in self.notes:
            self.notes.append(sentence)

    def cover(self, sentence):
        if sentence not in self.coverage:
            self.coverage.append(sentence)

    @property
    def failed(self):
        return bool(self.failures)

    def report(self, summary_ok=""):
        passed = not self.failures
        figures = {}
        for m in self.measurements:
            figures[m.name] = m.value
        if passed:
            message = summary_ok or f"all {len(self.measurements)} measured properties hold."
        else:
            parts = []
            if self.diagnoses:
                parts.append("Looks like: " + "; ".join(f"{lab} ({s})" for lab, s in self.diagnoses) + ".")
            parts.append("Failed: " + " | ".join(self.failures))
            message = "\n".join(parts)
        diagnosis = "; ".join(lab for lab, _ in self.diagnoses) or None
        coverage = list(self.coverage)
        coverage.append(f"precision {self.precision}")
        return CheckReport(self.name, passed, figures, message, diagnosis if not passed else None,
                           tuple(self.measurements), tuple(self.notes), tuple(coverage))


def assert_twin(check):
    """Make ``assert_<name>`` from ``check_<name>``: raise ``AssertionError(str(report))`` on failure."""
    def assert_check(*args, **kwargs):
        report = check(*args, **kwargs)
        if not report.passed:
            raise AssertionError(str(report))
        return report
    assert_check.__name__ = check.__name__.replace("check_", "assert_", 1)
    assert_check.__qualname__ = assert_check.__name__
    assert_check.__wrapped__ = check
    assert_check.__doc__ = (
        f"Run ``{check.__name__}`` and raise ``AssertionError`` with its report if it fails.\n\n"
        f"Takes the same arguments as ``{check.__name__}`` (and validates them the same way); "
        "returns the report when it passes."
    )
    return assert_check


# ----------------------------------------------------------------------------- numerics

def roundoff_tol(eps):
    """The round-off allowance every checker grants: ``sqrt(eps)`` relative.

    An exact formula evaluated in floating point agrees with another evaluation of it to
    a few ulps times the condition number of the computation; an iterative inverse to
    its own tolerance. ``sqrt(eps)`` (1.5e-8 in float64, 3.5e-4 in float32, 3.1e-2 in
    float16, 8.8e-2 in bfloat16) accepts condition numbers up to ``1 / sqrt(eps)`` and is
    still below the size of the mistakes the checkers look for (a sign, a missing term,
    a reversed time are O(1)).
    """
    return math.sqrt(eps)


def fd_step(eps):
    """Central-difference step ``eps^(1/3)``: it balances truncation ``O(h^2)`` against round-off ``O(eps / h)``."""
    return eps ** (1.0 / 3.0)


def as_numpy(value, name):
    """Convert an implementation's output to a NumPy array (keeping float32 if it was float32)."""
    if hasattr(value, "detach") and hasattr(value, "requires_grad"):
        raise TypeError(f"{name} must be a NumPy array, got a PyTorch tensor: wrap the PyTorch callable with "
                        "reference.testing.from_torch")
    if type(value).__module__.startswith(("jax", "jaxlib")):
        raise TypeError(f"{name} must be a NumPy array, got a JAX array: wrap the JAX callable with "
                        "reference.testing.from_jax")
    try:
        arr = onp.asarray(value)
    except Exception as err:  # noqa: BLE001 - a list of tensors, a ragged list, ...
        raise TypeError(
            f"{name} must be a NumPy array (wrap a PyTorch callable with reference.testing.from_torch, a JAX one "
            f"with from_jax), got {type(value).__name__}"
        ) from err
    if not (onp.issubdtype(arr.dtype, onp.floating) or onp.issubdtype(arr.dtype, onp.integer)):
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    return arr

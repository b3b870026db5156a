"""The report every checker returns, and the numerical helpers they share.

A checker measures a handful of figures (an error, an observed order, a number of
standard errors), compares each with a bound derived from the numerics of the check,
and, when something fails, tries to *name* the mistake by comparing the implementation
with known wrong variants (the sign flipped, time reversed, a term missing).
"""

import math
from dataclasses import dataclass, field

import numpy as onp

__all__ = ["CheckReport", "Measurement", "assert_twin"]

K_SAFETY = 10.0
"""Safety factor on an a-posteriori error estimate (finite differences, Richardson)."""

K_SE = 5.0
"""Statistical tolerances are ``K_SE`` standard errors (a false alarm rate below 1e-6)."""


@dataclass(frozen=True)
class Measurement:
    """One measured figure and the bound it must meet.

    Attributes:
        name: a short identifier, the key in ``CheckReport.figures``.
        value: the measured figure.
        bound: the bound, or None for a figure that is only reported.
        op: ``"<="`` or ``">="``.
        what: what was measured, in words (and how the bound was derived).
    """

    name: str
    value: float
    bound: float | None = None
    op: str = "<="
    what: str = ""

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


@dataclass
class CheckReport:
    """The outcome of a checker: ``bool(report)`` is ``report.passed``.

    Attributes:
        name: the checker (``"check_bijection"``, ...).
        passed: whether every property held.
        figures: the measured figures, by name.
        message: what was found, in words a person can act on: on failure, what failed,
            by how much, and the mistake it looks like.
        diagnosis: the name of the mistake recognised (``"reversed time convention"``,
            ``"log-det sign flipped"``, ...), or None.
        measurements: every measured figure with its bound.
        notes: remarks that are not failures (which noise a Hutchinson estimator
            seems to use, a figure only reported, ...).
    """

    name: str
    passed: bool
    figures: dict
    message: str
    diagnosis: str | None = None
    measurements: tuple = ()
    notes: tuple = ()

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
        return "\n".join(lines)

    def __repr__(self):
        return f"CheckReport(name={self.name!r}, passed={self.passed}, diagnosis={self.diagnosis!r})"


@dataclass
class Recorder:
    """Collects measurements, failures and diagnoses while a checker runs."""

    name: str
    measurements: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    diagnoses: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def measure(self, name, value, bound=None, op="<=", what="", fail=None):
        """Record a figure; if it misses its bound, record ``fail`` (or a default sentence)."""
        m = Measurement(name, float(value), None if bound is None else float(bound), op, what)
        self.measurements.append(m)
        if not m.ok:
            self.failures.append(fail or f"{what or name}: measured {_fmt(value)}, must be {op} {_fmt(bound)}")
        return m.ok

    def fail(self, sentence):
        """Record a failure that is not a figure (a wrong shape, a non-permutation, ...)."""
        self.failures.append(sentence)

    def diagnose(self, label, sentence):
        """Record a recognised mistake: a short label and what to do about it."""
        if label not in [lab for lab, _ in self.diagnoses]:
            self.diagnoses.append((label, sentence))

    def note(self, sentence):
        self.notes.append(sentence)

    def report(self, summary_ok=""):
        passed = not self.failures
        figures = {m.name: m.value for m in self.measurements}
        if passed:
            message = summary_ok or f"all {len(self.measurements)} measured properties hold."
        else:
            parts = []
            if self.diagnoses:
                parts.append("Looks like: " + "; ".join(f"{lab} ({s})" for lab, s in self.diagnoses) + ".")
            parts.append("Failed: " + " | ".join(self.failures))
            message = "\n".join(parts)
        diagnosis = "; ".join(lab for lab, _ in self.diagnoses) or None
        return CheckReport(self.name, passed, figures, message, diagnosis if not passed else None,
                           tuple(self.measurements), tuple(self.notes))


def assert_twin(check):
    """Make ``assert_<name>`` from ``check_<name>``: raise ``AssertionError(str(report))`` on failure."""
    def assert_check(*args, **kwargs):
        report = check(*args, **kwargs)
        if not report.passed:
            raise AssertionError(str(report))
        return report
    assert_check.__name__ = check.__name__.replace("check_", "assert_", 1)
    assert_check.__qualname__ = assert_check.__name__
    assert_check.__doc__ = (
        f"Run ``{check.__name__}`` and raise ``AssertionError`` with its report if it fails.\n\n"
        f"Takes the same arguments as ``{check.__name__}``; returns the report when it passes."
    )
    return assert_check


# ----------------------------------------------------------------------------- numerics

def machine_eps(*arrays):
    """Unit round-off of the least precise floating array among ``arrays`` (float64 if none)."""
    eps = onp.finfo(onp.float64).eps
    for a in arrays:
        dt = onp.asarray(a).dtype
        if onp.issubdtype(dt, onp.floating):
            eps = max(eps, float(onp.finfo(dt).eps))
    return eps


def roundoff_tol(eps):
    """The round-off allowance every checker grants: ``sqrt(eps)`` relative.

    An exact formula evaluated in floating point agrees with another evaluation of it to
    a few ulps times the condition number of the computation; an iterative inverse to
    its own tolerance. ``sqrt(eps)`` (1.5e-8 in float64, 3.5e-4 in float32) accepts
    condition numbers up to ``1 / sqrt(eps)`` and is still far below the size of any
    mistake the checkers look for (a sign, a missing term, a reversed time are O(1)).
    """
    return math.sqrt(eps)


def fd_step(eps):
    """Central-difference step ``eps^(1/3)``: it balances truncation ``O(h^2)`` against round-off ``O(eps / h)``."""
    return eps ** (1.0 / 3.0)


def as_numpy(value, name):
    """Convert an implementation's output to a NumPy array (keeping float32 if it was float32)."""
    try:
        arr = onp.asarray(value)
    except Exception as err:  # a torch tensor that needs .detach(), a list of tensors, ...
        raise TypeError(
            f"{name} must be a NumPy array (wrap a PyTorch callable with reference.testing.from_torch), "
            f"got {type(value).__name__}"
        ) from err
    if not (onp.issubdtype(arr.dtype, onp.floating) or onp.issubdtype(arr.dtype, onp.integer)):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    return arr




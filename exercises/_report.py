"""The graders' own reports, for what no checker of ``reference.testing`` covers.

They are ``reference.testing.CheckReport`` objects like the checkers' (the same
``passed``, ``figures``, ``message``, ``diagnosis``, ``measurements``), so a grade prints
and is read the same way whichever made it. ``call`` runs the student's function the way
the checkers do: on private copies of the arrays, with floating-point warnings silenced,
an exception recorded as a failure (it stops the check) and a write into an input named.
"""

import math
import warnings

import numpy as np

from reference.testing import CheckReport, Measurement

__all__ = ["Recorder", "Stop", "call", "as_float_array", "fmt"]


class Stop(Exception):
    """Ends a grader's check with the failures recorded so far."""


def fmt(v):
    """A figure as the reports print it."""
    v = float(v)
    if not math.isfinite(v) or v == 0:
        return str(v) if v != 0 else "0"
    return f"{v:.3e}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.4g}"


class Recorder:
    """Collects figures, failures and named mistakes, then makes a ``CheckReport``."""

    def __init__(self, name):
        self.name = name
        self.measurements, self.failures, self.diagnoses, self.notes, self.coverage = [], [], [], [], []

    def measure(self, name, value, bound=None, op="<=", what="", fail=None):
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = math.nan
        m = Measurement(name, value, None if bound is None else float(bound), op, what)
        self.measurements.append(m)
        if not m.ok:
            self.fail(fail or f"{what or name}: measured {fmt(value)}, must be {op} {fmt(bound)}")
        return m.ok

    def fail(self, sentence):
        if sentence not in self.failures:
            self.failures.append(sentence)

    def diagnose(self, label, advice):
        if label not in [lab for lab, _ in self.diagnoses]:
            self.diagnoses.append((label, advice))

    def note(self, sentence):
        if sentence not in self.notes:
            self.notes.append(sentence)

    def cover(self, sentence):
        if sentence not in self.coverage:
            self.coverage.append(sentence)

    def report(self, summary_ok):
        passed = not self.failures
        if passed:
            message = summary_ok
        else:
            parts = []
            if self.diagnoses:
                parts.append("Looks like: " + "; ".join(f"{lab} ({adv})" for lab, adv in self.diagnoses) + ".")
            parts.append("Failed: " + " | ".join(self.failures))
            message = "\n".join(parts)
        diagnosis = None if passed else ("; ".join(lab for lab, _ in self.diagnoses) or None)
        return CheckReport(self.name, passed, {m.name: m.value for m in self.measurements}, message, diagnosis,
                           tuple(self.measurements), tuple(self.notes), tuple(self.coverage))


def _copy(value):
    return np.array(value, copy=True) if isinstance(value, np.ndarray) else value


def call(rec, fn, name, arg_names, *args, where=""):
    """``fn(*args)`` on private copies of the array arguments; a failure is recorded and ``Stop`` raised.

    Returns:
        what ``fn`` returned.
    """
    copies = [_copy(a) for a in args]
    at = f" {where}" if where else ""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(*copies)
    except Exception as err:  # noqa: BLE001 - the student's own error is a finding
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        rec.fail(f"{name} raised {type(err).__name__}{at}: {text[:300]}")
        raise Stop from err
    for arg, before, after in zip(arg_names, args, copies):
        if isinstance(before, np.ndarray) and not np.array_equal(before, after, equal_nan=True):
            rec.fail(f"{name} changed its input {arg} (it must not write into the arrays it is given)")
            rec.diagnose(f"writes into its input {arg}",
                         f"{name} modifies {arg} in place ({arg} -= ..., {arg}[...] = ...): work on a copy, the "
                         "caller's array is changed behind its back")
    return out


def as_float_array(rec, value, what, where=""):
    """``value`` as a float64 array, or a failure recorded (``what`` is not an array of numbers) and ``Stop``."""
    at = f" {where}" if where else ""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        rec.fail(f"{what} is not an array of numbers{at} (got {type(value).__name__})")
        raise Stop from None
    return arr

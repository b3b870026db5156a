"""The graders' own reports, for what no checker of ``reference.testing`` covers.

They are ``reference.testing.CheckReport`` objects like the checkers', made by the
checkers' own ``Recorder`` (the same ``passed``, ``figures``, ``message``, ``diagnosis``,
``measurements``), so a grade prints and is read the same way whichever made it.
``call`` runs the student's function the way the checkers do: on private copies of the
arrays, with floating-point warnings silenced, an exception recorded as a failure (it
stops the check) and a write into an input named.
"""

import warnings

import numpy as np

from reference.testing._report import Recorder
from reference.testing._report import _fmt as fmt

__all__ = ["Recorder", "Stop", "call", "as_float_array", "fmt"]


class Stop(Exception):
    """Ends a grader's check with the failures recorded so far."""


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

"""Calling the implementation under test: private copies, side effects, exceptions, precision.

Every checker calls the implementation through ``Impl``. Each call gets private copies
of the arrays it is handed (so nothing the implementation does can change what the
checker compares with), and afterwards:

- an input array that changed names the mistake ``writes into its input <name>``
  (an in-place update of ``x0``, ``x += h * u``, a coupling layer that overwrites half
  of ``x``);
- an output that shares memory with an input (NumPy ``shares_memory``; for a PyTorch
  callable, storage overlap recorded by ``from_torch``) names
  ``returns a view of its input <name>``: the caller's array and the result are one
  array, so a later in-place update of either changes the other;
- an exception is recorded as a failure that says where it happened (``d = 1``, say),
  instead of escaping from the checker;
- the least precise floating format returned so far becomes the check's precision.
"""

import re

import numpy as onp

from ._precision import precision_of

__all__ = ["Impl", "Stop", "Raised", "BadOutput", "run_checker", "private_copy", "as_array", "continuing"]

_ALIASES = "__reference_aliases__"


class Stop(Exception):
    """Raised inside a checker to stop with the failures recorded so far."""


class Raised:
    """What ``Impl`` returns for an exception the checker said it expects."""

    def __init__(self, error):
        self.error = error


class BadOutput(TypeError):
    """An implementation returned something that is not an array of numbers."""


def private_copy(value):
    """A deep copy of the arrays in ``value`` (tuples, lists and dicts are copied item by item)."""
    if isinstance(value, onp.ndarray):
        return onp.array(value, copy=True)
    if isinstance(value, tuple):
        return tuple(private_copy(v) for v in value)
    if isinstance(value, list):
        return [private_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: private_copy(v) for k, v in value.items()}
    return value


def _arrays(value, path=()):
    """``(path, array)`` for each NumPy array in a nested output."""
    if isinstance(value, onp.ndarray):
        yield path, value
    elif isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            yield from _arrays(v, path + (i,))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _arrays(v, path + (k,))


def _changed(before, after):
    if isinstance(before, onp.ndarray):
        if not isinstance(after, onp.ndarray) or after.shape != before.shape:
            return True
        with onp.errstate(invalid="ignore"):
            return not onp.array_equal(before, after, equal_nan=True)
    if isinstance(before, (tuple, list)):
        return any(_changed(b, a) for b, a in zip(before, after))
    if isinstance(before, dict):
        return any(_changed(before[k], after.get(k)) for k in before)
    return False


def _share(out, arg):
    for _, o in _arrays(out):
        for _, a in _arrays(arg):
            if o.size and a.size and onp.may_share_memory(o, a) and onp.shares_memory(o, a, max_work=10**6):
                return True
    return False


class Impl:
    """The implementation under test, as the checkers call it.

    Args:
        fn: the callable.
        name: its name in messages (``"forward"``, ``"solve"``, ...).
        rec: the checker's ``Recorder``.
        arg_names: the names of its positional arguments, for messages.
        declared: a precision the user declared (``precision=``), or None.
    """

    def __init__(self, fn, name, rec, arg_names, declared=None):
        self.fn, self.name, self.rec, self.arg_names, self.declared = fn, name, rec, tuple(arg_names), declared
        self.calls = 0
        known = precision_of(callables=[fn], declared=declared)  # what an adapter already knows, or the user said
        if known.eps > rec.precision.eps:
            rec.precision = known

    def __call__(self, *args, where="", stop=True, allow=()):
        copies = [private_copy(a) for a in args]
        snapshot = [private_copy(a) for a in copies]
        if hasattr(self.fn, _ALIASES):
            setattr(self.fn, _ALIASES, [])
        try:
            with onp.errstate(all="ignore"):
                out = self.fn(*copies)
        except Stop:
            raise
        except allow as err:  # an error the checker expects and handles (a singular end point)
            return Raised(err)
        except Exception as err:  # noqa: BLE001 - the implementation's own error is a finding, not a crash
            text = str(err).strip().splitlines()[0] if str(err).strip() else ""
            at = f" {where}" if where else ""
            self.rec.fail(f"{self.name} raised {type(err).__name__}{at}: {text[:300]}")
            if where.startswith("in d = "):
                self.rec.by_dimension.setdefault(where, []).append(
                    ("raises", f"{self.name} raises {type(err).__name__} {where} ({text[:120]})"))
            if stop:
                raise Stop from err
            return None
        self.calls += 1
        if where.startswith("in d = "):
            self.rec.by_dimension.setdefault(where, [])
        for i, (before, after) in enumerate(zip(snapshot, copies)):
            if _changed(before, after):
                arg = self.arg_names[i] if i < len(self.arg_names) else f"argument {i}"
                self.rec.fail(f"{self.name} changed its input {arg} (it must not write into the arrays it is given)")
                self.rec.diagnose(f"writes into its input {arg}",
                                  f"{self.name} modifies {arg} in place (e.g. x += h * u, x[:, k:] = ..., x.add_()); "
                                  "work on a copy: the caller's array is changed behind its back")
        aliased = set()
        for i, a in enumerate(copies):
            if _share(out, a):
                aliased.add(i)
        for _, i in getattr(self.fn, _ALIASES, []) or []:
            if isinstance(i, int) and 0 <= i < len(copies):
                aliased.add(i)
        for i in sorted(aliased):
            arg = self.arg_names[i] if i < len(self.arg_names) else f"argument {i}"
            self.rec.fail(f"{self.name} returned an array that shares memory with its input {arg}")
            self.rec.diagnose(f"returns a view of its input {arg}",
                              f"a result of {self.name} is {arg} itself or a view of it (x[:, :k], x.T, x.view(...)): "
                              f"a later in-place update of one changes the other; return a new array (x.copy(), "
                              "x.clone())")
        now = precision_of(out, callables=[self.fn], declared=self.declared)
        if now.eps > self.rec.precision.eps:
            self.rec.precision = now
        return out


def as_array(value, name, rec, shape=None, finite=True, where=""):
    """``value`` as a float64 array of ``shape``, or record the failure and raise ``Stop``."""
    from ._report import as_numpy

    at = f" {where}" if where else ""
    try:
        arr = as_numpy(value, name)
    except TypeError as err:
        rec.fail(f"{err}{at}")
        raise Stop from err
    if arr.dtype == object:
        rec.fail(f"{name} is not an array of numbers{at}")
        raise Stop
    if shape is not None and arr.shape != tuple(shape):
        rec.fail(f"{name} has shape {arr.shape}, expected {tuple(shape)}{at}")
        if where.startswith("in d = "):
            rec.by_dimension.setdefault(where, []).append(
                ("wrong shape", f"{name} has shape {arr.shape} instead of {tuple(shape)} {where}"))
        raise Stop
    arr = arr.astype(onp.float64)
    if finite and not onp.all(onp.isfinite(arr)):
        rec.fail(f"{name} holds {int(onp.sum(~onp.isfinite(arr)))} non-finite value(s) (NaN or inf){at}")
        raise Stop
    return arr


def run_checker(rec, body, *args, **kwargs):
    """Run ``body(rec, ...)`` (it returns the summary of a passed check) and make the report.

    NumPy's floating-point warnings are silenced inside (a wrong implementation may
    overflow; every figure is checked for finiteness instead), and ``Stop`` ends the
    check with what has been recorded.
    """
    summary = ""
    try:
        with onp.errstate(all="ignore"):
            summary = body(rec, *args, **kwargs) or ""
    except Stop:
        if not rec.failures:  # pragma: no cover - Stop is raised after a failure is recorded
            rec.fail("the check stopped early")
    _name_dimension_failures(rec)
    return rec.report(summary)


def _dim_of(where):
    return int(re.search(r"d = (\d+)", where).group(1))


def _name_dimension_failures(rec):
    """``raises in d = 1`` / ``wrong shape in d = 1``: only when it worked in another dimension."""
    bad = {where: problems for where, problems in rec.by_dimension.items() if problems}
    bad_dims = {_dim_of(w) for w in bad}
    good_dims = sorted({_dim_of(w) for w, problems in rec.by_dimension.items() if not problems} - bad_dims)
    if not bad or not good_dims:
        return
    for kind in ("raises", "wrong shape"):
        dims = sorted({_dim_of(w) for w, problems in bad.items() if any(k == kind for k, _ in problems)})
        if dims:
            detail = next(text for w, problems in bad.items() for k, text in problems if k == kind)
            rec.diagnose(f"{kind} in d = {', '.join(map(str, dims))}",
                         f"{detail}, where it works in d = {', '.join(map(str, good_dims))}: code written for other "
                         "shapes (a squeeze, a hard-coded 2, a reshape that assumes another d)?")


def continuing(rec):
    """A context that records a ``Stop`` in one dimension and lets the checker go on with the next."""
    class _Continue:
        def __enter__(self):
            return self

        def __exit__(self, kind, value, tb):
            return kind is not None and issubclass(kind, Stop)

    return _Continue()

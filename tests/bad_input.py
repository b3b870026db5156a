"""The bad-input battery: argument kinds, the bad values of each kind, and the verdict on a probe.

A *case* is one public callable with a good call: a value for every argument, each
tagged with its kind (points, a time, a positive integer, a callable, parameters, ...).
A *probe* replaces one argument of the good call by one bad value of its kind and
calls again. The verdict:

- a ``ValueError`` or ``TypeError`` whose message names the argument (as the signature
  spells it) passes;
- for a probe that makes a callable argument raise, that very exception propagating
  unchanged passes (the package must not swallow it or turn it into a NaN);
- a return passes only when the probe is a *documented acceptance*: listed, with the
  reason and a check of the result, in ``ACCEPT``; the result must then be finite and
  pass the check;
- anything else fails: another exception type, a warning (warnings are errors during a
  probe: an overflow or a complex number cast to real is a silent failure), a message
  that does not name the argument, a silent return.

``tests/test_bad_input.py`` holds the table of cases, one entry per module.
"""

import re
import warnings
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import autograd.numpy as anp
import numpy as np


class Boom(Exception):
    """Raised by a callable argument in the ``raises`` probe; it must propagate unchanged."""


# --------------------------------------------------------------------------------------
# Argument kinds. Each knows its good value and generates its bad values as
# (label, value, names the message may use).
# --------------------------------------------------------------------------------------

_WRONG_TYPES = (("str", "abc"), ("None", None), ("dict", {"a": 1}))


@dataclass
class Arg:
    good: object = None

    def value(self):
        """The good value (a fresh one where the argument is consumed, like a generator)."""
        return self.good

    def probes(self, name):
        raise NotImplementedError


@dataclass
class Points(Arg):
    """An ``(n, d)`` array. ``d_free``: any d is valid; ``tied``: arguments whose n or d must match."""

    d_free: bool = False
    n_tied: bool = False
    tied: tuple = ()
    extreme: bool = True
    names: tuple = ()

    def probes(self, name):
        g = np.asarray(self.good, dtype=float)
        ok = (name,) + tuple(self.names)
        mismatch = ok  # a mismatch message names both sides, so the probed argument too
        out = [
            ("1-D", g[0], ok), ("3-D", g[None], ok), ("no points", g[:0], ok), ("no coordinates", g[:, :0], ok),
            ("scalar", 1.5, ok),
            ("NaN", _with(g, np.nan), ok), ("inf", _with(g, np.inf), ok), ("-inf", _with(g, -np.inf), ok),
            ("complex", g + 1j, ok), ("complex, zero imaginary part", g.astype(complex), ok),
            ("bool", g > 0, ok), ("object", g.astype(object), ok),
            ("ragged", [[1.0, 2.0], [3.0]], ok), ("list of str", [["a", "b"]], ok),
        ] + [(label, v, ok) for label, v in _WRONG_TYPES]
        if not self.d_free:
            out.append(("wrong d", np.concatenate([g, g[:, :1]], axis=1), mismatch))
        if self.n_tied and g.shape[0] > 1:
            out.append(("wrong n", g[:-1], mismatch))
        if self.extreme:
            out += [("|x| ~ 1e154", _far(g, 1e154), ok), ("|x| ~ 1e300", _far(g, 1e300), ok)]
        return out


def _with(g, value):
    g = np.array(g, dtype=float)
    g.flat[0] = value
    return g


def _far(g, scale):
    """``g`` moved out to ``|x| ~ scale`` (entries of size one, so none is zero)."""
    return scale * (np.sign(g) + (g == 0))


@dataclass
class Array(Arg):
    """A real array of a given shape. ``shapes`` picks the shape probes that are wrong for it:
    ``"extra"`` (an added leading axis), ``"missing"`` (the first axis dropped), ``"last"``
    (one more entry along the last axis), ``"first"`` (one fewer along the first)."""

    shapes: tuple = ("extra", "missing", "last")
    extreme: bool = True
    names: tuple = ()
    optional: bool = False

    def probes(self, name):
        g = np.asarray(self.good, dtype=float)
        ok = (name,) + tuple(self.names)
        out = [
            ("NaN", _with(g, np.nan), ok), ("inf", _with(g, np.inf), ok), ("complex", g + 1j, ok),
            ("complex, zero imaginary part", g.astype(complex), ok), ("bool", g > 0, ok), ("object", g.astype(object), ok),
            ("ragged", [[1.0, 2.0], [3.0]], ok), ("list of str", [["a", "b"]], ok),
        ] + [(label, v, ok) for label, v in _WRONG_TYPES if not (self.optional and v is None)]
        if "extra" in self.shapes:
            out.append(("extra axis", g[None], ok))
        if "missing" in self.shapes and g.ndim >= 1:
            out.append(("missing axis", g[0], ok))
        if "last" in self.shapes and g.ndim >= 1:
            out.append(("wrong last size", np.concatenate([g, g[..., :1]], axis=-1), ok))
        if "first" in self.shapes and g.ndim >= 1 and g.shape[0] > 1:
            out.append(("wrong first size", g[:-1], ok))
        if self.extreme:
            out += [("|v| ~ 1e154", _far(g, 1e154), ok), ("|v| ~ 1e300", _far(g, 1e300), ok)]
        return out


@dataclass
class Time(Arg):
    """A time: a float, or one per point (``n``; None: an array of any length). ``unit``: must lie in ``[0, 1]``."""

    n: int = 4
    unit: bool = True

    def probes(self, name):
        ok = (name,)
        k = self.n or 3
        out = [
            ("NaN", np.nan, ok), ("inf", np.inf, ok), ("-inf", -np.inf, ok), ("NaN in an array", _with(np.full(k, 0.5), np.nan), ok),
            ("complex", 0.5 + 0.5j, ok), ("complex array", np.full(k, 0.5 + 0j), ok), ("bool", True, ok),
            ("2-D", np.full((k, 2), 0.5), ok),
            ("ragged", [[0.1], [0.2, 0.3]], ok), ("str", "0.5", ok), ("None", None, ok), ("list of str", ["a"] * k, ok),
        ]
        if self.n is not None:
            out.append(("wrong length", np.full(self.n + 1, 0.5), ok))
        if self.unit:
            out += [("t < 0", -0.1, ok), ("t > 1", 1.1, ok), ("t > 1 in an array", _with(np.full(k, 0.5), 1.5), ok)]
        return out


@dataclass
class Int(Arg):
    minimum: int = 1
    optional: bool = False

    def probes(self, name):
        ok = (name,)
        return [
            ("below the minimum", self.minimum - 1, ok), ("negative", min(-1, self.minimum - 2), ok),
            ("float", float(self.good) + 0.5, ok), ("integral float", float(self.good), ok), ("NaN", np.nan, ok),
            ("bool", True, ok), ("complex", complex(self.good), ok), ("array", np.array([self.good, self.good]), ok),
            ("str", str(self.good), ok), ("huge", 10**20, ok),
        ] + ([] if self.optional else [("None", None, ok)])


@dataclass
class Real(Arg):
    """A real number in ``(low, high)``; ``low_open``/``high_open`` say whether the ends are excluded."""

    low: float = None
    high: float = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False

    def probes(self, name):
        ok = (name,)
        out = [
            ("NaN", np.nan, ok), ("inf", np.inf, ok), ("-inf", -np.inf, ok), ("complex", complex(self.good, 1.0), ok),
            ("bool", True, ok), ("array", np.array([self.good, self.good]), ok), ("str", str(self.good), ok),
        ] + ([] if self.optional else [("None", None, ok)])
        if self.low is not None:
            out.append(("below the range", self.low - 1.0, ok))
            if self.low_open:
                out.append(("at the open end", self.low, ok))
        if self.high is not None:
            out.append(("above the range", self.high + 1.0, ok))
            if self.high_open:
                out.append(("at the open end", self.high, ok))
        return out


@dataclass
class Rng(Arg):
    """A ``numpy.random.Generator``; the good value is a fresh ``default_rng(0)`` at every call."""

    def value(self):
        return np.random.default_rng(0)

    def probes(self, name):
        ok = (name,)
        return [("None", None, ok), ("int seed", 0, ok), ("RandomState", np.random.RandomState(0), ok), ("str", "rng", ok)]


@dataclass
class Choice(Arg):
    optional: bool = False

    def probes(self, name):
        ok = (name,)
        out = [("unknown", "no-such-option", ok), ("int", 3, ok), ("list", [self.good], ok)]
        if not self.optional:
            out.append(("None", None, ok))
        if isinstance(self.good, str) and self.good.upper() != self.good:
            out.append(("upper case", self.good.upper(), ok))
        return out


@dataclass
class Flag(Arg):
    def probes(self, name):
        ok = (name,)
        return [("str", "no", ok), ("None", None, ok), ("float", 0.5, ok), ("array", np.array([True, False]), ok)]


@dataclass
class Mode(Arg):
    """``fused=``-style flags: ``None`` (follow ``reference.readable()``), ``True`` or ``False``."""

    def probes(self, name):
        ok = (name,)
        return [("str", "no", ok), ("float", 0.5, ok), ("int", 1, ok), ("array", np.array([True, False]), ok)]


@dataclass
class Func(Arg):
    """A callable argument; the bad ones are the good one with its output corrupted.

    ``elements``: for a callable returning a tuple, which elements to corrupt.
    ``names``: other names a message may use for it (e.g. ``"u(x, t)"`` names ``u`` already).
    """

    elements: tuple = None
    names: tuple = ()
    nan: bool = True
    shape: str = "col"
    outputs: bool = True
    optional: bool = False

    def probes(self, name):
        ok = (name,) + tuple(self.names)
        out = [("not callable", 3, ok), ("str", "f", ok), ("raises", _corrupt(self.good, "raise", None), ("<Boom>",))]
        if not self.optional:
            out.append(("None", None, ok))
        if not self.outputs:
            return out
        out.append(("returns None", lambda *args, **kwargs: None, ok))
        targets = (None,) if self.elements is None else self.elements
        for k in targets:
            suffix = "" if k is None else f" (element {k})"
            out.append((f"returns the wrong shape{suffix}", _corrupt(self.good, "shape-" + self.shape, k), ok))
            if self.nan:
                out.append((f"returns NaN{suffix}", _corrupt(self.good, "nan", k), ok))
            out.append((f"returns complex{suffix}", _corrupt(self.good, "complex", k), ok))
        return out


def _corrupt_value(v, how):
    if how.startswith("shape"):
        if anp.ndim(v) == 0:
            return anp.array([v, v])
        if how == "shape-row":
            return anp.concatenate([v, v[:1]], axis=0)
        return anp.concatenate([v, v[..., :1]], axis=-1)
    if how == "nan":
        if anp.ndim(v) == 0:
            return v * np.nan
        mask = np.zeros(anp.shape(v))
        mask.flat[0] = np.nan
        return v + mask
    if how == "complex":
        return v + 1j
    raise AssertionError(how)


def _corrupt(f, how, element):
    def corrupted(*args, **kwargs):
        if how == "raise":
            raise Boom("raised by the callable argument")
        out = f(*args, **kwargs)
        if element is None:
            return _corrupt_value(out, how)
        out = list(out)
        out[element] = _corrupt_value(out[element], how)
        return tuple(out)
    corrupted.__name__ = f"{getattr(f, '__name__', 'f')}_{how}"
    return corrupted


@dataclass
class Tree(Arg):
    """Parameters: a pytree of arrays. The bad ones break its structure or one leaf.

    ``generic``: any tree of arrays is valid (no shape or structure probes); ``tied``:
    arguments whose shape the parameters must match; ``optional``: None is valid.
    """

    extreme: bool = True
    generic: bool = False
    tied: tuple = ()
    optional: bool = False

    def probes(self, name):
        ok = (name,)
        out = [("str", "params", ok), ("empty list", [], ok), ("empty dict", {}, ok)]
        if not self.optional:
            out.append(("None", None, ok))
        hows = (("NaN leaf", "nan"), ("inf leaf", "inf"), ("complex leaf", "complex"), ("str leaf", "str"),
                ("None leaf", "none"), ("last leaf NaN", "nan-last"))
        if not self.generic:
            hows += (("wrong-shaped leaf", "shape"), ("broken structure", "structure"))
        for label, how in hows:
            bad = _corrupt_tree(self.good, how)
            if bad is not None:
                out.append((label, bad, ok + (tuple(self.tied) if how == "shape" else ())))
        if self.extreme:
            out.append(("leaf ~ 1e300", _corrupt_tree(self.good, "far"), ok))
        return out


def _leaf_paths(tree, prefix=()):
    if isinstance(tree, dict):
        for k in tree:
            yield from _leaf_paths(tree[k], prefix + (k,))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from _leaf_paths(v, prefix + (i,))
    else:
        yield prefix


def _replace(tree, path, fn):
    if not path:
        return fn(tree)
    key, rest = path[0], path[1:]
    if isinstance(tree, dict):
        return {k: (_replace(v, rest, fn) if k == key else v) for k, v in tree.items()}
    return type(tree)(_replace(v, rest, fn) if i == key else v for i, v in enumerate(tree))


def _corrupt_tree(tree, how):
    paths = list(_leaf_paths(tree))
    if not paths:
        return None
    first, last = paths[0], paths[-1]
    if how == "structure":
        if isinstance(tree, dict):
            return {k: v for k, v in list(tree.items())[1:]}
        if isinstance(tree, (list, tuple)) and tree and isinstance(tree[0], (list, tuple)):
            return type(tree)([tuple(tree[0])[:1]] + list(tree[1:]))
        if isinstance(tree, (list, tuple)) and tree and isinstance(tree[0], dict):
            return type(tree)([{k: v for k, v in list(tree[0].items())[1:]}] + list(tree[1:]))
        return None
    fns = {
        "nan": lambda a: _with(np.asarray(a, dtype=float), np.nan),
        "nan-last": lambda a: _with(np.asarray(a, dtype=float), np.nan),
        "inf": lambda a: _with(np.asarray(a, dtype=float), np.inf),
        "complex": lambda a: np.asarray(a, dtype=float) + 1j,
        "str": lambda a: "w",
        "none": lambda a: None,
        "shape": lambda a: np.concatenate([np.atleast_1d(np.asarray(a, dtype=float))] * 2, axis=-1),
        "far": lambda a: _far(np.asarray(a, dtype=float), 1e300),
    }
    return _replace(tree, last if how == "nan-last" else first, fns[how])


@dataclass
class Obj(Arg):
    """An object of a given kind (a path, an oracle, a figure's axes): the bad ones are other objects."""

    others: tuple = ()
    names: tuple = ()
    optional: bool = False

    def probes(self, name):
        ok = (name,) + tuple(self.names)
        return [("str", "object", ok), ("int", 3, ok), ("object()", object(), ok)] + (
            [] if self.optional else [("None", None, ok)]) + [(label, v, ok) for label, v in self.others]


@dataclass
class Fixed(Arg):
    """An argument the battery leaves alone (its bad values are probed elsewhere or it has none)."""

    def probes(self, name):
        return []


# --------------------------------------------------------------------------------------
# Cases, probes and verdicts.
# --------------------------------------------------------------------------------------


@dataclass
class Case:
    """One public callable, ``call(**args)`` with the good values, and extra probes of its own.

    ``extra``: ``(arg, label, value, names)`` probes beyond the kinds' (singular times, ...).
    ``check``: optional check of the good call's result (its positive control).
    ``may_refuse``: for a case at an extreme (a tiny standard deviation), the good call
    may itself be refused, by a message naming one of these; if it returns, ``check``
    must pass.
    """

    name: str
    call: object
    args: dict
    extra: list = field(default_factory=list)
    check: object = None
    may_refuse: tuple = ()

    def good_kwargs(self):
        return {k: a.value() for k, a in self.args.items()}

    def probes(self):
        for arg_name, arg in self.args.items():
            for label, value, names in arg.probes(arg_name):
                yield arg_name, label, value, names
        yield from self.extra


@dataclass
class Acceptance:
    """A documented acceptance: the reason, and ``check(result, value, call_with)``, whether the result is right.

    ``value`` is the probe's value; ``call_with(v)`` calls the case again with ``v`` in its place.
    """

    reason: str
    check: object


def names_argument(message, names):
    """Whether ``message`` names one of ``names`` as a word (``x`` but not ``x0``; ``u(x, t)`` names ``u``)."""
    return any(re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", message) for n in names)


def all_finite(result):
    """Whether every number in a result (array, tuple, list, dict, object fields) is finite."""
    if isinstance(result, (str, bytes)) or result is None:
        return True
    if isinstance(result, dict):
        return all(all_finite(v) for v in result.values())
    if isinstance(result, (list, tuple)):
        return all(all_finite(v) for v in result)
    if callable(result):
        return True
    if hasattr(result, "__dataclass_fields__"):
        return all(all_finite(getattr(result, f)) for f in result.__dataclass_fields__)
    try:
        arr = np.asarray(result)
    except Exception:
        return True
    if arr.dtype.kind in "biu":
        return True
    if arr.dtype.kind not in "fc":
        return True
    return bool(np.all(np.isfinite(arr)))


def verdict(case, arg_name, label, value, names, accept):
    """``None`` if the probe passes, else what went wrong."""
    kwargs = case.good_kwargs()
    kwargs[arg_name] = value
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            result = case.call(**kwargs)
        except Boom:
            return None if names == ("<Boom>",) else "the callable's exception propagated where none was expected"
        except (ValueError, TypeError) as err:
            if names == ("<Boom>",):
                return f"the callable's exception was replaced by {type(err).__name__}: {err}"
            message = str(err)
            if names_argument(message, names + tuple(case.may_refuse)):
                return None
            return f"{type(err).__name__} does not name {' or '.join(names)}: {message[:300]}"
        except Exception as err:  # noqa: BLE001 - the point is to catch what should not escape
            return f"raised {type(err).__name__} (not a ValueError/TypeError naming the argument): {str(err)[:300]}"
    if accept is None:
        return "accepted silently (no error, not a documented acceptance)"
    if not all_finite(result):
        return f"documented acceptance ({accept.reason}) but the result is not finite"

    def call_with(v):
        """The case called again with fresh good values and ``v`` for the probed argument."""
        again = case.good_kwargs()
        again[arg_name] = v
        return case.call(**again)

    try:
        with np.errstate(all="ignore"):
            good = accept.check(result, value, call_with)
    except NeedsExtended:
        return SKIPPED
    except Exception as err:  # noqa: BLE001
        return f"documented acceptance ({accept.reason}) but its check raised {type(err).__name__}: {err}"
    if not good:
        return f"documented acceptance ({accept.reason}) but the result is wrong"
    return None


SKIPPED = "skipped: the check needs long double with a wider exponent range than float64"


class NeedsExtended(Exception):
    """Raised by a check that needs ``numpy.longdouble`` wider than float64 (x86-64 has it; some platforms do not)."""


def find_acceptance(acceptances, case_name, arg_name, label):
    """The acceptance whose ``(case, argument, probe)`` patterns (``fnmatch``) match, or None."""
    for (c, a, p), acceptance in acceptances.items():
        if fnmatchcase(case_name, c) and fnmatchcase(arg_name, a) and fnmatchcase(label, p):
            return acceptance
    return None


def run_case(case, acceptances):
    """Run every probe of a case; return ``(n_probes, failures, n_skipped)``."""
    failures, n, skipped = [], 0, 0
    for arg_name, label, value, names in case.probes():
        n += 1
        accept = find_acceptance(acceptances, case.name, arg_name, label)
        problem = verdict(case, arg_name, label, value, names, accept)
        if problem == SKIPPED:
            skipped += 1
        elif problem is not None:
            failures.append(f"{case.name}({arg_name} = {label}): {problem}")
    return n, failures, skipped



@dataclass
class Layers(Arg):
    """A non-empty list of layer callables ``f(x) -> (y, log_det)``; the bad ones break the list or one layer."""

    def probes(self, name):
        ok = (name,)
        first, rest = self.good[0], list(self.good[1:])
        out = [("None", None, ok), ("str", "layers", ok), ("empty", [], ok), ("a non-callable entry", [3] + rest, ok),
               ("a single callable", first, ok),
               ("a layer returning one array", [lambda x: first(x)[0]] + rest, ok),
               ("a layer that raises", [_corrupt(first, "raise", None)] + rest, ("<Boom>",))]
        for k in (0, 1):
            for how in ("shape-col", "nan", "complex"):
                out.append((f"a layer returning {how} (element {k})", [_corrupt(first, how, k)] + rest, ok))
        return out


def positive_control(case):
    """``None`` if the good call behaves (a finite result that passes ``check``, or an allowed refusal)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            result = case.call(**case.good_kwargs())
        except (ValueError, TypeError) as err:
            if case.may_refuse and names_argument(str(err), case.may_refuse):
                return None
            return f"the good call raised {type(err).__name__}: {err}"
        except Exception as err:  # noqa: BLE001
            return f"the good call raised {type(err).__name__}: {err}"
    if not all_finite(result):
        return "the good call returned non-finite values"
    if case.check is not None:
        try:
            with np.errstate(all="ignore"):
                good = case.check(result)
        except NeedsExtended:
            return None
        if not good:
            return "the good call's result failed its check"
    return None

"""Input checks shared by every module.

Each check names the argument it refuses and says what was expected, so that a wrong
shape or a non-finite value is reported where it enters rather than surfacing later as
a silent broadcast or a NaN. The checks look through autograd's tracing boxes (via
``getval``) so that they can run inside functions that are being differentiated.
"""

import numbers

import numpy as onp
from autograd.tracer import getval

__all__ = [
    "as_points",
    "as_time",
    "check_callable",
    "check_field_output",
    "check_positive_int",
    "check_rng",
    "check_finite_number",
    "check_log_density",
]


def _describe(value):
    """A short description of a value for an error message."""
    v = getval(value)
    if isinstance(v, onp.ndarray):
        return f"an array of shape {v.shape} and dtype {v.dtype}"
    return f"{type(v).__name__} {v!r}"


def as_points(x, name="x", d=None, allow_traced=True, like=None):
    """Return ``x`` as a float64 batch of points of shape ``(n, d)``.

    Args:
        x: array-like of shape ``(n, d)``; a traced autograd box is passed through.
        name: the argument's name, used in the error message.
        d: the expected dimension, or None for any ``d >= 1``.
        allow_traced: whether an autograd box may be returned as it is.
        like: the name of the argument ``d`` comes from, for the message (e.g. ``"x"``).

    Returns:
        ``x`` as a float64 ``numpy`` array (or the unchanged autograd box).

    Raises:
        TypeError: ``x`` is not numeric.
        ValueError: ``x`` is not two-dimensional, is empty, has the wrong ``d`` or holds
            a non-finite value.
    """
    value = getval(x)
    traced = value is not x
    if not traced:
        if isinstance(x, (str, bytes)) or x is None:
            raise TypeError(f"{name} must be an array of shape (n, d), got {_describe(x)}")
        try:
            raw = onp.asarray(x)
        except ValueError as err:  # a ragged nested list
            raise TypeError(f"{name} must be a numeric array of shape (n, d), got {_describe(x)}") from err
        if raw.dtype.kind not in "iuf":
            raise TypeError(f"{name} must be a real numeric array of shape (n, d), got dtype {raw.dtype}")
        value = raw.astype(onp.float64, copy=False)
    if onp.ndim(value) != 2:
        raise ValueError(
            f"{name} must have shape (n, d) (batch first), got shape {onp.shape(value)}"
        )
    n, dim = onp.shape(value)
    if n < 1 or dim < 1:
        raise ValueError(f"{name} must have n >= 1 points of dimension d >= 1, got shape {(n, dim)}")
    if d is not None and dim != d:
        raise ValueError(f"{name} must have dimension d = {d}{f' like {like}' if like else ''}, got shape {(n, dim)}")
    if not onp.all(onp.isfinite(value)):
        bad = int(onp.sum(~onp.isfinite(value)))
        raise ValueError(f"{name} holds {bad} non-finite value(s) (NaN or inf)")
    if traced:
        if not allow_traced:
            raise TypeError(f"{name} cannot be differentiated through here")
        return x
    return value


def as_time(t, n, name="t", low=None, high=None, like=None):
    """Return ``t`` as a float or a float64 array of shape ``(n,)``.

    Args:
        t: a real number, or an array of shape ``(n,)`` (one time per point) or ``(n, 1)``.
        n: the number of points in the batch ``t`` goes with.
        name: the argument's name, used in the error message.
        low, high: an inclusive range that ``t`` must lie in, or None.
        like: the name of the points ``t`` goes with, for the message (e.g. ``"x"``).

    Returns:
        A float (scalar ``t``) or an array of shape ``(n,)``; a traced autograd box is
        passed through unchanged after its value has been checked.
    """
    value = getval(t)
    traced = value is not t
    if isinstance(value, (str, bytes)) or value is None or isinstance(value, bool):
        raise TypeError(f"{name} must be a float or an array of shape ({n},), got {_describe(t)}")
    try:
        raw = onp.asarray(value)
    except ValueError as err:  # a ragged nested list
        raise TypeError(f"{name} must be a float or an array of shape ({n},), got {_describe(t)}") from err
    if raw.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real float or an array of shape ({n},), got dtype {raw.dtype}")
    arr = raw.astype(onp.float64, copy=False)
    if arr.ndim == 2 and arr.shape == (n, 1):
        arr = arr[:, 0]
        if traced:
            t = t[:, 0]
    if arr.ndim not in (0, 1) or (arr.ndim == 1 and arr.shape[0] != n):
        raise ValueError(
            f"{name} must be a float or an array of shape ({n},) (one time per point{f' of {like}' if like else ''}), "
            f"got shape {arr.shape}"
        )
    if not onp.all(onp.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr if arr.ndim == 0 else 'non-finite entries'}")
    if low is not None and onp.any(arr < low):
        raise ValueError(f"{name} must be >= {low}, got min {arr.min()}")
    if high is not None and onp.any(arr > high):
        raise ValueError(f"{name} must be <= {high}, got max {arr.max()}")
    if traced:
        return t
    return float(arr) if arr.ndim == 0 else arr


def check_callable(f, name):
    """Raise ``TypeError`` unless ``f`` is callable."""
    if not callable(f):
        raise TypeError(f"{name} must be callable, got {_describe(f)}")
    return f


def check_field_output(out, n, d, name="u"):
    """Check that a vector field returned an array of shape ``(n, d)`` of finite values."""
    value = getval(out)
    if not isinstance(value, onp.ndarray):
        raise TypeError(f"{name}(x, t) must return a NumPy array of shape {(n, d)}, got {type(value).__name__}")
    if value.dtype.kind not in "iuf":
        hint = (" (an object array: where it is differentiated, write it with autograd.numpy)"
                if value.dtype.kind == "O" else "")
        raise TypeError(f"{name}(x, t) must return real numbers, got dtype {value.dtype}{hint}")
    shape = onp.shape(value)
    if shape != (n, d):
        raise ValueError(f"{name}(x, t) must return shape {(n, d)} like x, got shape {shape}")
    if not onp.all(onp.isfinite(value)):
        raise ValueError(f"{name}(x, t) returned non-finite values (NaN or inf)")
    return out


def check_positive_int(k, name, minimum=1, maximum=None):
    """Return ``k`` as an int, raising unless it is an integer ``>= minimum`` (and ``<= maximum``)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {_describe(k)}")
    if k < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {k}")
    if maximum is not None and k > maximum:
        raise ValueError(f"{name} must be an integer between {minimum} and {maximum}, got {k}")
    return int(k)


MAX_COUNT = 2**31 - 1
"""The largest count (of points, steps, layers, widths, probes, ...) the package accepts: beyond it
an array would not fit in memory, or a loop would not end."""


def check_count(k, name, minimum=1):
    """``check_positive_int`` for a count: an integer from ``minimum`` to ``MAX_COUNT``."""
    return check_positive_int(k, name, minimum, MAX_COUNT)


def check_finite_number(v, name, positive=False, nonnegative=False):
    """Return ``v`` unchanged, raising unless it is a finite real (and of the right sign)."""
    if isinstance(v, bool) or not isinstance(getval(v), numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_describe(v)}")
    value = float(getval(v))
    if not onp.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return v


def check_log_density(out, n, name, allow_minus_inf=True):
    """Check that a log-density callable returned one value per point: shape ``(n,)``, no NaN.

    ``-inf`` (a zero density) is allowed unless ``allow_minus_inf`` is False; ``+inf`` and
    NaN never are. Returns ``out`` unchanged (autograd boxes pass through).
    """
    value = getval(out)
    shape = onp.shape(value)
    if shape != (n,):
        raise ValueError(f"{name} must return shape ({n},) (one log-density per point), got {shape}")
    if onp.asarray(value).dtype.kind not in "iuf":
        raise TypeError(f"{name} must return real numbers, got dtype {onp.asarray(value).dtype}")
    bad = onp.isnan(value) | (value == onp.inf)
    if not allow_minus_inf:
        bad |= ~onp.isfinite(value)
    if onp.any(bad):
        raise ValueError(f"{name} returned {int(onp.sum(bad))} value(s) that are not log-densities (NaN or inf)")
    return out


def check_rng(rng, name="rng"):
    """Raise ``TypeError`` unless ``rng`` is a ``numpy.random.Generator``."""
    if not isinstance(rng, onp.random.Generator):
        raise TypeError(
            f"{name} must be a numpy.random.Generator (e.g. numpy.random.default_rng(0)), "
            f"got {_describe(rng)}"
        )
    return rng


# --------------------------------------------------------------------------------------
# Arrays, options and results.
# --------------------------------------------------------------------------------------


def as_real_array(value, name, ndim=None, shape=None, finite=True, allow_traced=True, what=None):
    """Return ``value`` as a float64 array, refusing what is not a real numeric array.

    Refused by name: ``None``, strings, booleans, complex numbers (even with a zero
    imaginary part: a cast would drop it silently), object arrays, ragged nested lists,
    and (with ``finite``) NaN or inf.

    Args:
        value: array-like (a traced autograd box is checked through and returned as it is).
        name: the argument's name, used in the error message.
        ndim: the required number of axes, an int or a tuple of allowed ones, or None.
        shape: the required shape, with None for a free axis, or None.
        finite: refuse NaN and inf.
        allow_traced: whether an autograd box may be returned as it is.
        what: a description of the expected value for messages (default from ``shape``/``ndim``).

    Returns:
        a float64 ``numpy`` array (or the unchanged autograd box).
    """
    raw_value = getval(value)
    traced = raw_value is not value
    expected = what or (f"an array of shape {_shape_text(shape)}" if shape is not None
                        else f"a {ndim}-dimensional array" if isinstance(ndim, int) else "an array")
    if raw_value is None or isinstance(raw_value, (str, bytes, bool, dict, set)):
        raise TypeError(f"{name} must be {expected} of real numbers, got {_describe(raw_value)}")
    try:
        with _warnings_as_errors():
            arr = onp.asarray(raw_value)
    except (ValueError, TypeError) as err:  # a ragged nested list
        raise TypeError(f"{name} must be {expected} of real numbers, got a ragged or non-numeric sequence") from err
    if arr.dtype.kind not in "iuf":
        kind = {"c": "complex", "b": "boolean", "O": "object", "U": "str", "S": "bytes"}.get(arr.dtype.kind, str(arr.dtype))
        raise TypeError(f"{name} must be {expected} of real numbers, got a {kind} array (dtype {arr.dtype})")
    if traced and not allow_traced:
        raise TypeError(f"{name} cannot be differentiated through here")
    arr = arr.astype(onp.float64, copy=False)
    if ndim is not None and arr.ndim not in (ndim if isinstance(ndim, tuple) else (ndim,)):
        raise ValueError(f"{name} must be {expected}, got shape {arr.shape}")
    if shape is not None and (arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape))):
        raise ValueError(f"{name} must be {expected}, got shape {arr.shape}")
    if finite and not onp.all(onp.isfinite(arr)):
        raise ValueError(f"{name} holds {int(onp.sum(~onp.isfinite(arr)))} non-finite value(s) (NaN or inf)")
    return value if traced else arr


def _shape_text(shape):
    inner = ", ".join("any" if s is None else str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


class _warnings_as_errors:
    """Turn NumPy's ComplexWarning and VisibleDeprecationWarning into errors inside a block."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error", onp.exceptions.ComplexWarning)
        warnings.simplefilter("error", onp.exceptions.VisibleDeprecationWarning)
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def check_bool(v, name):
    """Return ``v`` as a bool, raising ``TypeError`` unless it is True or False (a NumPy bool too)."""
    if not isinstance(v, (bool, onp.bool_)):
        raise TypeError(f"{name} must be True or False, got {_describe(v)}")
    return bool(v)


def check_real(v, name, low=None, high=None, low_open=False, high_open=False):
    """Return ``v`` as a float, raising unless it is a finite real number in the given range.

    ``low``/``high`` bound the range (None: unbounded); ``low_open``/``high_open`` exclude the end.
    """
    check_finite_number(v, name)
    value = float(getval(v))
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def check_choice(v, name, choices):
    """Return ``v`` unless it is not one of ``choices`` (strings), raising ``ValueError``/``TypeError``."""
    if not isinstance(v, str):
        raise TypeError(f"{name} must be one of {list(choices)}, got {_describe(v)}")
    if v not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {v!r}")
    return v


def check_instance(v, cls, name, what=None):
    """Return ``v``, raising ``TypeError`` unless it is an instance of ``cls``."""
    if not isinstance(v, cls):
        expected = what or (cls.__name__ if isinstance(cls, type) else " or ".join(c.__name__ for c in cls))
        raise TypeError(f"{name} must be a {expected}, got {type(v).__name__}")
    return v


def check_real_output(out, name):
    """Refuse a callable's result that is complex (its imaginary part would be dropped silently)."""
    value = getval(out)
    if onp.iscomplexobj(value):
        raise TypeError(f"{name} returned complex values; a real array was expected")
    return out


def refuse_non_finite(result, what, large=None, small=None):
    """Return ``result``, or raise ``ValueError`` naming the input that made it overflow.

    Args:
        result: an array (or autograd box) that should be finite.
        what: what the result is, e.g. ``"log p(x | t)"``.
        large: ``{name: array}``, inputs whose size can overflow the result (points).
        small: ``{name: array}``, scales whose smallness can overflow it (a standard
            deviation). The message names the input furthest from 1 on a log scale.
            An entry may be a callable returning the array, computed only for the message.
    """
    value = getval(result)
    if onp.all(onp.isfinite(value)):
        return result
    scores = {}
    for key, arr in (large or {}).items():
        arr = arr() if callable(arr) else arr
        a = onp.abs(onp.asarray(getval(arr), dtype=onp.float64))
        m = float(a.max()) if a.size else 0.0
        scores[key] = (onp.log10(m) if m > 0 else -onp.inf, f"|{key}| up to {m:.3g}")
    for key, arr in (small or {}).items():
        arr = arr() if callable(arr) else arr
        a = onp.abs(onp.asarray(getval(arr), dtype=onp.float64))
        m = float(a.min()) if a.size else 1.0
        scores[key] = (-onp.log10(m) if m > 0 else onp.inf, f"{key} down to {m:.3g}")
    bad = int(onp.sum(~onp.isfinite(value)))
    where = f"at {bad} entr{'y' if bad == 1 else 'ies'}"
    if not scores:
        raise ValueError(f"{what} is not representable in float64 {where}")
    name = max(scores, key=lambda k: scores[k][0])
    raise ValueError(
        f"{name}: {what} overflows float64 {where} ({scores[name][1]}); the inputs are too large, or a scale too "
        f"small, for double precision"
    )


def as_time_array(t, name="t", low=0.0, high=1.0):
    """``t`` as a 1-D float64 array of times (a float becomes one time), each in ``[low, high]``."""
    arr = onp.atleast_1d(as_real_array(t, name, ndim=(0, 1), what="a float or a 1-D array of times",
                                       allow_traced=False))
    if low is not None and onp.any(arr < low):
        raise ValueError(f"{name} must be >= {low}, got min {arr.min()}")
    if high is not None and onp.any(arr > high):
        raise ValueError(f"{name} must be <= {high}, got max {arr.max()}")
    return arr

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


def as_points(x, name="x", d=None, allow_traced=True):
    """Return ``x`` as a float64 batch of points of shape ``(n, d)``.

    Args:
        x: array-like of shape ``(n, d)``; a traced autograd box is passed through.
        name: the argument's name, used in the error message.
        d: the expected dimension, or None for any ``d >= 1``.
        allow_traced: whether an autograd box may be returned as it is.

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
        raise ValueError(f"{name} must have dimension d = {d}, got shape {(n, dim)}")
    if not onp.all(onp.isfinite(value)):
        bad = int(onp.sum(~onp.isfinite(value)))
        raise ValueError(f"{name} holds {bad} non-finite value(s) (NaN or inf)")
    if traced:
        if not allow_traced:
            raise TypeError(f"{name} cannot be differentiated through here")
        return x
    return value


def as_time(t, n, name="t", low=None, high=None):
    """Return ``t`` as a float or a float64 array of shape ``(n,)``.

    Args:
        t: a real number, or an array of shape ``(n,)`` (one time per point) or ``(n, 1)``.
        n: the number of points in the batch ``t`` goes with.
        name: the argument's name, used in the error message.
        low, high: an inclusive range that ``t`` must lie in, or None.

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
            f"{name} must be a float or an array of shape ({n},) (one time per point), "
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
    shape = onp.shape(value)
    if shape != (n, d):
        raise ValueError(f"{name}(x, t) must return shape {(n, d)} like x, got shape {shape}")
    if not onp.all(onp.isfinite(value)):
        raise ValueError(f"{name}(x, t) returned non-finite values (NaN or inf)")
    return out


def check_positive_int(k, name, minimum=1):
    """Return ``k`` as an int, raising unless it is an integer ``>= minimum``."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {_describe(k)}")
    if k < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {k}")
    return int(k)


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

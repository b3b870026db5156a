"""The arithmetic precision of the implementation under test, and what follows from it.

Every checker judges an implementation in the precision it computes in: its unit
round-off ``eps`` sets the finite-difference steps, the round-off floor below which
errors are not interpreted (an observed order is fitted only above it) and the
allowance on every comparison. The precision is read from what the implementation
returns (the dtype of its arrays), from the adapters (``from_torch`` and ``from_jax``
record a ``bfloat16`` or ``float8`` result, which reaches NumPy as ``float32``), or from
the ``precision=`` argument of a checker, whichever is the least precise.
"""

import math
from dataclasses import dataclass

import numpy as onp

__all__ = ["Precision", "FLOAT64", "parse_precision", "precision_of", "mark_precision"]

_MARK = "__reference_precision__"


@dataclass(frozen=True)
class Precision:
    """A floating-point format: its name and its machine epsilon (the spacing of numbers at 1)."""

    name: str
    eps: float

    @property
    def mantissa_bits(self):
        return int(round(-math.log2(self.eps)))

    def round(self, x):
        """``x`` (float64) rounded to the nearest number of this format, returned as float64.

        Overflow is not modelled (the checkers' inputs are of order 1).
        """
        x = onp.asarray(x, dtype=onp.float64)
        if self.eps <= onp.finfo(onp.float64).eps:
            return x.copy()
        if self.name == "float32":
            return x.astype(onp.float32).astype(onp.float64)
        if self.name == "float16":
            with onp.errstate(over="ignore"):
                return x.astype(onp.float16).astype(onp.float64)
        # any other format with p mantissa bits: round-to-nearest-even on the float64 significand
        m, e = onp.frexp(x)  # x = m 2^e, 0.5 <= |m| < 1
        scale = 2.0 ** (self.mantissa_bits + 1)
        return onp.ldexp(onp.round(m * scale) / scale, e)

    def __str__(self):
        return f"{self.name} (eps {self.eps:.3g})"


FLOAT64 = Precision("float64", float(onp.finfo(onp.float64).eps))
_KNOWN = {
    "float64": FLOAT64,
    "float32": Precision("float32", float(onp.finfo(onp.float32).eps)),
    "float16": Precision("float16", float(onp.finfo(onp.float16).eps)),
    "bfloat16": Precision("bfloat16", 2.0**-7),
}
_ALIASES = {"double": "float64", "float": "float32", "single": "float32", "half": "float16", "bf16": "bfloat16",
            "f64": "float64", "f32": "float32", "f16": "float16"}


def _dtype_like(value):
    """Whether ``value`` is a dtype or a scalar type of NumPy, PyTorch, JAX or ml_dtypes (not a list, a number, ...)."""
    if isinstance(value, type):  # numpy.float16, ml_dtypes.bfloat16, jnp.float32
        return True
    module = type(value).__module__ or ""
    return isinstance(value, onp.dtype) or module.split(".")[0] in ("numpy", "torch", "jax", "jaxlib", "ml_dtypes")


def parse_precision(value, name="precision"):
    """``value`` as a ``Precision``: None, a name (``"float32"``, ``"bfloat16"``, ...), a NumPy,
    PyTorch or JAX floating dtype, or a ``Precision``.

    Names are read without regard to case and with the prefixes ``torch.`` and ``jnp.``
    (``"Float32"``, ``"torch.float16"``), and the aliases ``double``, ``float``, ``single``,
    ``half``, ``bf16``, ``f64``, ``f32``, ``f16``.
    """
    if value is None or isinstance(value, Precision):
        return value
    if isinstance(value, str):
        key = value.strip().lower().removeprefix("torch.").removeprefix("jnp.")
        key = _ALIASES.get(key, key)
        if key in _KNOWN:
            return _KNOWN[key]
        raise ValueError(f"{name} must be one of {sorted(_KNOWN)} (or a floating dtype), got {value!r}")
    if not _dtype_like(value):
        raise TypeError(f"{name} must be a precision name such as 'float32' or a floating dtype, got "
                        f"{type(value).__name__} {value!r}")
    text = str(value)  # torch.float16, dtype('float32'), dtype(bfloat16) from ml_dtypes, <class 'numpy.float16'>
    for key in sorted(_KNOWN, key=len, reverse=True):
        if key in text:
            return _KNOWN[key]
    try:
        dt = onp.dtype(value)
    except TypeError:
        dt = None
    if dt is not None and onp.issubdtype(dt, onp.floating):
        return Precision(str(dt), float(onp.finfo(dt).eps))
    raise TypeError(f"{name} must be a precision name such as 'float32' or a floating dtype, got {value!r}")


def _of_array(a):
    try:
        dt = onp.asarray(a).dtype
    except Exception:  # noqa: BLE001 - not array-like: no precision to read
        return None
    if not onp.issubdtype(dt, onp.floating):
        return None
    if dt == onp.float64 or dt.itemsize > 8:
        return FLOAT64
    for key in ("float32", "float16"):
        if dt == onp.dtype(key):
            return _KNOWN[key]
    return parse_precision(dt)


def precision_of(*values, callables=(), declared=None):
    """The least precise of: the floating arrays among ``values`` (nested in tuples, lists
    and dicts), what the adapters recorded on ``callables``, and ``declared``."""
    found = [FLOAT64]

    def visit(v):
        if isinstance(v, (tuple, list)):
            for w in v:
                visit(w)
        elif isinstance(v, dict):
            for w in v.values():
                visit(w)
        else:
            p = _of_array(v) if isinstance(v, onp.ndarray) or onp.isscalar(v) and isinstance(v, onp.floating) else None
            if p is not None:
                found.append(p)

    for v in values:
        visit(v)
    for fn in callables:
        p = getattr(fn, _MARK, None)
        if isinstance(p, Precision):
            found.append(p)
    if declared is not None:
        found.append(parse_precision(declared))
    return max(found, key=lambda p: p.eps)


def mark_precision(fn, precision):
    """Record on ``fn`` (an adapter's wrapper) the least precise format it has returned."""
    old = getattr(fn, _MARK, None)
    if precision is not None and (old is None or precision.eps > old.eps):
        setattr(fn, _MARK, precision)

"""Argument checks of the checkers: each refusal names the argument and what was expected."""

import numbers

import numpy as onp

from .._validate import check_finite_number, check_positive_int
from ._precision import parse_precision

__all__ = ["check_seed", "check_framework", "check_dims", "check_precision", "check_k", "FRAMEWORKS",
           "DEFAULT_DIMS"]

FRAMEWORKS = ("numpy", "torch", "jax")
DEFAULT_DIMS = (1, 2, 3, 5)
"""The dimensions every checker that makes its own probes covers by default: 1, 2, an odd 3 and a 5."""


def check_seed(seed, name="seed"):
    """A seed must be an integer >= 0: None would make the check irreproducible."""
    if seed is None:
        raise TypeError(f"{name} must be an integer >= 0, got None (a check must be reproducible: pass a seed)")
    if isinstance(seed, (bool, onp.bool_)) or not isinstance(seed, (numbers.Integral, onp.integer)):
        raise TypeError(f"{name} must be an integer >= 0, got {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {seed}")
    if seed >= 2**63:
        raise ValueError(f"{name} must be below 2**63, got {seed}")
    return int(seed)


def check_framework(framework):
    if not isinstance(framework, str) or framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")
    return framework


def check_dims(dims, name="dims", maximum=64):
    """``dims``: None (the default dimensions), an int, or a non-empty sequence of distinct ints in 1..maximum."""
    if dims is None:
        return DEFAULT_DIMS
    if isinstance(dims, (numbers.Integral, onp.integer)) and not isinstance(dims, (bool, onp.bool_)):
        dims = (dims,)
    if isinstance(dims, (str, bytes)) or not hasattr(dims, "__iter__"):
        raise TypeError(f"{name} must be None, an integer or a sequence of integers, got {type(dims).__name__}")
    out = tuple(check_positive_int(d, f"{name}[...]") for d in dims)
    if not out:
        raise ValueError(f"{name} must hold at least one dimension")
    if max(out) > maximum:
        raise ValueError(f"{name} must be <= {maximum} (the probes are dense), got {max(out)}")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} must not repeat a dimension, got {out}")
    return out


def check_precision(precision):
    """None or a precision name / floating dtype."""
    try:
        return parse_precision(precision)
    except (TypeError, ValueError) as err:
        raise type(err)(str(err)) from None


def check_k(k, name="k"):
    check_finite_number(k, name, positive=True)
    if float(k) > 1e6:
        raise ValueError(f"{name} must be a moderate safety factor (<= 1e6), got {k}")
    return float(k)

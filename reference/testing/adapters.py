"""Adapters between PyTorch callables and the NumPy callables the checkers take.

The checkers call the implementation under test with NumPy arrays and read NumPy arrays
back. ``from_torch(fn)`` makes a PyTorch callable look like that: it turns the NumPy
arrays (and Python floats, such as a time ``t``) it is given into tensors, the callables
it is given (a velocity field handed to a solver) into PyTorch callables, calls ``fn``,
and turns the tensors it returns back into arrays. ``to_torch`` is the opposite
direction. PyTorch is imported on first use only; it is never a dependency of
``reference``.
"""

import functools
import numbers

import numpy as onp

__all__ = ["from_torch", "to_torch", "torch_native", "is_torch_native"]

_NATIVE = "__reference_torch_native__"


def _torch():
    try:
        import torch
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "this adapter needs PyTorch (a CPU build is enough): pip install torch==2.13.0, "
            "or the project's interop extra (see the README)"
        ) from err
    return torch


def torch_native(fn):
    """Mark ``fn`` as a PyTorch callable (tensors in, tensors out), so adapters pass it through."""
    setattr(fn, _NATIVE, True)
    return fn


def is_torch_native(fn):
    """Whether ``fn`` was marked by ``torch_native`` (or made by ``to_torch``)."""
    return bool(getattr(fn, _NATIVE, False))


def _to_tensor(value, torch, dtype, device):
    if isinstance(value, onp.ndarray):
        if onp.issubdtype(value.dtype, onp.floating):
            return torch.as_tensor(onp.ascontiguousarray(value), dtype=dtype, device=device)
        return torch.as_tensor(onp.ascontiguousarray(value), device=device)
    if isinstance(value, (bool, onp.bool_)) or value is None:
        return value
    if isinstance(value, (float, onp.floating)):
        return torch.tensor(float(value), dtype=dtype, device=device)
    if isinstance(value, (tuple, list)):
        return type(value)(_to_tensor(v, torch, dtype, device) for v in value)
    if isinstance(value, dict):
        return {k: _to_tensor(v, torch, dtype, device) for k, v in value.items()}
    if callable(value) and not isinstance(value, type) and not is_torch_native(value):
        return to_torch(value)
    return value


def _to_numpy(value, torch):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
        return type(value)(*(_to_numpy(v, torch) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_to_numpy(v, torch) for v in value)
    if isinstance(value, dict):
        return {k: _to_numpy(v, torch) for k, v in value.items()}
    if callable(value) and is_torch_native(value):
        return from_torch(value)
    return value


def from_torch(fn, dtype="float64", device="cpu"):
    """Wrap a PyTorch callable so that it takes and returns NumPy arrays.

    Arguments are converted on each call: floating NumPy arrays and Python floats become
    tensors of ``dtype`` on ``device`` (a time ``t = 0.5`` becomes a 0-d tensor), integer
    arrays become integer tensors, ints, bools, ``None`` and ``numpy.random.Generator``
    pass unchanged, tuples, lists and dicts are converted item by item, and a callable
    argument (for example the velocity field a solver integrates) is wrapped with
    ``to_torch`` unless it is already a PyTorch callable (marked with ``torch_native``,
    as the checkers' own PyTorch test fields are). Tensors in the result are detached
    and returned as NumPy arrays (a float32 tensor stays float32, so the checkers see the
    precision the implementation works in).

    Args:
        fn: a callable on tensors, e.g. ``lambda x, t: model(x, t)``.
        dtype: ``"float64"`` (default) or ``"float32"``, or a ``torch.dtype``.
        device: the device the tensors are put on.

    Returns:
        a callable on NumPy arrays.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")

    @functools.wraps(fn)
    def numpy_fn(*args, **kwargs):
        torch = _torch()
        dt = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        t_args = [_to_tensor(a, torch, dt, device) for a in args]
        t_kwargs = {k: _to_tensor(v, torch, dt, device) for k, v in kwargs.items()}
        return _to_numpy(fn(*t_args, **t_kwargs), torch)

    setattr(numpy_fn, _NATIVE, False)  # functools.wraps copied fn's marks
    return numpy_fn


def to_torch(fn):
    """Wrap a NumPy callable so that a PyTorch caller can use it (tensors in, tensors out).

    Tensor arguments become NumPy arrays (0-d tensors become floats, so a solver's time
    ``t`` arrives as a Python float), PyTorch callables among the arguments are wrapped
    with ``from_torch``, and arrays in the result become tensors of the dtype and device
    of the first tensor argument (float64 on the CPU if there is none). No gradient
    flows through the result: a PyTorch implementation that differentiates the callable
    (an exact divergence, say) needs a PyTorch-native callable instead.

    Args:
        fn: a callable on NumPy arrays.

    Returns:
        a callable on tensors, marked ``torch_native``.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")

    @functools.wraps(fn)
    def torch_fn(*args, **kwargs):
        torch = _torch()
        like = next((a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)), None)

        def down(v):
            if isinstance(v, torch.Tensor):
                arr = v.detach().cpu().numpy()
                return float(arr) if arr.ndim == 0 else arr
            if isinstance(v, (tuple, list)):
                return type(v)(down(w) for w in v)
            if callable(v) and is_torch_native(v):
                return from_torch(v)
            return v

        def up(v):
            if isinstance(v, onp.ndarray) or isinstance(v, numbers.Real) and not isinstance(v, bool):
                dt = like.dtype if like is not None and like.is_floating_point() else torch.float64
                dev = like.device if like is not None else "cpu"
                return torch.as_tensor(onp.asarray(v, dtype=onp.float64), dtype=dt, device=dev)
            if isinstance(v, (tuple, list)):
                return type(v)(up(w) for w in v)
            return v

        out = fn(*(down(a) for a in args), **{k: down(v) for k, v in kwargs.items()})
        return up(out)

    return torch_native(torch_fn)

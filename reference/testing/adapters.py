"""Adapters between PyTorch or JAX callables and the NumPy callables the checkers take.

The checkers call the implementation under test with NumPy arrays and read NumPy arrays
back. ``from_torch(fn)`` makes a PyTorch callable look like that: it turns the NumPy
arrays (and Python floats, such as a time ``t``) it is given into tensors of the dtype
and on the device of the wrapped model, the callables it is given (a velocity field
handed to a solver) into PyTorch callables, calls ``fn``, and brings the tensors it
returns back to the CPU as arrays. ``to_torch`` is the opposite direction. ``from_jax``
and ``to_jax`` do the same for JAX. PyTorch and JAX are imported on first use only;
neither is a dependency of ``reference``.

Precision: a result in float64, float32 or float16 stays in that dtype on the NumPy
side; bfloat16 (and the float8 formats) have no NumPy dtype and arrive as float32, and
the wrapper records the format so that the checkers still use its round-off.

Side effects: a PyTorch callable that writes into a tensor it was given writes into the
NumPy array it came from (also when the tensor was a converted copy: the adapter copies
the change back), and a result that shares storage with an argument is recorded, so
that the checkers can name both mistakes.
"""

import functools
import numbers

import numpy as onp

from ._precision import Precision, mark_precision, parse_precision

__all__ = [
    "from_torch",
    "to_torch",
    "torch_native",
    "is_torch_native",
    "from_jax",
    "to_jax",
    "jax_native",
    "is_jax_native",
]

_NATIVE = "__reference_torch_native__"
_JAX_NATIVE = "__reference_jax_native__"
_ALIASES = "__reference_aliases__"
_NUMPY_FLOATS = ("float16", "float32", "float64")


def _torch():
    try:
        import torch
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "this adapter needs PyTorch (a CPU build is enough): pip install torch==2.13.0, "
            "or the project's interop extra (see the README)"
        ) from err
    return torch


def _jax():
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "this adapter needs JAX (the CPU build is enough): pip install 'jax==0.10.2', "
            "or the project's jax extra (see the README)"
        ) from err
    return jax, jnp


def _check_fn(fn):
    if not callable(fn) or isinstance(fn, type):
        raise TypeError(f"fn must be a callable (a function, a model, a bound method), got {type(fn).__name__}")
    return fn


def torch_native(fn):
    """Mark ``fn`` as a PyTorch callable (tensors in, tensors out), so adapters pass it through."""
    _check_fn(fn)
    setattr(fn, _NATIVE, True)
    return fn


def is_torch_native(fn):
    """Whether ``fn`` was marked by ``torch_native`` (or made by ``to_torch``); False for anything else."""
    return getattr(fn, _NATIVE, False) is True


def jax_native(fn):
    """Mark ``fn`` as a JAX callable (JAX arrays in, JAX arrays out), so adapters pass it through."""
    _check_fn(fn)
    setattr(fn, _JAX_NATIVE, True)
    return fn


def is_jax_native(fn):
    """Whether ``fn`` was marked by ``jax_native`` (or made by ``to_jax``); False for anything else."""
    return getattr(fn, _JAX_NATIVE, False) is True


# ----------------------------------------------------------------------------- PyTorch


def _torch_dtype(dtype, torch):
    if isinstance(dtype, torch.dtype):
        dt = dtype
    elif isinstance(dtype, str):
        name = dtype.strip().removeprefix("torch.")
        dt = getattr(torch, {"double": "float64", "half": "float16", "float": "float32"}.get(name, name), None)
        if not isinstance(dt, torch.dtype):
            raise ValueError(f"dtype must name a floating torch dtype ('float64', 'float32', 'float16', "
                             f"'bfloat16', ...), got {dtype!r}")
    else:
        raise TypeError(f"dtype must be None, a str such as 'float32' or a torch.dtype, got {type(dtype).__name__}")
    if not dt.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype, got {dt}")
    return dt


def _torch_precision(dt, torch):
    name = str(dt).removeprefix("torch.")
    try:
        return parse_precision(name)
    except ValueError:
        return Precision(name, float(torch.finfo(dt).eps))


def _module_like(fn, torch):
    """The first floating parameter or buffer of the ``torch.nn.Module`` behind ``fn``, or None.

    ``fn`` may be a module, a bound method of one, or a function whose closure holds one
    (``lambda x, t: model(x, t)``).
    """
    candidates = [fn, getattr(fn, "__self__", None), getattr(fn, "func", None)]
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            candidates.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    for obj in candidates:
        if isinstance(obj, torch.nn.Module):
            for tensor in list(obj.parameters()) + list(obj.buffers()):
                if tensor.is_floating_point():
                    return tensor
    return None


def _to_tensor(value, torch, dtype, device, created):
    if isinstance(value, onp.ndarray):
        if onp.issubdtype(value.dtype, onp.floating):
            source = value if value.flags.writeable else value.copy()  # torch wants writable memory
            tensor = torch.as_tensor(onp.ascontiguousarray(source), dtype=dtype, device=device)
            created.append((value, tensor))
            return tensor
        if onp.issubdtype(value.dtype, onp.integer) or value.dtype == bool:
            return torch.as_tensor(onp.ascontiguousarray(value), device=device)
        return value
    if isinstance(value, (bool, onp.bool_)) or value is None:
        return value
    if isinstance(value, (float, onp.floating)):
        return torch.tensor(float(value), dtype=dtype, device=device)
    if isinstance(value, onp.integer):
        return int(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
        return type(value)(*(_to_tensor(v, torch, dtype, device, created) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_to_tensor(v, torch, dtype, device, created) for v in value)
    if isinstance(value, dict):
        return {k: _to_tensor(v, torch, dtype, device, created) for k, v in value.items()}
    if callable(value) and not isinstance(value, type) and not is_torch_native(value) \
            and not isinstance(value, onp.random.Generator):
        return to_torch(value)
    return value


def _tensor_to_numpy(tensor, torch, wrapper):
    t = tensor.detach()
    if t.is_floating_point() and str(t.dtype).removeprefix("torch.") not in _NUMPY_FLOATS:
        mark_precision(wrapper, _torch_precision(t.dtype, torch))
        t = t.to(torch.float32)
    return t.cpu().numpy()


def _to_numpy(value, torch, wrapper):
    if isinstance(value, torch.Tensor):
        return _tensor_to_numpy(value, torch, wrapper)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
        return type(value)(*(_to_numpy(v, torch, wrapper) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_to_numpy(v, torch, wrapper) for v in value)
    if isinstance(value, dict):
        return {k: _to_numpy(v, torch, wrapper) for k, v in value.items()}
    if callable(value) and is_torch_native(value):
        return from_torch(value)
    return value


def _output_tensors(value, torch):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _output_tensors(v, torch)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _output_tensors(v, torch)


def _shares_numpy(tensor, array):
    if tensor.device.type != "cpu" or not array.flags.c_contiguous:
        return False
    return tensor.data_ptr() == array.__array_interface__["data"][0]


def from_torch(fn, dtype=None, device=None):
    """Wrap a PyTorch callable so that it takes and returns NumPy arrays.

    Arguments are converted on each call: floating NumPy arrays and Python floats become
    tensors of ``dtype`` on ``device`` (a time ``t = 0.5`` becomes a 0-d tensor), integer
    arrays become integer tensors, ints, bools, ``None`` and ``numpy.random.Generator``
    pass unchanged, tuples, lists and dicts are converted item by item, and a callable
    argument (for example the velocity field a solver integrates) is wrapped with
    ``to_torch`` unless it is already a PyTorch callable (marked with ``torch_native``,
    as the checkers' own PyTorch test fields are). Tensors in the result are detached,
    moved to the CPU and returned as NumPy arrays in their own precision (float16 and
    float32 stay so; bfloat16 and float8 arrive as float32 and the wrapper records their
    precision), so the checkers see the precision the implementation works in.

    By default the dtype and device are those of the model: of ``fn`` if it is a
    ``torch.nn.Module`` (or a bound method of one), else of a module held in ``fn``'s
    closure (``lambda x, t: model(x, t)``), else float64 on the CPU. A model on a GPU is
    thus checked where it is: ``from_torch(lambda x, t: model(x, t))`` with ``model`` on
    ``"cuda"`` gets CUDA tensors and returns NumPy arrays.

    If ``fn`` writes into a tensor it was given, the change is copied back into the NumPy
    array it came from; a result sharing storage with an argument is recorded. The
    checkers report both as mistakes.

    Args:
        fn: a callable on tensors, e.g. ``lambda x, t: model(x, t)``.
        dtype: None (the model's dtype, else float64), a name (``"float64"``, ``"float32"``,
            ``"float16"``, ``"bfloat16"``, ...) or a floating ``torch.dtype``.
        device: None (the model's device, else the CPU), or a device (``"cpu"``, ``"cuda:0"``).

    Returns:
        a callable on NumPy arrays.
    """
    _check_fn(fn)
    torch = _torch()
    if dtype is not None:
        dtype = _torch_dtype(dtype, torch)
    if device is not None:
        if not isinstance(device, (str, torch.device)):
            raise TypeError(f"device must be None, a str such as 'cpu' or 'cuda:0', or a torch.device, got "
                            f"{type(device).__name__}")
        try:
            device = torch.device(device)
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"device must name a torch device ('cpu', 'cuda:0', ...), got {device!r}") from err
    like = _module_like(fn, torch) if dtype is None or device is None else None
    dt = dtype or (like.dtype if like is not None else torch.float64)
    dev = device or (like.device if like is not None else torch.device("cpu"))

    @functools.wraps(fn)
    def numpy_fn(*args, **kwargs):
        created = []
        t_args = [_to_tensor(a, torch, dt, dev, created) for a in args]
        t_kwargs = {k: _to_tensor(v, torch, dt, dev, created) for k, v in kwargs.items()}
        copies = [(arr, tensor, tensor.detach().clone()) for arr, tensor in created
                  if not _shares_numpy(tensor, arr)]
        out = fn(*t_args, **t_kwargs)
        # in-place writes into converted copies go back to the caller's arrays
        for arr, tensor, before in copies:
            if tensor.shape == before.shape and not torch.equal(tensor.detach(), before) and arr.flags.writeable:
                arr[...] = tensor.detach().to(torch.float64).cpu().numpy().reshape(arr.shape)
        # results that share storage with an argument
        aliases = []
        arg_tensors = {}
        for i, a in enumerate(t_args):
            for tensor in _output_tensors(a, torch):
                arg_tensors.setdefault(i, []).append(tensor)
        for j, o in enumerate(_output_tensors(out, torch)):
            ptr = o.untyped_storage().data_ptr()
            for i, tensors in arg_tensors.items():
                if any(t.untyped_storage().data_ptr() == ptr for t in tensors):
                    aliases.append((j, i))
        setattr(numpy_fn, _ALIASES, aliases)
        return _to_numpy(out, torch, numpy_fn)

    setattr(numpy_fn, _NATIVE, False)  # functools.wraps copied fn's marks
    setattr(numpy_fn, _JAX_NATIVE, False)
    setattr(numpy_fn, "__reference_precision__", _torch_precision(dt, torch))
    setattr(numpy_fn, _ALIASES, [])
    numpy_fn.torch_dtype, numpy_fn.torch_device = dt, dev
    return numpy_fn


def to_torch(fn):
    """Wrap a NumPy callable so that a PyTorch caller can use it (tensors in, tensors out).

    Tensor arguments become NumPy arrays (0-d tensors become floats, so a solver's time
    ``t`` arrives as a Python float; bfloat16 arrives as float32), PyTorch callables
    among the arguments are wrapped with ``from_torch``, and arrays in the result become
    tensors of the dtype and device of the first floating tensor argument (float64 on
    the CPU if there is none). No gradient flows through the result: a PyTorch
    implementation that differentiates the callable (an exact divergence, say) needs a
    PyTorch-native callable instead.

    Args:
        fn: a callable on NumPy arrays.

    Returns:
        a callable on tensors, marked ``torch_native``.
    """
    _check_fn(fn)
    torch = _torch()

    @functools.wraps(fn)
    def torch_fn(*args, **kwargs):
        like = next((a for a in list(args) + list(kwargs.values())
                     if isinstance(a, torch.Tensor) and a.is_floating_point()), None)

        def down(v):
            if isinstance(v, torch.Tensor):
                t = v.detach()
                if t.is_floating_point() and str(t.dtype).removeprefix("torch.") not in _NUMPY_FLOATS:
                    t = t.to(torch.float32)
                arr = t.cpu().numpy()
                return float(arr) if arr.ndim == 0 and arr.dtype.kind == "f" else arr
            if isinstance(v, (tuple, list)):
                return type(v)(down(w) for w in v)
            if callable(v) and is_torch_native(v):
                return from_torch(v)
            return v

        def up(v):
            if isinstance(v, onp.ndarray) and v.dtype.kind in "fiub" or isinstance(v, numbers.Real) \
                    and not isinstance(v, bool):
                dt = like.dtype if like is not None else torch.float64
                dev = like.device if like is not None else "cpu"
                return torch.as_tensor(onp.asarray(v, dtype=onp.float64), dtype=dt, device=dev)
            if isinstance(v, (tuple, list)):
                return type(v)(up(w) for w in v)
            return v

        out = fn(*(down(a) for a in args), **{k: down(v) for k, v in kwargs.items()})
        return up(out)

    setattr(torch_fn, _JAX_NATIVE, False)
    return torch_native(torch_fn)


# ----------------------------------------------------------------------------- JAX


def _jax_dtype(dtype, jnp):
    if dtype is None:
        return None
    try:
        dt = jnp.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"dtype must be None, a str such as 'float32' or a JAX/NumPy floating dtype, got "
                        f"{dtype!r}") from err
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(f"dtype must be a floating dtype, got {dt}")
    return dt


def _is_tracer(jax, value):
    return isinstance(value, jax.core.Tracer)


def _jax_to_numpy(value, jax, jnp, wrapper):
    if isinstance(value, jax.Array):
        arr = onp.array(value)  # a copy: JAX buffers are immutable and may be reused
        if jnp.issubdtype(value.dtype, jnp.floating) and arr.dtype.name not in _NUMPY_FLOATS:
            mark_precision(wrapper, parse_precision(arr.dtype.name) if arr.dtype.name == "bfloat16"
                           else Precision(arr.dtype.name, float(jnp.finfo(value.dtype).eps)))
            arr = arr.astype(onp.float32)
        return arr
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_jax_to_numpy(v, jax, jnp, wrapper) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_jax_to_numpy(v, jax, jnp, wrapper) for v in value)
    if isinstance(value, dict):
        return {k: _jax_to_numpy(v, jax, jnp, wrapper) for k, v in value.items()}
    if callable(value) and is_jax_native(value):
        return from_jax(value)
    return value


def from_jax(fn, dtype="float64"):
    """Wrap a JAX callable so that it takes and returns NumPy arrays.

    Floating NumPy arrays become JAX arrays of ``dtype`` (Python floats such as a time
    ``t`` pass as they are: JAX treats them as weakly typed), integer arrays become
    integer JAX arrays, callables among the arguments (a velocity field handed to a
    solver) are wrapped with ``to_jax`` unless marked ``jax_native`` (as the checkers'
    own JAX test fields are), and JAX arrays in the result come back as NumPy arrays
    in their own precision (bfloat16 as float32, with its precision recorded).

    With ``dtype="float64"`` (the default) each call runs with 64-bit JAX enabled (JAX
    computes in float32 otherwise, whatever it is given): ``jax.enable_x64(True)`` in the
    calling thread, and the global flag for the duration of the call (callbacks into NumPy
    fields check their results in JAX's own threads); the setting is restored afterwards.

    Args:
        fn: a callable on JAX arrays (it may be jitted, or call ``jax.grad`` on a field).
        dtype: ``"float64"``, ``"float32"``, ``"float16"``, ``"bfloat16"`` or a JAX/NumPy dtype.

    Returns:
        a callable on NumPy arrays.
    """
    _check_fn(fn)
    jax, jnp = _jax()
    if dtype is None:
        raise TypeError("dtype must be a floating dtype such as 'float64' or 'float32', got None")
    dt = _jax_dtype(dtype, jnp)
    x64 = dt == jnp.dtype("float64")

    def convert(value):
        if isinstance(value, onp.ndarray):
            if onp.issubdtype(value.dtype, onp.floating):
                return jnp.asarray(value, dtype=dt)
            if onp.issubdtype(value.dtype, onp.integer) or value.dtype == bool:
                return jnp.asarray(value)
            return value
        if isinstance(value, onp.floating):
            return float(value)
        if isinstance(value, onp.integer) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return type(value)(*(convert(v) for v in value))
        if isinstance(value, (tuple, list)):
            return type(value)(convert(v) for v in value)
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if callable(value) and not isinstance(value, type) and not is_jax_native(value) \
                and not isinstance(value, onp.random.Generator):
            # the same NumPy callable becomes the same JAX callable, so jit caches keyed by it are reused
            key = id(value)
            if key not in wrapped or wrapped[key][0] is not value:
                wrapped[key] = (value, to_jax(value))
            return wrapped[key][1]
        return value

    wrapped = {}

    @functools.wraps(fn)
    def numpy_fn(*args, **kwargs):
        with _X64(jax) if x64 else _nullcontext():
            out = fn(*(convert(a) for a in args), **{k: convert(v) for k, v in kwargs.items()})
            return _jax_to_numpy(out, jax, jnp, numpy_fn)

    setattr(numpy_fn, _JAX_NATIVE, False)
    setattr(numpy_fn, _NATIVE, False)
    setattr(numpy_fn, "__reference_precision__", parse_precision(dt.name))
    numpy_fn.jax_dtype = dt
    return numpy_fn


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _X64:
    """64-bit JAX for the duration of a call: in this thread (``jax.enable_x64``) and in the threads that run
    ``pure_callback`` results back in (the global flag, restored on exit; JAX checks a callback's result dtype
    there)."""

    def __init__(self, jax):
        self.jax, self.local = jax, jax.enable_x64(True)

    def __enter__(self):
        self.before = bool(self.jax.config.values.get("jax_enable_x64", False)) if hasattr(
            self.jax.config, "values") else False
        self.jax.config.update("jax_enable_x64", True)
        self.local.__enter__()
        return self

    def __exit__(self, *exc):
        self.local.__exit__(*exc)
        self.jax.config.update("jax_enable_x64", self.before)
        return False


def to_jax(fn):
    """Wrap a NumPy callable so that a JAX caller can use it (JAX arrays in, JAX arrays out).

    JAX arrays become NumPy arrays (0-d ones become floats, so a solver's time ``t``
    arrives as a Python float), JAX callables among the arguments are wrapped with
    ``from_jax``, and arrays in the result become JAX arrays of the dtype of the first
    floating array argument. Inside ``jax.jit`` (or ``lax`` loops, diffrax) the call goes
    through ``jax.pure_callback``, whose result is declared to have the shape and dtype of
    the first array argument: that is what a velocity field ``u(x, t)`` returns. No
    gradient flows through the result.

    Args:
        fn: a callable on NumPy arrays.

    Returns:
        a callable on JAX arrays, marked ``jax_native``.
    """
    _check_fn(fn)
    jax, jnp = _jax()

    def down(v):
        if isinstance(v, (jax.Array, onp.ndarray)):
            arr = onp.asarray(v)
            if jnp.issubdtype(arr.dtype, jnp.floating) and arr.dtype.name not in _NUMPY_FLOATS:
                arr = arr.astype(onp.float32)
            return float(arr) if arr.ndim == 0 and arr.dtype.kind == "f" else arr
        if isinstance(v, (tuple, list)):
            return type(v)(down(w) for w in v)
        if callable(v) and is_jax_native(v):
            return from_jax(v)
        return v

    @functools.wraps(fn)
    def jax_fn(*args, **kwargs):
        arrays = [a for a in list(args) + list(kwargs.values()) if isinstance(a, jax.Array)]
        like = next((a for a in arrays if jnp.issubdtype(a.dtype, jnp.floating)), None)
        dt = like.dtype if like is not None else jnp.dtype("float64" if jax.config.jax_enable_x64 else "float32")
        if any(_is_tracer(jax, a) for a in arrays):
            if like is None:
                raise TypeError("to_jax: inside jit the callable needs a floating array argument (its result is "
                                "declared with that argument's shape and dtype)")
            shape = jax.ShapeDtypeStruct(like.shape, dt)

            def host(*a, **k):
                return onp.asarray(fn(*(down(w) for w in a), **{key: down(w) for key, w in k.items()}),
                                   dtype=onp.float32 if dt.name not in _NUMPY_FLOATS else dt)

            return jax.pure_callback(host, shape, *args, **kwargs)
        out = fn(*(down(a) for a in args), **{k: down(v) for k, v in kwargs.items()})

        def up(v):
            if isinstance(v, onp.ndarray) and v.dtype.kind in "fiu" or isinstance(v, numbers.Real) \
                    and not isinstance(v, bool):
                return jnp.asarray(onp.asarray(v, dtype=onp.float64), dtype=dt)
            if isinstance(v, (tuple, list)):
                return type(v)(up(w) for w in v)
            return v

        return up(out)

    setattr(jax_fn, _NATIVE, False)
    return jax_native(jax_fn)

"""A tiny multilayer perceptron and the time-conditioned velocity field  [lecture: RealNVP (s, t); Theorem 2 (v_theta)]

Parameters are a plain list of ``(W, b)`` pairs, one per layer, so that
``autograd.grad`` and ``autograd.misc.optimizers.adam`` take them unchanged. A layer
computes ``h @ W + b`` with ``W`` of shape ``(fan_in, fan_out)``. Initialisation is the
one PyTorch's ``nn.Linear`` uses (uniform in ``+-1/sqrt(fan_in)`` for weights and
biases), so that a network here and one there start from the same distribution.

This is the network a student reads and edits. The fast engine of the same network (one
autograd primitive for training, an evaluation-only pass and ``VelocityNetwork`` for
sampling) is ``reference.engines.mlp``, tested equal to ``velocity_apply``; under
``reference.readable()`` the trainers and samplers run ``velocity_apply`` itself.
"""

import numbers

import autograd.numpy as np
import numpy as onp
from autograd.extend import defjvp, defvjp, primitive
from autograd.tracer import getval
from scipy.special import expit

from ._validate import (
    MAX_COUNT,
    as_points,
    as_real_array,
    as_time,
    check_bool,
    check_count,
    check_rng,
    refuse_non_finite,
)

__all__ = [
    "sigmoid",
    "silu",
    "ACTIVATIONS",
    "mlp_init",
    "mlp_apply",
    "velocity_init",
    "velocity_apply",
    "mlp_flatten",
    "mlp_unflatten",
]


def sigmoid(h):
    """The logistic function  sigmoid(h) = 1 / (1 + exp(-h))  [lecture: Flow Matching In Practice, step 4]

    SciPy's ``expit``, which never overflows; its derivative, for autograd in both modes,
    is ``sigmoid'(h) = sigmoid(h) (1 - sigmoid(h))``.

    Args:
        h: an array of any shape (real, finite).

    Returns:
        an array like ``h``, in ``[0, 1]``.
    """
    return _sigmoid(as_real_array(h, "h"))


@primitive
def _sigmoid(h):
    return expit(h)


defvjp(_sigmoid, lambda s, h: lambda g: g * s * (1.0 - s))  # reverse mode: g sigmoid'(h)
defjvp(_sigmoid, lambda g, s, h: g * s * (1.0 - s))  # forward mode: sigmoid'(h) g


def silu(h):
    """SiLU (swish), the activation of v_theta  [lecture: Flow Matching In Practice, step 4]

        silu(h) = h * sigmoid(h) = h / (1 + exp(-h))

    Args:
        h: an array of any shape (real, finite).

    Returns:
        an array like ``h``; it never overflows (``silu(h) -> h`` for large ``h``, ``-> 0``
        for large negative ``h``).
    """
    return _silu(as_real_array(h, "h"))


def _silu(h):
    return h * _sigmoid(h)


def _relu(h):
    return np.maximum(h, 0.0)


_ACTIVATIONS = {"silu": _silu, "tanh": np.tanh, "relu": _relu}

ACTIVATIONS = tuple(_ACTIVATIONS)
"""The activations ``mlp_apply`` takes by name (it takes a callable too)."""


def _activation(activation):
    if isinstance(activation, str) and activation in _ACTIVATIONS:
        return _ACTIVATIONS[activation]
    if callable(activation) and not isinstance(activation, str):
        return _checked_activation(activation)
    raise ValueError(f"activation must be one of {list(ACTIVATIONS)} or a callable, got {activation!r}")


def _checked_activation(sigma):
    """A user's activation, its output checked: an array of its input's shape, real."""
    def checked(a):
        out = sigma(a)
        value = getval(out)
        if not isinstance(value, onp.ndarray) or value.shape != onp.shape(getval(a)) or value.dtype.kind not in "iuf":
            raise TypeError(f"activation(a) must return a real array of a's shape {onp.shape(getval(a))}, got "
                            f"{type(value).__name__}" + (f" of shape {value.shape} and dtype {value.dtype}"
                                                         if isinstance(value, onp.ndarray) else ""))
        return out
    return checked


def _check_widths(sizes, name, minimum_length):
    """``sizes`` as a tuple of integers >= 1 (at least ``minimum_length`` of them)."""
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of layer widths (integers >= 1), e.g. (64, 64), got {sizes!r}")
    for k, w in enumerate(sizes):
        if isinstance(w, bool) or not isinstance(w, numbers.Integral):
            raise TypeError(f"{name}[{k}] must be an integer >= 1 (a layer width), got {w!r}")
        if w < 1:
            raise ValueError(f"{name}[{k}] must be an integer >= 1 (a layer width), got {w}")
        if w > MAX_COUNT:
            raise ValueError(f"{name}[{k}] must be an integer from 1 to {MAX_COUNT} (a layer width), got {w}")
    if len(sizes) < minimum_length:
        raise ValueError(f"{name} must hold at least an input and an output width, got {tuple(sizes)}")
    return tuple(int(w) for w in sizes)


def _check_mlp(params, name="params", d_in=None, d_out=None, what=None):
    """Check an MLP's parameters ``[(W, b), ...]``; return its ``(d_in, d_out)``.

    Every ``W`` is a real finite ``(fan_in, fan_out)`` array, every ``b`` a real finite
    ``(fan_out,)`` one, and consecutive layers chain. Autograd boxes are checked through.
    """
    raw = getval(params)
    layout = "a non-empty list of (W, b) pairs as made by " + (what or "reference.nn.mlp_init")
    if not isinstance(raw, (list, tuple)) or not raw:
        raise TypeError(f"{name} must be {layout}, got {type(raw).__name__}")
    fan_in = None
    for k, layer in enumerate(raw):
        layer_raw = getval(layer)
        if not isinstance(layer_raw, (list, tuple)) or len(layer_raw) != 2:
            raise TypeError(f"{name}[{k}] must be a pair (W, b), got {type(layer_raw).__name__}"
                            + (f" of length {len(layer_raw)}" if isinstance(layer_raw, (list, tuple)) else ""))
        W = as_real_array(layer[0], f"{name}[{k}][0] (W)", ndim=2)
        b = as_real_array(layer[1], f"{name}[{k}][1] (b)", ndim=1)
        shape_W, shape_b = onp.shape(getval(W)), onp.shape(getval(b))
        if shape_W[1] != shape_b[0] or 0 in shape_W:
            raise ValueError(f"{name}[{k}] must hold W of shape (fan_in, fan_out) and b of shape (fan_out,), "
                             f"got {shape_W} and {shape_b}")
        if fan_in is not None and shape_W[0] != fan_in:
            raise ValueError(f"{name}[{k}][0] (W) must have {fan_in} rows (the previous layer's width), got shape {shape_W}")
        if k == 0:
            first_in = shape_W[0]
        fan_in = shape_W[1]
    if d_in is not None and first_in != d_in or d_out is not None and fan_in != d_out:
        raise ValueError(f"{name} map R^{first_in} -> R^{fan_in}, expected R^{d_in} -> R^{d_out}")
    return first_in, fan_in


def mlp_init(sizes, rng, zero_last=False):
    """Initialise an MLP with layer widths ``sizes = (d_in, h_1, ..., d_out)``  [lecture: RealNVP (s, t); Theorem 2 (v_theta)]

        W_k, b_k ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))   (PyTorch's nn.Linear default)

    Args:
        sizes: at least two positive integers.
        rng: ``numpy.random.Generator``.
        zero_last: start the last layer at zero, so the network outputs 0 (the identity
            map for a coupling layer's ``s`` and ``t``).

    Returns:
        ``[(W_1, b_1), ..., (W_L, b_L)]`` with ``W_k`` of shape ``(sizes[k-1], sizes[k])``.
    """
    rng = check_rng(rng)
    sizes = _check_widths(sizes, "sizes", 2)
    zero_last = check_bool(zero_last, "zero_last")
    params = []
    for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = 1.0 / onp.sqrt(fan_in)
        W = rng.uniform(-bound, bound, (fan_in, fan_out))
        b = rng.uniform(-bound, bound, fan_out)
        if zero_last and k == len(sizes) - 2:
            W, b = onp.zeros_like(W), onp.zeros_like(b)
        params.append((W, b))
    return params


def mlp_apply(params, h, activation="silu"):
    """MLP  h -> sigma(... sigma(h W_1 + b_1) ...) W_L + b_L  [lecture: RealNVP (s, t); Theorem 2 (v_theta)]

    No activation on the output layer.

    Args:
        params: as returned by ``mlp_init``.
        h: inputs, shape ``(n, d_in)``.
        activation: ``"silu"``, ``"tanh"`` or ``"relu"``, or a callable.

    Returns:
        shape ``(n, d_out)``.
    """
    sigma = _activation(activation)
    d_in, _ = _check_mlp(params)
    h = as_points(h, "h")
    if np.shape(h)[1] != d_in:
        raise ValueError(f"h must have shape (n, {d_in}) for this network (params), got {np.shape(h)}")
    with onp.errstate(over="ignore", invalid="ignore"):
        out = _mlp_apply(params, h, sigma)
    return refuse_non_finite(out, "the network's output", large={"h": h, "params": lambda: _leaves(params)})


def _leaves(params):
    """Every weight of an MLP in one flat array (for error messages)."""
    return onp.concatenate([onp.ravel(getval(a)) for layer in params for a in layer])


def _mlp_apply(params, h, sigma):
    """``mlp_apply`` without checks (``sigma`` the activation function), for callers that checked."""
    for W, b in params[:-1]:
        h = sigma(h @ W + b)
    W, b = params[-1]
    return h @ W + b


def velocity_init(d, hidden=(64, 64, 64), rng=None):
    """Initialise v_theta(x, t): an MLP from [x, t] (d + 1 inputs) to d outputs  [lecture: Flow Matching In Practice, step 4]

    Args:
        d: the dimension of ``x``.
        hidden: the hidden widths.
        rng: ``numpy.random.Generator``.
    """
    d = check_count(d, "d")
    hidden = _check_widths(hidden, "hidden", 0)
    return mlp_init((d + 1, *hidden, d), rng)


def velocity_apply(params, x, t, activation="silu"):
    """Learned velocity field  v_theta(x, t) = MLP([x, t])  [lecture: Theorem 2; Flow Matching In Practice, step 4]

    Args:
        params: as returned by ``velocity_init``.
        x: points, shape ``(n, d)``.
        t: a float or an array of shape ``(n,)``; any real time (the network is defined
            for every t; the solvers call it wherever they integrate).
        activation: as for ``mlp_apply``.

    Returns:
        shape ``(n, d)``.
    """
    sigma = _activation(activation)
    d_in, d_out = _check_mlp(params, what="reference.nn.velocity_init")
    if d_in != d_out + 1:
        raise ValueError(f"params must map [x, t] (d + 1 inputs) to d outputs, got R^{d_in} -> R^{d_out}")
    x = as_points(x)
    if np.shape(x)[1] != d_out:
        raise ValueError(f"x must have dimension d = {d_out} for these params (they map [x, t] in R^{d_in} to R^{d_out}), "
                         f"got shape {np.shape(x)}")
    n = np.shape(x)[0]
    t = as_time(t, n, like="x")
    with onp.errstate(over="ignore", invalid="ignore"):
        v = _velocity_apply(params, x, t, sigma)
    return refuse_non_finite(v, "v_theta(x, t)", large={"x": x, "params": lambda: _leaves(params)})


def _velocity_apply(params, x, t, sigma=_silu):
    """``velocity_apply`` without checks, for callers that checked (``sigma`` the activation function)."""
    n = np.shape(x)[0]
    t_col = np.ones((n, 1)) * np.reshape(t, (-1, 1))  # (n, 1), whether t is a float or (n,)
    return _mlp_apply(params, np.concatenate([x, t_col], axis=1), sigma)


def mlp_flatten(params):
    """Flatten the MLP's parameters into one vector  theta = (W_1, b_1, ..., W_L, b_L)  [lecture: Theorem 2 (theta)]

    Returns ``(theta, sizes)``.

    ``theta`` holds, layer after layer, ``W_k`` (row-major) then ``b_k``;
    ``sizes = (d_in, h_1, ..., d_out)`` is all ``mlp_unflatten`` needs to undo it.
    """
    _check_mlp(params)
    params = [(onp.asarray(getval(W), dtype=onp.float64), onp.asarray(getval(b), dtype=onp.float64)) for W, b in params]
    sizes = (params[0][0].shape[0],) + tuple(b.shape[0] for _, b in params)
    theta = onp.concatenate([onp.concatenate([onp.ravel(W), b]) for W, b in params])
    return theta, sizes


def _check_flat(theta, sizes):
    """Check flat parameters against their layer widths; return ``sizes`` as a tuple."""
    sizes = _check_widths(sizes, "sizes", 2)
    theta = as_real_array(theta, "theta", ndim=1, what="a 1-D array (flat parameters, see mlp_flatten)")
    expected = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    if np.shape(theta)[0] != expected:
        raise ValueError(f"theta must have {expected} entries for sizes {sizes}, got {np.shape(theta)[0]}: "
                         f"theta and sizes do not belong together")
    return theta, sizes


def mlp_unflatten(theta, sizes):
    """The layers [(W_k, b_k)] viewing theta, the inverse of ``mlp_flatten``  [lecture: Theorem 2 (theta)]

    No copy: writing into ``theta`` updates them.

    Args:
        theta: flat parameters, a 1-D array (see ``mlp_flatten``).
        sizes: ``(d_in, h_1, ..., d_out)``, as ``mlp_flatten`` returns them.
    """
    theta, sizes = _check_flat(theta, sizes)
    return _mlp_unflatten(theta, sizes)


def _mlp_unflatten(theta, sizes):
    params, i = [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        W = theta[i : i + fan_in * fan_out].reshape(fan_in, fan_out)
        i += fan_in * fan_out
        params.append((W, theta[i : i + fan_out]))
        i += fan_out
    if i != onp.shape(theta)[0]:
        raise ValueError(f"theta must have {i} entries for sizes {tuple(sizes)}, got {onp.shape(theta)[0]}")
    return params

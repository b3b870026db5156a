"""A tiny multilayer perceptron and the time-conditioned velocity field  [lecture: RealNVP (s, t); Theorem 2 (v_theta)]

Parameters are a plain list of ``(W, b)`` pairs, one per layer, so that
``autograd.grad`` and ``autograd.misc.optimizers.adam`` take them unchanged. A layer
computes ``h @ W + b`` with ``W`` of shape ``(fan_in, fan_out)``. Initialisation is the
one PyTorch's ``nn.Linear`` uses (uniform in ``+-1/sqrt(fan_in)`` for weights and
biases), so that a network here and one there start from the same distribution.
"""

import autograd.numpy as np
import numpy as onp

from ._validate import as_points, as_time, check_positive_int, check_rng

__all__ = [
    "silu",
    "ACTIVATIONS",
    "mlp_init",
    "mlp_apply",
    "velocity_init",
    "velocity_apply",
]


def silu(h):
    """SiLU (swish)  silu(h) = h * sigmoid(h) = h / (1 + exp(-h))."""
    return h * np.exp(-np.logaddexp(0.0, -h))  # sigmoid(h) = exp(-log(1 + e^-h)): no overflow


def _relu(h):
    return np.maximum(h, 0.0)


ACTIVATIONS = {"silu": silu, "tanh": np.tanh, "relu": _relu}


def _activation(activation):
    if isinstance(activation, str) and activation in ACTIVATIONS:
        return ACTIVATIONS[activation]
    if callable(activation):
        return activation
    raise ValueError(f"activation must be one of {list(ACTIVATIONS)} or a callable, got {activation!r}")


def mlp_init(sizes, rng, zero_last=False):
    """Initialise an MLP with layer widths ``sizes = (d_in, h_1, ..., d_out)``.

    Args:
        sizes: at least two positive integers.
        rng: ``numpy.random.Generator``.
        zero_last: start the last layer at zero, so the network outputs 0 (the identity
            map for a coupling layer's ``s`` and ``t``).

    Returns:
        ``[(W_1, b_1), ..., (W_L, b_L)]`` with ``W_k`` of shape ``(sizes[k-1], sizes[k])``.
    """
    rng = check_rng(rng)
    sizes = tuple(sizes)
    if len(sizes) < 2:
        raise ValueError(f"sizes must hold at least an input and an output width, got {sizes}")
    sizes = tuple(check_positive_int(s, "sizes[...]") for s in sizes)
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
    """MLP  h -> W_L^T sigma(... sigma(W_1^T h + b_1) ...) + b_L  (no activation on the output).

    Args:
        params: as returned by ``mlp_init``.
        h: inputs, shape ``(n, d_in)``.
        activation: ``"silu"``, ``"tanh"`` or ``"relu"``, or a callable.

    Returns:
        shape ``(n, d_out)``.
    """
    sigma = _activation(activation)
    d_in = params[0][0].shape[0]
    if np.ndim(h) != 2 or np.shape(h)[1] != d_in:
        raise ValueError(f"h must have shape (n, {d_in}) for this network, got {np.shape(h)}")
    for W, b in params[:-1]:
        h = sigma(h @ W + b)
    W, b = params[-1]
    return h @ W + b


def velocity_init(d, hidden=(64, 64, 64), rng=None):
    """Initialise ``v_theta(x, t)``: an MLP from ``[x, t]`` (``d + 1`` inputs) to ``d`` outputs.

    Args:
        d: the dimension of ``x``.
        hidden: the hidden widths.
        rng: ``numpy.random.Generator``.
    """
    d = check_positive_int(d, "d")
    return mlp_init((d + 1, *hidden, d), rng)


def velocity_apply(params, x, t, activation="silu"):
    """Learned velocity field  v_theta(x, t) = MLP([x, t])  [lecture: Theorem 2; Flow Matching In Practice, step 4]

    Args:
        params: as returned by ``velocity_init``.
        x: points, shape ``(n, d)``.
        t: a float or an array of shape ``(n,)``.

    Returns:
        shape ``(n, d)``.
    """
    x = as_points(x)
    n = x.shape[0]
    t = as_time(t, n)
    t_col = np.ones((n, 1)) * np.reshape(t, (-1, 1))  # (n, 1), whether t is a float or (n,)
    return mlp_apply(params, np.concatenate([x, t_col], axis=1), activation)

"""A tiny multilayer perceptron and the time-conditioned velocity field  [lecture: RealNVP (s, t); Theorem 2 (v_theta)]

Parameters are a plain list of ``(W, b)`` pairs, one per layer, so that
``autograd.grad`` and ``autograd.misc.optimizers.adam`` take them unchanged. A layer
computes ``h @ W + b`` with ``W`` of shape ``(fan_in, fan_out)``. Initialisation is the
one PyTorch's ``nn.Linear`` uses (uniform in ``+-1/sqrt(fan_in)`` for weights and
biases), so that a network here and one there start from the same distribution.
"""

import threading

import autograd.numpy as np
import numpy as onp
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

from ._parallel import parallel_map
from .autodiff import value_and_divergence
from ._validate import as_points, as_time, check_positive_int, check_rng

__all__ = [
    "silu",
    "ACTIVATIONS",
    "mlp_init",
    "mlp_apply",
    "velocity_init",
    "velocity_apply",
    "mlp_flatten",
    "mlp_unflatten",
    "mlp_apply_flat",
    "mlp_forward_flat",
    "velocity_and_divergence_flat",
    "VelocityNetwork",
]


def silu(h):
    """SiLU (swish), the activation of v_theta  [lecture: Flow Matching In Practice, step 4]

        silu(h) = h * sigmoid(h) = h / (1 + exp(-h))
    """
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
    d_in = params[0][0].shape[0]
    if np.ndim(h) != 2 or np.shape(h)[1] != d_in:
        raise ValueError(f"h must have shape (n, {d_in}) for this network, got {np.shape(h)}")
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
    d = check_positive_int(d, "d")
    if not isinstance(hidden, (tuple, list)):
        raise TypeError(f"hidden must be a tuple of hidden widths, e.g. (64, 64, 64), got {hidden!r}")
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


# --------------------------------------------------------------------------------------
# The same SiLU MLP as one autograd primitive, for speed.
#
# ``mlp_apply`` above is the reference: autograd traces each of its operations (dozens
# of graph nodes per call). Below, the whole forward pass is a single primitive whose
# backward pass is written out next to it, on parameters flattened into one vector
# ``theta`` (so an optimizer works on one array). It computes the same function and the
# same gradients (tests check both against ``mlp_apply`` and with ``check_grads``).
#
# SiLU's derivative is written with s = sigmoid(a) and h = a s:
#     silu'(a) = s + a s (1 - s) = s + h (1 - s),
# so the forward pass keeps s and h of every hidden layer (its "trace") and the
# backward pass needs nothing else.
# --------------------------------------------------------------------------------------



def mlp_flatten(params):
    """Flatten the MLP's parameters into one vector  theta = (W_1, b_1, ..., W_L, b_L)  [lecture: Theorem 2 (theta)]

    Returns ``(theta, sizes)``.

    ``theta`` holds, layer after layer, ``W_k`` (row-major) then ``b_k``;
    ``sizes = (d_in, h_1, ..., d_out)`` is all ``mlp_unflatten`` needs to undo it.
    """
    sizes = (params[0][0].shape[0],) + tuple(b.shape[0] for _, b in params)
    theta = onp.concatenate([onp.concatenate([onp.ravel(W), b]) for W, b in params])
    return theta, sizes


def mlp_unflatten(theta, sizes):
    """The layers [(W_k, b_k)] viewing theta, the inverse of ``mlp_flatten``  [lecture: Theorem 2 (theta)]

    No copy: writing into ``theta`` updates them.
    """
    params, i = [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        W = theta[i : i + fan_in * fan_out].reshape(fan_in, fan_out)
        i += fan_in * fan_out
        params.append((W, theta[i : i + fan_out]))
        i += fan_out
    if i != onp.shape(theta)[0]:
        raise ValueError(f"theta must have {i} entries for sizes {tuple(sizes)}, got {onp.shape(theta)[0]}")
    return params


def _trace_layout(n, sizes):
    """Where each array of the trace lives in one flat buffer: (S_k, H_k) per hidden layer, then the output."""
    spans, offset = [], 0
    for w in sizes[1:-1]:
        spans.append(((offset, (n, w)), (offset + n * w, (n, w))))
        offset += 2 * n * w
    return spans, (offset, (n, sizes[-1])), offset + n * sizes[-1]


def _view(buffer, span):
    offset, shape = span
    return buffer[offset : offset + shape[0] * shape[1]].reshape(shape)


def _buffer(workspace, key, size):
    """A float64 buffer of ``size`` entries, reused from ``workspace`` (a dict) when one is given."""
    if workspace is None:
        return onp.empty(size)
    buf = workspace.get(key)
    if buf is None or buf.shape[0] != size:
        buf = workspace[key] = onp.empty(size)
    return buf


@primitive
def mlp_apply_flat(theta, h, sizes, workspace=None):
    """SiLU MLP on flat parameters as one autograd primitive, the same map as ``mlp_apply``  [lecture: Theorem 2 (v_theta)]

        h_k = silu(h_{k-1} W_k + b_k),   out = h_{L-1} W_L + b_L

    Args:
        theta: flat parameters (see ``mlp_flatten``).
        h: inputs, shape ``(n, sizes[0])``.
        sizes: ``(d_in, h_1, ..., d_out)``.
        workspace: optional dict of buffers reused across calls (then the result, a view
            into the workspace, is only valid until the next call with it, and taking the
            gradient of a call after another call with the same workspace raises).

    Returns:
        shape ``(n, d_out)``; a view into the buffer holding the forward trace, which is
        what the backward pass reads.
    """
    n = h.shape[0]
    spans, out_span, size = _trace_layout(n, sizes)
    trace = _buffer(workspace, ("trace", n), size)
    if workspace is not None:  # count the calls, so a gradient can tell that its trace was overwritten
        workspace["calls"] = workspace.get("calls", 0) + 1
    layers = mlp_unflatten(theta, sizes)
    with onp.errstate(over="ignore"):  # exp(-a) = inf for a < -709 gives sigmoid 0, as it should
        for (W, b), (s_span, h_span) in zip(layers[:-1], spans):
            s, a = _view(trace, s_span), _view(trace, h_span)
            onp.matmul(h, W, out=a)
            a += b                                  # a = h W + b
            onp.negative(a, out=s)
            onp.exp(s, out=s)
            s += 1.0
            onp.reciprocal(s, out=s)                # s = sigmoid(a) = 1 / (1 + e^-a)
            a *= s                                  # h = silu(a) = a s  (in place of a)
            h = a
    W, b = layers[-1]
    out = _view(trace, out_span)
    onp.matmul(h, W, out=out)
    out += b
    return out


def mlp_forward_flat(theta, h, sizes, workspace=None):
    """SiLU MLP on flat parameters, for evaluation only (no gradient)  [lecture: Flow Matching In Practice, step 5]

        h_k = silu(h_{k-1} W_k + b_k) = a_k / (1 + exp(-a_k)),   out = h_{L-1} W_L + b_L

    The same map as ``mlp_apply``.

    Each hidden layer is ``a = h W + b`` then ``silu(a) = a / (1 + exp(-a))``, computed in
    place in two buffers reused from ``workspace``: four passes over the layer instead of
    the five of ``mlp_apply_flat``, which must also keep ``sigmoid(a)`` for its backward pass.

    Args:
        theta, sizes: flat parameters and layer widths (``mlp_flatten``).
        h: inputs, shape ``(n, sizes[0])``.
        workspace: optional dict of buffers reused across calls.

    Returns:
        shape ``(n, d_out)``, a new array.
    """
    n = h.shape[0]
    layers = mlp_unflatten(theta, sizes)
    size = n * max(sizes[1:-1], default=1)
    buffers = [_buffer(workspace, ("forward", n, i), size) for i in (0, 1)]
    with onp.errstate(over="ignore"):  # exp(-a) = inf for a < -709: silu(a) = a / inf = -0, as it should
        for k, (W, b) in enumerate(layers[:-1]):
            width = W.shape[1]
            a = buffers[k % 2][: n * width].reshape(n, width)
            e = buffers[(k + 1) % 2][: n * width].reshape(n, width)  # free once h W is computed
            onp.matmul(h, W, out=a)
            a += b                   # a = h W + b
            onp.negative(a, out=e)
            onp.exp(e, out=e)
            e += 1.0                 # 1 + e^-a
            a /= e                   # silu(a) = a / (1 + e^-a)
            h = a
    W, b = layers[-1]
    return h @ W + b


def _mlp_apply_flat_vjp(argnum):
    def make_vjp(out, theta, h, sizes, workspace=None):
        n = h.shape[0]
        spans, _, size = _trace_layout(n, sizes)
        trace = out.base
        if trace is None or trace.shape != (size,):
            raise RuntimeError("mlp_apply_flat's output must be the view into its trace it returned")
        calls = None if workspace is None else workspace["calls"]
        layers = mlp_unflatten(theta, sizes)
        inputs = [h] + [_view(trace, h_span) for _, h_span in spans]  # the input of each layer

        def vjp(g):
            if workspace is not None and workspace["calls"] != calls:
                raise RuntimeError(
                    "mlp_apply_flat: the workspace was used by another call before this call's gradient "
                    "was taken, which overwrote the trace it needs; give each call its own workspace"
                )
            grads = [None] * len(layers)
            delta = g  # d loss / d (pre-activation) of the current layer
            for k in range(len(layers) - 1, -1, -1):
                W, _ = layers[k]
                if argnum == 0:
                    grads[k] = (inputs[k].T @ delta, delta.sum(axis=0))  # dW = h^T delta, db = 1^T delta
                if k == 0:
                    break
                s, h_k = (_view(trace, span) for span in spans[k - 1])
                delta = (delta @ W.T) * (s + h_k * (1.0 - s))  # back through silu: silu'(a) = s + h (1 - s)
            if argnum == 1:
                return delta @ layers[0][0].T
            return onp.concatenate([onp.concatenate([onp.ravel(gW), gb]) for gW, gb in grads])
        return vjp
    return make_vjp


defvjp(mlp_apply_flat, _mlp_apply_flat_vjp(0), _mlp_apply_flat_vjp(1))


def velocity_and_divergence_flat(theta, sizes, x, t):
    """v_theta(x, t) and its exact divergence by forward mode  [lecture: CNF Pros (trace of the Jacobian)]

        div v = sum_i d v_i / d x_i = sum_i (J e_i)_i

    The ``d`` directional derivatives ``J e_i`` are pushed through the network alongside
    the forward pass (forward-mode differentiation written out): with ``a_k`` the
    pre-activation of layer ``k`` and a dot for the derivative along ``e_i``,

        a_1' = e_i W_1 (row i of W_1),   h_k' = silu'(a_k) * a_k',   a_{k+1}' = h_k' W_{k+1},

    and ``J e_i = h_{L-1}' W_L``. This costs about ``d + 1`` forward passes, against
    ``d`` backward passes for ``autodiff.divergence``; both give the same numbers.

    Args:
        theta, sizes: the flat parameters of a ``velocity_init`` network (``mlp_flatten``).
        x: points, shape ``(n, d)``.
        t: a float or an array of shape ``(n,)``.

    Returns:
        ``(v, div)``: shapes ``(n, d)`` and ``(n,)``.
    """
    x = as_points(x, allow_traced=False)
    n, d = x.shape
    t = as_time(t, n)
    if sizes[0] != d + 1 or sizes[-1] != d:
        raise ValueError(f"sizes {tuple(sizes)} are not those of a velocity field on d = {d}")
    layers = mlp_unflatten(theta, sizes)
    h = onp.empty((n, d + 1))
    h[:, :d] = x
    h[:, d] = t
    W, b = layers[0]
    a = h @ W + b
    da = onp.broadcast_to(W[:d, None, :], (d, n, W.shape[1]))  # a_1' for each e_i, (d, n, h_1)
    with onp.errstate(over="ignore"):
        for W, b in layers[1:]:
            s = 1.0 / (1.0 + onp.exp(-a))  # sigmoid(a)
            h = a * s  # silu(a)
            dh = (s + h * (1.0 - s)) * da  # silu'(a) a'
            a = h @ W + b
            da = dh @ W
    return a, sum(da[i, :, i] for i in range(d))  # the output's a_L is v, its a_L' is J e_i


class VelocityNetwork:
    """The learned field  u(x, t) = v_theta(x, t)  as a callable, evaluated by the fast forward pass  [lecture: Flow Matching In Practice, step 5]

    Calling it computes ``velocity_apply(params, x, t)`` (the same numbers, to rounding)
    with ``mlp_forward_flat`` and buffers reused between calls, which is what an ODE
    solver needs: thousands of evaluations of the same network on same-sized batches. A
    batch of more than ``BLOCK_ROWS`` points is cut into an even number of equal blocks,
    evaluated on two threads (``_parallel``). When ``x`` or ``t`` is being differentiated (an autograd
    box), it evaluates the readable ``velocity_apply`` instead, so derivatives of any
    order stay available.

    ``velocity_and_divergence(x, t)`` also returns the exact divergence (forward mode,
    ``velocity_and_divergence_flat``), which ``cnf`` uses when a field offers it.

    Each thread that calls it gets its own buffers, so one instance may be shared.

    Args:
        params: parameters of ``velocity_init`` (copied: later changes to them are not seen).
    """

    BLOCK_ROWS = 4096
    """Rows per block: a block's layer buffers (about 2 MB) stay in cache; two or more blocks run on two threads."""

    def __init__(self, params):
        self.params = [(onp.array(W, dtype=onp.float64), onp.array(b, dtype=onp.float64)) for W, b in params]
        self.theta, self.sizes = mlp_flatten(self.params)
        self.d = self.sizes[-1]
        if self.sizes[0] != self.d + 1:
            raise ValueError(f"params must map [x, t] (d + 1 inputs) to d outputs, got sizes {self.sizes}")
        self._local = threading.local()  # one workspace per thread

    def _forward(self, x, t, rows):
        workspace = self._local.__dict__.setdefault("workspace", {})
        n = rows.stop - rows.start
        h = _buffer(workspace, ("input", n), n * (self.d + 1)).reshape(n, self.d + 1)
        h[:, : self.d] = x[rows]
        h[:, self.d] = t if onp.ndim(t) == 0 else t[rows]
        return mlp_forward_flat(self.theta, h, self.sizes, workspace)

    def __call__(self, x, t):
        if getval(x) is not x or getval(t) is not t:
            return velocity_apply(self.params, x, t)
        x = as_points(x, d=self.d)
        n = x.shape[0]
        t = as_time(t, n)
        n_blocks = -(-n // self.BLOCK_ROWS)
        if n_blocks == 1:
            return self._forward(x, t, slice(0, n))
        n_blocks += n_blocks % 2  # an even number of equal blocks keeps both threads busy
        edges = [n * i // n_blocks for i in range(n_blocks + 1)]
        blocks = [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
        return onp.concatenate(parallel_map(lambda rows: self._forward(x, t, rows), blocks))

    def velocity_and_divergence(self, x, t):
        """``(v_theta(x, t), div_x v_theta(x, t))``, shapes ``(n, d)`` and ``(n,)``.

        Forward mode through the network; when ``x`` or ``t`` is being differentiated, the
        readable network's trace by ``autodiff.value_and_divergence`` instead.
        """
        if getval(x) is not x or getval(t) is not t:
            return value_and_divergence(lambda y, s: velocity_apply(self.params, y, s), x, t)
        return velocity_and_divergence_flat(self.theta, self.sizes, x, t)

    def __repr__(self):
        return f"VelocityNetwork(sizes={self.sizes})"

"""The fast engine of the velocity network v_theta(x, t): the SiLU MLP of ``reference.nn``, written for speed  [lecture: Theorem 2 (v_theta); Flow Matching In Practice, steps 4-5]

``nn.mlp_apply`` and ``nn.velocity_apply`` are the reference: autograd traces each of
their operations. Here the same network (SiLU hidden layers, on parameters flattened into
one vector ``theta`` by ``nn.mlp_flatten``) is

- ``mlp_apply_flat``: one autograd primitive whose backward pass is written out next to
  its forward pass (the training step differentiates it);
- ``mlp_forward_flat``: an evaluation-only forward pass in reused buffers (sampling);
- ``velocity_and_divergence_flat``: the field and its exact divergence by forward mode
  (the CNF likelihood);
- ``VelocityNetwork``: the learned field as a callable for the ODE solvers, on blocks of
  the batch evaluated on two threads.

Each hidden layer's bias and SiLU are one compiled pass on a vectorised exp
(``_kernels``: NumPy's own exp is a scalar loop on CPUs without AVX-512), or NumPy's
passes where numba is not available.

Each computes the same numbers as the readable network to float64 rounding, and the
same gradients (``tests/test_engines.py``; ``check_grads`` for the backward pass).
"""

import threading

import numpy as onp
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

from .._validate import as_points, as_time, refuse_non_finite
from ..autodiff import value_and_divergence
from ..nn import _check_flat, _check_mlp, _mlp_unflatten, mlp_flatten, velocity_apply
from ._kernels import _bias_sigmoid_silu, _bias_silu
from .parallel import blas_single_threaded, parallel_map

__all__ = ["mlp_apply_flat", "mlp_forward_flat", "velocity_and_divergence_flat", "VelocityNetwork"]


# SiLU's derivative is written with s = sigmoid(a) and h = a s:
#     silu'(a) = s + a s (1 - s) = s + h (1 - s),
# so the forward pass keeps s and h of every hidden layer (its "trace") and the
# backward pass needs nothing else.


def _check_workspace(workspace):
    if workspace is not None and not isinstance(workspace, dict):
        raise TypeError(f"workspace must be None or a dict (of reused buffers), got {type(workspace).__name__}")


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


def mlp_apply_flat(theta, h, sizes, workspace=None):
    """SiLU MLP on flat parameters as one autograd primitive, the same map as ``mlp_apply``  [lecture: Theorem 2 (v_theta)]

        h_k = silu(h_{k-1} W_k + b_k),   out = h_{L-1} W_L + b_L

    Differentiable in ``theta`` and ``h`` (the backward pass is written out below).

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
    theta, sizes = _check_flat(theta, sizes)
    h = as_points(h, "h", d=sizes[0])
    _check_workspace(workspace)
    with onp.errstate(over="ignore", invalid="ignore"):
        out = _mlp_apply_flat(theta, h, sizes, workspace)
    return refuse_non_finite(out, "the network's output", large={"h": h, "theta": theta})


@primitive
def _mlp_apply_flat(theta, h, sizes, workspace=None):
    """``mlp_apply_flat`` without checks: the primitive itself, for the training step."""
    n = h.shape[0]
    spans, out_span, size = _trace_layout(n, sizes)
    trace = _buffer(workspace, ("trace", n), size)
    if workspace is not None:  # count the calls, so a gradient can tell that its trace was overwritten
        workspace["calls"] = workspace.get("calls", 0) + 1
    layers = _mlp_unflatten(theta, sizes)
    with onp.errstate(over="ignore"):  # exp(-a) = inf for a < -709 gives sigmoid 0, as it should
        for (W, b), (s_span, h_span) in zip(layers[:-1], spans):
            s, a = _view(trace, s_span), _view(trace, h_span)
            onp.matmul(h, W, out=a)
            _bias_sigmoid_silu(a, b, s)             # a = h W + b, s = sigmoid(a), h = silu(a) = a s in place of a
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
    place in buffers reused from ``workspace``: the product by BLAS, the bias and the SiLU
    in one compiled pass (``_kernels``; NumPy's passes without numba). ``mlp_apply_flat``
    also keeps ``sigmoid(a)`` for its backward pass.

    Args:
        theta, sizes: flat parameters and layer widths (``mlp_flatten``).
        h: inputs, shape ``(n, sizes[0])``.
        workspace: optional dict of buffers reused across calls.

    Returns:
        shape ``(n, d_out)``, a new array.
    """
    theta, sizes = _check_flat(theta, sizes)
    h = as_points(h, "h", d=sizes[0], allow_traced=False)
    if getval(theta) is not theta:
        raise TypeError("theta cannot be differentiated through mlp_forward_flat (use mlp_apply_flat)")
    _check_workspace(workspace)
    with onp.errstate(over="ignore", invalid="ignore"):
        out = _mlp_forward_flat(theta, h, sizes, workspace)
    return refuse_non_finite(out, "the network's output", large={"h": h, "theta": theta})


def _mlp_forward_flat(theta, h, sizes, workspace=None):
    """``mlp_forward_flat`` without checks, for ``VelocityNetwork``."""
    n = h.shape[0]
    layers = _mlp_unflatten(theta, sizes)
    size = n * max(sizes[1:-1], default=1)
    buffers = [_buffer(workspace, ("forward", n, i), size) for i in (0, 1)]
    with onp.errstate(over="ignore"):  # exp(-a) = inf for a < -709: silu(a) = a / inf = -0, as it should
        for k, (W, b) in enumerate(layers[:-1]):
            width = W.shape[1]
            a = buffers[k % 2][: n * width].reshape(n, width)
            e = buffers[(k + 1) % 2][: n * width].reshape(n, width)  # free once h W is computed
            onp.matmul(h, W, out=a)
            _bias_silu(a, b, e)      # a = h W + b, then silu(a) = a / (1 + e^-a), in place
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
        layers = _mlp_unflatten(theta, sizes)
        inputs = [h] + [_view(trace, h_span) for _, h_span in spans]  # the input of each layer

        def vjp(g):
            if workspace is not None and workspace["calls"] != calls:
                raise RuntimeError(
                    "mlp_apply_flat: the workspace was used by another call before this call's gradient "
                    "was taken, which overwrote the trace it needs; give each call its own workspace"
                )
            # every (n, width) intermediate lives in the workspace: a batch of 256 x 64 float64 is
            # glibc's mmap threshold, and fresh arrays of that size are page-faulted at every step
            flat = onp.empty(onp.shape(theta)[0]) if argnum == 0 else None  # the result: a new array
            grads = _mlp_unflatten(flat, sizes) if argnum == 0 else None
            delta = g  # d loss / d (pre-activation) of the current layer
            for k in range(len(layers) - 1, -1, -1):
                W, _ = layers[k]
                if argnum == 0:
                    gW, gb = grads[k]
                    onp.matmul(inputs[k].T, delta, out=gW)  # dW = h^T delta
                    onp.sum(delta, axis=0, out=gb)          # db = 1^T delta
                if k == 0:
                    break
                s, h_k = (_view(trace, span) for span in spans[k - 1])
                width = W.shape[0]
                back = _buffer(workspace, ("delta", n, k), n * width).reshape(n, width)
                slope = _buffer(workspace, ("slope", n, k), n * width).reshape(n, width)
                onp.matmul(delta, W.T, out=back)
                onp.subtract(1.0, s, out=slope)
                slope *= h_k
                slope += s                                  # silu'(a) = s + h (1 - s)
                back *= slope                               # back through silu
                delta = back
            if argnum == 1:
                return delta @ layers[0][0].T
            return flat
        return vjp
    return make_vjp


defvjp(_mlp_apply_flat, _mlp_apply_flat_vjp(0), _mlp_apply_flat_vjp(1))


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
    theta, sizes = _check_flat(theta, sizes)
    if getval(theta) is not theta:
        raise TypeError("theta cannot be differentiated through velocity_and_divergence_flat")
    if sizes[0] != sizes[-1] + 1:
        raise ValueError(f"sizes {sizes} are not those of a velocity field (d + 1 inputs, d outputs)")
    x = as_points(x, allow_traced=False)
    if x.shape[1] != sizes[-1]:
        raise ValueError(f"x must have dimension d = {sizes[-1]} for sizes {sizes}, got shape {x.shape}")
    t = as_time(t, x.shape[0], like="x")
    with onp.errstate(over="ignore", invalid="ignore"):
        v, div = _velocity_and_divergence_flat(theta, sizes, x, t)
    return (refuse_non_finite(v, "v_theta(x, t)", large={"x": x, "theta": theta}),
            refuse_non_finite(div, "div v_theta(x, t)", large={"x": x, "theta": theta}))


def _velocity_and_divergence_flat(theta, sizes, x, t):
    """``velocity_and_divergence_flat`` without checks, for ``VelocityNetwork``."""
    n, d = x.shape
    layers = _mlp_unflatten(theta, sizes)
    h = onp.empty((n, d + 1))
    h[:, :d] = x
    h[:, d] = t
    W, bias = layers[0]
    a = h @ W  # a_1 - b_1: the bias is added with the SiLU
    da = onp.broadcast_to(W[:d, None, :], (d, n, W.shape[1]))  # a_1' for each e_i, (d, n, h_1)
    with onp.errstate(over="ignore"):
        for W, b in layers[1:]:
            s = onp.empty_like(a)
            _bias_sigmoid_silu(a, bias, s)  # s = sigmoid(a_k), and h_k = silu(a_k) = a_k s in place of a
            dh = (s + a * (1.0 - s)) * da  # silu'(a_k) a_k'
            a = a @ W  # a_{k+1} - b_{k+1}
            da = dh @ W
            bias = b
    return a + bias, sum(da[i, :, i] for i in range(d))  # the output's a_L is v, its a_L' is J e_i


class VelocityNetwork:
    """The learned field  u(x, t) = v_theta(x, t)  as a callable, evaluated by the fast forward pass  [lecture: Flow Matching In Practice, step 5]

    Calling it computes ``velocity_apply(params, x, t)`` (the same numbers, to rounding)
    with ``mlp_forward_flat`` and buffers reused between calls, which is what an ODE
    solver needs: thousands of evaluations of the same network on same-sized batches. A
    batch of more than ``BLOCK_ROWS`` points is cut into an even number of equal blocks,
    evaluated on two threads (``engines.parallel``). When ``x`` or ``t`` is being differentiated (an autograd
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
        d_in, d_out = _check_mlp(params, what="reference.nn.velocity_init")
        if d_in != d_out + 1:
            raise ValueError(f"params must map [x, t] (d + 1 inputs) to d outputs, got R^{d_in} -> R^{d_out}")
        self.params = [(onp.array(getval(W), dtype=onp.float64), onp.array(getval(b), dtype=onp.float64))
                       for W, b in params]
        self.theta, self.sizes = mlp_flatten(self.params)
        self.d = self.sizes[-1]
        self._local = threading.local()  # one workspace per thread

    def _forward(self, x, t, rows):
        workspace = self._local.__dict__.setdefault("workspace", {})
        n = rows.stop - rows.start
        h = _buffer(workspace, ("input", n), n * (self.d + 1)).reshape(n, self.d + 1)
        h[:, : self.d] = x[rows]
        h[:, self.d] = t if onp.ndim(t) == 0 else t[rows]
        with onp.errstate(over="ignore", invalid="ignore"):  # an overflow is refused by __call__
            return _mlp_forward_flat(self.theta, h, self.sizes, workspace)

    def __call__(self, x, t):
        if getval(x) is not x or getval(t) is not t:
            return velocity_apply(self.params, x, t)
        x = as_points(x, d=self.d)
        n = x.shape[0]
        t = as_time(t, n, like="x")
        n_blocks = -(-n // self.BLOCK_ROWS)
        if n_blocks == 1:
            with blas_single_threaded():  # one block, on this thread: BLAS's own threads would spin, not pay
                out = self._forward(x, t, slice(0, n))
        else:
            n_blocks += n_blocks % 2  # an even number of equal blocks keeps both threads busy
            edges = [n * i // n_blocks for i in range(n_blocks + 1)]
            blocks = [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
            out = onp.concatenate(parallel_map(lambda rows: self._forward(x, t, rows), blocks))
        if not onp.isfinite(out.sum()):  # one pass over the (n, d) output: points too far out for float64
            refuse_non_finite(out, "v_theta(x, t)", large={"x": x, "params": self.theta})
        return out

    def velocity_and_divergence(self, x, t):
        """``(v_theta(x, t), div_x v_theta(x, t))``, shapes ``(n, d)`` and ``(n,)``.

        Forward mode through the network; when ``x`` or ``t`` is being differentiated, the
        readable network's trace by ``autodiff.value_and_divergence`` instead.
        """
        if getval(x) is not x or getval(t) is not t:
            return value_and_divergence(lambda y, s: velocity_apply(self.params, y, s), x, t)
        x = as_points(x, d=self.d)
        t = as_time(t, x.shape[0], like="x")
        with onp.errstate(over="ignore", invalid="ignore"):
            v, div = _velocity_and_divergence_flat(self.theta, self.sizes, x, t)
        culprits = {"x": x, "params": self.theta}
        return refuse_non_finite(v, "v_theta(x, t)", large=culprits), refuse_non_finite(div, "div v_theta(x, t)", large=culprits)

    def __repr__(self):
        return f"VelocityNetwork(sizes={self.sizes})"

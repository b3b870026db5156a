"""The fast engine of the CFM training step: ``train.cfm_step`` with the network as one primitive  [lecture: Theorem 2; Flow Matching In Practice, step 4]

The readable step (``train.cfm_step(fused=False)``) computes ``losses.cfm_loss`` of
``nn.velocity_apply``, which autograd traces operation by operation, then
``train.adam_update``. Here the same step draws the same batch from the same ``rng``,
computes the target ``u_cond(x, t, z)`` (it does not depend on theta), and the gradient of

    L(theta) = (1/B) sum_i || v_theta(x_i, t_i) - u_cond(x_i, t_i, z_i) ||^2

as the backward pass of the network ``engines.mlp.mlp_apply_flat`` (the one autograd
calls for that primitive, its buffers reused from step to step) applied to
``dL/dv = 2 (v - u) / B``, without an autograd trace; then it updates the flat parameters
in place with ``engines.adam.FlatAdam``. Same losses and same parameters as the readable
step, to float64 rounding (``tests/test_engines.py``).
"""

import numpy as onp

from .._validate import check_real
from ..paths import LinearInterpolationPath
from ..nn import _mlp_unflatten, mlp_flatten
from .adam import FlatAdam
from .mlp import _mlp_apply_flat, _mlp_apply_flat_vjp

_THETA_VJP = _mlp_apply_flat_vjp(0)
"""The backward pass of ``mlp_apply_flat`` with respect to the parameters (what autograd would call)."""

__all__ = ["cfm_step"]


def cfm_step(data, path, params, batch_size=256, lr=1e-3, rng=None, ot_pairing=False):
    """``train.cfm_step`` by the fused network: the same ``(step, current_params)``  [lecture: Theorem 2; Flow Matching In Practice, step 4]

    ``train.cfm_step`` (``fused=None`` or ``True``) is the usual way in; this is the engine
    itself, with the same arguments (checked the same way) and the same steps.

    Args:
        data, path, params, batch_size, lr, rng, ot_pairing: as for ``train.cfm_step``.

    Returns:
        ``(step, current_params)`` as ``train.cfm_step``.
    """
    from ..train import _check_cfm_arguments

    data, batch_size, lr, rng = _check_cfm_arguments(data, path, params, batch_size, lr, rng, ot_pairing)
    return _cfm_step(data, path, params, batch_size, lr, rng, ot_pairing)


def _linear_batch(sigma, data, batch_size, rng, h):
    """A batch of ``train.cfm_batch`` for ``LinearInterpolationPath(sigma)``, without pairing, written into ``h``.

    The same draws from ``rng`` in the same order as ``path.sample_z``, ``rng.uniform`` and
    ``path.sample_x``, and the same operations as ``path.flow`` and ``path.velocity``:

        x0 ~ N(0, I),  x1 ~ data,  t ~ U[0, 1],  x = t x1 + (1 - t) x0 + sigma eps,  u = x1 - x0 + 0 x.

    Returns:
        ``(t, u)``; ``h[:, :d] = x`` and ``h[:, d] = t``.
    """
    x1 = data[rng.integers(0, data.shape[0], size=batch_size)]
    x0 = rng.standard_normal(x1.shape)
    t = rng.uniform(0.0, 1.0, batch_size)
    eps = rng.standard_normal(x1.shape)
    d = data.shape[1]
    x = t[:, None] * x1
    x = x + (1.0 - t)[:, None] * x0
    x = x + (sigma + 0.0 * t)[:, None] * eps
    h[:, :d], h[:, d] = x, t
    return t, x1 - x0 + 0.0 * x


def _cfm_step(data, path, params, batch_size, lr, rng, ot_pairing):
    """``cfm_step`` without its checks, for ``train.cfm_step`` (which has made them)."""
    from ..train import _cfm_batch, _loss_of_step  # the readable step's batches and failure messages

    d = data.shape[1]
    theta, sizes = mlp_flatten(params)
    optimizer = FlatAdam(theta, lr)
    workspace, h = {}, onp.empty((batch_size, d + 1))

    def loss_and_grad(theta, h, target):
        out = _mlp_apply_flat(theta, h, sizes, workspace)
        residual = out - target  # v_theta(x, t) - u_cond
        value = onp.sum(residual * residual) / batch_size
        # dL/d out = 2 (v - u) / B, through the network's own backward pass (no autograd trace needed)
        return value, _THETA_VJP(out, theta, h, sizes, workspace)(residual * (2.0 / batch_size))

    linear = type(path) is LinearInterpolationPath and not ot_pairing

    def compute():
        if linear:  # the same draws and the same arithmetic, without the public methods' checks
            t, target = _linear_batch(path.sigma_value, data, batch_size, rng, h)
            return loss_and_grad(theta, h, target)
        t, z, x = _cfm_batch(path, data, batch_size, rng, ot_pairing)
        h[:, :d], h[:, d] = x, t
        return loss_and_grad(theta, h, path.velocity(x, t, z))

    def step(step_lr=None):
        optimizer.lr = lr if step_lr is None else check_real(step_lr, "lr_k", low=0.0, low_open=True)
        value, g = _loss_of_step(compute, optimizer.k, optimizer.lr)
        optimizer._step(g)
        return value

    return step, lambda: _mlp_unflatten(theta, sizes)

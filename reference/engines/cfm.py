"""The fast engine of the CFM training step: ``train.cfm_step`` with the network as one primitive  [lecture: Theorem 2; Flow Matching In Practice, step 4]

The readable step (``train.cfm_step(fused=False)``) computes ``losses.cfm_loss`` of
``nn.velocity_apply``, which autograd traces operation by operation, then
``train.adam_update``. Here the same step draws the same batch from the same ``rng``,
computes the target ``u_cond(x, t, z)`` beside the graph (it does not depend on theta),
and differentiates only

    L(theta) = (1/B) sum_i || v_theta(x_i, t_i) - u_cond(x_i, t_i, z_i) ||^2

with the network as the single primitive ``engines.mlp.mlp_apply_flat`` (its buffers
reused from step to step), then updates the flat parameters in place with
``engines.adam.FlatAdam``. Same losses and same parameters as the readable step, to
float64 rounding (``tests/test_engines.py``).
"""

import autograd.numpy as np
import numpy as onp
from autograd import value_and_grad

from .._validate import check_real
from ..nn import _mlp_unflatten, mlp_flatten
from .adam import FlatAdam
from .mlp import _mlp_apply_flat

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


def _cfm_step(data, path, params, batch_size, lr, rng, ot_pairing):
    """``cfm_step`` without its checks, for ``train.cfm_step`` (which has made them)."""
    from ..train import _cfm_batch, _loss_of_step  # the readable step's batches and failure messages

    d = data.shape[1]
    theta, sizes = mlp_flatten(params)
    optimizer = FlatAdam(theta, lr)
    workspace, h = {}, onp.empty((batch_size, d + 1))

    def loss(theta, h, target):
        residual = _mlp_apply_flat(theta, h, sizes, workspace) - target  # v_theta(x, t) - u_cond
        return np.sum(residual * residual) / batch_size

    loss_and_grad = value_and_grad(loss)

    def compute():
        t, z, x = _cfm_batch(path, data, batch_size, rng, ot_pairing)
        h[:, :d], h[:, d] = x, t
        return loss_and_grad(theta, h, path.velocity(x, t, z))

    def step(step_lr=None):
        optimizer.lr = lr if step_lr is None else check_real(step_lr, "lr_k", low=0.0, low_open=True)
        value, g = _loss_of_step(compute, optimizer.k, optimizer.lr)
        optimizer._step(g)
        return value

    return step, lambda: _mlp_unflatten(theta, sizes)

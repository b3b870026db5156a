"""Training the models of the lecture  [lecture: eq. (1); Flow Matching In Practice]

Sections:

1. Maximum-likelihood training of normalizing flows (planar chains, RealNVP): minimise
   the mean negative log-likelihood of eq. (1) over minibatches of the data.

Every trainer uses ``autograd.misc.optimizers.adam`` on parameter pytrees, draws its
minibatches (resampled with replacement from a data array) from the ``rng`` it is given,
and is therefore bit-for-bit reproducible under the same seed.
"""

import autograd.numpy as np
import numpy as onp
from autograd import value_and_grad
from autograd.misc.optimizers import adam

from ._validate import as_points, check_callable, check_finite_number, check_positive_int, check_rng
from .change_of_variables import negative_log_likelihood
from .flows.chain import planar_chain_logpdf, realnvp_init, realnvp_logpdf
from .flows.planar import planar_constrain, planar_init

__all__ = [
    "minibatch_indices",
    "flatten_params",
    "train_mle",
    "train_realnvp",
    "train_planar",
]


def minibatch_indices(n_data, n_steps, batch_size, rng):
    """Indices of the minibatches, drawn uniformly with replacement, one row per step.

    Args:
        n_data: the number of data points.
        n_steps: the number of steps.
        batch_size: the points per step.
        rng: ``numpy.random.Generator``.

    Returns:
        an integer array of shape ``(n_steps, batch_size)``.
    """
    n_data = check_positive_int(n_data, "n_data")
    n_steps = check_positive_int(n_steps, "n_steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    return check_rng(rng).integers(0, n_data, size=(n_steps, batch_size))


# --------------------------------------------------------------------------------------
# 1. Maximum-likelihood training of normalizing flows  [lecture: eq. (1)]
# --------------------------------------------------------------------------------------


def flatten_params(params):
    """One flat float64 vector ``theta`` of a parameter pytree, and the map back.

    ``autograd.misc.flatten`` does the same, but its ``unflatten`` is itself a traced
    vector-Jacobian product, slow inside a gradient; here ``unflatten(theta)`` only slices
    and reshapes ``theta``, so differentiating through it costs one cheap node per leaf
    and a training step about half as much as differentiating the pytree itself.

    Args:
        params: nested dicts, lists and tuples of arrays (or numbers).

    Returns:
        ``(theta, unflatten)`` with ``unflatten(theta)`` a pytree of the same structure,
        dict keys, container types and leaf shapes as ``params``.
    """
    leaves = []

    def walk(tree):
        if isinstance(tree, dict):
            return {k: walk(v) for k, v in tree.items()}
        if isinstance(tree, (list, tuple)):
            return type(tree)(walk(v) for v in tree)
        leaf = onp.asarray(tree, dtype=onp.float64)
        leaves.append(leaf)
        return _Leaf(len(leaves) - 1, leaf.shape)

    structure = walk(params)
    offsets = onp.cumsum([0] + [leaf.size for leaf in leaves])
    theta = onp.concatenate([leaf.ravel() for leaf in leaves]) if leaves else onp.zeros(0)

    def build(node, flat):
        if isinstance(node, _Leaf):
            return np.reshape(flat[offsets[node.index] : offsets[node.index + 1]], node.shape)
        if isinstance(node, dict):
            return {k: build(v, flat) for k, v in node.items()}
        return type(node)(build(v, flat) for v in node)

    return theta, lambda flat: build(structure, flat)


class _Leaf:
    """Where a leaf of a pytree sits in the flat vector, and its shape."""

    __slots__ = ("index", "shape")

    def __init__(self, index, shape):
        self.index, self.shape = index, shape


def train_mle(log_p1, params, data, n_steps, batch_size=256, lr=1e-3, rng=None, callback=None):
    """Maximum likelihood, eq. (1): minimise NLL(theta) = -mean_i log (T_theta # p0)(x_i) by Adam  [lecture: eq. (1)]

    At step ``k`` the loss is the NLL of a minibatch of ``batch_size`` points resampled
    from ``data``; its gradient comes from autograd and the update from
    ``autograd.misc.optimizers.adam`` (on the flattened parameters).

    Args:
        log_p1: the model's log-density ``log_p1(params, x) -> (n,)``, differentiable in
            ``params`` (e.g. ``reference.flows.chain.realnvp_logpdf``).
        params: the initial parameters, a pytree.
        data: the data ``x^(1), ..., x^(n)``, shape ``(n, d)``.
        n_steps: the number of Adam steps.
        batch_size: the points per step.
        lr: Adam's step size.
        rng: ``numpy.random.Generator`` that draws the minibatches.
        callback: optional ``callback(params, step, loss)`` called at each step with the
            parameters the step's gradient is taken at.

    Returns:
        ``(params, losses)``: the trained parameters (same structure as ``params``) and
        the minibatch NLL of every step, shape ``(n_steps,)``.
    """
    check_callable(log_p1, "log_p1")
    data = as_points(data, "data")
    lr = float(check_finite_number(lr, "lr", nonnegative=True))
    if callback is not None:
        check_callable(callback, "callback")
    batches = minibatch_indices(data.shape[0], n_steps, batch_size, rng)
    theta0, unflatten = flatten_params(params)
    losses = onp.zeros(batches.shape[0])

    def nll(theta, step):
        return negative_log_likelihood(lambda x: log_p1(unflatten(theta), x), data[batches[step]])

    loss_and_grad = value_and_grad(nll)

    def gradient(theta, step):
        value, g = loss_and_grad(theta, step)
        if not onp.isfinite(value):
            raise FloatingPointError(f"the NLL became non-finite ({value}) at step {step}; lower lr")
        losses[step] = value
        if callback is not None:
            callback(unflatten(theta), step, value)
        return g

    theta = adam(gradient, theta0, num_iters=batches.shape[0], step_size=lr)
    return unflatten(theta), losses


def train_realnvp(data, n_steps, n_layers=4, hidden=(32, 32), batch_size=256, lr=1e-3, rng=None, params=None):
    """Fit a RealNVP flow to data by maximum likelihood  [lecture: eq. (1); RealNVP]

    Args:
        data: shape ``(n, d)`` with ``d >= 2``.
        n_steps: the number of Adam steps.
        n_layers: ``K``, the number of coupling layers (halves alternating).
        hidden: the hidden widths of every ``s`` and ``t`` MLP.
        batch_size, lr: as for ``train_mle``.
        rng: ``numpy.random.Generator``; draws the initial parameters (unless ``params``
            is given), then the minibatches.
        params: optional initial parameters (as made by ``realnvp_init``).

    Returns:
        ``(params, losses)`` as ``train_mle``; ``realnvp_logpdf(params, x)`` is the fitted
        log-density and ``realnvp_sample(params, n, rng)`` samples it.
    """
    data = as_points(data, "data")
    rng = check_rng(rng)
    if params is None:
        params = realnvp_init(data.shape[1], n_layers, hidden, rng)
    return train_mle(realnvp_logpdf, params, data, n_steps, batch_size, lr, rng)


def _constrained_planar_logpdf(raw, x):
    return planar_chain_logpdf([planar_constrain(layer) for layer in raw], x)


def train_planar(data, n_steps, n_layers=8, batch_size=256, lr=1e-2, rng=None, init_scale=0.5):
    """Fit a chain of planar layers to data by maximum likelihood  [lecture: eq. (1); planar flow]

    The layers are trained unconstrained and used through ``planar_constrain``, so every
    step's chain is invertible; its log-density comes from the inverse of the chain
    (each layer's root solve, differentiated implicitly) and the chain rule.

    Args:
        data: shape ``(n, d)``.
        n_steps: the number of Adam steps.
        n_layers: ``K``.
        batch_size, lr: as for ``train_mle``.
        rng: ``numpy.random.Generator``; draws the initial layers, then the minibatches.
        init_scale: the ``scale`` of ``planar_init``.

    Returns:
        ``(params, losses)``: the trained, constrained (invertible) layers, ready for
        ``planar_chain_logpdf``, ``planar_chain_sample`` and ``planar_chain_forward``; and
        the minibatch NLL of every step.
    """
    data = as_points(data, "data")
    rng = check_rng(rng)
    n_layers = check_positive_int(n_layers, "n_layers")
    raw = [planar_init(data.shape[1], rng, init_scale) for _ in range(n_layers)]
    raw, losses = train_mle(_constrained_planar_logpdf, raw, data, n_steps, batch_size, lr, rng)
    return [planar_constrain(layer) for layer in raw], losses

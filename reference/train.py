"""Training the models of the lecture  [lecture: eq. (1); Flow Matching In Practice]

Sections:

1. Maximum-likelihood training of normalizing flows (planar chains, RealNVP): minimise
   the mean negative log-likelihood of eq. (1) over minibatches of the data.
2. Conditional flow matching (steps 4 and 5 of "Flow Matching In Practice"): regress
   v_theta(x, t) on the conditional velocity with the CFM loss, then sample by
   integrating the learned ODE.

Every trainer uses Adam (``autograd.misc.optimizers.adam``, or ``adam_update``, the same
arithmetic one step at a time) on flattened parameters, draws its minibatches (resampled
with replacement from a data array) from the ``rng`` it is given, and is therefore
bit-for-bit reproducible under the same seed.

What runs is the formula written here, or, for CFM training and sampling, its fast engine
(``reference.engines.cfm``, ``reference.engines.mlp``), which computes the same numbers;
``fused=None`` (the default) follows ``reference.readable()``.
"""

import autograd.numpy as np
import numpy as onp
from autograd import value_and_grad
from autograd.misc.optimizers import adam

from autograd.tracer import getval

from ._validate import (
    as_points,
    as_real_array,
    check_bool,
    check_callable,
    check_instance,
    check_count,
    check_real,
    check_rng,
)
from .change_of_variables import negative_log_likelihood
from .flows.chain import _realnvp_layers, planar_chain_logpdf, realnvp_init, realnvp_logpdf
from .flows.planar import planar_constrain, planar_init
from .engines import use_engine
from .engines.parallel import blas_single_threaded
from .losses import cfm_loss
from .nn import _check_mlp, mlp_flatten, mlp_unflatten, velocity_apply, velocity_init
from .ode import get_tableau, integrate, integrate_adaptive
from .ot import ot_pair
from .paths import GaussianPath

__all__ = [
    "TrainingDiverged",
    "minibatch_indices",
    "flatten_params",
    "train_mle",
    "train_realnvp",
    "train_planar",
    "cfm_batch",
    "adam_update",
    "cfm_step",
    "step_size",
    "train_cfm",
    "model_velocity",
    "sample_model",
]


class TrainingDiverged(FloatingPointError, ValueError):
    """A training run whose loss stopped being finite after it started finite: lr too large  [lecture: eq. (1); Flow Matching In Practice, step 4]

    A ``FloatingPointError`` (the arithmetic blew up) and a ``ValueError`` (the step size
    ``lr`` given was too large for the problem); the message gives the step.
    """


def minibatch_indices(n_data, n_steps, batch_size, rng):
    """Indices of the minibatches, uniform with replacement, one row per step  [lecture: eq. (1)]

    Args:
        n_data: the number of data points.
        n_steps: the number of steps.
        batch_size: the points per step.
        rng: ``numpy.random.Generator``.

    Returns:
        an integer array of shape ``(n_steps, batch_size)``.
    """
    n_data = check_count(n_data, "n_data")
    n_steps = check_count(n_steps, "n_steps")
    batch_size = check_count(batch_size, "batch_size")
    return check_rng(rng).integers(0, n_data, size=(n_steps, batch_size))


# --------------------------------------------------------------------------------------
# 1. Maximum-likelihood training of normalizing flows  [lecture: eq. (1)]
# --------------------------------------------------------------------------------------


def flatten_params(params):
    """A parameter pytree as one flat float64 vector ``theta``, and the map back  [lecture: eq. (1) (training)]

    ``autograd.misc.flatten`` does the same, but its ``unflatten`` is itself a traced
    vector-Jacobian product, slow inside a gradient; here ``unflatten(theta)`` only slices
    and reshapes ``theta``, so differentiating through it costs one cheap node per leaf
    and a training step about half as much as differentiating the pytree itself.

    Args:
        params: nested dicts, lists and tuples of arrays (or numbers).

    Returns:
        ``(theta, unflatten)`` with ``unflatten(theta)`` a pytree of the same structure,
        dict keys, container types and leaf shapes as ``params``; ``unflatten`` takes a
        1-D array of ``theta``'s length (also while being differentiated).

    Raises:
        TypeError, ValueError: a leaf that is not a real, finite number or array (named by
            its place in the tree, e.g. ``params[0]['s'][1][0]``), or a tree without leaves.
    """
    leaves = []

    def walk(tree, where):
        tree = getval(tree)
        if isinstance(tree, dict):
            return {k: walk(v, f"{where}[{k!r}]") for k, v in tree.items()}
        if isinstance(tree, (list, tuple)):
            return type(tree)(walk(v, f"{where}[{i}]") for i, v in enumerate(tree))
        leaf = as_real_array(tree, where, allow_traced=False, what="a real number or array (a leaf of the parameters)")
        leaves.append(leaf)
        return _Leaf(len(leaves) - 1, leaf.shape)

    structure = walk(params, "params")
    if not leaves:
        raise ValueError("params holds no arrays: nothing to flatten")
    offsets = onp.cumsum([0] + [leaf.size for leaf in leaves])
    theta = onp.concatenate([leaf.ravel() for leaf in leaves])
    size = int(offsets[-1])

    def build(node, flat):
        if isinstance(node, _Leaf):
            return np.reshape(flat[offsets[node.index] : offsets[node.index + 1]], node.shape)
        if isinstance(node, dict):
            return {k: build(v, flat) for k, v in node.items()}
        return type(node)(build(v, flat) for v in node)

    def unflatten(flat):
        if np.shape(flat) != (size,):
            raise ValueError(f"flat must have shape ({size},) like theta, got {np.shape(flat)}")
        return build(structure, flat)

    return theta, unflatten


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
        lr: Adam's step size, ``>= 0`` (``lr = 0`` leaves the parameters where they are).
        rng: ``numpy.random.Generator`` that draws the minibatches.
        callback: optional ``callback(params, step, loss)`` called at each step with the
            parameters the step's gradient is taken at.

    Returns:
        ``(params, losses)``: the trained parameters (same structure as ``params``) and
        the minibatch NLL of every step, shape ``(n_steps,)``.
    """
    check_callable(log_p1, "log_p1")
    data = as_points(data, "data", allow_traced=False)
    lr = check_real(lr, "lr", low=0.0)
    if callback is not None:
        check_callable(callback, "callback")
    batches = minibatch_indices(data.shape[0], n_steps, batch_size, rng)
    theta0, unflatten = flatten_params(params)
    losses = onp.zeros(batches.shape[0])

    def nll(theta, step):
        return negative_log_likelihood(lambda x: log_p1(unflatten(theta), x), data[batches[step]])

    loss_and_grad = value_and_grad(nll)

    def compute(theta, step):
        with onp.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return loss_and_grad(theta, step)

    def gradient(theta, step):
        value, g = _checked_step(lambda: compute(theta, step), step, lr, "the negative log-likelihood", "the NLL",
                                 "log_p1(params, x) gives the first minibatch of data density 0, or data or params "
                                 "are too large for float64")
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
        params: optional initial parameters (as made by ``realnvp_init``); by default
            ``realnvp_init(d, n_layers, hidden, rng, identity=True)``, so that training
            starts from the base ``N(0, I)`` itself.

    Returns:
        ``(params, losses)`` as ``train_mle``; ``realnvp_logpdf(params, x)`` is the fitted
        log-density and ``realnvp_sample(params, n, rng)`` samples it.
    """
    data = as_points(data, "data", allow_traced=False)
    if data.shape[1] < 2:
        raise ValueError(f"data must have dimension d >= 2 for RealNVP (a coupling splits the coordinates), got shape {data.shape}")
    rng = check_rng(rng)
    if params is None:
        params = realnvp_init(data.shape[1], n_layers, hidden, rng, identity=True)
    else:
        d_params = _realnvp_layers(params, None)[2]
        if d_params != data.shape[1]:
            raise ValueError(f"data has dimension d = {data.shape[1]} but params are for d = {d_params}")
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
    data = as_points(data, "data", allow_traced=False)
    rng = check_rng(rng)
    n_layers = check_count(n_layers, "n_layers")
    init_scale = check_real(init_scale, "init_scale", low=0.0, low_open=True)
    raw = [planar_init(data.shape[1], rng, init_scale) for _ in range(n_layers)]
    try:
        raw, losses = train_mle(_constrained_planar_logpdf, raw, data, n_steps, batch_size, lr, rng)
    except ValueError as err:
        if "at the start" not in str(err):
            raise
        raise type(err)(f"init_scale = {init_scale:g} (the initial layers' scale) or data: {err}") from err
    return [planar_constrain(layer) for layer in raw], losses


# --------------------------------------------------------------------------------------
# 2. Conditional flow matching: training and sampling  [lecture: Theorem 2; Flow Matching In Practice, steps 4-5]
#
# Step 4 regresses the network v_theta(x, t) (``nn.velocity_apply``) on the conditional
# velocity with the CFM loss of Theorem 2, on minibatches drawn afresh at every step:
#
#     t ~ U[0, 1],  z ~ p(z),  x ~ p(x | t, z),
#     loss(theta) = mean_i || v_theta(x_i, t_i) - u_cond(x_i, t_i, z_i) ||^2,
#
# its gradient by autograd and the update by Adam on the flattened parameters
# (``adam_update``). ``cfm_step`` holds one step: ``cfm_loss`` of ``velocity_apply``, or
# its fast engine (``reference.engines.cfm``: the network as one autograd primitive).
# Step 5 pushes samples of p0 = N(0, I) through the learned ODE dx/dt = v_theta(x, t)
# from t = 0 to 1 with a fixed-step (``ode.integrate``) or adaptive
# (``ode.integrate_adaptive``) integrator.
# --------------------------------------------------------------------------------------



def _check_path(path, ot_pairing):
    check_instance(path, GaussianPath, "path", "reference.paths.GaussianPath")
    ot_pairing = check_bool(ot_pairing, "ot_pairing")
    if ot_pairing and not path.conditions_on_pairs:
        raise ValueError(
            f"ot_pairing=True pairs z = (x0, x1) and needs a path conditioned on pairs "
            f"(e.g. LinearInterpolationPath), got {path!r} whose z is x1 alone"
        )
    return path


def cfm_batch(path, data, batch_size, rng, ot_pairing=False):
    """One minibatch of step 4: t ~ U[0, 1], z ~ p(z), x ~ p(x | t, z)  [lecture: Flow Matching In Practice, step 4]

    ``z`` is drawn by ``path.sample_z`` (data points resampled with replacement, and
    ``x0 ~ N(0, I)`` for a path on pairs). With ``ot_pairing`` the pairs ``(x0_i, x1_i)``
    of the batch are re-paired by exact optimal transport (``ot.ot_pair``) before x is
    drawn: both marginals stay ``p0`` and ``p_data``, the coupling becomes the
    minibatch OT coupling.

    Args:
        path: a ``GaussianPath``.
        data: data points, shape ``(m, d)``.
        batch_size: the number of triples.
        rng: ``numpy.random.Generator``.
        ot_pairing: pair ``(x0, x1)`` by minibatch OT (paths on pairs only).

    Returns:
        ``(t, z, x)``: ``t`` of shape ``(batch_size,)``, ``z`` as ``path.sample_z``
        returns it, ``x`` of shape ``(batch_size, d)``.
    """
    _check_path(path, ot_pairing)
    batch_size = check_count(batch_size, "batch_size")
    data = as_points(data, "data", allow_traced=False)
    rng = check_rng(rng)
    return _cfm_batch(path, data, batch_size, rng, ot_pairing)


def _cfm_batch(path, data, batch_size, rng, ot_pairing):
    """``cfm_batch`` without its checks, for the training step."""
    z = path.sample_z(batch_size, data, rng)
    if ot_pairing:
        z = ot_pair(*z)
    t = rng.uniform(0.0, 1.0, batch_size)
    return t, z, path.sample_x(t, z, rng)


def adam_update(theta, g, m, v, k, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """One Adam step  theta <- theta - lr mhat / (sqrt(vhat) + eps)  [lecture: Flow Matching In Practice, step 4]

        m <- (1 - b1) g + b1 m,         v <- (1 - b2) g^2 + b2 v,
        mhat = m / (1 - b1^k),          vhat = v / (1 - b2^k),
        theta <- theta - lr mhat / (sqrt(vhat) + eps)

    The arithmetic of ``autograd.misc.optimizers.adam``, one step at a time (its iterates,
    bit for bit); ``reference.engines.adam.FlatAdam`` does the same in place.

    Args:
        theta: the parameters, a 1-D array.
        g: the gradient at ``theta``, shape like ``theta``.
        m, v: the first and second moments so far (zeros before the first step).
        k: the step's number, 1 for the first.
        lr: the step size, ``> 0``.
        b1, b2: the moments' decay rates, in ``[0, 1)``.
        eps: ``> 0``, added to the root of the second moment.

    Returns:
        ``(theta, m, v)`` after the step (new arrays).
    """
    theta = as_real_array(theta, "theta", ndim=1, what="a 1-D array (flat parameters)", allow_traced=False)
    like = f"an array of shape {theta.shape} like theta"
    g = as_real_array(g, "g", shape=theta.shape, what=like, allow_traced=False)
    m = as_real_array(m, "m", shape=theta.shape, what=like, allow_traced=False)
    v = as_real_array(v, "v", shape=theta.shape, what=like, allow_traced=False)
    if onp.any(v < 0):
        raise ValueError("v must be >= 0 (a second moment: an average of squared gradients)")
    k = check_count(k, "k")
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    b1 = check_real(b1, "b1", low=0.0, high=1.0, high_open=True)
    b2 = check_real(b2, "b2", low=0.0, high=1.0, high_open=True)
    eps = check_real(eps, "eps", low=0.0, low_open=True)
    return _adam_update(theta, g, m, v, k, lr, b1, b2, eps)


def _adam_update(theta, g, m, v, k, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """``adam_update`` without its checks, for the readable training step."""
    m = (1 - b1) * g + b1 * m
    v = (1 - b2) * (g * g) + b2 * v
    mhat = m / (1 - b1**k)
    vhat = v / (1 - b2**k)
    return theta - lr * mhat / (np.sqrt(vhat) + eps), m, v


def _check_cfm_arguments(data, path, params, batch_size, lr, rng, ot_pairing):
    """``cfm_step``'s checks, made once (not at every step); returns the checked values."""
    data = as_points(data, "data", allow_traced=False)
    _check_path(path, ot_pairing)
    d = data.shape[1]
    d_in, d_out = _check_mlp(params, what="reference.nn.velocity_init")
    if (d_in, d_out) != (d + 1, d):
        raise ValueError(f"params map R^{d_in} -> R^{d_out}, but data has d = {d}: expected R^{d + 1} -> R^{d} "
                         "([x, t] to a velocity)")
    return data, check_count(batch_size, "batch_size"), check_real(lr, "lr", low=0.0, low_open=True), check_rng(rng)


def _loss_of_step(compute, k, lr):
    """``compute()`` (the minibatch loss and its gradient at step ``k``), its failures said with the step and lr.

    BLAS runs on one thread meanwhile: a minibatch's matrices are too small for its threads
    to pay, and on a machine shared with another process they would spin against it.
    """
    def guarded():
        with onp.errstate(over="ignore", invalid="ignore"), blas_single_threaded():
            return compute()

    return _checked_step(guarded, k, lr, "the CFM loss", "the CFM loss", "data or params are too large for float64")


def _checked_step(compute, k, lr, loss, short, start_hint):
    """``compute()`` -> ``(value, gradient)`` at step ``k``; a ``ValueError`` inside it, or a value that is
    not finite, said with the step and ``lr`` (``TrainingDiverged`` after the first step)."""
    try:
        value, g = compute()
    except ValueError as err:
        when = "at the start" if k == 0 else f"after {k} steps of lr = {lr:g}"
        raise type(err)(f"{loss} of the minibatch of data at step {k} (with params as they were "
                        f"{when}) could not be computed: {err}") from err
    if not onp.isfinite(value):
        if k == 0:
            raise ValueError(f"{loss} is not finite ({value}) at the start: {start_hint}")
        raise TrainingDiverged(f"{short} became non-finite ({value}) at step {k}; lower lr (it was {lr:g})")
    return value, g


def cfm_step(data, path, params, batch_size=256, lr=1e-3, rng=None, ot_pairing=False, fused=None):
    """One training step of CFM, as a callable: draw a batch, take the loss's gradient, update by Adam  [lecture: Theorem 2; Flow Matching In Practice, step 4]

        t, z, x = cfm_batch(...),   L(theta) = cfm_loss(v_theta, path, t, z, x),
        theta <- adam_update(theta, grad L(theta), ...)

    ``train_cfm`` calls it ``n_steps`` times. The readable step is the formula above:
    ``losses.cfm_loss`` of ``nn.velocity_apply``, traced operation by operation by
    autograd, then ``adam_update``. Its fast engine (``reference.engines.cfm``: the network
    as one autograd primitive, Adam in place) draws the same batches from ``rng`` and
    takes the same steps, to float64 rounding (tested).

    Args:
        data: data points, shape ``(m, d)``.
        path: a ``GaussianPath``.
        params: initial parameters of ``nn.velocity_init`` (not modified).
        batch_size, lr, rng, ot_pairing: as in ``train_cfm``.
        fused: ``None`` (default: the engine unless ``reference.readable()``), ``True``
            (the engine) or ``False`` (the readable step).

    Returns:
        ``(step, current_params)``: ``step()`` performs one update and returns the
        minibatch loss at the parameters before the update (``step(lr_k)`` takes that
        update with step size ``lr_k`` instead of ``lr``: a schedule, as ``train_cfm``'s
        ``lr_decay``); ``current_params()`` returns the parameters now (valid until the next step).

    Raises:
        TypeError, ValueError: bad arguments, checked once here (not at every step).
    """
    data, batch_size, lr, rng = _check_cfm_arguments(data, path, params, batch_size, lr, rng, ot_pairing)
    if use_engine(fused):
        from .engines.cfm import _cfm_step

        return _cfm_step(data, path, params, batch_size, lr, rng, ot_pairing)
    theta, sizes = mlp_flatten(params)
    state = {"theta": theta, "m": onp.zeros_like(theta), "v": onp.zeros_like(theta), "k": 0}

    def loss(theta, t, z, x):
        v_theta = lambda x_, t_: velocity_apply(mlp_unflatten(theta, sizes), x_, t_)  # noqa: E731
        return cfm_loss(v_theta, path, t, z, x)

    loss_and_grad = value_and_grad(loss)

    def compute():
        t, z, x = _cfm_batch(path, data, batch_size, rng, ot_pairing)
        return loss_and_grad(state["theta"], t, z, x)

    def step(step_lr=None):
        lr_k = lr if step_lr is None else check_real(step_lr, "lr_k", low=0.0, low_open=True)
        value, g = _loss_of_step(compute, state["k"], lr_k)
        state["k"] += 1
        state["theta"], state["m"], state["v"] = _adam_update(state["theta"], g, state["m"], state["v"],
                                                              state["k"], lr_k)
        return value

    return step, lambda: mlp_unflatten(state["theta"], sizes)


def step_size(lr, k, n_steps, lr_decay=0.0):
    """Adam's step size at step k: lr, then falling linearly over the last lr_decay of the steps  [lecture: Flow Matching In Practice, step 4]

        lr_k = lr                                     for k <  K = (1 - lr_decay) n_steps,
        lr_k = lr (n_steps - k) / (n_steps - K)       for k >= K   (lr / (n_steps - K) at the last step).

    Args:
        lr: the constant step size, ``> 0``.
        k: the step, ``0 <= k < n_steps``.
        n_steps: the number of steps, ``>= 1``.
        lr_decay: the fraction of the steps over which it falls, in ``[0, 1]`` (0: constant).
    """
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    n_steps = check_count(n_steps, "n_steps")
    k = check_count(k, "k", minimum=0)
    if k >= n_steps:
        raise ValueError(f"k must be a step of the run, 0 <= k < n_steps = {n_steps}, got {k}")
    lr_decay = check_real(lr_decay, "lr_decay", low=0.0, high=1.0)
    return _step_size(lr, k, n_steps, lr_decay)


def _step_size(lr, k, n_steps, lr_decay):
    start = n_steps * (1.0 - lr_decay)
    return lr if k < start else lr * (n_steps - k) / (n_steps - start)


def train_cfm(data, path, n_steps, batch_size=256, hidden=(64, 64, 64), lr=1e-3, rng=None,
              ot_pairing=False, callback=None, fused=None, lr_decay=0.0):
    """Train v_theta with the conditional flow-matching loss and Adam  [lecture: Theorem 2; Flow Matching In Practice, step 4]

        theta_{k+1} = Adam(theta_k, grad_theta L_CFM-hat(theta_k)),
        L_CFM-hat = mean_i || v_theta(x_i, t_i) - u_cond(x_i, t_i, z_i) ||^2 on a fresh batch (``cfm_batch``).

    The minibatch loss is an unbiased estimate of ``L_CFM(theta) = L_FM(theta) + C``
    (Theorem 2): it falls towards the constant ``C > 0``, not towards 0. With
    ``ot_pairing`` the coupling of ``(x0, x1)``, hence the path ``p_t`` between the same
    ends, its field ``u`` and the constant ``C``, are those of the minibatch OT coupling
    (a much smaller ``C``: the conditional lines cross less). Deterministic under ``rng``: the initial parameters
    and every batch are drawn from it, in order.

    Args:
        data: data points, shape ``(m, d)``, resampled with replacement at every step.
        path: a ``GaussianPath`` (``LinearInterpolationPath()``, ``ConicalGaussianPath()``, ...).
        n_steps: number of Adam steps.
        batch_size: triples ``(t, z, x)`` per step.
        hidden: hidden widths of the MLP ``[x, t] -> v``.
        lr: Adam's step size (``b1 = 0.9, b2 = 0.999, eps = 1e-8``, autograd's defaults).
        rng: ``numpy.random.Generator``.
        ot_pairing: pair each batch's ``(x0, x1)`` by exact minibatch OT (``cfm_batch``).
        callback: optional ``callback(params, step, loss)`` called at each step with the
            parameters the step's gradient (and ``losses[step]``) is taken at.
        fused: ``None`` (default: the fast engine unless ``reference.readable()``),
            ``True`` or ``False``: which computes each step (see ``cfm_step``); both train
            the same model, to float64 rounding.
        lr_decay: the fraction of the last steps over which the step size falls linearly
            towards 0 (``step_size``; default 0, constant). With a constant step size the
            parameters keep moving by about ``lr`` around the optimum and the samples'
            quality fluctuates from step to step; the fall settles them.

    Returns:
        ``(params, losses)``: the trained parameters for ``nn.velocity_apply`` and the
        minibatch losses, shape ``(n_steps,)``.
    """
    data = as_points(data, "data", allow_traced=False)
    _check_path(path, ot_pairing)
    n_steps = check_count(n_steps, "n_steps")
    batch_size = check_count(batch_size, "batch_size")
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    rng = check_rng(rng)
    if callback is not None:
        check_callable(callback, "callback")
    lr_decay = check_real(lr_decay, "lr_decay", low=0.0, high=1.0)
    fused = use_engine(fused)
    params0 = velocity_init(data.shape[1], hidden, rng)
    step, current_params = cfm_step(data, path, params0, batch_size, lr, rng, ot_pairing, fused)
    losses = onp.zeros(n_steps)
    with blas_single_threaded():  # once for the whole run (each step's own limit then nests for free)
        for k in range(n_steps):
            lr_k = _step_size(lr, k, n_steps, lr_decay)
            if callback is None:
                losses[k] = step(lr_k)
                continue
            before = [(onp.array(W), onp.array(b)) for W, b in current_params()]
            losses[k] = step(lr_k)
            callback(before, k, losses[k])
    return [(onp.array(W), onp.array(b)) for W, b in current_params()], losses


def model_velocity(params, fused=None):
    """The learned field as a callable  u(x, t) = v_theta(x, t)  [lecture: Flow Matching In Practice, step 5]

    Args:
        params: parameters of ``nn.velocity_init`` / ``train_cfm``.
        fused: ``None`` (default: the fast engine unless ``reference.readable()``),
            ``True``: a ``reference.engines.mlp.VelocityNetwork`` (the evaluation-only
            forward pass in reused buffers, and an exact forward-mode divergence for
            ``cnf``), or ``False``: the readable ``velocity_apply`` as a closure. The two
            compute the same numbers.

    Returns:
        ``u(x, t) -> (n, d)``, for ``ode.integrate`` and the plotting helpers; its ``d``
        attribute is the dimension.
    """
    d_in, d_out = _check_mlp(params, what="reference.nn.velocity_init")
    if d_in != d_out + 1:
        raise ValueError(f"params must map [x, t] (d + 1 inputs) to d outputs, got R^{d_in} -> R^{d_out}")
    if use_engine(fused):
        from .engines.mlp import VelocityNetwork

        return VelocityNetwork(params)
    params = [(onp.array(getval(W), dtype=onp.float64), onp.array(getval(b), dtype=onp.float64)) for W, b in params]

    def v_theta(x, t):
        return velocity_apply(params, x, t)

    v_theta.d = d_out
    return v_theta


def sample_model(params, n, rng, method="euler", n_steps=100, adaptive=False, rtol=1e-5, atol=1e-5,
                 return_path=False):
    """Sample p_1 ~ p_data: x0 ~ N(0, I), then integrate dx/dt = v_theta(x, t) from 0 to 1  [lecture: Flow Matching In Practice, step 5]

    With Euler and ``N = n_steps``: ``x_{k+1} = x_k + (1/N) v_theta(x_k, k/N)`` (the
    lecture's scheme). With ``adaptive=True``, Dormand-Prince 5(4) with tolerances
    ``rtol``, ``atol`` (``method`` and ``n_steps`` are then unused).

    Args:
        params: parameters of ``train_cfm``.
        n: number of samples.
        rng: ``numpy.random.Generator`` for ``x0``.
        method: a fixed-step method of ``ode.integrate`` (``"euler"``, ``"midpoint"``,
            ``"rk4"``, ``"rk38"``, ``"dopri5"``), by name.
        n_steps: number of fixed steps.
        adaptive: use ``ode.integrate_adaptive``.
        rtol, atol: tolerances of the adaptive solver.
        return_path: also return the trajectories.

    Returns:
        fixed steps: ``x(1)`` of shape ``(n, d)``, or with ``return_path`` the pair
        ``(path, times)`` of ``ode.integrate`` (``path`` of shape ``(n_steps + 1, n, d)``);
        adaptive: the ``ode.AdaptiveResult`` (``.x``, ``.n_fev``, and with ``return_path``
        the ``.states`` at the accepted ``.times``).
    """
    u = model_velocity(params)
    n = check_count(n, "n")
    rng = check_rng(rng)
    adaptive = check_bool(adaptive, "adaptive")
    return_path = check_bool(return_path, "return_path")
    get_tableau(method)
    check_count(n_steps, "n_steps")
    check_real(rtol, "rtol", low=0.0)
    check_real(atol, "atol", low=0.0, low_open=True)
    x0 = rng.standard_normal((n, u.d))
    if adaptive:
        return integrate_adaptive(u, x0, 0.0, 1.0, rtol=rtol, atol=atol, return_states=return_path)
    return integrate(u, x0, 0.0, 1.0, n_steps, method, return_path)

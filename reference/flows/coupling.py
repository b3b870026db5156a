"""RealNVP's affine coupling layer  [lecture: RealNVP, eq. (3); Fig. 3]

With a split ``1 <= d' <= d - 1`` of the coordinates,

    phi(x)_{1:d'}   = x_{1:d'}
    phi(x)_{d'+1:d} = x_{d'+1:d} * exp(s(x_{1:d'})) + t(x_{1:d'})               (eq. (3))

where the scale ``s`` and the translation ``t`` map ``R^{d'}`` to ``R^{d-d'}``. Its
Jacobian is lower triangular, ``[[I_{d'}, 0], [..., diag(exp(s))]]``, so
``log |det J_phi(x)| = sum(s(x_{1:d'}))`` with no Jacobian of ``s`` or ``t``, and it is
inverted in closed form:

    phi^{-1}(y)_{1:d'}   = y_{1:d'}
    phi^{-1}(y)_{d'+1:d} = (y_{d'+1:d} - t(y_{1:d'})) * exp(-s(y_{1:d'})).

Choices made here (the formula stays eq. (3)):

- ``s`` and ``t`` are MLPs of ``reference.nn`` with tanh hidden activations (smooth, and
  cheaper for autograd to trace than SiLU); ``s`` is passed through a soft bound,
  ``s(h) = S tanh(MLP_s(h) / S)`` with ``S = SCALE_BOUND = 2``, so each coordinate is
  scaled by a factor between ``e^-2`` and ``e^2`` per layer (``s ~ MLP_s`` where the MLP
  is small). Training cannot then blow ``exp(s)`` up, and the log-det of a layer is at
  most ``2 (d - d')`` in absolute value.
- ``d'`` must satisfy ``1 <= d' <= d - 1``. The lecture allows ``d' <= d``, but at
  ``d' = d`` the second half is empty, ``s`` and ``t`` map to ``R^0`` and the layer is the
  identity, with nothing to learn; it is refused rather than silently returned.
- Which coordinates form the two halves is chosen by an optional permutation ``perm``
  (data passed with the call, not a parameter): the layer acts on ``x[:, perm]`` and
  puts the result back in place, ``phi_perm(x)[:, perm] = phi(x[:, perm])``. A
  permutation has ``|det| = 1``, so the log-det is unchanged. Alternating permutations
  between layers (``flows.chain.alternating_permutations``) make every coordinate
  transformed by some layer.

Parameters are a dict ``{"s": mlp, "t": mlp}`` of two ``reference.nn`` MLPs, so
``autograd.grad`` and ``autograd.misc.optimizers.adam`` take them unchanged.
"""

import numbers

import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

from .._validate import as_points, check_bool, check_count, check_rng, refuse_non_finite
from ..nn import _ACTIVATIONS, _check_mlp, _check_widths, _mlp_apply, mlp_init

__all__ = [
    "SCALE_BOUND",
    "ACTIVATION",
    "coupling_init",
    "coupling_scale",
    "coupling_translation",
    "coupling_log_det",
    "coupling_forward",
    "coupling_inverse",
]

SCALE_BOUND = 2.0
"""``S`` in ``s(h) = S tanh(MLP_s(h) / S)``: ``|s| < S``, so ``exp(s)`` lies in ``(e^-S, e^S)``."""

ACTIVATION = "tanh"
"""The hidden activation of the ``s`` and ``t`` MLPs."""


def _check_split(d, d_split):
    """Check the split of eq. (3): ``d >= 2`` and ``1 <= d_split <= d - 1``.

    Returns:
        ``(d, d_split)`` as ints.

    Raises:
        TypeError, ValueError: naming ``d`` or ``d_split`` and the range expected;
        ``d_split = d`` (the identity layer) is refused with its own message.
    """
    d = check_count(d, "d", minimum=2)
    if isinstance(d_split, bool) or not isinstance(d_split, numbers.Integral):
        raise TypeError(f"d_split must be an integer d' with 1 <= d' <= d - 1 = {d - 1}, got {d_split!r}")
    d_split = int(d_split)
    if d_split == d:
        raise ValueError(
            f"d_split = d = {d} leaves nothing to transform: s and t would map to R^0 and the "
            f"coupling would be the identity; choose 1 <= d_split <= {d - 1}"
        )
    if not 1 <= d_split <= d - 1:
        raise ValueError(f"d_split must satisfy 1 <= d_split <= d - 1 = {d - 1}, got {d_split}")
    return d, d_split


def _check_permutation(perm, d, name="perm"):
    """Check a coordinate order for a coupling layer.

    Returns:
        ``perm`` as an int array (None stays None).

    Raises:
        TypeError, ValueError: ``perm`` is not a permutation of ``0, ..., d - 1``.
    """
    if perm is None:
        return None
    if isinstance(perm, (str, bytes, dict)):
        raise TypeError(f"{name} must be an integer array (a permutation of 0..{d - 1}), got {type(perm).__name__}")
    try:
        arr = onp.asarray(perm)
    except ValueError as err:  # a ragged list
        raise TypeError(f"{name} must be an integer array (a permutation of 0..{d - 1}), got a ragged sequence") from err
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array (a permutation of 0..{d - 1}), got dtype {arr.dtype}")
    if arr.shape != (d,) or not onp.array_equal(onp.sort(arr), onp.arange(d)):
        raise ValueError(f"{name} must be a permutation of 0..{d - 1} (shape ({d},)), got {arr.tolist()}")
    return arr.astype(onp.intp)


def _split_of(params, d=None, x_name="the points"):
    """``d'`` and ``d - d'`` of a layer, checked against each other and against ``d``."""
    raw = getval(params)  # a dict, also when autograd differentiates with respect to it
    if not isinstance(raw, dict) or set(raw) != {"s", "t"}:
        raise TypeError("params must be a dict {'s': mlp, 't': mlp} as made by coupling_init, got "
                        + (f"a dict with keys {sorted(map(str, raw))}" if isinstance(raw, dict) else type(raw).__name__))
    shapes = {name: _check_mlp(params[name], f"params[{name!r}]") for name in ("s", "t")}
    if shapes["s"] != shapes["t"]:
        raise ValueError(f"params['s'] maps R^{shapes['s'][0]} -> R^{shapes['s'][1]} but params['t'] maps "
                         f"R^{shapes['t'][0]} -> R^{shapes['t'][1]}; both must map R^d' -> R^(d-d')")
    d_split, d_rest = shapes["s"]
    if d is not None and d_split + d_rest != d:
        raise ValueError(f"params are for d = {d_split + d_rest} (d' = {d_split}), {x_name} has d = {d}")
    return d_split


def coupling_init(d, d_split, hidden, rng, identity=False):
    """Random affine-coupling parameters: MLPs ``s, t: R^{d'} -> R^{d-d'}``  [lecture: RealNVP, eq. (3)]

    Args:
        d: the dimension, ``>= 2``.
        d_split: ``d'``, the number of coordinates passed through unchanged,
            ``1 <= d' <= d - 1``.
        hidden: the hidden widths of both MLPs, e.g. ``(32, 32)`` (``()`` for affine
            ``s`` and ``t``).
        rng: ``numpy.random.Generator``.
        identity: start the last layer of both MLPs at zero, so that ``s = t = 0`` and
            the layer is the identity map (a stable start for training); the same
            random numbers are drawn either way.

    Returns:
        ``{"s": [(W, b), ...], "t": [(W, b), ...]}`` (``reference.nn.mlp_init`` layouts).
    """
    d, d_split = _check_split(d, d_split)
    rng = check_rng(rng)
    if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
        raise TypeError(f"hidden must be a sequence of widths such as ({hidden},), got the integer {hidden}")
    hidden = _check_widths(hidden, "hidden", 0)
    sizes = (d_split, *hidden, d - d_split)
    identity = check_bool(identity, "identity")
    return {"s": mlp_init(sizes, rng, zero_last=identity), "t": mlp_init(sizes, rng, zero_last=identity)}


def coupling_scale(params, x1):
    """Scale  s(x_{1:d'}) = S tanh(MLP_s(x_{1:d'}) / S)  [lecture: RealNVP, eq. (3)]

    ``MLP_s`` has tanh hidden activations (``ACTIVATION``) and a linear output.

    Args:
        params: ``{"s": mlp, "t": mlp}``.
        x1: the first ``d'`` coordinates, shape ``(n, d')``.

    Returns:
        shape ``(n, d - d')``, each entry in ``(-S, S)`` with ``S = SCALE_BOUND``.
    """
    x1 = as_points(x1, "x1", d=_split_of(params))
    with onp.errstate(over="ignore", invalid="ignore"):
        s = _scale(params, x1)
    return refuse_non_finite(s, "s(x_{1:d'})", large={"x1": x1})


def _scale(params, x1):
    return SCALE_BOUND * np.tanh(_mlp_apply(params["s"], x1, _ACTIVATIONS[ACTIVATION]) / SCALE_BOUND)


def coupling_translation(params, x1):
    """Translation  t(x_{1:d'}) = MLP_t(x_{1:d'})  [lecture: RealNVP, eq. (3)]

    Args:
        params: ``{"s": mlp, "t": mlp}``.
        x1: the first ``d'`` coordinates, shape ``(n, d')``.

    Returns:
        shape ``(n, d - d')``.
    """
    x1 = as_points(x1, "x1", d=_split_of(params))
    with onp.errstate(over="ignore", invalid="ignore"):
        t = _translation(params, x1)
    return refuse_non_finite(t, "t(x_{1:d'})", large={"x1": x1})


def _translation(params, x1):
    return _mlp_apply(params["t"], x1, _ACTIVATIONS[ACTIVATION])


def coupling_log_det(params, x, perm=None):
    """log |det J_phi(x)| = sum_i s(x_{1:d'})_i, the Jacobian being lower triangular  [lecture: RealNVP, eq. (3)]

    Args:
        params: ``{"s": mlp, "t": mlp}``.
        x: points, shape ``(n, d)``.
        perm: optional permutation of the coordinates (see the module docstring).

    Returns:
        shape ``(n,)``.
    """
    x = as_points(x)
    d_split = _split_of(params, x.shape[1], "x")
    perm = _check_permutation(perm, x.shape[1])
    xp = x if perm is None else x[:, perm]
    with onp.errstate(over="ignore", invalid="ignore"):
        log_det = np.sum(_scale(params, xp[:, :d_split]), axis=1)
    return refuse_non_finite(log_det, "log |det J_phi(x)|", large={"x": x})


def coupling_forward(params, x, perm=None):
    """Affine coupling  phi(x) = [x_{1:d'}, x_{d'+1:d} * exp(s(x_{1:d'})) + t(x_{1:d'})]  [lecture: RealNVP, eq. (3)]

    Args:
        params: ``{"s": mlp, "t": mlp}`` as made by ``coupling_init``.
        x: points, shape ``(n, d)``.
        perm: optional permutation of ``0..d-1``; the layer then acts on ``x[:, perm]``
            and puts the result back in place.

    Returns:
        ``(y, log_det)``: shapes ``(n, d)`` and ``(n,)``, ``log_det = sum(s(x_{1:d'}))``.
    """
    x = as_points(x)
    d = x.shape[1]
    d_split = _split_of(params, d, "x")
    perm = _check_permutation(perm, d)
    xp = x if perm is None else x[:, perm]
    x1, x2 = xp[:, :d_split], xp[:, d_split:]
    with onp.errstate(over="ignore", invalid="ignore"):
        s = _scale(params, x1)
        y2 = x2 * np.exp(s) + _translation(params, x1)
    y = np.concatenate([x1, refuse_non_finite(y2, "phi(x)", large={"x": x, "t(x_{1:d'})": lambda: _translation(params, getval(x1))})],
                       axis=1)
    if perm is not None:
        y = y[:, onp.argsort(perm)]
    return y, np.sum(s, axis=1)


def coupling_inverse(params, y, perm=None):
    """Inverse coupling in closed form  phi^{-1}(y) = [y_{1:d'}, (y_{d'+1:d} - t(y_{1:d'})) * exp(-s(y_{1:d'}))]  [lecture: RealNVP, inverse after eq. (3)]

    Args:
        params: ``{"s": mlp, "t": mlp}`` as made by ``coupling_init``.
        y: points, shape ``(n, d)``.
        perm: the permutation the forward layer was called with, or None.

    Returns:
        ``(x, log_det_inv)``: shapes ``(n, d)`` and ``(n,)``,
        ``log_det_inv = log |det J_{phi^{-1}}(y)| = -sum(s(y_{1:d'}))``.
    """
    y = as_points(y, "y")
    d = y.shape[1]
    d_split = _split_of(params, d, "y")
    perm = _check_permutation(perm, d)
    yp = y if perm is None else y[:, perm]
    y1, y2 = yp[:, :d_split], yp[:, d_split:]
    with onp.errstate(over="ignore", invalid="ignore"):
        s = _scale(params, y1)
        x2 = (y2 - _translation(params, y1)) * np.exp(-s)
    x2 = refuse_non_finite(x2, "phi^{-1}(y)", large={"y": y, "t(y_{1:d'})": lambda: _translation(params, getval(y1))})
    x = np.concatenate([y1, x2], axis=1)
    if perm is not None:
        x = x[:, onp.argsort(perm)]
    return x, -np.sum(s, axis=1)

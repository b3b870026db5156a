"""Normalizing flows as compositions of simple layers, their log-likelihood by the chain rule  [lecture: Normalizing Flows]

Indexing, as the lecture's sum of log-determinants requires: ``x_0 = z`` is the latent
(base) point, ``x_k = phi_k(x_{k-1})`` for ``k = 1, ..., K``, and ``x_K = x = T(z)`` is
the data point, so ``T = phi_K o ... o phi_1`` and ``T^{-1} = phi_1^{-1} o ... o phi_K^{-1}``.
By the chain rule ``J_{T^{-1}}(x) = J_{phi_1^{-1}}(x_1) ... J_{phi_K^{-1}}(x_K)``, hence

    log p1(x) = log p0(phi_1^{-1} o ... o phi_K^{-1}(x)) + sum_k log |det J_{phi_k^{-1}}(x_k)|

(the lecture's display under "Normalizing Flows"; it writes ``T = phi_1 o ... o phi_K``
and ``x_0 = x``, which its own formula contradicts: see the README's errata).

A layer is given as a pair of callables, ``forward(x) -> (y, log_det)`` and
``inverse(y) -> (x, log_det_inv)``; ``chain_forward``, ``chain_inverse`` and
``chain_logpdf`` compose any of them. RealNVP (affine couplings with alternating
halves) and planar chains are the two models built here on top of them.
"""

from functools import partial

import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

from .._validate import as_points, check_bool, check_callable, check_log_density, check_count, check_rng
from ..distributions import sample_standard_normal, standard_normal_logpdf
from .coupling import _check_permutation, _check_split, _split_of, coupling_forward, coupling_init, coupling_inverse
from .planar import _check_params as _check_planar_params
from .planar import planar_forward, planar_inverse

__all__ = [
    "chain_forward",
    "chain_inverse",
    "chain_logpdf",
    "alternating_permutations",
    "realnvp_init",
    "realnvp_forward",
    "realnvp_inverse",
    "realnvp_logpdf",
    "realnvp_sample",
    "planar_chain_forward",
    "planar_chain_inverse",
    "planar_chain_logpdf",
    "planar_chain_sample",
]


def _check_layers(layers, name):
    if not isinstance(layers, (list, tuple)) or not layers:
        raise TypeError(f"{name} must be a non-empty list of callables, got {type(layers).__name__}")
    for k, f in enumerate(layers, 1):
        check_callable(f, f"{name}[{k - 1}]")
    return list(layers)


def _apply_layer(f, x, name, what):
    """``f(x) -> (y, log_det)`` with both shapes checked; ``what`` says which points ``x`` is, for messages."""
    try:
        out = f(x)
    except (ValueError, TypeError) as err:
        raise type(err)(f"{name}(x) refused {what}: {err}") from err
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(f"{name}(x) must return a pair (y, log_det), got {type(getval(out)).__name__}")
    y, log_det = out
    n, d = np.shape(x)
    if np.shape(getval(y)) != (n, d) or np.shape(getval(log_det)) != (n,):
        raise ValueError(f"{name}(x) must return y of shape {(n, d)} and log_det of shape ({n},), "
                         f"got {np.shape(getval(y))} and {np.shape(getval(log_det))}")
    for part, v in (("y", y), ("log_det", log_det)):
        value = onp.asarray(getval(v))
        if value.dtype.kind not in "iuf":
            raise TypeError(f"{name}(x) must return real numbers, got {part} of dtype {value.dtype}")
        if not onp.all(onp.isfinite(value)):
            raise ValueError(f"{name}(x) returned non-finite values (NaN or inf) in {part}")
    return y, log_det


def chain_forward(forwards, z, return_path=False):
    """Composition T = phi_K o ... o phi_1 and log |det J_T(z)| = sum_k log |det J_{phi_k}(x_{k-1})|  [lecture: Normalizing Flows]

    Args:
        forwards: ``[phi_1, ..., phi_K]``, each ``phi_k(x) -> (y, log_det)`` with
            ``log_det = log |det J_{phi_k}(x)|``, applied ``phi_1`` first.
        z: latent points ``x_0``, shape ``(n, d)``.
        return_path: also return every ``x_k``.

    Returns:
        ``(x_K, log_det)`` of shapes ``(n, d)`` and ``(n,)``; with ``return_path`` also
        ``path`` of shape ``(K + 1, n, d)`` holding ``x_0, ..., x_K``.
    """
    forwards = _check_layers(forwards, "forwards")
    return_path = check_bool(return_path, "return_path")
    x = as_points(z, "z")
    path, log_det = [x], 0.0
    for k, phi in enumerate(forwards, 1):
        x, ld = _apply_layer(phi, x, f"forwards[{k - 1}]", "z" if k == 1 else f"x_{k - 1} (z after {k - 1} layers)")
        path.append(x)
        log_det = log_det + ld
    return (x, log_det, np.stack(path)) if return_path else (x, log_det)


def chain_inverse(inverses, x, return_path=False):
    """Inverse T^{-1} = phi_1^{-1} o ... o phi_K^{-1} and log |det J_{T^{-1}}(x)| = sum_k log |det J_{phi_k^{-1}}(x_k)|  [lecture: Normalizing Flows]

    Args:
        inverses: ``[phi_1^{-1}, ..., phi_K^{-1}]`` in the same order as the forward
            layers, each ``phi_k^{-1}(y) -> (x, log_det_inv)``; applied ``phi_K^{-1}`` first.
        x: data points ``x_K``, shape ``(n, d)``.
        return_path: also return every ``x_k``.

    Returns:
        ``(x_0, log_det_inv)`` of shapes ``(n, d)`` and ``(n,)``; with ``return_path`` also
        ``path`` of shape ``(K + 1, n, d)`` holding ``x_0, ..., x_K`` (the forward order).
    """
    inverses = _check_layers(inverses, "inverses")
    return_path = check_bool(return_path, "return_path")
    y = as_points(x)
    path, log_det_inv = [y], 0.0
    for k in range(len(inverses), 0, -1):
        what = "x" if k == len(inverses) else f"x_{k} (x after {len(inverses) - k} inverse layers)"
        y, ld = _apply_layer(inverses[k - 1], y, f"inverses[{k - 1}]", what)
        path.append(y)
        log_det_inv = log_det_inv + ld
    return (y, log_det_inv, np.stack(path[::-1])) if return_path else (y, log_det_inv)


def chain_logpdf(inverses, x, base_logpdf=standard_normal_logpdf):
    """Log-likelihood of a flow by the chain rule  [lecture: Normalizing Flows; eq. (2)]

        log p1(x) = log p0(x_0) + sum_{k=1}^K log |det J_{phi_k^{-1}}(x_k)|,
        x_K = x,  x_{k-1} = phi_k^{-1}(x_k)

    Args:
        inverses: ``[phi_1^{-1}, ..., phi_K^{-1}]`` as for ``chain_inverse``.
        x: points, shape ``(n, d)``.
        base_logpdf: ``log p0``, ``(n, d) -> (n,)``; the standard normal by default.

    Returns:
        shape ``(n,)``.
    """
    check_callable(base_logpdf, "base_logpdf")
    z, log_det_inv = chain_inverse(inverses, x)
    try:
        log_p0 = base_logpdf(z)
    except (ValueError, TypeError) as err:
        raise type(err)(f"base_logpdf(z) refused z = T^-1(x) (the inverses applied to x): {err}") from err
    return check_log_density(log_p0, np.shape(z)[0], "base_logpdf(z)") + log_det_inv


def alternating_permutations(d, n_layers):
    """Coordinate orders of the coupling layers: the identity, then reversed, alternately  [lecture: RealNVP; Fig. 3]

    With the split ``d' = d // 2``, a layer in the identity order transforms the last
    ``d - d'`` coordinates, one in the reversed order the first ``d - d' >= d'``: two
    consecutive layers transform every coordinate.

    Returns:
        a list of ``n_layers`` integer arrays of shape ``(d,)``.
    """
    d = check_count(d, "d", minimum=2)
    n_layers = check_count(n_layers, "n_layers")
    identity = onp.arange(d)
    return [identity if k % 2 == 0 else identity[::-1].copy() for k in range(n_layers)]


def realnvp_init(d, n_layers, hidden, rng, identity=False):
    """Random RealNVP parameters: ``n_layers`` affine couplings with ``d' = d // 2``  [lecture: RealNVP, eq. (3)]

    Args:
        d: the dimension, ``>= 2``.
        n_layers: ``K``, the number of coupling layers.
        hidden: the hidden widths of every ``s`` and ``t`` MLP, e.g. ``(32, 32)``.
        rng: ``numpy.random.Generator``.
        identity: start every layer as the identity (``s = t = 0``), so the model starts
            as ``p0`` itself; see ``coupling_init``.

    Returns:
        a list of ``K`` coupling-layer parameter dicts (see ``flows.coupling``).
    """
    d = check_count(d, "d", minimum=2)
    d, d_split = _check_split(d, d // 2)
    n_layers = check_count(n_layers, "n_layers")
    rng = check_rng(rng)
    return [coupling_init(d, d_split, hidden, rng, identity) for _ in range(n_layers)]


def _check_d(x, name, d):
    x = as_points(x, name)
    if np.shape(x)[1] != d:
        raise ValueError(f"{name} must have dimension d = {d} like params, got shape {np.shape(x)}")


def _with_params(logpdf, inverses, x):
    """``logpdf(inverses, x)``, a refusal of the base density saying that params and x produced its input."""
    try:
        return logpdf(inverses, x)
    except ValueError as err:
        if str(err).startswith("base_logpdf(z)"):
            raise ValueError(f"params and x: {err}") from err
        raise


def _realnvp_layers(params, perms):
    raw = getval(params)
    if not isinstance(raw, (list, tuple)) or not raw:
        raise TypeError("params must be a non-empty list of coupling-layer dicts (as made by realnvp_init)")
    n_layers = len(raw)
    splits = []
    for k in range(n_layers):
        if not isinstance(getval(raw[k]), dict):
            raise TypeError(f"params[{k}] must be a coupling-layer dict {{'s': mlp, 't': mlp}} (as made by realnvp_init)")
        try:
            d_split = _split_of(raw[k])
        except (TypeError, ValueError) as err:
            raise type(err)(f"params[{k}]: {err}") from None
        splits.append((d_split, onp.shape(getval(getval(raw[k])["s"][-1][0]))[1]))
    d = sum(splits[0])
    if any(sum(split) != d for split in splits):
        raise ValueError(f"params: the layers are for different dimensions d, {[sum(split) for split in splits]}")
    if perms is None:
        perms = alternating_permutations(d, n_layers)
    elif not isinstance(perms, (list, tuple)):
        raise TypeError(f"perms must be a list of one permutation per layer ({n_layers}), got {type(perms).__name__}")
    elif len(perms) != n_layers:
        raise ValueError(f"perms must hold one permutation per layer ({n_layers}), got {len(perms)}")
    perms = [_check_permutation(p, d, f"perms[{k}]") for k, p in enumerate(perms)]
    perms = [None if p is not None and onp.array_equal(p, onp.arange(d)) else p for p in perms]  # skip no-ops
    forwards = [partial(coupling_forward, params[k], perm=perms[k]) for k in range(n_layers)]
    inverses = [partial(coupling_inverse, params[k], perm=perms[k]) for k in range(n_layers)]
    return forwards, inverses, d


def realnvp_forward(params, z, perms=None, return_path=False):
    """RealNVP generative map x = T(z) = phi_K o ... o phi_1(z) and log |det J_T(z)|  [lecture: RealNVP; Fig. 3 (b) inverse propagation]

    Latent to data (the lecture's Fig. 3 (b), "inverse propagation", which in the
    RealNVP paper's convention maps latent to data).

    Args:
        params: as made by ``realnvp_init``.
        z: latent points, shape ``(n, d)``.
        perms: the coordinate order of every layer; ``alternating_permutations`` by default.
        return_path: also return ``x_0 = z, ..., x_K = x``, shape ``(K + 1, n, d)``.

    Returns:
        ``(x, log_det)`` (and ``path``), as ``chain_forward``.
    """
    forwards, _, d = _realnvp_layers(params, perms)
    _check_d(z, "z", d)
    return chain_forward(forwards, z, return_path)


def realnvp_inverse(params, x, perms=None, return_path=False):
    """RealNVP normalizing map z = T^{-1}(x) and log |det J_{T^{-1}}(x)|  [lecture: RealNVP; Fig. 3 (a) forward propagation]

    Data to latent (the lecture's Fig. 3 (a), "forward propagation"), each layer
    inverted in closed form.

    Returns:
        ``(z, log_det_inv)`` (and ``path``), as ``chain_inverse``.
    """
    _, inverses, d = _realnvp_layers(params, perms)
    _check_d(x, "x", d)
    return chain_inverse(inverses, x, return_path)


def realnvp_logpdf(params, x, perms=None):
    """RealNVP log-density by eq. (2) and the chain rule, base N(0, I)  [lecture: Normalizing Flows; RealNVP]

        log p1(x) = log N(x_0; 0, I) - sum_k sum s_k(x_k, first half)

    Args:
        params: as made by ``realnvp_init``.
        x: points, shape ``(n, d)``.
        perms: as for ``realnvp_forward``.

    Returns:
        shape ``(n,)``; differentiable in ``params`` (and ``x``).
    """
    _, inverses, d = _realnvp_layers(params, perms)
    _check_d(x, "x", d)
    return _with_params(chain_logpdf, inverses, x)


def realnvp_sample(params, n, rng, perms=None, return_logpdf=False):
    """Sample the RealNVP model: x = T(z), z ~ N(0, I)  [lecture: RealNVP; Fig. 3 (b)]

    Args:
        params: as made by ``realnvp_init``.
        n: number of samples.
        rng: ``numpy.random.Generator``.
        perms: as for ``realnvp_forward``.
        return_logpdf: also return ``log p1(x) = log p0(z) - log |det J_T(z)|``,
            computed during the forward pass.

    Returns:
        ``x`` of shape ``(n, d)`` (and ``log p1(x)`` of shape ``(n,)``).
    """
    forwards, _, d = _realnvp_layers(params, perms)
    return_logpdf = check_bool(return_logpdf, "return_logpdf")
    z = sample_standard_normal(n, d, rng)
    x, log_det = chain_forward(forwards, z)
    return (x, standard_normal_logpdf(z) - log_det) if return_logpdf else x


def _planar_layers(params):
    raw = getval(params)
    message = "params must be a non-empty list of planar-layer dicts {'a', 'b', 'c'}"
    if not isinstance(raw, (list, tuple)) or not raw:
        raise TypeError(message)
    n_layers = len(raw)
    dims = set()
    for k in range(n_layers):
        try:
            a, _, _ = _check_planar_params(raw[k])
        except (TypeError, ValueError) as err:
            raise type(err)(f"params[{k}]: {err}") from None
        dims.add(onp.shape(getval(a))[0])
    if len(dims) > 1:
        raise ValueError(f"params: the layers are for different dimensions d, {sorted(dims)}")
    first = getval(raw[0])
    forwards = [partial(planar_forward, params[k]) for k in range(n_layers)]
    inverses = [partial(planar_inverse, params[k]) for k in range(n_layers)]
    return forwards, inverses, onp.shape(getval(first["a"]))[0]


def planar_chain_forward(params, z, return_path=False):
    """A chain of planar layers x = phi_K o ... o phi_1(z) and its log-det  [lecture: Normalizing Flows; planar flow]

    Args:
        params: a list of planar-layer dicts ``{"a", "b", "c"}``, ``phi_1`` first.
        z: points, shape ``(n, d)``.
        return_path: also return ``x_0, ..., x_K`` (the Euler steps of the lecture's
            CNF reading of planar layers).

    Returns:
        ``(x, log_det)`` (and ``path``), as ``chain_forward``.
    """
    forwards, _, d = _planar_layers(params)
    _check_d(z, "z", d)
    return chain_forward(forwards, z, return_path)


def planar_chain_inverse(params, x, return_path=False):
    """Inverse of a planar chain, each layer by its root solve, and its log-det  [lecture: Normalizing Flows; planar flow]

    Every layer must be invertible (``a^T b > -1``; see ``planar_constrain``).

    Returns:
        ``(z, log_det_inv)`` (and ``path``), as ``chain_inverse``.
    """
    _, inverses, d = _planar_layers(params)
    _check_d(x, "x", d)
    return chain_inverse(inverses, x, return_path)


def planar_chain_logpdf(params, x):
    """Log-density of a planar chain by eq. (2) and the chain rule, base N(0, I)  [lecture: Normalizing Flows; eq. (2)]

        log p1(x) = log N(x_0; 0, I) - sum_k log |1 + tanh'(b_k^T x_{k-1} + c_k) a_k^T b_k|

    with ``x_{k-1} = phi_k^{-1}(x_k)`` found by each layer's root solve. Differentiable
    in ``params`` (through the implicit derivative of the root).

    Returns:
        shape ``(n,)``.
    """
    _, inverses, d = _planar_layers(params)
    _check_d(x, "x", d)
    return _with_params(chain_logpdf, inverses, x)


def planar_chain_sample(params, n, rng, return_logpdf=False):
    """Sample a planar chain: x = T(z), z ~ N(0, I)  [lecture: Normalizing Flows; Fig. 2]

    Returns:
        ``x`` of shape ``(n, d)`` (and ``log p1(x) = log p0(z) - log |det J_T(z)|``).
    """
    forwards, _, d = _planar_layers(params)
    return_logpdf = check_bool(return_logpdf, "return_logpdf")
    z = sample_standard_normal(n, d, rng)
    x, log_det = chain_forward(forwards, z)
    return (x, standard_normal_logpdf(z) - log_det) if return_logpdf else x

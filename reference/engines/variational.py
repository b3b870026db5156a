"""The fast engines of ``reference.variational``: the planar chain and the 2-D energies as autograd primitives  [lecture: Variational auto-encoders; planar flow]

The readable forms are ``reference.flows.planar`` (each layer ``z + tanh(b^T z + c) a``
with its log-det, composed by ``flows.chain.chain_forward``) and
``reference.variational.energy``, which autograd traces operation by operation (about
twenty graph nodes per planar layer). Here

- the whole planar chain of ``K`` layers is one primitive, its backward pass written out
  next to its forward pass (``_fused_planar_forward``, built by ``variational.planar_posterior``);
- each energy ``U(z)`` is one primitive whose gradient is written out (``fused_energy``).

Both compute the same values and gradients as the readable forms, to float64 rounding
(``tests/test_variational.py``, ``tests/test_engines.py``, ``check_grads``).
"""

import threading

import autograd.numpy as np
import numpy as onp
from autograd.extend import defvjp, defvjp_argnums, primitive
from autograd.tracer import getval

from .._validate import as_points
from ..flows.planar import PLANAR_MARGIN
from ..variational import WINDOW, energy

__all__ = ["fused_energy"]


def _planar_constrain_stacked(A, B, C):
    """``planar_constrain`` of every layer at once (same formula): a_hat = a + (m(a^T b) - a^T b) b / |b|^2."""
    ab = np.sum(A * B, axis=-1)
    m = -1.0 + PLANAR_MARGIN + np.logaddexp(0.0, ab + 1.0 - PLANAR_MARGIN)
    return A + ((m - ab) / (np.sum(B * B, axis=-1) + 1e-300))[..., None] * B, B, C


def _planar_chain_trace(A, B, C, z):
    """Forward pass of the chain, keeping each layer's input and tanh for the backward pass.

    Shapes, one flow per datum (shared layers are the case ``n = 1``): ``A, B``:
    ``(K, n, d)``, ``C``: ``(K, n)``, ``z``: ``(n, d, S)``: datum first and samples last, so
    that each sum over ``d`` or over the samples is one batched matrix product and every
    elementwise operation runs along the long sample axis.
    """
    K = A.shape[0]
    zs, H = onp.empty((K,) + z.shape), onp.empty((K, z.shape[0], z.shape[2]))
    for k in range(K):
        zs[k] = z
        H[k] = onp.tanh(onp.matmul(B[k][:, None, :], z)[:, 0, :] + C[k][:, None])  # tanh(b^T z + c), (n, S)
        z = z + A[k][:, :, None] * H[k][:, None, :]
    u = onp.sum(A * B, axis=-1)[..., None]  # a_k^T b_k, (K, n, 1)
    log_det = onp.sum(onp.log1p((1.0 - H * H) * u), axis=0)
    return onp.concatenate([z, log_det[:, None, :]], axis=1), zs, H, u


_LAST_TRACE = threading.local()
"""The forward pass's trace, handed to the backward pass (autograd builds the VJP right after the forward)."""


@primitive
def _planar_chain_fused(A, B, C, z):
    """The planar chain as one autograd primitive: ``[z_K, sum_k log_det_k]``, shape ``(n, d + 1, S)``.

    Layer k:  s = b_k^T z + c_k,  h = tanh(s),  z <- z + h a_k,  log_det_k = log(1 + (1 - h^2) a_k^T b_k).
    Shapes as ``_planar_chain_trace``. Call it through ``_planar_chain``.
    """
    out, *trace = _planar_chain_trace(A, B, C, z)
    _LAST_TRACE.value = (out, trace)
    return out


def _planar_chain_values(A, B, C, z):
    """The forward pass alone, keeping nothing (no gradient wanted); shapes as ``_planar_chain_trace``."""
    log_det = onp.zeros((z.shape[0], z.shape[2]))
    for k in range(A.shape[0]):
        h = onp.tanh(onp.matmul(B[k][:, None, :], z)[:, 0, :] + C[k][:, None])
        log_det += onp.log1p((1.0 - h * h) * onp.sum(A[k] * B[k], axis=-1)[:, None])
        z = z + A[k][:, :, None] * h[:, None, :]
    return onp.concatenate([z, log_det[:, None, :]], axis=1)


def _planar_chain(A, B, C, z):
    """``_planar_chain_fused``, then drop its trace (the backward pass, if any, has taken it); without
    autograd boxes, the forward pass alone."""
    if all(getval(v) is v for v in (A, B, C, z)):
        return _planar_chain_values(A, B, C, z)
    try:
        return _planar_chain_fused(A, B, C, z)
    finally:
        _LAST_TRACE.value = None


def _planar_chain_vjp(argnums, out, args, kwargs):
    """Backward pass of the fused chain, layer K first.

    With g_z = dL/dz after layer k, g_l = dL/d(log_det), psi = 1 - h^2, u = a^T b and
    w = g_l psi / (1 + psi u) (= dL/du, per sample):
        ds = (g_z . a) psi - 2 h u w,      dz_{k-1} = g_z + ds b,
        da = sum_S h g_z + (sum_S w) b,    db = sum_S ds z_{k-1} + (sum_S w) a,    dc = sum_S ds.
    """
    A, B, C, z = args
    last = getattr(_LAST_TRACE, "value", None)
    zs, H, u = last[1] if last is not None and last[0] is out else _planar_chain_trace(A, B, C, z)[1:]
    psi = 1.0 - H * H

    def vjp(g):
        g_z, g_l = g[:, :-1, :], g[:, -1, :]
        W = g_l * psi / (1.0 + psi * u)  # (K, n, S), every layer at once
        T = 2.0 * H * u * W
        dA, dB, DS = onp.empty_like(A), onp.empty_like(B), onp.empty_like(H)
        for k in range(A.shape[0] - 1, -1, -1):
            DS[k] = onp.matmul(A[k][:, None, :], g_z)[:, 0, :] * psi[k] - T[k]
            dA[k] = onp.matmul(g_z, H[k][:, :, None])[..., 0]
            dB[k] = onp.matmul(zs[k], DS[k][:, :, None])[..., 0]
            g_z = g_z + B[k][:, :, None] * DS[k][:, None, :]
        W_sum = W.sum(axis=-1)[..., None]  # (K, n, 1)
        grads = (dA + W_sum * B, dB + W_sum * A, DS.sum(axis=-1), g_z)
        return tuple(grads[i] for i in argnums)
    return vjp


defvjp_argnums(_planar_chain_fused, _planar_chain_vjp)


def _energy_gradient(name, z):
    """dU/dz of ``energy(name, z)`` written out (plain NumPy), shape ``(m, 2)``.

    Each energy is ``Q(z) - log(exp(f_a) + exp(f_b)) + W(z1)`` (``U2`` has no log-sum-exp,
    ``U1`` no window), so ``dU = dQ - pi_a df_a - pi_b df_b + dW`` with ``pi = softmax(f_a, f_b)``:

        U1: Q = ((r - 2)/0.4)^2/2, dQ = (r - 2)/0.16 z/r;  f = -((z1 -+ 2)/0.6)^2/2, df/dz1 = -(z1 -+ 2)/0.36
        U2-U4: e = z2 - w1, de = (-w1', 1), w1' = (pi/2) cos(pi z1/2), dW/dz1 = (z1/4)^7;
        U2: Q = (e/0.4)^2/2, dQ = e/0.16 de;
        U3, U4: f_a = -(e/s_a)^2/2, f_b = -((e + w)/s_b)^2/2 with w = w2 (U3) or w3 (U4),
                df_a = -e/s_a^2 de,  df_b = -(e + w)/s_b^2 (de + (w', 0)),
                w2' = -w2 (z1 - 1)/0.36,  w3' = w3 (1 - sigmoid((z1 - 1)/0.3))/0.3.
    """
    z1, z2 = z[:, 0], z[:, 1]
    g1, g2 = onp.zeros_like(z1), onp.zeros_like(z2)
    if name == "U1":
        r = onp.hypot(z1, z2)
        dq = (r - 2.0) / 0.16 / onp.where(r > 0, r, 1.0)
        g1, g2 = dq * z1, dq * z2
        fa, fb = -0.5 * ((z1 - 2.0) / 0.6) ** 2, -0.5 * ((z1 + 2.0) / 0.6) ** 2
        dfa, dfb = (-(z1 - 2.0) / 0.36, 0.0), (-(z1 + 2.0) / 0.36, 0.0)
    else:
        e = z2 - onp.sin(0.5 * onp.pi * z1)
        de1 = -0.5 * onp.pi * onp.cos(0.5 * onp.pi * z1)  # de/dz1 (de/dz2 = 1)
        g1 = g1 + (z1 / WINDOW) ** 7
        if name == "U2":
            return onp.stack([g1 + e / 0.16 * de1, g2 + e / 0.16], axis=1)
        if name == "U3":
            w = 3.0 * onp.exp(-0.5 * ((z1 - 1.0) / 0.6) ** 2)
            dw, sa = -w * (z1 - 1.0) / 0.36, 0.35
        else:
            sig = 1.0 / (1.0 + onp.exp(-(z1 - 1.0) / 0.3))
            w = 3.0 * sig
            dw, sa = w * (1.0 - sig) / 0.3, 0.4
        fa, fb = -0.5 * (e / sa) ** 2, -0.5 * ((e + w) / 0.35) ** 2
        ka, kb = -e / sa**2, -(e + w) / 0.35**2
        dfa, dfb = (ka * de1, ka), (kb * (de1 + dw), kb)
    pa = 1.0 / (1.0 + onp.exp(fb - fa))  # softmax weight of f_a
    pb = 1.0 - pa
    return onp.stack([g1 - pa * dfa[0] - pb * dfb[0], g2 - pa * dfa[1] - pb * dfb[1]], axis=1)


@primitive
def fused_energy(name, z):
    """``variational.energy(name, z)`` as one autograd primitive whose gradient is written out  [lecture: Variational auto-encoders]

    Same arguments and values as ``energy``; ``dU/dz`` is ``_energy_gradient`` (tested
    equal to autograd's trace of ``energy``).
    """
    return energy(name, z)


defvjp(fused_energy, lambda ans, name, z: lambda g: g[:, None] * _energy_gradient(name, z), argnums=[1])


def _fused_planar_forward(A, B, C, mask, constrain, n, d):
    """The sampling map ``rows -> (z_K, sum_k log|det J_phi_k|)`` of ``variational.planar_posterior``'s layers, fused  [lecture: Variational auto-encoders; planar flow]

    Arguments as checked by ``planar_posterior`` (call that function: it validates them and
    chooses the engine): stacked layers ``A, B`` (``(K, d)`` shared or ``(K, n, d)`` per
    datum), ``C``, the active-layer ``mask`` (or None), whether to ``constrain`` them, the
    number ``n`` of data (None: shared layers) and the dimension ``d``.
    """
    A_used, B_used, C_used = _planar_constrain_stacked(A, B, C) if constrain else (A, B, C)
    if mask is not None:
        A_used = A_used * mask

    def forward(rows):
        rows = as_points(rows, "z", d=d)
        if n is None:  # shared layers: one "datum" holding every row
            out = _planar_chain(A_used[:, None, :], B_used[:, None, :], C_used[:, None], np.transpose(rows)[None])[0]
            return np.transpose(out[:-1]), out[-1]
        z = np.transpose(np.reshape(rows, (-1, n, d)), (1, 2, 0))  # rows s n + i -> (n, d, S)
        out = np.reshape(np.transpose(_planar_chain(A_used, B_used, C_used, z), (2, 0, 1)), (-1, d + 1))
        return out[:, :-1], out[:, -1]

    return forward

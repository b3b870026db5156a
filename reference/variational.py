"""Variational auto-encoders: the ELBO, and posteriors beyond the mean field  [lecture: Variational auto-encoders]

The lecture opens on Kingma (2017) and asks: *can we go beyond the mean-field
approximation for q_phi(z | x)?* A latent-variable model ``p(x, z) = p(z) p(x | z)`` is
fitted through an approximate posterior ``q(z | x)`` and the evidence lower bound

    ELBO(q; x) = E_{z ~ q(. | x)} [log p(x, z) - log q(z | x)],
    log p(x)   = ELBO(q; x) + KL(q(z | x) || p(z | x))  >= ELBO(q; x),

so the gap ``log p(x) - ELBO`` is exactly how far ``q`` is from the true posterior. With
the reparameterisation ``z = g_phi(eps, x)``, ``eps ~ N(0, I)``, the Monte Carlo ELBO is a
differentiable function of ``phi`` (``elbo``). The answer to the lecture's question is a
flow: push a mean-field sample ``z_0`` through ``z_K = phi_K o ... o phi_1(z_0)`` and, by
the change of variables *in the sampling direction* (eq. (2) read forwards),

    log q(z_K | x) = log q_0(z_0 | x) - sum_k log |det J_{phi_k}(z_{k-1})|.

Here ``z`` is the **latent variable** of a latent-variable model (as the base point of a
normalizing flow is), not the conditioning variable ``z`` of flow matching
(Modeling Choices).

Conventions of this module:

- data ``x`` are batch-first, shape ``(n, D)``; ``x = None`` means "no data": the target is
  one unnormalised density ``p~(z)`` (the 2-D energies) and everything per datum has
  ``n = 1``;
- samples are sample-first: ``z`` of shape ``(S, n, d)`` holds ``S`` latents for each of the
  ``n`` data, ``log_q`` of shape ``(S, n)``;
- ``log_joint(x, z)`` takes *paired rows*, ``x`` of shape ``(m, D)`` and ``z`` of shape
  ``(m, d)`` (row ``i`` of ``z`` is a latent for row ``i`` of ``x``; ``x`` is None without
  data), and returns ``log p(x_i, z_i)`` of shape ``(m,)``;
- a posterior ``q`` is an object with ``sample(x, n_samples, rng) -> (z, log_q)`` and
  ``log_prob(x, z)`` (``MeanFieldGaussian``, ``FullCovarianceGaussian``,
  ``MeanFieldEncoder``, ``FlowPosterior``); ``elbo`` also takes a plain callable
  ``q(x, n_samples, rng) -> (z, log_q)``.

Contents: the ELBO; mean-field, full-covariance and flow posteriors (planar layers as in
Rezende and Mohamed (2015), RealNVP couplings), amortised by an MLP encoder or not;
closed forms for Gaussians (the KL, the best mean-field Gaussian and its gap); the
probabilistic PCA model, whose posterior and ``log p(x)`` are exact; the four 2-D energies
of Rezende and Mohamed (2015, table 1) with ``log Z`` by quadrature; and ``fit_elbo``,
which maximises the ELBO by Adam.
"""

import numbers
from collections import namedtuple
from functools import partial

import autograd.numpy as np
import numpy as onp
from autograd import value_and_grad
from autograd.scipy.linalg import solve_triangular
from autograd.tracer import getval

from ._validate import _describe, as_points, check_callable, check_finite_number, check_positive_int, check_rng
from .flows.chain import chain_forward, chain_inverse, realnvp_forward, realnvp_inverse
from .flows.coupling import _check_permutation
from .flows.planar import PLANAR_MARGIN, planar_constrain, planar_forward, planar_inverse
from .nn import ACTIVATIONS, mlp_apply, mlp_init
from .engines import use_engine
from .train import _adam_update, flatten_params, minibatch_indices

__all__ = [
    "ELBO",
    "elbo",
    "MeanFieldGaussian",
    "FullCovarianceGaussian",
    "lower_cholesky",
    "MeanFieldEncoder",
    "encoder_init",
    "FlowPosterior",
    "planar_posterior",
    "planar_layers_init",
    "realnvp_posterior",
    "gaussian_kl",
    "mean_field_optimum",
    "mean_field_gap",
    "PPCA",
    "ppca_maximum_likelihood",
    "ENERGIES",
    "energy",
    "energy_log_joint",
    "energy_log_normaliser",
    "fit_elbo",
    "PlanarFits",
    "fit_planar_vi",
]

LOG_2PI = onp.log(2.0 * onp.pi)


# --------------------------------------------------------------------------------------
# Input checks (they look through autograd's boxes, so they run inside a gradient)
# --------------------------------------------------------------------------------------


def _as_data(x, name="x"):
    """``x`` as an ``(n, D)`` float64 batch, or None (no data: ``n = 1``)."""
    return None if x is None else as_points(x, name)


def _n_of(x):
    return 1 if x is None else np.shape(x)[0]


def _as_param(value, name, ndims):
    """A real, finite parameter array (or autograd box) whose ndim is one of ``ndims``."""
    raw = getval(value)
    if isinstance(raw, (str, bytes, bool)) or raw is None:
        raise TypeError(f"{name} must be a real array, got {_describe(value)}")
    try:
        arr = onp.asarray(raw)
    except ValueError as err:
        raise TypeError(f"{name} must be a real array, got {_describe(value)}") from err
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real array, got dtype {arr.dtype}")
    if arr.ndim not in ndims:
        raise ValueError(f"{name} must have {' or '.join(str(k) for k in ndims)} dimensions, got shape {arr.shape}")
    if arr.size == 0 or 0 in arr.shape:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if not onp.all(onp.isfinite(arr)):
        raise ValueError(f"{name} holds {int(onp.sum(~onp.isfinite(arr)))} non-finite value(s) (NaN or inf)")
    return value if raw is not value else arr.astype(onp.float64, copy=False)


def _check_n_rows(n_params, x, name):
    """Per-datum parameters (``n_params`` rows) must match the data's ``n`` rows."""
    n = _n_of(x)
    if n_params is not None and n_params != n:
        what = "x is None (one target, n = 1)" if x is None else f"x has n = {n} rows"
        raise ValueError(f"{name} holds parameters for {n_params} data but {what}")
    return n


def _check_z(z, x, d, name="z"):
    """``z`` of shape ``(m, n, d)``, or ``(n, d)`` paired with ``x`` (``(m, d)`` when x is None).

    Returns ``(z3, squeeze)``: ``z3`` of shape ``(m, n, d)`` and whether the result must be
    returned with the sample axis (or the datum axis, when x is None) removed.
    """
    raw = getval(z)
    if isinstance(raw, (str, bytes)) or raw is None:
        raise TypeError(f"{name} must be an array of shape (m, n, d) or (n, d), got {_describe(z)}")
    try:
        arr = onp.asarray(raw)
    except ValueError as err:
        raise TypeError(f"{name} must be a numeric array, got {_describe(z)}") from err
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    n = _n_of(x)
    if arr.ndim == 2:
        if x is None:
            shape3 = (arr.shape[0], 1, arr.shape[1])
        else:
            shape3 = (1,) + arr.shape
    elif arr.ndim == 3:
        shape3 = arr.shape
    else:
        raise ValueError(f"{name} must have shape (m, n, d) or (n, d), got shape {arr.shape}")
    if shape3[1] != n or shape3[2] != d or shape3[0] < 1:
        raise ValueError(f"{name} must have shape (m, {n}, {d}) (or ({n}, {d}) paired with x), got shape {arr.shape}")
    if not onp.all(onp.isfinite(arr)):
        raise ValueError(f"{name} holds non-finite values (NaN or inf)")
    if raw is z:
        z = arr.astype(onp.float64, copy=False)
    return np.reshape(z, shape3), arr.ndim == 2


def _squeeze(log_q, squeeze, x):
    """Undo ``_check_z``'s reshape: ``(m, n)`` back to ``(n,)`` or ``(m,)``."""
    if not squeeze:
        return log_q
    return log_q[:, 0] if x is None else log_q[0]


def _check_bool(value, name):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


# --------------------------------------------------------------------------------------
# The ELBO
# --------------------------------------------------------------------------------------


class ELBO(namedtuple("ELBO", ["value", "stderr"])):
    """A Monte Carlo ELBO per datum and its standard error  [lecture: Variational auto-encoders]

    A named pair: ``value, stderr = elbo(...)`` unpacks it.

    Attributes:
        value: the estimate, shape ``(n,)`` (an autograd box while ``phi`` is differentiated).
        stderr: its standard error, shape ``(n,)``, a plain array (never differentiated), ``>= 0``.
    """

    __slots__ = ()

    def __new__(cls, value, stderr):
        v = onp.asarray(getval(value))
        se = onp.asarray(stderr)
        if v.dtype.kind not in "iuf" or se.dtype.kind not in "iuf":
            raise TypeError(f"value and stderr must be real arrays, got dtypes {v.dtype} and {se.dtype}")
        if v.ndim != 1 or se.shape != v.shape:
            raise ValueError(f"value and stderr must have one shape (n,), got {v.shape} and {se.shape}")
        if not (onp.all(onp.isfinite(v)) and onp.all(onp.isfinite(se)) and onp.all(se >= 0)):
            raise ValueError("value must be finite and stderr finite and >= 0")
        return super().__new__(cls, value, se.astype(onp.float64, copy=False))


def _draw(q, x, n_samples, rng):
    """``(z, log_q)`` from a posterior object or a plain callable, with shapes checked."""
    if hasattr(q, "sample") and callable(getattr(q, "sample")):
        out, who = q.sample(x, n_samples, rng), "q.sample(x, n_samples, rng)"
    elif callable(q):
        out, who = q(x, n_samples, rng), "q(x, n_samples, rng)"
    else:
        raise TypeError(f"q must be a posterior with a sample(x, n_samples, rng) method or a callable "
                        f"q(x, n_samples, rng) -> (z, log_q), got {_describe(q)}")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise TypeError(f"{who} must return a pair (z, log_q), got {type(getval(out)).__name__}")
    z, log_q = out
    n = _n_of(x)
    z_shape, lq_shape = onp.shape(getval(z)), onp.shape(getval(log_q))
    if len(z_shape) != 3 or z_shape[:2] != (n_samples, n) or z_shape[2] < 1:
        raise ValueError(f"{who} must return z of shape ({n_samples}, {n}, d) (samples first), got {z_shape}")
    if lq_shape != (n_samples, n):
        raise ValueError(f"{who} must return log_q of shape ({n_samples}, {n}), got {lq_shape}")
    for value, what in ((z, "z"), (log_q, "log_q")):
        raw = onp.asarray(getval(value))
        if raw.dtype.kind not in "iuf":
            raise TypeError(f"{who} returned {what} of dtype {raw.dtype}, expected real numbers")
        if not onp.all(onp.isfinite(raw)):
            raise ValueError(f"{who} returned {int(onp.sum(~onp.isfinite(raw)))} non-finite value(s) in {what}")
    return z, log_q


def _log_joint_of(log_joint, x, z):
    """``log p(x, z)`` for every sample, shape ``(S, n)``, calling ``log_joint`` once on paired rows."""
    S, n, d = np.shape(z)
    z_rows = np.reshape(z, (S * n, d))  # row s * n + i is sample s of datum i
    x_rows = None if x is None else np.concatenate([x] * S, axis=0) if S > 1 else x
    out = log_joint(x_rows, z_rows)
    raw = getval(out)
    if not isinstance(raw, onp.ndarray) and not isinstance(raw, numbers.Real):
        raise TypeError(f"log_joint(x, z) must return an array of shape ({S * n},), got {type(raw).__name__}")
    if onp.shape(raw) != (S * n,):
        raise ValueError(f"log_joint(x, z) must return shape ({S * n},) (one value per row of z, "
                         f"z of shape ({S * n}, {d})), got shape {onp.shape(raw)}")
    if onp.asarray(raw).dtype.kind not in "iuf":
        raise TypeError(f"log_joint(x, z) must return real numbers, got dtype {onp.asarray(raw).dtype}")
    bad = ~onp.isfinite(onp.asarray(raw, dtype=float))
    if onp.any(bad):
        raise ValueError(f"log_joint(x, z) returned {int(onp.sum(bad))} non-finite value(s) (NaN or inf): "
                         "the ELBO is undefined where q puts mass and log p(x, z) is not finite")
    return np.reshape(out, (S, n))


def elbo(log_joint, q, x, n_samples, rng):
    """Monte Carlo ELBO  E_q[log p(x, z) - log q(z | x)], reparameterised, with its standard error  [lecture: Variational auto-encoders]

        ELBO(x_i) ~ (1/S) sum_s w_si,   w_si = log p(x_i, z_si) - log q(z_si | x_i),
        z_si = g_phi(eps_si, x_i) ~ q(. | x_i),
        stderr_i = std_s(w_si) / sqrt(S)   (ddof = 1),

    and ``log p(x_i) = ELBO(x_i) + KL(q(. | x_i) || p(. | x_i))``. The samples are drawn
    by ``q`` from ``rng`` as differentiable functions of ``q``'s parameters (the
    reparameterisation), so ``autograd.grad`` of ``elbo(...).value.sum()`` with respect to
    parameters from which ``q`` is built inside the differentiated function is the
    reparameterised gradient of the ELBO. When ``q`` is the exact posterior every ``w_si``
    equals ``log p(x_i)`` and the standard error is zero.

    Args:
        log_joint: ``log_joint(x, z) -> log p(x, z)`` on paired rows: ``x`` of shape
            ``(m, D)`` (None when ``x`` is None) and ``z`` of shape ``(m, d)``, returning
            shape ``(m,)``. It is called once, with ``m = n_samples * n``.
        q: a posterior object with ``sample(x, n_samples, rng) -> (z, log_q)`` (those of
            this module), or a callable ``q(x, n_samples, rng) -> (z, log_q)``; ``z`` of shape
            ``(n_samples, n, d)``, ``log_q = log q(z | x)`` of shape ``(n_samples, n)``.
        x: data, shape ``(n, D)``; or None for a target without data (``n = 1``).
        n_samples: ``S >= 2`` samples per datum (two at least, for the standard error).
        rng: ``numpy.random.Generator``.

    Returns:
        ``ELBO(value, stderr)`` (a named pair): the estimate and its standard error, each
        of shape ``(n,)``. ``value`` is differentiable; ``stderr`` is a plain array.
    """
    check_callable(log_joint, "log_joint")
    x = _as_data(x)
    n_samples = check_positive_int(n_samples, "n_samples", minimum=2)
    rng = check_rng(rng)
    z, log_q = _draw(q, x, n_samples, rng)
    w = _log_joint_of(log_joint, x, z) - log_q  # (S, n)
    w_value = onp.asarray(getval(w), dtype=onp.float64)
    stderr = onp.std(w_value, axis=0, ddof=1) / onp.sqrt(n_samples)
    return ELBO(np.mean(w, axis=0), stderr)


# --------------------------------------------------------------------------------------
# Gaussian posteriors
# --------------------------------------------------------------------------------------


class MeanFieldGaussian:
    """Mean-field Gaussian  q(z | x) = N(z; mu, diag(sigma^2)),  z = mu + sigma * eps  [lecture: Variational auto-encoders]

        log q(z) = sum_j [-eps_j^2 / 2 - log sigma_j - log(2 pi) / 2],   eps = (z - mu) / sigma.

    The coordinates of ``z`` are independent: the "mean field" of the lecture's question.

    Args:
        mu: the mean, shape ``(d,)`` (one ``q`` for every datum) or ``(n, d)`` (row ``i``
            for datum ``i``).
        log_sigma: ``log sigma``, the same shape as ``mu``.
    """

    def __init__(self, mu, log_sigma):
        self.mu = _as_param(mu, "mu", (1, 2))
        self.log_sigma = _as_param(log_sigma, "log_sigma", (1, 2))
        if np.shape(self.mu) != np.shape(self.log_sigma):
            raise ValueError(f"mu and log_sigma must have the same shape, got {np.shape(self.mu)} and "
                             f"{np.shape(self.log_sigma)}")
        self.dim = np.shape(self.mu)[-1]
        self._n = np.shape(self.mu)[0] if np.ndim(self.mu) == 2 else None

    def sample(self, x, n_samples, rng):
        """Reparameterised samples  z = mu + sigma * eps, eps ~ N(0, I), and log q(z)  [lecture: Variational auto-encoders]

        Args:
            x: data, shape ``(n, D)``, or None (``n = 1``); only ``n`` is used.
            n_samples: ``S >= 1``.
            rng: ``numpy.random.Generator``.

        Returns:
            ``(z, log_q)``: shapes ``(S, n, d)`` and ``(S, n)``.
        """
        x = _as_data(x)
        n_samples = check_positive_int(n_samples, "n_samples")
        rng = check_rng(rng)
        n = _check_n_rows(self._n, x, "MeanFieldGaussian")
        eps = rng.standard_normal((n_samples, n, self.dim))
        z = self.mu + np.exp(self.log_sigma) * eps
        return z, self._log_q(eps)

    def _log_q(self, eps):
        return np.sum(-0.5 * eps**2 - self.log_sigma - 0.5 * LOG_2PI, axis=-1)

    def log_prob(self, x, z):
        """log q(z | x) = sum_j [-eps_j^2/2 - log sigma_j - log(2 pi)/2], eps = (z - mu)/sigma  [lecture: Variational auto-encoders]

        Args:
            x: data, shape ``(n, D)``, or None.
            z: shape ``(m, n, d)``; or ``(n, d)`` paired with ``x`` (``(m, d)`` if x is None).

        Returns:
            shape ``(m, n)``; ``(n,)`` or ``(m,)`` for a two-dimensional ``z``.
        """
        x = _as_data(x)
        _check_n_rows(self._n, x, "MeanFieldGaussian")
        z3, squeeze = _check_z(z, x, self.dim)
        eps = (z3 - self.mu) * np.exp(-self.log_sigma)
        return _squeeze(self._log_q(eps), squeeze, x)

    def __repr__(self):
        return f"MeanFieldGaussian(d={self.dim}, per_datum={self._n is not None})"


def lower_cholesky(raw):
    """Cholesky factor from unconstrained numbers  L = tril(raw, -1) + diag(exp(diag(raw)))  [lecture: Variational auto-encoders]

    Every real matrix maps to a lower-triangular ``L`` with a positive diagonal, and every
    such ``L`` is reached once: the parametrisation of ``FullCovarianceGaussian`` used for
    optimisation.

    Args:
        raw: shape ``(d, d)`` or ``(n, d, d)``.

    Returns:
        ``L``, the same shape.
    """
    raw = _as_param(raw, "raw", (2, 3))
    d = np.shape(raw)[-1]
    if np.shape(raw)[-2] != d:
        raise ValueError(f"raw must be square, shape (d, d) or (n, d, d), got {np.shape(raw)}")
    eye = onp.eye(d)
    return np.tril(raw, -1) + eye * np.exp(raw * eye)  # exp acts on the diagonal; off it, eye * exp(0) * 0 = 0


class FullCovarianceGaussian:
    """Full-covariance Gaussian  q(z | x) = N(z; mu, L L^T),  z = mu + L eps  [lecture: Variational auto-encoders]

        log q(z) = -|eps|^2 / 2 - sum_j log L_jj - d log(2 pi) / 2,   eps = L^{-1} (z - mu).

    The exact family for a Gaussian posterior (probabilistic PCA): the reference against
    which the mean field falls short.

    Args:
        mu: the mean, shape ``(d,)`` or ``(n, d)`` (one per datum).
        scale_tril: the Cholesky factor ``L``, lower triangular with a positive diagonal,
            shape ``(d, d)`` or ``(n, d, d)`` (``lower_cholesky`` makes one from any matrix).
    """

    def __init__(self, mu, scale_tril):
        self.mu = _as_param(mu, "mu", (1, 2))
        self.scale_tril = _as_param(scale_tril, "scale_tril", (2, 3))
        d = np.shape(self.mu)[-1]
        L = onp.asarray(getval(self.scale_tril))
        if L.shape[-2:] != (d, d):
            raise ValueError(f"scale_tril must have shape ({d}, {d}) (or (n, {d}, {d})) for mu of shape "
                             f"{np.shape(self.mu)}, got {L.shape}")
        if onp.any(onp.triu(L, 1) != 0):
            raise ValueError("scale_tril must be lower triangular (zeros above the diagonal); use lower_cholesky")
        if not onp.all(onp.diagonal(L, axis1=-2, axis2=-1) > 0):
            raise ValueError("scale_tril must have a positive diagonal (it is a Cholesky factor); use lower_cholesky")
        rows = ([np.shape(self.mu)[0]] if np.ndim(self.mu) == 2 else []) + ([L.shape[0]] if L.ndim == 3 else [])
        if len(set(rows)) > 1:
            raise ValueError(f"mu and scale_tril hold parameters for different numbers of data: {rows[0]} and {rows[1]}")
        self.dim, self._n = d, (rows[0] if rows else None)
        self._log_det = np.sum(np.log(np.diagonal(self.scale_tril, axis1=-1, axis2=-2)), axis=-1)

    def sample(self, x, n_samples, rng):
        """Reparameterised samples  z = mu + L eps, eps ~ N(0, I), and log q(z)  [lecture: Variational auto-encoders]

        Returns:
            ``(z, log_q)``: shapes ``(S, n, d)`` and ``(S, n)``.
        """
        x = _as_data(x)
        n_samples = check_positive_int(n_samples, "n_samples")
        rng = check_rng(rng)
        n = _check_n_rows(self._n, x, "FullCovarianceGaussian")
        eps = rng.standard_normal((n_samples, n, self.dim))
        z = self.mu + np.einsum("...ij,...j->...i", self.scale_tril, eps)
        return z, self._log_q(eps)

    def _log_q(self, eps):
        return -0.5 * np.sum(eps**2, axis=-1) - self._log_det - 0.5 * self.dim * LOG_2PI

    def log_prob(self, x, z):
        """log q(z | x) = -|L^{-1}(z - mu)|^2 / 2 - sum_j log L_jj - d log(2 pi) / 2  [lecture: Variational auto-encoders]

        Args, Returns: as ``MeanFieldGaussian.log_prob``.
        """
        x = _as_data(x)
        n = _check_n_rows(self._n, x, "FullCovarianceGaussian")
        z3, squeeze = _check_z(z, x, self.dim)
        m = np.shape(z3)[0]
        r = z3 - self.mu  # (m, n, d)
        if np.ndim(self.scale_tril) == 2:  # one factor for every datum
            eps = solve_triangular(self.scale_tril, np.reshape(r, (m * n, self.dim)).T, lower=True).T
            eps = np.reshape(eps, (m, n, self.dim))
        else:  # one factor per datum
            eps = np.stack([solve_triangular(self.scale_tril[i], r[:, i, :].T, lower=True).T for i in range(n)], axis=1)
        return _squeeze(self._log_q(eps), squeeze, x)

    @property
    def covariance(self):
        """``L L^T``, shape ``(d, d)`` or ``(n, d, d)``."""
        L = self.scale_tril
        return np.einsum("...ij,...kj->...ik", L, L)

    def __repr__(self):
        return f"FullCovarianceGaussian(d={self.dim}, per_datum={self._n is not None})"


# --------------------------------------------------------------------------------------
# Amortisation: an encoder network gives q(z | x) for every x
# --------------------------------------------------------------------------------------


def encoder_init(d_x, d_z, hidden, rng):
    """An encoder MLP  x -> [mu(x), log sigma(x)]  from D to 2 d outputs  [lecture: Variational auto-encoders]

    Args:
        d_x: ``D``, the dimension of the data.
        d_z: ``d``, the dimension of the latent.
        hidden: hidden widths, e.g. ``(32,)`` (``()`` for an affine encoder).
        rng: ``numpy.random.Generator``.

    Returns:
        ``reference.nn.mlp_init`` parameters for sizes ``(D, *hidden, 2 d)``.
    """
    d_x = check_positive_int(d_x, "d_x")
    d_z = check_positive_int(d_z, "d_z")
    if isinstance(hidden, numbers.Integral) or not isinstance(hidden, (tuple, list)):
        raise TypeError(f"hidden must be a tuple of hidden widths such as (32,), got {hidden!r}")
    hidden = tuple(check_positive_int(h, "hidden[...]") for h in hidden)
    return mlp_init((d_x, *hidden, 2 * d_z), check_rng(rng))


class MeanFieldEncoder:
    """Amortised mean-field posterior  q_phi(z | x) = N(z; mu_phi(x), diag(sigma_phi(x)^2))  [lecture: Variational auto-encoders]

        [mu_phi(x), log sigma_phi(x)] = MLP_phi(x)   (reference.nn.mlp_apply)

    One network gives the posterior of every datum: the encoder of a variational
    auto-encoder (Kingma, 2017).

    Args:
        params: ``encoder_init`` parameters (sizes ``(D, ..., 2 d)``).
        activation: the hidden activation of ``reference.nn.mlp_apply``.
    """

    def __init__(self, params, activation="tanh"):
        raw = getval(params)
        if not isinstance(raw, (list, tuple)) or not raw or not all(
            isinstance(layer, (list, tuple)) and len(layer) == 2 for layer in raw
        ):
            raise TypeError("params must be an MLP: a list of (W, b) pairs as made by encoder_init")
        for k, (W, b) in enumerate(params):
            _as_param(W, f"params[{k}][0]", (2,))
            _as_param(b, f"params[{k}][1]", (1,))
        d_out = np.shape(raw[-1][0])[1]
        if d_out % 2:
            raise ValueError(f"the encoder's last layer must have 2 d outputs (mu and log sigma), got {d_out}")
        if isinstance(activation, str):
            if activation not in ACTIVATIONS:
                raise ValueError(f"activation must be one of {list(ACTIVATIONS)} or a callable, got {activation!r}")
        elif not callable(activation):
            raise TypeError(f"activation must be a name in {list(ACTIVATIONS)} or a callable, got {activation!r}")
        self.params, self.activation = params, activation
        self.dim, self.d_x = d_out // 2, np.shape(raw[0][0])[0]

    def gaussian(self, x):
        """The mean-field Gaussian of each datum: ``MeanFieldGaussian(mu(x), log_sigma(x))`` with shapes ``(n, d)``."""
        if x is None:
            raise ValueError("x must be data of shape (n, D) for an amortised posterior, got None")
        x = as_points(x, "x", d=self.d_x)
        out = mlp_apply(self.params, x, self.activation)
        return MeanFieldGaussian(out[:, : self.dim], out[:, self.dim :])

    def sample(self, x, n_samples, rng):
        """z = mu(x) + sigma(x) * eps and log q(z | x), shapes ``(S, n, d)`` and ``(S, n)``  [lecture: Variational auto-encoders]"""
        return self.gaussian(x).sample(x, n_samples, rng)

    def log_prob(self, x, z):
        """log q(z | x) of the encoder's Gaussian; shapes as ``MeanFieldGaussian.log_prob``  [lecture: Variational auto-encoders]"""
        return self.gaussian(x).log_prob(x, z)

    def __repr__(self):
        return f"MeanFieldEncoder(D={self.d_x}, d={self.dim})"


# --------------------------------------------------------------------------------------
# Flow posteriors: the change of variables in the sampling direction
# --------------------------------------------------------------------------------------


class FlowPosterior:
    """Flow posterior  z_K = T(z_0) = phi_K o ... o phi_1(z_0),  z_0 ~ q_0(. | x)  [lecture: Variational auto-encoders; Normalizing Flows; eq. (2)]

        log q(z_K | x) = log q_0(z_0 | x) - sum_{k=1}^K log |det J_{phi_k}(z_{k-1})|

    the change of variables of eq. (2) in the sampling direction: the log-dets are those
    of the forward layers at the points the sample passed through, so sampling needs no
    inverse. ``log_prob`` at a given ``z_K`` goes the other way (eq. (2) as written):
    ``log q(z_K) = log q_0(T^{-1}(z_K)) + log |det J_{T^{-1}}(z_K)|``, and needs ``inverse``.
    The base may be amortised (``MeanFieldEncoder``).

    ``forward`` and ``inverse`` act on rows: the samples ``(S, n, d)`` are passed as
    ``(S n, d)`` rows, row ``s n + i`` being sample ``s`` of datum ``i``. Layers shared by all
    data ignore the order; layers with parameters per datum (``n_data`` set, as
    ``planar_posterior`` makes them) rely on it.

    Args:
        base: the posterior ``q_0`` (an object with ``sample``, ``log_prob`` and ``dim``),
            usually a ``MeanFieldGaussian`` or a ``MeanFieldEncoder``.
        forward: ``forward(z) -> (T(z), log |det J_T(z)|)`` on rows of shape ``(m, d)``
            (e.g. ``partial(reference.flows.chain.planar_chain_forward, layers)``).
        inverse: optional ``inverse(y) -> (T^{-1}(y), log |det J_{T^{-1}}(y)|)``, for ``log_prob``.
        n_data: the number of data the layers hold parameters for, or None (shared layers).
    """

    def __init__(self, base, forward, inverse=None, n_data=None):
        if not (hasattr(base, "sample") and hasattr(base, "log_prob") and isinstance(getattr(base, "dim", None), int)):
            raise TypeError(f"base must be a posterior with sample, log_prob and dim (e.g. MeanFieldGaussian), "
                            f"got {_describe(base)}")
        self.base = base
        self.forward = check_callable(forward, "forward")
        self.inverse = None if inverse is None else check_callable(inverse, "inverse")
        self.n_data = None if n_data is None else check_positive_int(n_data, "n_data")
        self.dim = base.dim

    def _map(self, f, name, z3):
        """``f`` (forward or inverse) on samples of shape ``(m, n, d)``, as rows, with its output checked."""
        m, n, d = np.shape(z3)
        if self.n_data is not None and n != self.n_data:
            raise ValueError(f"the flow's layers are per datum for {self.n_data} data, got samples for n = {n}")
        out = f(np.reshape(z3, (m * n, d)))
        if not isinstance(out, tuple) or len(out) != 2:
            raise TypeError(f"{name}(z) must return a pair (points, log_det), got {type(getval(out)).__name__}")
        y, log_det = out
        if np.shape(y) != (m * n, d) or np.shape(log_det) != (m * n,):
            raise ValueError(f"{name}(z) must return shapes ({m * n}, {d}) and ({m * n},), got "
                             f"{np.shape(y)} and {np.shape(log_det)}")
        for value, what in ((y, "point"), (log_det, "log-determinant")):
            bad = ~onp.isfinite(onp.asarray(getval(value), dtype=float))
            if onp.any(bad):
                raise ValueError(f"{name}(z) returned {int(bad.sum())} non-finite {what}(s) (NaN or inf)")
        return np.reshape(y, (m, n, d)), np.reshape(log_det, (m, n))

    def sample(self, x, n_samples, rng):
        """z_K = T(z_0), log q(z_K | x) = log q_0(z_0 | x) - log |det J_T(z_0)|  [lecture: Variational auto-encoders; eq. (2)]

        Returns:
            ``(z, log_q)``: shapes ``(S, n, d)`` and ``(S, n)``.
        """
        z0, log_q0 = self.base.sample(x, n_samples, rng)
        zK, log_det = self._map(self.forward, "forward", z0)
        return zK, log_q0 - log_det

    def transform(self, x, z0):
        """The same change of variables at given base points: z_K = T(z_0), log q(z_K) = log q_0(z_0) - log |det J_T(z_0)|  [lecture: eq. (2)]

        No inverse is needed, so the density of the flow on the image of a grid of base
        points is exact and cheap (the figures draw it so).

        Args:
            x: data, shape ``(n, D)``, or None.
            z0: base points, shape ``(m, n, d)`` (or ``(n, d)``; ``(m, d)`` when x is None).

        Returns:
            ``(z_K, log_q)``: shapes like ``z0`` and ``(m, n)`` (``(n,)`` or ``(m,)``).
        """
        x = _as_data(x)
        z3, squeeze = _check_z(z0, x, self.dim, "z0")
        zK, log_det = self._map(self.forward, "forward", z3)
        log_q = self.base.log_prob(x, z3) - log_det
        if squeeze:
            zK = zK[:, 0] if x is None else zK[0]
        return zK, _squeeze(log_q, squeeze, x)

    def log_prob(self, x, z):
        """log q(z_K | x) = log q_0(T^{-1}(z_K) | x) + log |det J_{T^{-1}}(z_K)|  [lecture: eq. (2); Normalizing Flows]

        Args, Returns: as ``MeanFieldGaussian.log_prob``.
        """
        if self.inverse is None:
            raise ValueError("this FlowPosterior has no inverse: log_prob at a given z needs T^{-1} "
                             "(sample() needs only the forward map)")
        x = _as_data(x)
        z3, squeeze = _check_z(z, x, self.dim)
        z0, log_det_inv = self._map(self.inverse, "inverse", z3)
        return _squeeze(self.base.log_prob(x, z0) + log_det_inv, squeeze, x)

    def __repr__(self):
        shared = "shared layers" if self.n_data is None else f"layers for {self.n_data} data"
        return f"FlowPosterior(base={self.base!r}, {shared})"


def _planar_layers(layers):
    """Check planar layers; return ``(A, B, C, n)`` stacked layer-major, or the list of dicts as given.

    ``A, B`` have shape ``(K, d)`` (shared) or ``(K, n, d)`` (per datum), ``C`` ``(K,)`` or ``(K, n)``;
    ``n`` is None for shared layers. For a list of dicts, ``A`` is that list and ``B = C = None``.
    """
    raw = getval(layers)
    if isinstance(raw, dict) and set(raw) == {"a", "b", "c"}:
        A = _as_param(layers["a"], "layers['a']", (2, 3))
        B = _as_param(layers["b"], "layers['b']", (2, 3))
        C = _as_param(layers["c"], "layers['c']", (1, 2))
        if np.shape(A) != np.shape(B) or np.shape(C) != np.shape(A)[:-1]:
            raise ValueError(f"stacked planar layers need a, b of shape (K, d) and c of shape (K,) (shared), or "
                             f"(n, K, d) and (n, K) (per datum), got {np.shape(A)}, {np.shape(B)}, {np.shape(C)}")
        if np.ndim(A) == 2:
            return A, B, C, None
        n = np.shape(A)[0]  # datum-first as given, layer-major inside
        return np.transpose(A, (1, 0, 2)), np.transpose(B, (1, 0, 2)), np.transpose(C), n
    if isinstance(raw, (list, tuple)) and raw and all(isinstance(getval(layer), dict) for layer in raw):
        if not all(set(getval(layer)) == {"a", "b", "c"} for layer in raw):
            raise TypeError("every planar layer in layers must be a dict with keys 'a', 'b', 'c'")
        for k, layer in enumerate(layers):
            _as_param(layer["a"], f"layers[{k}]['a']", (1,))
            _as_param(layer["b"], f"layers[{k}]['b']", (1,))
            _as_param(layer["c"], f"layers[{k}]['c']", (0,))
        shapes = {np.shape(layer[key]) for layer in layers for key in "ab"}
        if len(shapes) != 1:
            raise ValueError(f"every planar layer must have a and b of one shape (d,), got {sorted(shapes)}")
        return list(layers), None, None, None
    raise TypeError("layers must be a list of planar-layer dicts {'a', 'b', 'c'} (reference.flows.planar), "
                    "or one dict of stacked arrays {'a': (K, d), 'b': (K, d), 'c': (K,)} (shared by all data) "
                    "or {'a': (n, K, d), 'b': (n, K, d), 'c': (n, K)} (one flow per datum)")


def planar_posterior(base, layers, constrain=True, active=None, fused=None):
    """Planar-flow posterior (Rezende & Mohamed, 2015)  z_k = z_{k-1} + tanh(b_k^T z_{k-1} + c_k) a_k  [lecture: Variational auto-encoders; planar flow]

        log q(z_K | x) = log q_0(z_0 | x) - sum_k log |1 + tanh'(b_k^T z_{k-1} + c_k) a_k^T b_k|

    Sampling runs the readable layers of ``reference.flows.planar``: ``planar_constrain``,
    then ``planar_forward`` of each layer composed by ``reference.flows.chain.chain_forward``;
    or their fast engine (``reference.engines.variational``: the whole chain as one autograd
    primitive whose backward pass is written out, one graph node instead of about twenty
    per layer; tested equal to the readable chain, values and gradients). ``log_prob``
    inverts each layer by its root solve (``planar_inverse``).

    Args:
        base: ``q_0``, e.g. a ``MeanFieldGaussian`` or a ``MeanFieldEncoder``.
        layers: the layers, ``phi_1`` first, as
            - a list of planar-layer dicts ``{"a": (d,), "b": (d,), "c": ()}`` (shared by all data);
            - one dict of stacked arrays ``{"a": (K, d), "b": (K, d), "c": (K,)}`` (shared;
              cheaper to differentiate: three leaves instead of ``3 K``);
            - ``{"a": (n, K, d), "b": (n, K, d), "c": (n, K)}``: a flow of its own for each
              of ``n`` data (unamortised VI on several targets at once).
        constrain: pass each layer through ``planar_constrain`` first, so that any numbers
            give an invertible flow (the parametrisation to optimise). With
            ``constrain=False`` every layer must already satisfy ``a^T b > -1``.
        active: optional booleans, shape ``(K,)`` or ``(n, K)`` (per datum): a layer that is
            not active is the identity (its ``a`` is set to 0 after the constraint), so
            flows of different depths ``K' <= K`` (``K' = 0``: the base alone) are fitted
            at once, one per datum.
        fused: ``None`` (default: the engine unless ``reference.readable()``), ``True`` (the
            fused primitive) or ``False`` (the readable layers).

    Returns:
        a ``FlowPosterior``.
    """
    A, B, C, n = _planar_layers(layers)
    constrain, fused = _check_bool(constrain, "constrain"), use_engine(fused)
    if isinstance(A, list):  # a list of dicts: shared layers
        A, B, C = (np.stack([layer[key] for layer in A]) for key in "abc")
    K, d = np.shape(A)[0], np.shape(A)[-1]
    if getattr(base, "dim", d) != d:
        raise ValueError(f"the planar layers act on d = {d} but the base has d = {base.dim}")
    mask = None
    if active is not None:
        expected = (K,) if n is None else (n, K)
        mask = onp.asarray(active)
        if mask.dtype != bool:
            raise TypeError(f"active must be a boolean array of shape {expected}, got dtype {mask.dtype}")
        if mask.shape != expected:
            raise ValueError(f"active must have shape {expected} (one flag per layer{' and datum' if n else ''}), "
                             f"got {mask.shape}")
        mask = mask.astype(onp.float64).T[..., None]  # layer-major like A: (K, 1) or (K, n, 1)
    if not constrain:
        ab = onp.sum(onp.asarray(getval(A)) * onp.asarray(getval(B)), axis=-1)
        if onp.any(ab <= -1.0):
            raise ValueError(f"{int(onp.sum(ab <= -1.0))} layer(s) violate a^T b > -1 (not invertible); "
                             "pass constrain=True or use reference.flows.planar.planar_constrain")

    def layer(k, i=None):
        """Layer k (of datum i) as used: constrained by ``planar_constrain``, then switched off if not active."""
        at = (k,) if i is None else (k, i)
        raw = {"a": A[at], "b": B[at], "c": C[at]}
        out = planar_constrain(raw) if constrain else raw
        return out if mask is None else dict(out, a=out["a"] * mask[at])

    def per_datum(f, rows):
        """Apply ``f(i, points_of_datum_i)`` to each datum's rows and put the rows back in order."""
        z3 = np.reshape(rows, (-1, n, d))
        outs = [f(i, z3[:, i, :]) for i in range(n)]
        return (np.reshape(np.stack([o[0] for o in outs], axis=1), (-1, d)),
                np.reshape(np.stack([o[1] for o in outs], axis=1), (-1,)))

    if fused:
        from .engines.variational import _fused_planar_forward

        forward = _fused_planar_forward(A, B, C, mask, constrain, n, d)
    elif n is None:
        forward = partial(chain_forward, [partial(planar_forward, layer(k)) for k in range(K)])
    else:
        def forward(rows):
            return per_datum(lambda i, z: chain_forward([partial(planar_forward, layer(k, i)) for k in range(K)], z),
                             rows)

    def inverse(rows):
        if n is None:
            return chain_inverse([partial(planar_inverse, layer(k)) for k in range(K)], rows)
        return per_datum(lambda i, y: chain_inverse([partial(planar_inverse, layer(k, i)) for k in range(K)], y), rows)

    return FlowPosterior(base, forward, inverse, n_data=n)


def planar_layers_init(n_layers, mu, sigma, rng, a_scale=0.01):
    """Planar layers that start near the identity, with hyperplanes through the base's mass  [lecture: planar flow]

        b_k = eta_k / sigma,   c_k = -b_k^T (mu + sigma * xi_k),   eta_k, xi_k ~ N(0, I),
        a_k such that planar_constrain(a_k) = a_hat_k ~ N(0, a_scale^2 I / d):

    (``a_hat_k`` moved along ``b_k`` where needed so that ``a_hat_k^T b_k >= -1/2``: invertible); the hyperplane ``b_k^T z + c_k = 0`` of each layer passes through a point drawn from
    ``N(mu, diag(sigma^2))`` (where the layer can act on the samples), and ``a_k`` is the
    unconstrained vector that ``planar_constrain`` maps to the small ``a_hat_k``: with
    ``m`` of ``planar_constrain``, ``a_k = a_hat_k + (m^{-1}(a_hat_k^T b_k) - a_hat_k^T b_k) b_k / |b_k|^2``
    and ``m^{-1}(t) = log(exp(t + 1 - delta) - 1) - 1 + delta``. A raw ``a = 0`` would not
    do: ``planar_constrain`` maps it to ``0.31 b / |b|^2``, far from the identity.

    Args:
        n_layers: ``K``.
        mu, sigma: the base's mean and standard deviations, shape ``(d,)`` (shared layers)
            or ``(n, d)`` (a flow per datum); ``sigma > 0``.
        rng: ``numpy.random.Generator``.
        a_scale: the size of ``a_hat``, ``>= 0``.

    Returns:
        unconstrained stacked layers for ``planar_posterior(..., constrain=True)``:
        ``{"a": (K, d), "b": (K, d), "c": (K,)}`` or ``{"a": (n, K, d), "b": (n, K, d), "c": (n, K)}``.
    """
    K = check_positive_int(n_layers, "n_layers")
    mu = onp.asarray(_as_param(mu, "mu", (1, 2)))
    sigma = onp.asarray(_as_param(sigma, "sigma", (1, 2)))
    if mu.shape != sigma.shape:
        raise ValueError(f"mu and sigma must have the same shape, got {mu.shape} and {sigma.shape}")
    if not onp.all(sigma > 0):
        raise ValueError("sigma must be > 0")
    rng = check_rng(rng)
    a_scale = float(check_finite_number(a_scale, "a_scale", nonnegative=True))
    lead, d = mu.shape[:-1], mu.shape[-1]
    mu, sigma = mu[..., None, :], sigma[..., None, :]  # (.., 1, d): broadcast over layers
    b = rng.standard_normal(lead + (K, d)) / sigma
    c = -onp.sum(b * (mu + sigma * rng.standard_normal(lead + (K, d))), axis=-1)
    a_hat = rng.normal(0.0, a_scale / onp.sqrt(d), lead + (K, d))
    b2 = onp.sum(b * b, axis=-1, keepdims=True)
    a_hat = a_hat + onp.maximum(-0.5 - onp.sum(a_hat * b, axis=-1, keepdims=True), 0.0) * b / b2  # a_hat^T b >= -1/2
    t = onp.sum(a_hat * b, axis=-1, keepdims=True)
    s = onp.log(onp.expm1(t + 1.0 - PLANAR_MARGIN)) - 1.0 + PLANAR_MARGIN  # m^{-1}(t)
    a = a_hat + (s - t) * b / b2
    return {"a": a, "b": b, "c": c}


def realnvp_posterior(base, params, perms=None):
    """RealNVP-flow posterior: affine couplings (eq. (3)) on a base sample  [lecture: Variational auto-encoders; RealNVP, eq. (3)]

        log q(z_K | x) = log q_0(z_0 | x) - sum_k sum_i s_k(z_{k-1, 1:d'})_i

    The layers are those of ``reference.flows.chain.realnvp_forward`` (halves alternating
    unless ``perms`` says otherwise); ``log_prob`` inverts them in closed form.

    Args:
        base: ``q_0``.
        params: ``reference.flows.chain.realnvp_init`` parameters for ``d = base.dim``.
        perms: the coordinate order of each layer (``alternating_permutations`` by default).

    Returns:
        a ``FlowPosterior``.
    """
    raw = getval(params)
    if not isinstance(raw, (list, tuple)) or not raw or not isinstance(getval(raw[0]), dict):
        raise TypeError("params must be a non-empty list of coupling-layer dicts (reference.flows.chain.realnvp_init)")
    first = getval(raw[0])
    if set(first) != {"s", "t"}:
        raise TypeError("params must be a list of coupling-layer dicts {'s': mlp, 't': mlp}")
    d = onp.shape(first["s"][0][0])[0] + onp.shape(first["s"][-1][0])[1]
    if hasattr(base, "dim") and d != base.dim:
        raise ValueError(f"the couplings act on d = {d} but the base has d = {base.dim}")
    if perms is not None:
        if not isinstance(perms, (list, tuple)) or len(perms) != len(raw):
            raise ValueError(f"perms must hold one permutation per coupling layer ({len(raw)}), got {perms!r}")
        perms = [_check_permutation(p, d, f"perms[{k}]") for k, p in enumerate(perms)]
    return FlowPosterior(base, partial(realnvp_forward, params, perms=perms), partial(realnvp_inverse, params, perms=perms))


# --------------------------------------------------------------------------------------
# Closed forms for Gaussians
# --------------------------------------------------------------------------------------


def _as_cov(cov, name, d=None):
    cov = onp.asarray(_as_param(getval(cov), name, (2, 3)), dtype=onp.float64)
    if cov.shape[-1] != cov.shape[-2] or (d is not None and cov.shape[-1] != d):
        raise ValueError(f"{name} must have shape (d, d) or (n, d, d)" + (f" with d = {d}" if d else "")
                         + f", got {cov.shape}")
    if not onp.allclose(cov, onp.swapaxes(cov, -1, -2), rtol=1e-12, atol=0):
        raise ValueError(f"{name} must be symmetric")
    try:
        onp.linalg.cholesky(cov)
    except onp.linalg.LinAlgError as err:
        raise ValueError(f"{name} must be positive definite") from err
    return cov


def gaussian_kl(mu_q, cov_q, mu_p, cov_p):
    """KL(N(mu_q, S_q) || N(mu_p, S_p)) in closed form  [lecture: Variational auto-encoders]

        KL = [tr(S_p^{-1} S_q) + (mu_p - mu_q)^T S_p^{-1} (mu_p - mu_q) - d
              + log det S_p - log det S_q] / 2

    For ``q`` the variational posterior and ``p`` a Gaussian true posterior this is the
    gap ``log p(x) - ELBO(q)``.

    Args:
        mu_q, mu_p: means, shape ``(d,)`` or ``(n, d)``.
        cov_q, cov_p: covariances, shape ``(d, d)`` or ``(n, d, d)`` (symmetric positive definite).

    Returns:
        shape ``(n,)`` if any argument is per datum, else a float.
    """
    mu_q = onp.asarray(_as_param(getval(mu_q), "mu_q", (1, 2)), dtype=onp.float64)
    d = mu_q.shape[-1]
    mu_p = onp.asarray(_as_param(getval(mu_p), "mu_p", (1, 2)), dtype=onp.float64)
    if mu_p.shape[-1] != d:
        raise ValueError(f"mu_p must have d = {d} like mu_q, got shape {mu_p.shape}")
    cov_q, cov_p = _as_cov(cov_q, "cov_q", d), _as_cov(cov_p, "cov_p", d)
    rows = {a.shape[0] for a in (mu_q, mu_p) if a.ndim == 2} | {a.shape[0] for a in (cov_q, cov_p) if a.ndim == 3}
    if len(rows) > 1:
        raise ValueError(f"the per-datum arguments disagree on n: {sorted(rows)}")
    prec_p = onp.linalg.inv(cov_p)
    diff = mu_p - mu_q
    trace = onp.einsum("...ij,...ji->...", prec_p, cov_q)
    maha = onp.einsum("...i,...ij,...j->...", diff, prec_p, diff)
    kl = 0.5 * (trace + maha - d + onp.linalg.slogdet(cov_p)[1] - onp.linalg.slogdet(cov_q)[1])
    return onp.asarray(kl, dtype=onp.float64) if rows else float(kl)


def mean_field_optimum(cov):
    """The best mean-field Gaussian for N(m, S) under KL(q || p): mean m, variances 1 / (S^{-1})_jj  [lecture: Variational auto-encoders]

    With ``Lambda = S^{-1}`` and ``q = N(mu, diag(v))``,
    ``2 KL = sum_j Lambda_jj v_j + (mu - m)^T Lambda (mu - m) - d + log det S - sum_j log v_j``;
    its gradient vanishes at ``mu = m`` and ``v_j = 1 / Lambda_jj``: the precisions of the
    optimal mean field are the diagonal of the posterior precision (not the inverse of the
    diagonal of ``S``, which moment matching, KL(p || q), would give).

    Args:
        cov: ``S``, shape ``(d, d)``.

    Returns:
        the optimal variances ``v``, shape ``(d,)`` (the optimal mean is ``m`` itself).
    """
    cov = _as_cov(cov, "cov")
    if cov.ndim != 2:
        raise ValueError(f"cov must have shape (d, d), got {cov.shape}")
    return 1.0 / onp.diag(onp.linalg.inv(cov))


def mean_field_gap(cov):
    """KL of the best mean-field Gaussian to N(m, S):  KL* = (sum_j log Lambda_jj - log det Lambda) / 2,  Lambda = S^{-1}  [lecture: Variational auto-encoders]

    Putting ``mu = m``, ``v_j = 1 / Lambda_jj`` into ``gaussian_kl``: the trace term is
    ``d``, so ``2 KL* = log det S + sum_j log Lambda_jj``. It is ``>= 0`` (Hadamard's
    inequality) and zero exactly when ``Lambda`` is diagonal; in 2-D it is
    ``-log(1 - rho^2) / 2`` with ``rho`` the correlation of ``Lambda`` (equal in size to
    that of ``S``). For a model whose posterior is N(m(x), S) this is the smallest gap
    ``log p(x) - ELBO`` any mean-field ``q`` can reach.

    Args:
        cov: ``S``, shape ``(d, d)``.

    Returns:
        ``KL*``, a float.
    """
    cov = _as_cov(cov, "cov")
    if cov.ndim != 2:
        raise ValueError(f"cov must have shape (d, d), got {cov.shape}")
    precision = onp.linalg.inv(cov)
    return 0.5 * float(onp.sum(onp.log(onp.diag(precision))) - onp.linalg.slogdet(precision)[1])


# --------------------------------------------------------------------------------------
# Probabilistic PCA: a VAE whose answer is known
# --------------------------------------------------------------------------------------


class PPCA:
    """Probabilistic PCA  p(z) = N(0, I_d),  p(x | z) = N(W z + b, s^2 I_D)  [lecture: Variational auto-encoders]

    A linear-Gaussian latent-variable model, so everything a VAE approximates is exact:

        p(x)     = N(x; b, W W^T + s^2 I),
        p(z | x) = N(z; m(x), S),   S = (I + W^T W / s^2)^{-1},   m(x) = S W^T (x - b) / s^2.

    The posterior covariance ``S`` is the same for every ``x``: the gap of the best
    mean-field ``q`` is ``mean_field_gap(S)`` for every datum.

    Args:
        W: the decoder's weights, shape ``(D, d)``.
        b: the decoder's bias, shape ``(D,)``.
        noise_std: ``s > 0`` (a float, or an autograd box while it is learned).
    """

    def __init__(self, W, b, noise_std):
        self.W = _as_param(W, "W", (2,))
        self.b = _as_param(b, "b", (1,))
        self.D, self.d = np.shape(self.W)
        if np.shape(self.b) != (self.D,):
            raise ValueError(f"b must have shape ({self.D},) for W of shape {np.shape(self.W)}, got {np.shape(self.b)}")
        s = getval(noise_std)
        if isinstance(s, (bool, str, bytes)) or onp.ndim(s) != 0 or onp.asarray(s).dtype.kind not in "iuf":
            raise TypeError(f"noise_std must be a positive real number, got {_describe(noise_std)}")
        if not (onp.isfinite(s) and s > 0):
            raise ValueError(f"noise_std must be finite and > 0, got {float(s)}")
        self.noise_std = noise_std

    def log_joint(self, x, z):
        """log p(x, z) = log N(z; 0, I) + log N(x; W z + b, s^2 I) on paired rows  [lecture: Variational auto-encoders]

        Args:
            x: shape ``(m, D)``.
            z: shape ``(m, d)``.

        Returns:
            shape ``(m,)``.
        """
        x = as_points(x, "x", d=self.D)
        z = as_points(z, "z", d=self.d)
        if np.shape(x)[0] != np.shape(z)[0]:
            raise ValueError(f"x and z must have the same number of rows (paired), got {np.shape(x)[0]} and {np.shape(z)[0]}")
        s = self.noise_std
        r = x - np.dot(z, self.W.T) - self.b
        log_prior = -0.5 * np.sum(z**2, axis=1) - 0.5 * self.d * LOG_2PI
        log_lik = -0.5 * np.sum(r**2, axis=1) / s**2 - self.D * np.log(s) - 0.5 * self.D * LOG_2PI
        return log_prior + log_lik

    def posterior_covariance(self):
        """S = (I + W^T W / s^2)^{-1}, shape ``(d, d)``  [lecture: Variational auto-encoders]"""
        W, s = onp.asarray(getval(self.W)), float(getval(self.noise_std))
        return onp.linalg.inv(onp.eye(self.d) + W.T @ W / s**2)

    def posterior_mean(self, x):
        """m(x) = S W^T (x - b) / s^2, shape ``(n, d)``  [lecture: Variational auto-encoders]"""
        x = as_points(x, "x", d=self.D)
        W, b, s = (onp.asarray(getval(v)) for v in (self.W, self.b, self.noise_std))
        return (x - b) @ W @ self.posterior_covariance().T / s**2

    def posterior(self, x):
        """The exact posterior p(z | x) = N(m(x), S) as a ``FullCovarianceGaussian`` (per datum means)  [lecture: Variational auto-encoders]"""
        return FullCovarianceGaussian(self.posterior_mean(x), onp.linalg.cholesky(self.posterior_covariance()))

    def marginal_covariance(self):
        """C = W W^T + s^2 I, shape ``(D, D)``  [lecture: Variational auto-encoders]"""
        W, s = onp.asarray(getval(self.W)), float(getval(self.noise_std))
        return W @ W.T + s**2 * onp.eye(self.D)

    def log_marginal(self, x):
        """log p(x) = log N(x; b, W W^T + s^2 I), shape ``(n,)``  [lecture: Variational auto-encoders]"""
        x = as_points(x, "x", d=self.D)
        C = self.marginal_covariance()
        r = x - onp.asarray(getval(self.b))
        L = onp.linalg.cholesky(C)
        u = onp.linalg.solve(L, r.T)
        return -0.5 * onp.sum(u**2, axis=0) - onp.sum(onp.log(onp.diag(L))) - 0.5 * self.D * LOG_2PI

    def sample(self, n, rng):
        """Draw ``(x, z)`` from p(z) p(x | z): shapes ``(n, D)`` and ``(n, d)``  [lecture: Variational auto-encoders]"""
        n = check_positive_int(n, "n")
        rng = check_rng(rng)
        W, b, s = (onp.asarray(getval(v)) for v in (self.W, self.b, self.noise_std))
        z = rng.standard_normal((n, self.d))
        return z @ W.T + b + s * rng.standard_normal((n, self.D)), z

    def __repr__(self):
        return f"PPCA(D={self.D}, d={self.d}, noise_std={float(getval(self.noise_std)):.4g})"


def ppca_maximum_likelihood(x, d):
    """Maximum-likelihood PCA (Tipping & Bishop, 1999) in closed form  [lecture: Variational auto-encoders]

        b = mean(x),  s^2 = mean of the D - d smallest eigenvalues of the sample covariance,
        W = U_d (Lambda_d - s^2 I)^{1/2}   (U_d, Lambda_d: the d leading eigenpairs)

    (``W`` is determined up to a rotation ``W R``; this is the one with orthogonal columns.)

    Args:
        x: data, shape ``(n, D)`` with ``D > d``.
        d: the latent dimension.

    Returns:
        a ``PPCA`` with the maximum-likelihood parameters.
    """
    x = as_points(x, "x")
    d = check_positive_int(d, "d")
    n, D = x.shape
    if D <= d:
        raise ValueError(f"d must be smaller than the data's dimension D = {D}, got d = {d}")
    if n < 2:
        raise ValueError(f"x must hold at least 2 points to estimate a covariance, got {n}")
    b = x.mean(axis=0)
    evals, evecs = onp.linalg.eigh(onp.cov(x.T, bias=True))
    evals, evecs = evals[::-1], evecs[:, ::-1]
    s2 = evals[d:].mean()
    if not s2 > 0:
        raise ValueError("the data lie in a d-dimensional subspace: the maximum-likelihood noise variance is 0")
    W = evecs[:, :d] * onp.sqrt(onp.maximum(evals[:d] - s2, 0.0))
    return PPCA(W, b, float(onp.sqrt(s2)))


# --------------------------------------------------------------------------------------
# The 2-D energies of Rezende & Mohamed (2015, table 1)
# --------------------------------------------------------------------------------------

ENERGIES = ("U1", "U2", "U3", "U4")
"""The names of the four unnormalised 2-D targets ``p(z) = exp(-U(z)) / Z`` of Rezende and Mohamed (2015, table 1)."""

WINDOW = 4.0
"""``U2``-``U4`` are constant in size along their ridge for every ``z1`` and do not integrate; here they get the
factor ``exp(-(z1 / WINDOW)^8 / 2)``: at least 0.95 for ``|z1| <= 3``, 0.61 at ``|z1| = 4`` (the edge of the paper's
plots), below ``1e-5`` beyond ``|z1| = 6``."""

BOX = 7.0
"""``log Z`` is a trapezoid rule on ``[-BOX, BOX]^2``; every target's density is below ``e^-40`` of its peak outside it."""


def _w1(z1):
    return np.sin(0.5 * np.pi * z1)


def _w2(z1):
    return 3.0 * np.exp(-0.5 * ((z1 - 1.0) / 0.6) ** 2)


def _w3(z1):
    return 3.0 * np.exp(-np.logaddexp(0.0, -(z1 - 1.0) / 0.3))  # 3 sigmoid((z1 - 1) / 0.3)


def energy(name, z):
    """Rezende & Mohamed's (2015, table 1) 2-D energies U(z), p(z) = exp(-U(z)) / Z  [lecture: Variational auto-encoders]

        U1 = ((|z| - 2) / 0.4)^2 / 2 - log(exp(-((z1 - 2) / 0.6)^2 / 2) + exp(-((z1 + 2) / 0.6)^2 / 2))
        U2 = ((z2 - w1) / 0.4)^2 / 2
        U3 = -log(exp(-((z2 - w1) / 0.35)^2 / 2) + exp(-((z2 - w1 + w2) / 0.35)^2 / 2))
        U4 = -log(exp(-((z2 - w1) / 0.4)^2 / 2) + exp(-((z2 - w1 + w3) / 0.35)^2 / 2))

    with ``w1 = sin(2 pi z1 / 4)``, ``w2 = 3 exp(-((z1 - 1) / 0.6)^2 / 2)``,
    ``w3 = 3 sigmoid((z1 - 1) / 0.3)``; ``U2``, ``U3`` and ``U4`` get ``+ (z1 / 4)^8 / 2``
    (see ``WINDOW``) so that they integrate.

    Args:
        name: one of ``ENERGIES``.
        z: points, shape ``(m, 2)``.

    Returns:
        ``U(z)``, shape ``(m,)``.
    """
    _check_energy_name(name)
    z = as_points(z, "z", d=2)
    z1, z2 = z[:, 0], z[:, 1]
    if name == "U1":
        r = np.sqrt(z1**2 + z2**2)
        return 0.5 * ((r - 2.0) / 0.4) ** 2 - np.logaddexp(-0.5 * ((z1 - 2.0) / 0.6) ** 2,
                                                           -0.5 * ((z1 + 2.0) / 0.6) ** 2)
    window = 0.5 * (z1 / WINDOW) ** 8
    e = z2 - _w1(z1)
    if name == "U2":
        return 0.5 * (e / 0.4) ** 2 + window
    if name == "U3":
        return -np.logaddexp(-0.5 * (e / 0.35) ** 2, -0.5 * ((e + _w2(z1)) / 0.35) ** 2) + window
    return -np.logaddexp(-0.5 * (e / 0.4) ** 2, -0.5 * ((e + _w3(z1)) / 0.35) ** 2) + window


def _check_energy_name(name, what="name"):
    if not isinstance(name, str) or name not in ENERGIES:
        raise ValueError(f"{what} must be one of {ENERGIES}, got {name!r}")
    return name


def energy_log_joint(name, fused=None):
    """The target of unamortised VI on 2-D energies: log_joint(x, z) = -U(z)  [lecture: Variational auto-encoders]

    ``ELBO(q) = E_q[-U(z) - log q(z)] <= log Z``, and ``log Z - ELBO(q) = KL(q || p)``.

    With one name the target has no data (``x = None``). With a sequence of names the
    energies are several targets fitted at once, one per datum: ``x`` is a column of
    indices into ``name``, shape ``(m, 1)``, and row ``i`` is scored by ``-U_{name[x_i]}(z_i)``
    (each energy evaluated on its own rows only).

    Args:
        name: one of ``ENERGIES``, or a sequence of them.
        fused: ``None`` (default: the engine unless ``reference.readable()``), ``True``:
            differentiate ``energy`` through one autograd primitive whose gradient is
            written out (``reference.engines.variational``; tested equal to autograd's), or
            ``False``: through autograd's trace of the readable ``energy``.

    Returns:
        a callable ``log_joint(x, z) -> (m,)`` for ``elbo`` and ``fit_elbo``.
    """
    if use_engine(fused):
        from .engines.variational import fused_energy as U
    else:
        U = energy
    if isinstance(name, str):
        _check_energy_name(name)

        def log_joint(x, z):
            if x is not None:
                raise ValueError(f"the energy {name} has no data: call it with x = None")
            return -U(name, as_points(z, "z", d=2))

        log_joint.__name__ = f"log_joint_{name}"
        return log_joint
    if not isinstance(name, (list, tuple)) or not name:
        raise TypeError(f"name must be one of {ENERGIES} or a non-empty sequence of them, got {name!r}")
    names = tuple(_check_energy_name(v, f"name[{j}]") for j, v in enumerate(name))

    def log_joint_indexed(x, z):
        if x is None:
            raise ValueError(f"x must be a column of indices into {names}, shape (m, 1), got None")
        x = onp.asarray(getval(as_points(x, "x", d=1)))[:, 0]
        if not onp.all((x == onp.round(x)) & (x >= 0) & (x < len(names))):
            raise ValueError(f"x must hold integer indices 0..{len(names) - 1} into {names}")
        z = as_points(z, "z", d=2)
        if np.shape(z)[0] != x.shape[0]:
            raise ValueError(f"x and z must have the same number of rows (paired), got {x.shape[0]} and {np.shape(z)[0]}")
        idx = x.astype(int)
        order = onp.argsort(idx, kind="stable")
        bounds = onp.searchsorted(idx[order], onp.arange(len(names) + 1))
        z_sorted = z[order]
        parts = [-U(names[j], z_sorted[bounds[j]:bounds[j + 1]]) for j in range(len(names)) if bounds[j + 1] > bounds[j]]
        return np.concatenate(parts)[onp.argsort(order)]  # back to the rows' order

    log_joint_indexed.__name__ = "log_joint_" + "_".join(names)
    return log_joint_indexed


def energy_log_normaliser(name, n_grid=351):
    """log Z = log of the integral of exp(-U(z)) over R^2, by the trapezoid rule on [-7, 7]^2  [lecture: Variational auto-encoders]

    The integrand is smooth and negligible at the edges of the square (``BOX``), where
    the trapezoid rule converges faster than any power of the spacing: 251 points per side
    already agree with 701 to about ``2e-12``; the default 351 (spacing 0.04, a ninth of
    the narrowest width 0.35) is converged to rounding (the tests compare it with 251
    points, and 15 points, spacing 1, with it: off by more than 0.05).

    Args:
        name: one of ``ENERGIES``.
        n_grid: points per side, ``>= 3``.

    Returns:
        ``log Z``, a float.
    """
    _check_energy_name(name)
    n_grid = check_positive_int(n_grid, "n_grid", minimum=3)
    g = onp.linspace(-BOX, BOX, n_grid)
    Z1, Z2 = onp.meshgrid(g, g, indexing="ij")
    minus_u = -onp.asarray(energy(name, onp.stack([Z1.ravel(), Z2.ravel()], axis=1))).reshape(Z1.shape)
    peak = minus_u.max()
    integral = onp.trapezoid(onp.trapezoid(onp.exp(minus_u - peak), g, axis=1), g)
    return float(peak + onp.log(integral))


# --------------------------------------------------------------------------------------
# Fitting by the ELBO
# --------------------------------------------------------------------------------------


def fit_elbo(model, params, x, n_steps, n_samples=8, lr=1e-2, lr_final=None, batch_size=None, rng=None,
             callback=None):
    """Maximise the mean ELBO over phi (and theta) by Adam on its reparameterised gradient  [lecture: Variational auto-encoders]

        loss_k(params) = -(1/|B_k|) sum_{i in B_k} ELBO_i(params)   (elbo with n_samples samples)
        params <- Adam step on grad loss_k,   lr_k = lr (lr_final / lr)^(k / (n_steps - 1))

    The gradient is autograd's; the update is ``reference.train.adam_update`` (the
    arithmetic of ``autograd.misc.optimizers.adam``) on ``reference.train.flatten_params``,
    with the step size decaying geometrically from ``lr`` to ``lr_final``.

    Args:
        model: ``model(params) -> (log_joint, q)``: the target and the posterior built from
            the parameters (for a fixed target, return the same ``log_joint`` every time;
            for a VAE both depend on ``params``).
        params: the initial parameters, a pytree of arrays.
        x: the data, shape ``(N, D)``, or None for a target without data.
        n_steps: the number of Adam steps.
        n_samples: ``S >= 2`` samples per datum per step.
        lr: the initial step size.
        lr_final: the final step size (default ``lr``: constant).
        batch_size: data per step, drawn with replacement (None: all data every step).
        rng: ``numpy.random.Generator``; draws the batches and the samples.
        callback: optional ``callback(params, step, elbo_value)``.

    Returns:
        ``(params, elbos)``: the fitted parameters (same structure) and the minibatch mean
        ELBO of every step, shape ``(n_steps,)``.
    """
    check_callable(model, "model")
    x = _as_data(x)
    n_steps = check_positive_int(n_steps, "n_steps")
    n_samples = check_positive_int(n_samples, "n_samples", minimum=2)
    lr = float(check_finite_number(lr, "lr", positive=True))
    lr_final = lr if lr_final is None else float(check_finite_number(lr_final, "lr_final", positive=True))
    rng = check_rng(rng)
    if callback is not None:
        check_callable(callback, "callback")
    if batch_size is not None:
        if x is None:
            raise ValueError("batch_size needs data x; with x = None there is one target and no batch")
        batches = minibatch_indices(x.shape[0], n_steps, batch_size, rng)
    try:
        theta, unflatten = flatten_params(params)
    except (TypeError, ValueError) as err:  # the same kind of error, said in fit_elbo's words
        raise type(err)(f"params must be a pytree (dicts, lists, tuples) of real arrays holding at least one "
                        f"number, got {_describe(params)}: {err}") from err
    if theta.size == 0 or not onp.all(onp.isfinite(theta)):
        raise ValueError("params must hold at least one number and only finite ones")
    built = model(params)
    if not isinstance(built, tuple) or len(built) != 2 or not callable(built[0]):
        raise TypeError(f"model(params) must return a pair (log_joint, q), got {type(built).__name__}")
    elbos = onp.zeros(n_steps)

    def loss(theta, x_batch):
        log_joint, q = model(unflatten(theta))
        return -np.mean(elbo(log_joint, q, x_batch, n_samples, rng).value)

    loss_and_grad = value_and_grad(loss)
    m, v = onp.zeros_like(theta), onp.zeros_like(theta)
    decay = (lr_final / lr) ** (1.0 / max(n_steps - 1, 1))
    for k in range(n_steps):
        x_batch = x if batch_size is None else x[batches[k]]
        value, g = loss_and_grad(theta, x_batch)
        if not onp.isfinite(value) or not onp.all(onp.isfinite(g)):
            raise FloatingPointError(f"the ELBO or its gradient became non-finite at step {k}; lower lr")
        elbos[k] = -value
        if callback is not None:
            callback(unflatten(theta), k, -value)
        theta, m, v = _adam_update(theta, g, m, v, k + 1, lr * decay**k)
    return unflatten(theta), elbos


class PlanarFits(namedtuple("PlanarFits", ["q", "x", "depths", "params", "params0", "build", "elbos"])):
    """Planar-flow posteriors of several depths fitted at once (``fit_planar_vi``)  [lecture: Variational auto-encoders; planar flow]

    Attributes:
        q: the fitted ``FlowPosterior``, one flow per row of ``x``.
        x: the data it was fitted for, shape ``(n_x * len(depths), D)``: datum ``i`` at
            depth ``depths[j]`` is row ``i * len(depths) + j`` (None rows: see ``fit_planar_vi``).
        depths: the depth ``K`` of every row, shape ``(n_x * len(depths),)``.
        params: the fitted parameters ``{"mu", "log_sigma", "a", "b", "c"}`` (unconstrained layers).
        params0: the parameters the flows started from (the fitted mean field, layers near
            the identity): ``build(params0)`` is the untrained flow.
        build: ``build(params) -> FlowPosterior`` over the rows of ``x``.
        elbos: the mean ELBO of every step of the flows' stage, shape ``(n_steps,)``.
    """

    __slots__ = ()

    def __new__(cls, q, x, depths, params, params0, build, elbos):
        if not isinstance(q, FlowPosterior):
            raise TypeError(f"q must be a FlowPosterior, got {_describe(q)}")
        x = as_points(x, "x")
        depths = onp.asarray(depths)
        if depths.dtype.kind not in "iu" or depths.shape != (x.shape[0],) or onp.any(depths < 0):
            raise ValueError(f"depths must hold one integer >= 0 per row of x ({x.shape[0]}), got {depths!r}")
        for name, p in (("params", params), ("params0", params0)):
            if not isinstance(p, dict) or set(p) != {"mu", "log_sigma", "a", "b", "c"}:
                raise TypeError(f"{name} must be a dict with keys mu, log_sigma, a, b, c")
        check_callable(build, "build")
        elbos = onp.asarray(elbos, dtype=onp.float64)
        if elbos.ndim != 1:
            raise ValueError(f"elbos must have shape (n_steps,), got {elbos.shape}")
        return super().__new__(cls, q, x, depths, params, params0, build, elbos)


def fit_planar_vi(log_joint, x, d, depths, n_steps, rng, n_samples=128, lr=0.05, lr_final=1e-3, n_starts=4,
                  mean_field_steps=None, fused=None):
    """Unamortised VI by planar flows of several depths at once: each (datum, depth) its own q  [lecture: Variational auto-encoders; planar flow]

        max over (mu, sigma, a, b, c) of  sum_{i, j} ELBO(q_ij; x_i),
        q_ij = planar flow of depth K_j on N(mu_ij, diag(sigma_ij^2))   (K_j = 0: the mean field)

    Two stages, each one call of ``fit_elbo``:

    1. the mean field (``mean_field_steps`` Adam steps), from ``n_starts`` random starts ``N(mu, I)``, ``mu ~ N(0, I)``, per
       datum (reverse KL is mode-seeking: a start on a symmetry axis of the target can stay
       on the saddle between two modes); the start with the largest ELBO (by ``elbo`` with
       ``8 n_samples`` samples) is kept for each datum;
    2. every depth ``K_j > 0`` (``n_steps`` Adam steps) starts from that mean field with its layers near the identity
       (``planar_layers_init``), so that a deeper flow starts where the shallower ones do
       and can only add to the mean field.

    The fits of a stage are independent (each term depends on its own parameters only, and
    Adam acts coordinate by coordinate), so fitting them together gives the same result as
    fitting them one by one, with one autograd graph per step instead of one per fit. Every
    flow has ``max(depths)`` layers, of which the first ``K_j`` are active
    (``planar_posterior(..., active=...)``).

    Args:
        log_joint: ``log_joint(x, z)`` as for ``elbo`` (e.g. ``energy_log_joint(ENERGIES)``
            with ``x`` the column of target indices, or ``PPCA.log_joint``).
        x: the data, shape ``(n_x, D)``; each datum gets its own posteriors.
        d: the dimension of the latent ``z``.
        depths: the depths ``K_j >= 0`` to fit, e.g. ``(0, 2, 8, 32)``.
        n_steps: Adam steps of the flows' stage.
        rng: ``numpy.random.Generator``; draws the starts, the layers and the samples.
        n_samples, lr, lr_final: as for ``fit_elbo``.
        n_starts: random starts of the mean field, ``>= 1``.
        mean_field_steps: Adam steps of the mean-field stage (default ``n_steps``).
        fused: as for ``planar_posterior``.

    Returns:
        a ``PlanarFits``: row ``i * len(depths) + j`` is datum ``i`` at depth ``depths[j]``.
    """
    check_callable(log_joint, "log_joint")
    x = as_points(x, "x")
    d = check_positive_int(d, "d")
    if isinstance(depths, (str, bytes)) or not hasattr(depths, "__len__") or len(depths) == 0:
        raise TypeError(f"depths must be a non-empty sequence of integers >= 0, got {depths!r}")
    depths = onp.array([check_positive_int(k, f"depths[{j}]", minimum=0) for j, k in enumerate(depths)])
    n_steps = check_positive_int(n_steps, "n_steps")
    n_samples = check_positive_int(n_samples, "n_samples", minimum=2)
    n_starts = check_positive_int(n_starts, "n_starts")
    mean_field_steps = n_steps if mean_field_steps is None else check_positive_int(mean_field_steps, "mean_field_steps")
    fused = use_engine(fused)
    rng = check_rng(rng)
    n_x, n_depths, K = x.shape[0], depths.size, max(int(depths.max()), 1)

    # 1. the mean field from n_starts random starts per datum, the best kept
    x_starts = onp.repeat(x, n_starts, axis=0)
    mu0 = rng.standard_normal((n_x * n_starts, d))
    mf, _ = fit_elbo(lambda p: (log_joint, MeanFieldGaussian(p["mu"], p["log_sigma"])),
                     {"mu": mu0, "log_sigma": onp.zeros_like(mu0)}, x_starts, mean_field_steps, n_samples, lr, lr_final,
                     rng=rng)
    scores = elbo(log_joint, MeanFieldGaussian(mf["mu"], mf["log_sigma"]), x_starts, 8 * n_samples, rng).value
    best = onp.arange(n_x) * n_starts + onp.argmax(onp.reshape(scores, (n_x, n_starts)), axis=1)

    # 2. every depth from that mean field, layers near the identity
    rows = onp.repeat(best, n_depths)
    x_fit, depth_of_row = x_starts[rows], onp.tile(depths, n_x)
    active = onp.arange(K)[None, :] < depth_of_row[:, None]
    mu, log_sigma = mf["mu"][rows], mf["log_sigma"][rows]
    params = {"mu": mu, "log_sigma": log_sigma, **planar_layers_init(K, mu, onp.exp(log_sigma), rng)}
    flows = depth_of_row > 0

    def model(p):
        # the mean-field rows keep their stage-1 fit: their parameters are held fixed here
        mu = np.where(flows[:, None], p["mu"], params["mu"])
        log_sigma = np.where(flows[:, None], p["log_sigma"], params["log_sigma"])
        base = MeanFieldGaussian(mu, log_sigma)
        return log_joint, planar_posterior(base, {"a": p["a"], "b": p["b"], "c": p["c"]}, active=active, fused=fused)

    params0 = params
    if flows.any():
        params, elbos = fit_elbo(model, params, x_fit, n_steps, n_samples, lr, lr_final, rng=rng)
    else:
        elbos = onp.zeros(0)
    build = lambda p: model(p)[1]  # noqa: E731
    return PlanarFits(build(params), x_fit, depth_of_row, params, params0, build, elbos)

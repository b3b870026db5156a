"""One grader per exercise: the student's function in, the reports that judge it out

Where a checker of ``reference.testing`` covers the exercise, the grader hands it the
student's function (inside a short harness where the function is one piece of a larger
computation: an RK4 step inside a fixed-step loop, posterior weights inside Theorem 1's
sum) and returns the checker's report unchanged: its figures, its bounds and the
mistakes it names are the grade. Where no checker covers it (the change of variables of
eq. (2), the RealNVP formula itself, a CFM training step), the grader compares with the project's own oracles (closed forms,
``reference.losses.cfm_loss`` differentiated by autograd) and names the mistakes it
recognises the way the checkers do: only when the student's result matches the wrong
variant within the comparison's tolerance.

Each ``grade_<exercise>(fn)`` returns a tuple of ``reference.testing.CheckReport``; the
exercise passes when every report does.
"""

import math
import os
import traceback
import warnings

import autograd.numpy as anp
import numpy as np
from autograd import grad, make_vjp, value_and_grad
from autograd.tracer import getval

from reference.flows.coupling import coupling_forward, coupling_init, coupling_scale, coupling_translation
from reference.losses import cfm_loss
from reference.paths import ConicalGaussianPath, LinearInterpolationPath
from reference.variational import PPCA
from reference.testing import (
    K_SE,
    check_bijection,
    check_conditional_path,
    check_divergence_estimator,
    check_log_likelihood,
    check_marginal_velocity,
    check_ode_solver,
)

from ._report import Recorder, Stop, as_float_array, call

__all__ = [
    "grade_elbo",
    "grade_change_of_variables",
    "grade_realnvp_inverse",
    "grade_euler",
    "grade_rk4_step",
    "grade_hutchinson",
    "grade_cnf_log_likelihood",
    "grade_linear_path",
    "grade_conical_path",
    "grade_posterior_weights",
    "grade_cfm_step",
]

LOG_2PI = math.log(2.0 * math.pi)
SQRT_EPS = math.sqrt(np.finfo(np.float64).eps)


def _name_common(rec, cases, advice):
    """Name each mistake that explains every failing case where it is defined (the checkers' rule)."""
    failing = [c for c in cases if not c["ok"]]
    if not failing:
        return
    labels = {lab for c in failing for lab in c["matches"]}
    for lab in sorted(labels):
        if all(lab in c["matches"] for c in failing if lab in c["defined"]):
            rec.diagnose(lab, advice[lab])


# ----------------------------------------------------------------------------- Variational auto-encoders

_ELBO_ADVICE = {
    "log q without its -sum log sigma term": "log q(z) = -|eps|^2/2 - sum_j log sigma_j - d/2 log(2 pi) for "
                                             "z = mu + sigma eps: the -sum log sigma_j (the change of variables from "
                                             "eps to z) is missing",
    "entropy missing (log q not subtracted)": "the estimate is E_q[log p(x, z)]: the ELBO is E_q[log p(x, z) - log q(z)], "
                                              "the expected log joint plus the entropy of q",
    "log q added, not subtracted (the KL's sign)": "the estimate is E_q[log p(x, z) + log q(z)]: ELBO = "
                                                   "E_q[log p(x, z) - log q(z)] = log p(x) - KL(q || p(. | x)); adding "
                                                   "log q flips the sign of the KL's log q term",
    "standard error divided by n, not sqrt(n)": "the standard error of a mean of n_samples independent terms is "
                                                "std(w) / sqrt(n_samples), not std(w) / n_samples",
    "standard deviation, not the standard error": "std(w) is the spread of one term w_s; the estimate's standard error is "
                                                  "std(w) / sqrt(n_samples)",
    "samples not reparameterised": "z is not a differentiable function of mu and log_sigma (drawn with them as the "
                                   "sampler's arguments, rng.normal(mu, sigma), or from their values alone), so autograd "
                                   "cannot differentiate through the draw or differentiates -log q alone, whose gradient "
                                   "has mean 0: draw eps = rng.standard_normal(...) and take z = mu + exp(log_sigma) * "
                                   "eps, whose gradient is the reparameterised one",
}

_ELBO_SHAPES = ((1, 2), (2, 3), (3, 5))
_ELBO_SAMPLES = 2000


class _RecordingGenerator(np.random.Generator):
    """A ``numpy.random.Generator`` that notes a draw whose parameters depend on what autograd differentiates."""

    def __init__(self, seed):
        super().__init__(np.random.PCG64(seed))
        self.traced_draws = []

    def _note(self, method, *params):
        if any(getval(p) is not p for p in params):
            self.traced_draws.append(method)

    def normal(self, loc=0.0, scale=1.0, size=None):
        self._note("normal", loc, scale)
        return super().normal(loc, scale, size)

    def multivariate_normal(self, mean, cov, *args, **kwargs):
        self._note("multivariate_normal", mean, cov)
        return super().multivariate_normal(mean, cov, *args, **kwargs)


def _elbo_case(d, D, kind):
    """A pPCA model, three data and a Gaussian q: the exact posterior (diagonal here) or one off it.

    Returns the model, the data, ``mu``, ``log_sigma`` and the closed forms: ``log p(x)``, the
    posterior mean ``m`` and precision ``P``.
    """
    rng = np.random.default_rng(7000 + 10 * d + D + (500 if kind == "exact" else 0))
    if kind == "exact":  # orthogonal columns: W^T W and the posterior covariance are diagonal, q can equal it
        Q, _ = np.linalg.qr(rng.standard_normal((D, d)))
        W = Q * rng.uniform(0.8, 2.0, d)
    else:
        W = rng.standard_normal((D, d))
    model = PPCA(W, rng.normal(size=D), 0.7)
    x, _ = model.sample(3, rng)
    S = model.posterior_covariance()
    m = model.posterior_mean(x)
    if kind == "exact":
        mu, sigma = m, np.sqrt(np.diag(S)) * np.ones_like(m)
    else:
        mu, sigma = m + 0.4 * rng.standard_normal(m.shape), 1.3 * np.sqrt(np.diag(S)) * rng.uniform(0.8, 1.2, m.shape)
    return model, x, mu, np.log(sigma), model.log_marginal(x), m, np.linalg.inv(S)


def _quadratic_forms(mu, log_sigma, m, P, log_px):
    """w = log p(x, z) - log q(z), z = mu + sigma eps, as c + b^T eps + eps^T A eps per datum, and its variants.

    ``log p(x, z) = log p(x) + log N(z; m, S)``, so with ``delta = mu - m`` and ``Sg = diag(sigma)``:
    ``A = (I - Sg P Sg) / 2``, ``b = -Sg P delta``, and the constant makes ``E w = c + tr A`` the ELBO.
    The variants add ``alpha log q`` (``alpha = 1``: log q not subtracted; ``2``: added) or drop
    ``-sum log sigma`` from log q. Returns ``{name: (means (n,), variances (n,), fourth central moments (n,))}``.
    """
    n, d = mu.shape
    out = {}
    for name, alpha, shift in (("truth", 0.0, 0.0), ("log q without its -sum log sigma term", 0.0, -1.0),
                               ("entropy missing (log q not subtracted)", 1.0, 0.0),
                               ("log q added, not subtracted (the KL's sign)", 2.0, 0.0)):
        mean, var, m4 = np.zeros(n), np.zeros(n), np.zeros(n)
        for i in range(n):
            sig = np.exp(log_sigma[i])
            delta = mu[i] - m[i]
            kl = 0.5 * (np.sum(np.diag(P) * sig**2) + delta @ P @ delta - d - np.linalg.slogdet(P)[1]
                        - 2 * np.sum(log_sigma[i]))
            entropy = np.sum(log_sigma[i]) + 0.5 * d * (1 + LOG_2PI)
            # alpha log q = alpha (-|eps|^2 / 2 - sum log sigma - d/2 log 2 pi): mean -alpha H, quadratic part -alpha I / 2
            mean[i] = log_px[i] - kl - alpha * entropy + shift * np.sum(log_sigma[i])
            A = 0.5 * (np.eye(d) - sig[:, None] * P * sig[None, :]) - 0.5 * alpha * np.eye(d)
            b = -sig * (P @ delta)
            A2 = A @ A
            var[i] = b @ b + 2 * np.trace(A2)
            k4 = 48 * np.trace(A2 @ A2) + 48 * b @ A2 @ b  # cumulants of a Gaussian quadratic form
            m4[i] = k4 + 3 * var[i] ** 2
        out[name] = (mean, var, m4)
    return out


def _elbo_log_joint(model, x):
    """log_joint(z) for z of shape (S, n, d): log p(x_i, z[s, i]) of shape (S, n), differentiable in z."""
    n = x.shape[0]

    def log_joint(z):
        shape = np.shape(getval(z))
        if len(shape) != 3 or shape[1:] != (n, model.d):
            raise ValueError(f"log_joint(z) takes z of shape (S, {n}, {model.d}) (samples first, one row per datum), "
                             f"got {shape}")
        S = shape[0]
        rows = model.log_joint(np.concatenate([x] * S, axis=0), anp.reshape(z, (S * n, model.d)))
        return anp.reshape(rows, (S, n))
    return log_joint


def _elbo_estimate(rec, fn, d, D, kind, cases):
    model, x, mu, log_sigma, log_px, m, P = _elbo_case(d, D, kind)
    n = x.shape[0]
    S = 16 if kind == "exact" else _ELBO_SAMPLES
    where = f"in d = {d}, D = {D} (q {'the exact posterior' if kind == 'exact' else 'off the posterior'})"
    out = call(rec, fn, "elbo", ("log_joint", "mu", "log_sigma", "n_samples", "rng"), _elbo_log_joint(model, x), mu,
               log_sigma, S, _RecordingGenerator(8000 + d), where=where)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        rec.fail(f"elbo must return a pair (value, stderr), got {type(out).__name__} {where}")
        raise Stop
    value = as_float_array(rec, getval(out[0]), "the value elbo returned", where)
    stderr = as_float_array(rec, getval(out[1]), "the stderr elbo returned", where)
    for arr, what in ((value, "value"), (stderr, "stderr")):
        if arr.shape != (n,):
            rec.fail(f"elbo returned {what} of shape {arr.shape} {where}, expected ({n},): one per datum")
            raise Stop
        if not np.all(np.isfinite(arr)):
            rec.fail(f"elbo returned a non-finite {what} {where}")
            raise Stop
    forms = _quadratic_forms(mu, log_sigma, m, P, log_px)
    truth, var, _ = forms["truth"]
    roundoff = SQRT_EPS * (1.0 + np.abs(truth))

    def tol_of(v):
        return K_SE * np.sqrt(v / S) + roundoff

    err = np.abs(value - truth) / tol_of(var)
    ok_value = rec.measure(f"value_{kind}_d{d}", np.max(err), 1.0,
                           what=f"max |value - (log p(x) - KL(q || p(. | x)))| {where}, in units of {K_SE:g} standard "
                                f"errors (closed form, {S} samples) + round-off",
                           fail=f"{where} the ELBO is off by up to {np.max(np.abs(value - truth)):.3g} (log p(x) - KL "
                                f"= {truth[np.argmax(err)]:.4g}, estimate {value[np.argmax(err)]:.4g})")
    matches, defined = set(), set()
    fitted = "truth" if ok_value else None
    for name, (mean, v, _) in forms.items():
        if name == "truth" or not np.all(np.abs(mean - truth) > tol_of(var) + tol_of(v)):
            continue  # the variant cannot be told from the truth here
        defined.add(name)
        if not ok_value and np.all(np.abs(value - mean) <= tol_of(v)):
            matches.add(name)
            fitted = name
    # the standard error, against the spread of what the value estimates
    if fitted is not None:
        _, v, m4 = forms[fitted]
        se = np.sqrt(v / S)
        var_s2 = np.maximum(m4 / S - v**2 * (S - 3) / (S * (S - 1)), 0.0)  # variance of the sample variance
        se_of_se = np.sqrt(var_s2) / (2.0 * np.sqrt(np.maximum(v, 1e-300)) * np.sqrt(S))
        tol_se = K_SE * se_of_se + roundoff / np.sqrt(S)
        units = (f"{K_SE:g} standard errors of a sample standard deviation (closed-form moments of w)"
                 if kind != "exact" else "round-off (w is log p(x) for every sample)")
        ok_se = rec.measure(f"stderr_{kind}_d{d}", np.max(np.abs(stderr - se) / tol_se), 1.0,
                            what=f"max |stderr - sd(w) / sqrt(S)| {where}, in units of {units}",
                            fail=f"{where} the standard error is {stderr[0]:.3g} where sd(w) / sqrt(S) = {se[0]:.3g}")
        for name, factor in (("standard error divided by n, not sqrt(n)", 1.0 / np.sqrt(S)),
                             ("standard deviation, not the standard error", np.sqrt(S))):
            if np.all(np.abs(factor - 1.0) * se > (1.0 + factor) * tol_se):  # told apart where w varies
                defined.add(name)
                if not ok_se and np.all(np.abs(stderr - factor * se) <= factor * tol_se):
                    matches.add(name)
        ok_value = ok_value and ok_se
    cases.append({"ok": ok_value, "matches": matches, "defined": defined})


def _elbo_gradient(rec, fn, d, D, cases):
    """autograd's gradient of sum(value) in (mu, log_sigma) against the closed-form gradient of the ELBO."""
    model, x, mu, log_sigma, log_px, m, P = _elbo_case(d, D, "offset")
    S = _ELBO_SAMPLES
    where = f"in d = {d}, D = {D}"
    raw = getattr(fn, "fn", fn)  # a failure that shows only under differentiation is reported here, not as a crash
    gen = _RecordingGenerator(9000 + d)
    log_joint = _elbo_log_joint(model, x)
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g_mu, g_ls = grad(lambda p: anp.sum(raw(log_joint, p[0], p[1], S, gen)[0]))((mu, log_sigma))
        g_mu, g_ls = np.asarray(g_mu, dtype=float), np.asarray(g_ls, dtype=float)
    except Exception as err:  # noqa: BLE001 - the student's code under autograd
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        path = os.path.realpath(getattr(fn, "path", "") or "")
        lines = [f for f in traceback.extract_tb(err.__traceback__) if os.path.realpath(f.filename) == path]
        at = f" (line {lines[-1].lineno}: {lines[-1].line})" if lines else ""
        rec.fail(f"{where} autograd cannot differentiate elbo's value with respect to mu and log_sigma: "
                 f"{type(err).__name__}: {text[:200]}{at}")
        cases.append({"ok": False, "matches": {"samples not reparameterised"} if gen.traced_draws else set(),
                      "defined": {"samples not reparameterised"}})
        return
    sig = np.exp(log_sigma)
    true_mu, true_ls = np.zeros_like(mu), np.zeros_like(mu)
    var_mu, var_ls = np.zeros_like(mu), np.zeros_like(mu)
    for i in range(len(x)):
        a = P @ (mu[i] - m[i])
        true_mu[i] = -a
        true_ls[i] = 1.0 - np.diag(P) * sig[i] ** 2
        PS = P * sig[i][None, :]  # P diag(sigma)
        var_mu[i] = np.diag(PS @ PS.T)  # per-sample covariance of -P (delta + diag(sigma) eps)
        r2 = np.sum(PS**2, axis=1)  # |row j of P diag(sigma)|^2
        var_ls[i] = sig[i] ** 2 * (a**2 + np.diag(PS) ** 2 + r2)
    tol_mu, tol_ls = K_SE * np.sqrt(var_mu / S) + SQRT_EPS, K_SE * np.sqrt(var_ls / S) + SQRT_EPS
    err = max(np.max(np.abs(g_mu - true_mu) / tol_mu), np.max(np.abs(g_ls - true_ls) / tol_ls))
    ok = rec.measure(f"gradient_d{d}", err, 1.0,
                     what=f"max |autograd gradient of the value - closed-form gradient of the ELBO| in mu and "
                          f"log_sigma {where}, in units of {K_SE:g} standard errors of the reparameterised estimate "
                          f"({S} samples)",
                     fail=f"{where} the gradient of the estimate with respect to mu and log_sigma is not the "
                          "ELBO's (d ELBO / d mu = -P (mu - m), d ELBO / d log sigma_j = 1 - P_jj sigma_j^2)")
    matches = set()
    # z not a function of (mu, log_sigma): only -log q carries them, whose gradient has mean 0 (the score's)
    far = np.abs(true_mu) > 2 * tol_mu
    if not ok and np.any(far) and np.all(np.abs(g_mu) <= K_SE * np.sqrt(1.0 / sig**2 / S) + SQRT_EPS) and np.all(
            np.abs(g_ls) <= K_SE * np.sqrt(2.0 / S) + SQRT_EPS):
        matches.add("samples not reparameterised")
    cases.append({"ok": ok, "matches": matches, "defined": {"samples not reparameterised"}})


def grade_elbo(fn):
    """Grade ELBO = E_q[log p(x, z) - log q(z)] by Monte Carlo with z = mu + sigma eps, its standard error std(w)/sqrt(S), and its gradient  [lecture: Variational auto-encoders]

    ``fn(log_joint, mu, log_sigma, n_samples, rng) -> (value, stderr)`` for the Gaussian
    ``q = N(mu, diag(exp(log_sigma))^2)`` of each datum. The model is probabilistic PCA
    (``reference.variational.PPCA``) in ``(d, D) = (1, 2), (2, 3), (3, 5)``, whose posterior
    ``N(m(x), S)`` and ``log p(x)`` are exact, so that ``ELBO = log p(x) - KL(q || p(. | x))``
    with the KL in closed form, and ``w = log p(x, z) - log q(z)`` is a quadratic form in
    ``eps`` whose variance and fourth moment are closed forms too. Checked:

    - with ``q`` the exact posterior (a model whose posterior is diagonal), every ``w`` is
      ``log p(x)``: the value must equal it and the standard error vanish, to round-off;
    - with ``q`` off the posterior (2000 samples), the value within 5 standard errors of
      ``log p(x) - KL``, the standard error within 5 standard errors (of a sample standard
      deviation) of ``sd(w) / sqrt(S)``;
    - the autograd gradient of the value with respect to ``mu`` and ``log_sigma`` within 5
      standard errors of the reparameterised estimate of the closed-form gradient
      (``-P (mu - m)`` and ``1 - P_jj sigma_j^2``, ``P = S^{-1}``).

    Named when every failing case matches: ``log q`` without ``-sum log sigma``, ``log q``
    not subtracted (the entropy missing), ``log q`` added (the KL's sign), the standard
    error divided by ``n`` or not divided at all, samples drawn with ``mu`` and ``sigma``
    as the sampler's arguments (not reparameterised: autograd cannot differentiate
    through them, or the gradient is that of ``log q`` alone, of mean 0).

    Returns:
        two ``CheckReport``: the estimate and its standard error, then the gradient.
    """
    rec = Recorder("elbo against the pPCA model's closed forms (log p(x) - KL, the spread of w)")
    cases = []
    for d, D in _ELBO_SHAPES:
        for kind in ("exact", "offset"):
            try:
                _elbo_estimate(rec, fn, d, D, kind, cases)
            except Stop:
                continue
    _name_common(rec, cases, _ELBO_ADVICE)
    rec.cover("pPCA with (d, D) = " + ", ".join(f"({d}, {D})" for d, D in _ELBO_SHAPES) + "; 3 data each; q the "
              f"exact posterior (16 samples) and q off it ({_ELBO_SAMPLES} samples)")
    first = rec.report(f"the estimate is log p(x) - KL(q || p(. | x)) within {K_SE:g} standard errors and its "
                       "standard error is sd(w) / sqrt(S), in every case; exact for the exact posterior.")
    rec = Recorder("the gradient of elbo's value in mu and log_sigma (autograd) against the ELBO's")
    cases = []
    for d, D in _ELBO_SHAPES:
        _elbo_gradient(rec, fn, d, D, cases)
    _name_common(rec, cases, _ELBO_ADVICE)
    rec.cover(f"the offset cases of the first report; {_ELBO_SAMPLES} samples")
    second = rec.report("the reparameterised gradient agrees with the closed-form gradient of the ELBO in mu and "
                        "log_sigma.")
    return first, second


# ----------------------------------------------------------------------------- eq. (2)

_COV_ADVICE = {
    "log-det sign flipped": "the result is log p0(T^{-1}(x)) - log|det J_{T^{-1}}(x)|: eq. (2) adds the log-det of "
                            "the inverse map's Jacobian (minus it would be the forward map's)",
    "log-det missing": "the result is log p0(T^{-1}(x)): the term log|det J_{T^{-1}}(x)| of eq. (2) is not added",
    "base log-density without its constant -d/2 log(2 pi)": "log p0(z) = -|z|^2/2 - d/2 log(2 pi)",
    "base log-density constant of d = 2 (-log(2 pi) for every d)": "the constant of log N(z; 0, I) is -d/2 log(2 pi); "
                                                                    "-log(2 pi) is right for d = 2 only",
    "log-det evaluated at T^{-1}(x), not at x": "the Jacobian of T^{-1} must be taken at x, the point whose density "
                                                 "is computed, not at z = T^{-1}(x)",
    "log det J without the absolute value": "the result is NaN exactly where det J_{T^{-1}} < 0: take log |det J| "
                                            "(numpy.linalg.slogdet returns the sign and log |det| separately)",
}


def _gaussian_logpdf(x, mean, cov):
    """log N(x; mean, cov) from the Cholesky factor of ``cov``."""
    L = np.linalg.cholesky(cov)
    r = np.linalg.solve(L, (x - mean).T)  # (d, n): L^{-1} (x - mean)
    return -0.5 * np.sum(r**2, axis=0) - np.sum(np.log(np.diag(L))) - 0.5 * len(mean) * LOG_2PI


def _cov_maps():
    """Bijections with closed-form densities: an affine map (det > 0) and a nonlinear one (det < 0), d = 1, 2, 3, 5."""
    cases = []
    for d in (1, 2, 3, 5):
        rng = np.random.default_rng(2000 + d)
        A = np.eye(d) * 1.6 + 0.3 * rng.standard_normal((d, d))
        if np.linalg.det(A) < 0:
            A[:, 0] *= -1
        m = rng.normal(size=d)
        A_inv = np.linalg.inv(A)
        z = rng.standard_normal((8, d))
        x = z @ A.T + m

        def affine_inverse(y, A_inv=A_inv, m=m):  # autograd.numpy: a student may differentiate it with autograd
            return anp.dot(y - m, A_inv.T)
        truth = _gaussian_logpdf(x, m, A @ A.T)  # T # p0 = N(m, A A^T): its density, eq. (2) aside
        cases.append(dict(kind="affine", d=d, inverse=affine_inverse, x=x, truth=truth, z=affine_inverse(x),
                          log_det=np.full(8, -np.log(abs(np.linalg.det(A)))), log_det_at_z=None, negative=False))

        B = np.eye(d) * 0.8 + 0.25 * rng.standard_normal((d, d))
        if np.linalg.det(B) > 0:
            B[:, 0] *= -1

        def nonlinear_inverse(y, B=B):  # T^{-1}(x) = B g(x), g(x) = x + 0.3 sin(x) coordinatewise (increasing)
            return anp.dot(y + 0.3 * anp.sin(y), B.T)
        x = 1.5 * rng.standard_normal((8, d))
        z = nonlinear_inverse(x)

        def log_det(y, B=B):
            return np.log(abs(np.linalg.det(B))) + np.sum(np.log1p(0.3 * np.cos(y)), axis=1)
        truth = -0.5 * np.sum(z**2, axis=1) - 0.5 * d * LOG_2PI + log_det(x)
        cases.append(dict(kind="nonlinear", d=d, inverse=nonlinear_inverse, x=x, truth=truth, z=z,
                          log_det=log_det(x), log_det_at_z=log_det(z), negative=True))
    return cases


def _cov_case(rec, fn, case, atol):
    d, x, truth, z = case["d"], case["x"], case["truth"], case["z"]
    where = f"in d = {d} (the {case['kind']} map)"
    out = call(rec, fn, "change_of_variables", ("inverse", "x"), case["inverse"], x, where=where)
    out = as_float_array(rec, out, "what change_of_variables returned", where)
    if out.shape != (len(x),):
        rec.fail(f"change_of_variables returned shape {out.shape} {where}, expected ({len(x)},): one log-density "
                 "per point")
        raise Stop
    tol = atol + 1e-6 * np.abs(truth)
    finite = bool(np.all(np.isfinite(out)))
    err = np.abs(out - truth)
    ok = rec.measure(f"{case['kind']}_d{d}_error_over_tol", np.max(err / tol) if finite else math.inf, 1.0,
                     what=f"max |log p1 - closed form| {where} in units of {atol:g} + 1e-6 |log p1|",
                     fail=f"{where} log p1 is off by up to {np.max(err):.3g} nats" if finite
                     else f"{where} log p1 is not finite (NaN or inf) at {int(np.sum(~np.isfinite(out)))} of "
                          f"{len(x)} points")
    log_p0 = -0.5 * np.sum(z**2, axis=1) - 0.5 * d * LOG_2PI
    alternatives = {
        "log-det sign flipped": log_p0 - case["log_det"],
        "log-det missing": log_p0,
        "base log-density without its constant -d/2 log(2 pi)": truth + 0.5 * d * LOG_2PI,
    }
    if d != 2:
        alternatives["base log-density constant of d = 2 (-log(2 pi) for every d)"] = truth + (0.5 * d - 1.0) * LOG_2PI
    if case["log_det_at_z"] is not None:
        alternatives["log-det evaluated at T^{-1}(x), not at x"] = log_p0 + case["log_det_at_z"]
    matches = {lab for lab, alt in alternatives.items() if np.all(np.abs(out - alt) <= tol)}
    if case["negative"] and np.all(np.isnan(out)):
        matches.add("log det J without the absolute value")
    return {"ok": ok, "matches": matches, "defined": set(alternatives) | {"log det J without the absolute value"}}


def grade_change_of_variables(fn, atol=1e-5):
    """Grade log p1(x) = log p0(T^{-1}(x)) + log |det J_{T^{-1}}(x)| against closed forms  [lecture: eq. (2)]

    ``fn(inverse, x) -> (n,)``. The maps are an affine ``T(z) = A z + m`` (``T # p0`` is
    ``N(m, A A^T)``, its log-density from a Cholesky factor) and ``T^{-1}(x) = B (x + 0.3 sin x)``
    with ``det B < 0`` (its Jacobian in closed form), in d = 1, 2, 3, 5; the result must
    agree to ``atol`` nats plus ``1e-6`` relative (room for a Jacobian by central
    differences). Named: the log-det's sign flipped, the log-det missing, the base
    density without its constant or with the 2-D constant in every d, the Jacobian taken
    at ``T^{-1}(x)``, ``log det`` without ``|.|`` (NaN exactly where ``det < 0``).

    Returns:
        a tuple of one ``CheckReport``.
    """
    rec = Recorder("change of variables, eq. (2), against closed forms")
    cases = []
    for case in _cov_maps():
        try:
            cases.append(_cov_case(rec, fn, case, atol))
        except Stop:
            continue
    # "without |.|" is defined on every map: it is named only if the maps with det > 0 pass and those with det < 0
    # give NaN
    _name_common(rec, cases, _COV_ADVICE)
    rec.cover("d = 1, 2, 3, 5; an affine map (det > 0, N(m, A A^T)) and a nonlinear map (det < 0, closed-form "
              "Jacobian); 8 points each")
    return (rec.report(f"log p1 agrees with the closed forms to {atol:g} nats in d = 1, 2, 3, 5 (affine and "
                       "nonlinear maps, Jacobian determinants of both signs)."),)


# ----------------------------------------------------------------------------- RealNVP

_SPLITS = ((2, 1), (3, 1), (4, 2), (5, 3))


def _coupling(d, d_split):
    rng = np.random.default_rng(3000 + 10 * d + d_split)
    params = coupling_init(d, d_split, (8,), rng)
    return params, (lambda h: coupling_scale(params, h)), (lambda h: coupling_translation(params, h)), rng


def _realnvp_formula(rec, fn):
    """The student's x against eq. (3)'s inverse and its usual slips, at fresh points."""
    cases = []
    advice = {
        "scale not inverted": "x_{d'+1:d} = (y_{d'+1:d} - t) * exp(s): the inverse divides by exp(s), i.e. multiplies "
                              "by exp(-s)",
        "translation removed after the scaling": "x_{d'+1:d} = y_{d'+1:d} * exp(-s) - t: the forward map scales, then "
                                                 "translates, so the inverse removes t first: (y - t) * exp(-s)",
    }
    for d, k in _SPLITS:
        _, s, t, rng = _coupling(d, k)
        y = 1.5 * rng.standard_normal((6, d))
        where = f"in d = {d}, d' = {k}"
        try:
            out = call(rec, fn, "realnvp_inverse", ("y", "s", "t", "d_split"), y, s, t, k, where=where)
        except Stop:
            continue
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            rec.fail(f"realnvp_inverse must return a pair (x, log_det_inv), got {type(out).__name__}")
            return
        try:
            x = as_float_array(rec, out[0], "the x realnvp_inverse returned", where)
        except Stop:
            continue
        if x.shape != y.shape:
            rec.fail(f"realnvp_inverse returned x of shape {x.shape} {where}, expected {y.shape}")
            continue
        y1, y2 = y[:, :k], y[:, k:]
        sc, tr = s(y1), t(y1)
        right = (y2 - tr) * np.exp(-sc)
        scale = 1.0 + np.max(np.abs(right))
        err = np.max(np.abs(x[:, k:] - right)) / scale if np.all(np.isfinite(x)) else math.inf
        err1 = np.max(np.abs(x[:, :k] - y1)) / (1.0 + np.max(np.abs(y1))) if np.all(np.isfinite(x)) else math.inf
        ok = rec.measure(f"formula_error_d{d}_split{k}", max(err, err1), SQRT_EPS,
                         what=f"max |x - eq. (3)'s inverse| / (1 + |x|) {where} (with the layer's own s and t)",
                         fail=f"{where} x differs from (y_{{1:d'}}, (y_{{d'+1:d}} - t) exp(-s)) by up to "
                              f"{max(err, err1):.3g} (relative)")
        alternatives = {"scale not inverted": (y2 - tr) * np.exp(sc), "translation removed after the scaling":
                        y2 * np.exp(-sc) - tr}
        matches = {lab for lab, alt in alternatives.items()
                   if np.max(np.abs(x[:, k:] - alt)) <= SQRT_EPS * (1.0 + np.max(np.abs(alt)))}
        cases.append({"ok": ok, "matches": matches, "defined": set(advice), "d": d})
    _name_common(rec, cases, advice)


def grade_realnvp_inverse(fn):
    """Grade phi^{-1}(y) = [y_{1:d'}, (y_{d'+1:d} - t(y_{1:d'})) exp(-s(y_{1:d'}))] with log |det J_{phi^{-1}}|  [lecture: RealNVP]

    ``fn(y, s, t, d_split) -> (x, log_det_inv)``. For four layers (``d, d'`` = 2, 1;
    3, 1; 4, 2; 5, 3) with the reference's ``s`` and ``t`` networks,
    ``reference.testing.check_bijection`` takes ``reference.flows.coupling.coupling_forward``
    as the forward map and the student's function as the inverse (round trips, both
    log-dets against finite differences, no caching, no side effects); a second report
    compares ``x`` with the formula at fresh points and names the usual slips (the scale
    not inverted, the translation removed after the scaling).

    Returns:
        five ``CheckReport``: one per layer, then the formula's.
    """
    reports = []
    for d, k in _SPLITS:
        params, s, t, rng = _coupling(d, k)
        x = rng.standard_normal((8, d))

        def forward(x, params=params):
            return coupling_forward(params, x)

        def inverse(y, s=s, t=t, k=k):
            return fn(y, s, t, k)
        report = check_bijection(forward, inverse, x)
        report.name = f"{report.name} (d = {d}, d' = {k}; your realnvp_inverse is the inverse)"
        reports.append(report)
    rec = Recorder("realnvp_inverse against the formula after eq. (3)")
    _realnvp_formula(rec, fn)
    rec.cover("(d, d') = " + ", ".join(f"({d}, {k})" for d, k in _SPLITS) + "; 6 fresh points each")
    reports.append(rec.report("x = (y_{1:d'}, (y_{d'+1:d} - t(y_{1:d'})) exp(-s(y_{1:d'}))) at fresh points for "
                              "every split."))
    return tuple(reports)


# ----------------------------------------------------------------------------- eq. (4)


def grade_euler(fn):
    """Grade x_{k+1} = x_k + h u(x_k, t_k), t_k = t0 + k h, h = (t1 - t0) / n_steps  [lecture: eq. (4); Flow Matching In Practice]

    ``fn(u, x0, t0, t1, n_steps) -> x(t1)``, judged by
    ``reference.testing.check_ode_solver(fn, order=1)``: order 1 forwards and backwards on
    problems with known solutions in d = 1, 2, 3, 5, exact on ``dx/dt = c`` with 1 and
    3 steps, no writes into ``x0``.

    Returns:
        a tuple of one ``CheckReport``.
    """
    return (check_ode_solver(fn, 1),)


def _fixed_step_loop(step):
    def solve(u, x0, t0, t1, n_steps):
        h = (t1 - t0) / n_steps
        x = x0
        for k in range(n_steps):
            x = step(u, x, t0 + k * h, h)
        return x
    return solve


def grade_rk4_step(fn):
    """Grade k1 = u(x, t), k2 = u(x + h/2 k1, t + h/2), k3 = u(x + h/2 k2, t + h/2), k4 = u(x + h k3, t + h), x + h/6 (k1 + 2 k2 + 2 k3 + k4)  [lecture: eq. (4)]

    ``fn(u, x, t, h) -> x(t + h)`` is called in a fixed-step loop (``n_steps`` steps of
    ``h = (t1 - t0) / n_steps`` from ``t0``; ``h < 0`` backwards), which
    ``reference.testing.check_ode_solver(..., order=4)`` judges: order 4 on autonomous and
    non-autonomous problems (a stage at the wrong time shows there), forwards and
    backwards, exact on ``dx/dt = c``.

    Returns:
        a tuple of one ``CheckReport``.
    """
    report = check_ode_solver(_fixed_step_loop(fn), 4)
    report.name = f"{report.name} (your rk4_step inside a loop of n_steps steps of h = (t1 - t0) / n_steps)"
    return (report,)


# ----------------------------------------------------------------------------- CNF


def grade_hutchinson(fn):
    """Grade div u(x, t) = tr J_u(x, t) ~ eps^T J_u(x, t) eps with E[eps eps^T] = I  [lecture: CNF Pros]

    ``fn(u, x, t, rng) -> (n,)``, judged by ``reference.testing.check_divergence_estimator``:
    unbiased within 5 standard errors at points in d = 1, 2, 3, 5 (wherever its
    randomness lives), its variance compared with Rademacher's and Gaussian probes'.

    Returns:
        a tuple of one ``CheckReport``.
    """
    return (check_divergence_estimator(fn),)


def grade_cnf_log_likelihood(fn):
    """Grade log p1(x) = log p0(x(0)) - int_0^1 div u(x(t), t) dt, x(t) solved back from x(1) = x  [lecture: Continuous Normalizing Flows]

    ``fn(u, x) -> (n,)``, judged by ``reference.testing.check_log_likelihood`` (closed
    forms for a Gaussian path and a linear field, an accurate CNF for a nonlinear field,
    d = 1, 2, 3, 5; to 1e-3 nats).

    Returns:
        a tuple of one ``CheckReport``.
    """
    return (check_log_likelihood(fn),)


# ----------------------------------------------------------------------------- paths


def grade_linear_path(fn):
    """Grade x_t = (1 - t) x0 + t x1, u_cond = x1 - x0  [lecture: Example 1]

    ``fn(x0, x1, t) -> (x_t, u_t)``, judged by ``reference.testing.check_conditional_path``
    with ``reference.paths.LinearInterpolationPath()`` as the reference (boundary
    conditions, ``u_t = d x_t/dt``, d = 1, 2, 3, 5).

    Returns:
        a tuple of one ``CheckReport``.
    """
    return (check_conditional_path(fn, path=LinearInterpolationPath()),)


def grade_conical_path(fn):
    """Grade x = t x1 + (1 - t) eps ~ N(t x1, (1 - t)^2 I), u_cond(x, t, x1) = (x1 - x) / (1 - t)  [lecture: Example 2]

    ``fn(x1, t, eps) -> (x, u_cond)``, judged by ``reference.testing.check_conditional_path``
    with ``reference.paths.ConicalGaussianPath()`` as the reference; the checker calls
    the noise ``eps`` ``x0`` (the path's noise end).

    Returns:
        a tuple of one ``CheckReport``.
    """
    def sample(x0, x1, t):
        return fn(x1, t, x0)
    report = check_conditional_path(sample, path=ConicalGaussianPath())
    report.name = f"{report.name} (your conical_path(x1, t, eps) with eps as the checker's x0)"
    return (report,)


# ----------------------------------------------------------------------------- Theorem 1


def _weights_normalisation(rec, fn):
    """Weights must be finite, >= 0, and sum to 1 over the data (axis 1), also far from the data.

    The figures say what is wrong with the weights themselves; the mistakes are named by
    ``check_marginal_velocity`` on the field built from them (it recognises unnormalised
    weights and weights normalised over the points whether or not the Gaussian's
    constant was kept, and weights that underflow far from the data).
    """
    for d, m in ((2, 12), (3, 40)):
        rng = np.random.default_rng(4000 + d)
        data = 2.0 * rng.standard_normal((m, d))
        n = 16
        t = np.concatenate([[1e-3, 0.999], rng.uniform(0.05, 0.95, n - 2)])
        x = t[:, None] * data[rng.integers(0, m, n)] + (1 - t)[:, None] * rng.standard_normal((n, d))
        far = rng.standard_normal((4, d))
        x[-4:] = 25.0 * far / np.linalg.norm(far, axis=1, keepdims=True)
        where = f"in d = {d} ({m} data points, {n} points x)"
        try:
            w = call(rec, fn, "posterior_weights", ("x", "t", "x1"), x, t, data, where=where)
            w = as_float_array(rec, w, "what posterior_weights returned", where)
        except Stop:
            continue
        if w.shape != (n, m):
            rec.fail(f"posterior_weights returned shape {w.shape} {where}, expected (n, m) = {(n, m)}: one row per "
                     "point x_i, one column per data point z_j")
            continue
        finite = np.all(np.isfinite(w), axis=1)
        if not np.all(finite):
            where_bad = " (only at the points far from the data)" if np.all(finite[:-4]) else ""
            rec.fail(f"posterior_weights returned non-finite weights at {int(np.sum(~finite))} of {n} points "
                     f"{where}{where_bad}")
            continue
        rows = np.max(np.abs(w.sum(axis=1) - 1.0))
        rec.measure(f"row_sums_d{d}", rows, SQRT_EPS, what=f"max_i |sum_j w_ij - 1| {where}",
                    fail=f"{where} the weights of a point do not sum to 1 over the data (off by up to {rows:.3g})")
        rec.measure(f"min_weight_d{d}", -np.min(w), 0.0, what=f"-min w_ij {where} (weights are >= 0)",
                    fail=f"{where} some weights are negative")


def grade_posterior_weights(fn):
    """Grade w_ij = p(x_i | t_i, z_j) / sum_k p(x_i | t_i, z_k), p(x | t, z = x1) = N(t x1, (1 - t)^2 I)  [lecture: Theorem 1, eq. (10)]

    ``fn(x, t, x1) -> (n, m)``. First the weights themselves: finite, non-negative, each
    row summing to 1, also at points 25 away from the data. Then Theorem 1's field built
    from them, ``u(x, t) = sum_j w_j (x1_j - x) / (1 - t)``, judged by
    ``reference.testing.check_marginal_velocity`` against the exact field of empirical
    data (12 points in d = 2, 5000 in d = 1, 2, 3, 5; t from 0.001 to 0.999), which names
    the mistakes: weights not normalised or normalised over the points instead of the
    data (with or without the Gaussian's constant, which cancels only in the right
    normalisation), underflow without log-sum-exp, uniform weights.

    Returns:
        two ``CheckReport``: the weights', then the checker's.
    """
    rec = Recorder("posterior_weights: finite, >= 0, each row summing to 1 (eq. (10))")
    _weights_normalisation(rec, fn)
    rec.cover("d = 2 (12 data points) and d = 3 (40); 16 points x each, 4 of them 25 away from the data; t from 0.001 "
              "to 0.999")
    first = rec.report("the weights are finite, non-negative and sum to 1 over the data at every point.")

    def estimate(x, t, data):
        w = np.asarray(fn(x, t, data), dtype=float)
        n, m = x.shape[0], data.shape[0]
        if w.shape != (n, m):
            raise ValueError(f"posterior_weights returned shape {w.shape}, expected (n, m) = {(n, m)} (one row per "
                             "point x_i, one column per data point z_j)")
        u_cond = (data[None, :, :] - x[:, None, :]) / (1.0 - t)[:, None, None]  # (n, m, d): the conical u_cond
        return np.einsum("nm,nmd->nd", w, u_cond)
    second = check_marginal_velocity(estimate)
    second.name = f"{second.name} (u(x, t) = sum_j w_j (x1_j - x) / (1 - t) with your weights)"
    return first, second


# ----------------------------------------------------------------------------- step 4


def _mlp_sizes(d):
    return (d + 1, 16, 16, d)


def _n_params(sizes):
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def _mlp(theta, h, sizes):
    i = 0
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = anp.reshape(theta[i:i + a * b], (a, b))
        i += a * b
        h = anp.dot(h, W) + theta[i:i + b]
        i += b
        if k < len(sizes) - 2:
            h = anp.tanh(h)
    return h


def _time_column(t, n):
    """``t`` (a float, ``(n,)`` or ``(n, 1)``) as ``(n,)``, or None."""
    t = np.asarray(getval(t), dtype=float)
    if t.ndim == 0:
        return np.full(n, float(t))
    if t.shape in ((n,), (n, 1)):
        return t.reshape(n)
    return None


class _Model:
    """v_theta(x, t): an MLP on [x, t] with a flat parameter vector; it records the batches it is called on."""

    def __init__(self, d):
        self.d, self.sizes = d, _mlp_sizes(d)
        self.calls = []

    def __call__(self, theta, x, t):
        xv = np.asarray(getval(x))
        if xv.ndim != 2 or xv.shape[1] != self.d:
            raise ValueError(f"v(theta, x, t) needs x of shape (n, {self.d}), got {xv.shape}")
        n = xv.shape[0]
        tv = _time_column(t, n)
        if tv is None:
            raise ValueError(f"v(theta, x, t) needs t as a float or an array of shape ({n},), got shape "
                             f"{np.shape(getval(t))}")
        if np.shape(getval(theta)) != (_n_params(self.sizes),):
            raise ValueError(f"v(theta, x, t) needs theta of shape ({_n_params(self.sizes)},), got "
                             f"{np.shape(getval(theta))}")
        self.calls.append((np.array(xv, dtype=float), tv.copy()))
        return self.apply(theta, x, tv)

    def apply(self, theta, x, t):
        t = np.asarray(getval(t), dtype=float).reshape(-1)
        return _mlp(theta, anp.concatenate([x, t[:, None] * anp.ones((anp.shape(x)[0], 1))], axis=1), self.sizes)


_CFM_ADVICE = {
    "sign flipped": "the gradient is that of a regression on x0 - x1: the target of the linear path is "
                    "u_cond = x1 - x0",
    "regresses on x1, not on u_cond = x1 - x0": "the gradient is that of a regression on the data x1 itself: the "
                                                "target is the conditional velocity x1 - x0",
    "reversed time convention": "x_t = t x0 + (1 - t) x1 puts the data at t = 0; in the lecture t = 0 is the noise "
                                "p0 and t = 1 the data: x_t = (1 - t) x0 + t x1",
    "loss averaged over coordinates too": "the gradient is 1/d of the lecture's: L_CFM = E ||v - u_cond||^2 sums the "
                                          "squares over the d coordinates and averages over the batch (np.mean over "
                                          "both axes divides by d as well)",
    "loss summed over the batch, not averaged": "the gradient is n times the lecture's: the minibatch estimate of the "
                                                "expectation L_CFM is a mean over the n examples",
    "update goes uphill": "theta_new = theta + lr grad: gradient descent subtracts, theta - lr grad",
    "t not resampled at each step": "every step uses the same times t: draw t ~ U[0, 1] afresh at each step (step 4: "
                                    "sample t, z, x)",
    "x0 not resampled at each step": "every step uses the same noise x0: draw x0 ~ N(0, I) afresh at each step",
    "one t for the whole batch": "all n examples of a step share one t: step 4 draws a triple (t, z, x) per example "
                                 "(t of shape (n,))",
    "t not drawn from U[0, 1]": "the times are not uniform on [0, 1]: t = rng.uniform(0, 1, n)",
    "x0 not drawn from N(0, I)": "the noise is not standard normal: x0 = rng.standard_normal((n, d))",
    "loss returned after the update": "the loss returned is L(theta_new): return L(theta), the loss at the "
                                      "parameters the gradient was taken at (the value of value_and_grad)",
    "not reproducible from rng": "two calls with generators of the same seed give different steps: draw every random "
                                 "number from rng (not from numpy.random or a generator of your own)",
}


def _cfm_reference(model, theta, x_t, t, x1):
    """``reference.losses.cfm_loss`` on the student's batch and its autograd gradient, and the batch's noise x0."""
    x0 = (x_t - t[:, None] * x1) / (1.0 - t)[:, None]  # the noise of the linear path that puts x_t here
    path = LinearInterpolationPath()
    value, g_ref = value_and_grad(lambda th: cfm_loss(lambda x, s: model.apply(th, x, s), path, t, (x0, x1), x_t))(
        theta)
    return float(value), g_ref, x0


def _cfm_alternatives(model, theta, x_t, t, x1, x0, g_ref):
    """The gradients of the usual wrong steps on the same batch.

    A regression on a target T has the gradient (2/n) J^T (v - T) (J the Jacobian of the
    network's outputs in theta): one vector-Jacobian product per target.
    """
    n, d = x1.shape
    vjp, out = make_vjp(lambda th: model.apply(th, x_t, t))(theta)

    def regression(target):
        return vjp(2.0 / n * (out - target))
    alternatives = {
        "sign flipped": regression(x0 - x1),
        "regresses on x1, not on u_cond = x1 - x0": regression(x1),
        "loss summed over the batch, not averaged": n * g_ref,
        "update goes uphill": -g_ref,
    }
    if d > 1:
        alternatives["loss averaged over coordinates too"] = g_ref / d
    if np.all(t > 0):
        x0_rev = (x_t - (1.0 - t)[:, None] * x1) / t[:, None]  # the noise if x_t = t x0 + (1 - t) x1
        alternatives["reversed time convention"] = (regression(x0_rev - x1), regression(x1 - x0_rev))
    return alternatives


def _cfm_case(rec, fn, d, n_steps, n, lr, pooled):
    rng = np.random.default_rng(5000 + d)
    model = _Model(d)
    p = _n_params(model.sizes)
    theta = rng.standard_normal(p) / math.sqrt(d + 1)
    centres = 2.0 * rng.standard_normal((4, d))
    cases, ts, x0s = [], [], []
    first_result = None
    for step in range(n_steps):
        x1 = centres[rng.integers(0, 4, n)] + 0.3 * rng.standard_normal((n, d))
        seed = 6000 + 100 * d + step
        where = f"in d = {d}, step {step + 1}"
        model.calls.clear()
        try:
            out = call(rec, fn, "cfm_step", ("v", "theta", "x1", "rng", "lr"), model, theta, x1,
                       np.random.default_rng(seed), lr, where=where)
        except Stop:
            return cases
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            rec.fail(f"cfm_step must return a pair (theta_new, loss), got {type(out).__name__}")
            raise Stop
        theta_new = as_float_array(rec, getval(out[0]), "the theta_new cfm_step returned", where)
        try:
            loss = float(getval(out[1]))
        except (TypeError, ValueError):
            rec.fail(f"cfm_step returned a loss that is not a number ({type(out[1]).__name__}) {where}")
            raise Stop from None
        if theta_new.shape != theta.shape:
            rec.fail(f"cfm_step returned theta_new of shape {theta_new.shape} {where}, expected {theta.shape}")
            raise Stop
        if not np.all(np.isfinite(theta_new)):
            rec.fail(f"cfm_step returned a theta_new with NaN or inf {where}")
            raise Stop
        batches = [(x, t) for x, t in model.calls if x.shape == (n, d)]
        if not batches:
            rec.fail(f"cfm_step never called v on a batch of {n} points {where}")
            raise Stop
        x_t, t = batches[0]
        if any(not (np.array_equal(x, x_t) and np.array_equal(s, t)) for x, s in batches[1:]):
            rec.fail(f"cfm_step called v on different batches in one step {where}: one batch (t, x) per step")
            raise Stop
        if not np.all((t >= 0) & (t < 1)) or not np.all(np.isfinite(x_t)):  # also NaN
            rec.fail(f"cfm_step called v with t outside [0, 1) or non-finite x_t {where}")
            cases.append({"ok": False, "matches": {"t not drawn from U[0, 1]"} if np.all(np.isfinite(x_t)) else set(),
                          "defined": {"t not drawn from U[0, 1]"}})
            continue
        value, g_ref, x0 = _cfm_reference(model, theta, x_t, t, x1)
        g = (theta - theta_new) / lr
        scale = np.max(np.abs(g_ref))
        err = np.max(np.abs(g - g_ref)) / scale
        ok = rec.measure(f"gradient_d{d}_step{step + 1}", err, 1e-6,
                         what=f"max |(theta - theta_new) / lr - grad L_CFM| / max |grad L_CFM| {where} "
                              "(reference.losses.cfm_loss on your batch, differentiated by autograd)",
                         fail=f"{where} the step is not theta - lr grad L_CFM on the batch it drew (relative error "
                              f"{err:.3g})")
        matches, defined = set(), set()
        if not ok:
            alternatives = _cfm_alternatives(model, theta, x_t, t, x1, x0, g_ref)
            defined = set(alternatives)
            for label, alt in alternatives.items():
                for a in (alt if isinstance(alt, tuple) else (alt,)):
                    if np.max(np.abs(g - a)) <= 1e-6 * max(scale, np.max(np.abs(a))):
                        matches.add(label)
        else:
            loss_ok = rec.measure(f"loss_d{d}_step{step + 1}", abs(loss - value) / (1.0 + abs(value)), 1e-8,
                                  what=f"|loss - L_CFM(theta) on the batch| / (1 + L_CFM) {where}",
                                  fail=f"{where} the loss returned ({loss:.6g}) is not the minibatch CFM loss at "
                                       f"theta ({value:.6g})")
            if not loss_ok:
                after = float(cfm_loss(lambda x, s: model.apply(theta_new, x, s), LinearInterpolationPath(), t,
                                       (x0, x1), x_t))
                cases.append({"ok": False, "defined": {"loss returned after the update"},
                              "matches": {"loss returned after the update"} if abs(loss - after) <= 1e-8 * (
                                  1.0 + abs(after)) else set()})
            x0s.append(x0)
        ts.append(t)
        cases.append({"ok": ok, "matches": matches, "defined": defined})
        if step == 0:
            first_result = (theta.copy(), x1, seed, theta_new)
        theta = theta - lr * g_ref  # the right step: what comes next does not depend on this step's mistake

    # the same seed must give the same step
    if first_result is not None:
        theta0, x1, seed, theta_new = first_result
        try:
            again = call(rec, fn, "cfm_step", ("v", "theta", "x1", "rng", "lr"), _Model(d), theta0, x1,
                         np.random.default_rng(seed), lr, where=f"in d = {d}, step 1 again")
            same = np.max(np.abs(np.asarray(getval(again[0]), dtype=float) - theta_new)) / (
                1.0 + np.max(np.abs(theta_new)))
        except (Stop, TypeError, IndexError, KeyError, ValueError):
            same = math.inf
        if not rec.measure(f"reproducible_d{d}", same, 1e-12,
                           what=f"step 1 in d = {d} again with a generator of the same seed (relative difference)",
                           fail=f"in d = {d} the same step with a generator of the same seed gives another result"):
            cases.append({"ok": False, "matches": {"not reproducible from rng"}, "defined": {"not reproducible from rng"}})

    # sampling: fresh t and x0 at every step, one t per example
    if len(ts) >= 2:
        same_t = all(np.array_equal(ts[0], s) for s in ts[1:])
        if same_t:
            rec.fail(f"in d = {d} every step drew the same times t")
            cases.append({"ok": False, "matches": {"t not resampled at each step"},
                          "defined": {"t not resampled at each step"}})
        if len(x0s) >= 2 and all(np.allclose(x0s[0], s, rtol=0, atol=1e-8) for s in x0s[1:]):
            rec.fail(f"in d = {d} every step drew the same noise x0")
            cases.append({"ok": False, "matches": {"x0 not resampled at each step"},
                          "defined": {"x0 not resampled at each step"}})
    if any(np.ptp(s) == 0 for s in ts) and n > 1:
        rec.fail(f"in d = {d} all the examples of a step share one t")
        cases.append({"ok": False, "matches": {"one t for the whole batch"}, "defined": {"one t for the whole batch"}})
    pooled["t"].extend(ts)
    pooled["x0"].extend(x0s)
    return cases


def grade_cfm_step(fn, n=64, n_steps=4, lr=0.05, dims=(1, 2, 3)):
    """Grade one step of CFM: t ~ U[0, 1], x0 ~ N(0, I), x_t = (1 - t) x0 + t x1, theta - lr grad mean ||v_theta(x_t, t) - (x1 - x0)||^2  [lecture: Flow Matching In Practice]

    ``fn(v, theta, x1, rng, lr) -> (theta_new, loss)`` with ``v(theta, x, t)`` an MLP
    given by the grader, which records the batch ``(x_t, t)`` it is called on. From that
    batch and ``x1`` the noise is ``x0 = (x_t - t x1) / (1 - t)``, and
    ``reference.losses.cfm_loss`` (the linear path, ``u_cond = x1 - x0``) differentiated by
    autograd gives the step the student must have taken: ``(theta - theta_new) / lr``
    must equal its gradient to ``1e-6`` relative, and ``loss`` its value. Over
    ``n_steps`` steps in each of ``dims``: fresh ``t`` and ``x0`` at every step, one ``t``
    per example, ``t`` uniform on ``[0, 1]`` and ``x0`` standard normal (mean and
    variance within 5 standard errors, pooled), the same step again from a generator of
    the same seed. Named when the gradient matches one: a regression on ``x0 - x1`` or
    on ``x1``, the reversed time convention, a loss averaged over coordinates or summed
    over the batch, an update uphill; and t or x0 not resampled, one t per batch, draws
    not from ``rng``.

    Returns:
        a tuple of one ``CheckReport``.
    """
    rec = Recorder("cfm_step against reference.losses.cfm_loss (its autograd gradient on your batch)")
    cases = []
    pooled = {"t": [], "x0": []}
    for d in dims:
        try:
            cases += _cfm_case(rec, fn, d, n_steps, n, lr, pooled)
        except Stop:
            continue
    if pooled["t"]:
        t = np.concatenate(pooled["t"])
        m = t.size
        z_mean = abs(t.mean() - 0.5) / math.sqrt(1.0 / 12.0 / m)
        z_var = abs(np.mean((t - 0.5) ** 2) - 1.0 / 12.0) / math.sqrt(1.0 / 180.0 / m)
        ok = rec.measure("t_uniform", max(z_mean, z_var), K_SE,
                         what=f"|mean - 1/2| and |E(t - 1/2)^2 - 1/12| of the {m} times drawn, in standard errors",
                         fail=f"the times drawn are not uniform on [0, 1] (mean {t.mean():.3g}, "
                              f"E(t - 1/2)^2 = {np.mean((t - 0.5) ** 2):.3g} against 1/12 = {1 / 12:.3g})")
        if not ok:
            cases.append({"ok": False, "matches": {"t not drawn from U[0, 1]"}, "defined": {"t not drawn from U[0, 1]"}})
    if pooled["x0"]:
        e = np.concatenate([x.ravel() for x in pooled["x0"]])
        m = e.size
        z = max(abs(e.mean()) / math.sqrt(1.0 / m), abs(e.var() - 1.0) / math.sqrt(2.0 / m))
        if not rec.measure("x0_standard_normal", z, K_SE,
                           what=f"|mean| and |variance - 1| of the {m} noise entries x0 = (x_t - t x1)/(1 - t), in "
                                "standard errors",
                           fail=f"the noise drawn is not N(0, I) (mean {e.mean():.3g}, variance {e.var():.3g})"):
            cases.append({"ok": False, "matches": {"x0 not drawn from N(0, I)"},
                          "defined": {"x0 not drawn from N(0, I)"}})
    for c in cases:
        c.setdefault("defined", set())
    _name_common(rec, cases, _CFM_ADVICE)
    rec.cover(f"d = {', '.join(map(str, dims))}; {n_steps} steps of {n} examples each, lr = {lr:g}; v an MLP "
              "[x, t] -> 16 -> 16 -> d (tanh)")
    return (rec.report(f"each step is theta - lr grad L_CFM on a fresh batch (t ~ U[0, 1] per example, x0 ~ N(0, I), "
                       f"x_t = (1 - t) x0 + t x1), and returns its loss, in d = {', '.join(map(str, dims))}."),)

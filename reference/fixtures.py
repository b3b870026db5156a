"""Golden fixtures: seeded inputs and the reference's outputs for each formula of the lecture  [lecture: all sections]

A port of the lecture's mathematics to another language can test itself without
Python: each fixture is a ``<name>.npz`` file (NumPy's zip of ``.npy`` arrays, readable
from Julia, Rust, C++, JavaScript, ...) holding the inputs (keys ``in_<name>``) and the
reference's outputs (keys ``out_<name>``), and ``index.json`` says for each one the
formula, the lecture's equation, the conventions, the shapes and the tolerances
(``|port - out| <= atol + rtol |out|`` element by element).

    python -m reference.fixtures OUT_DIR           # write the fixtures
    python -m reference.fixtures --check DIR       # recompute every output and compare

The inputs are drawn from ``numpy.random.default_rng`` seeded by the fixture's name.
Writing twice on one machine, with one set of library versions, gives the same bytes. On
another CPU or NumPy build the last bits of a transcendental function or the order of a
BLAS sum may differ, so a regenerated set is compared with a committed one within
tolerances derived from each computation's sensitivity to rounding (``_rounding_tolerances``),
computed inputs included. The committed set lives in ``tests/golden/``.

``--check`` takes the list of fixtures, their file names, keys, shapes and tolerances from
the code, never from the folder it checks: a missing, extra or renamed fixture, a missing
or extra key, a changed tolerance in ``index.json``, an unreadable file or a file name
leading out of the folder is reported as ``fixture NAME: what is wrong``.

Conventions (all fixtures): float64; points are batch-first ``(n, d)``; ``t = 0`` is the
base ``N(0, I)`` and ``t = 1`` the data; a velocity field is ``u(x, t)``; a time ``t``
given with a batch has one entry per point. An MLP's layers are ``h -> h W + b`` with
``W`` of shape ``(fan_in, fan_out)``, SiLU ``h sigmoid(h)`` between layers, none after the
last; keys ``W0, b0, W1, b1, ...`` hold its layers in order.
"""

import argparse
import json
import math
import numbers
import re
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as onp

__all__ = ["Fixture", "FIXTURES", "CONVENTIONS", "FixtureError", "CheckRow", "write_fixtures", "verify_fixtures",
           "load_fixture"]

FORMAT_VERSION = 1
DEFAULT_RTOL = 1e-9
DEFAULT_ATOL = 1e-12

CONVENTIONS = {
    "dtype": "float64",
    "points": "batch-first arrays of shape (n, d)",
    "time": "t = 0 is the base N(0, I), t = 1 is the data; t has one entry per point (shape (n,)) unless it is a scalar",
    "velocity": "u(x, t) -> (n, d), arguments in that order",
    "mlp": ("layers h -> h W + b with W of shape (fan_in, fan_out), SiLU h * sigmoid(h) between layers, "
            "no activation after the last; keys W0, b0, W1, b1, ... in order"),
    "tolerance": "an output passes when |port - out| <= atol + rtol |out| element by element",
    "npz_keys": "in_<name> for inputs, out_<name> for outputs",
}

TEST_FIELD = "u(x, t) = tanh(x W^T + t c), W of shape (d, d), c of shape (d,)"


@dataclass(frozen=True)
class Fixture:
    """One formula's fixture: how its inputs are drawn and how the reference computes its outputs.

    Attributes:
        name: file stem.
        lecture: the lecture's equation, example or section.
        formula: what the outputs are, in plain text.
        make: ``rng -> {input name: array}``.
        compute: ``{input name: array} -> {output name: array}``, by the reference.
        rtol, atol: the tolerance a port must meet.
        notes: conventions particular to this fixture.
    """

    name: str
    lecture: str
    formula: str
    make: object
    compute: object
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    notes: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {type(self.name).__name__}")
        if not _FILE_STEM.fullmatch(self.name):
            raise ValueError(f"name must be a file stem of letters, digits and _ (it names <name>.npz), got "
                             f"{self.name!r}")
        for attr in ("lecture", "formula", "notes"):
            if not isinstance(getattr(self, attr), str):
                raise TypeError(f"{attr} must be a str, got {type(getattr(self, attr)).__name__}")
        for attr in ("make", "compute"):
            if not callable(getattr(self, attr)):
                raise TypeError(f"{attr} must be callable, got {type(getattr(self, attr)).__name__}")
        for attr in ("rtol", "atol"):
            object.__setattr__(self, attr, _tolerance(getattr(self, attr), attr))


_FILE_STEM = re.compile(r"[A-Za-z0-9_]+")


def _tolerance(value, name):
    """A tolerance: a finite real number >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite real number >= 0, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite real number >= 0, got {value}")
    return float(value)


def _rng(name):
    return onp.random.default_rng(zlib.crc32(name.encode()))


def _mlp_arrays(params, prefix=""):
    out = {}
    for k, (W, b) in enumerate(params):
        out[f"{prefix}W{k}"], out[f"{prefix}b{k}"] = onp.asarray(W), onp.asarray(b)
    return out


def _mlp_params(inputs, prefix=""):
    layers, k = [], 0
    while f"{prefix}W{k}" in inputs:
        layers.append((inputs[f"{prefix}W{k}"], inputs[f"{prefix}b{k}"]))
        k += 1
    return layers


def _test_field(inputs):
    import autograd.numpy as anp

    W, c = inputs["W"], inputs["c"]

    def u(x, t):
        t_col = anp.reshape(t, (-1, 1)) if anp.ndim(t) else t
        return anp.tanh(x @ W.T + t_col * c)
    return u


def _field_inputs(rng, n=5, d=2):
    return {"W": rng.normal(scale=0.8, size=(d, d)), "c": rng.normal(size=d), "x": rng.normal(size=(n, d))}


# ----------------------------------------------------------------------------- the formulas

def _standard_normal():
    def make(rng):
        return {"x": rng.normal(scale=2.0, size=(6, 3))}

    def compute(i):
        from .distributions import standard_normal_logpdf
        return {"log_p": standard_normal_logpdf(i["x"])}

    return Fixture("standard_normal_logpdf", "eq. (1), eq. (2) (the base p0)",
                   "log p0(x) = -d/2 log(2 pi) - |x|^2 / 2", make, compute)


def _mixture():
    def make(rng):
        A = rng.normal(scale=0.5, size=(3, 2, 2))
        w = rng.uniform(0.2, 1.0, 3)
        return {"weights": w / w.sum(), "means": rng.normal(scale=2.0, size=(3, 2)),
                "covs": A @ onp.swapaxes(A, 1, 2) + 0.2 * onp.eye(2), "x": rng.normal(scale=2.0, size=(6, 2))}

    def compute(i):
        from .distributions import GaussianMixture
        return {"log_p": GaussianMixture(i["weights"], i["means"], i["covs"]).logpdf(i["x"])}

    return Fixture("gaussian_mixture_logpdf", "Fig. 1 (p_data)", "log sum_k w_k N(x; m_k, S_k)", make, compute)


def _pushforward():
    def make(rng):
        return {"A": rng.normal(size=(2, 2)) + 2 * onp.eye(2), "b": rng.normal(size=2), "x": rng.normal(size=(6, 2))}

    def compute(i):
        from .change_of_variables import pushforward_logpdf
        from .distributions import standard_normal_logpdf
        A, b = i["A"], i["b"]
        return {"log_p1": pushforward_logpdf(lambda x: x @ A.T + b, standard_normal_logpdf, i["x"])}

    return Fixture("pushforward_logpdf_affine", "eq. (2)",
                   "log p1(x) = log p0(T^{-1}(x)) + log |det J_{T^{-1}}(x)| with T^{-1}(x) = A x + b", make, compute)


def _planar():
    def make(rng):
        from .flows.planar import planar_constrain, planar_init
        p = planar_constrain(planar_init(3, rng, scale=2.0))
        return {"a": p["a"], "b": p["b"], "c": onp.asarray(p["c"]), "x": rng.normal(size=(6, 3))}

    def compute(i):
        from .flows.planar import planar_forward, planar_inverse
        p = {"a": i["a"], "b": i["b"], "c": i["c"]}
        y, log_det = planar_forward(p, i["x"])
        x_back, log_det_inv = planar_inverse(p, y)
        return {"y": y, "log_det": log_det, "x_back": x_back, "log_det_inv": log_det_inv}

    return Fixture("planar_flow", "Continuous Normalizing Flows (planar flow)",
                   "y = x + tanh(b^T x + c) a; log_det = log|1 + tanh'(b^T x + c) a^T b|; x_back, log_det_inv: "
                   "the inverse at y (a root solve), log_det_inv = -log_det", make, compute, atol=1e-10,
                   notes="a^T b > -1 (invertible); the inverse is iterative: atol 1e-10")


def _coupling():
    def make(rng):
        from .flows.coupling import coupling_init
        p = coupling_init(4, 2, (8,), rng)
        return {**_mlp_arrays(p["s"], "s_"), **_mlp_arrays(p["t"], "t_"), "perm": onp.array([1, 3, 0, 2]),
                "x": rng.normal(size=(6, 4))}

    def compute(i):
        from .flows.coupling import coupling_forward, coupling_inverse
        p = {"s": _mlp_params(i, "s_"), "t": _mlp_params(i, "t_")}
        y, log_det = coupling_forward(p, i["x"], perm=i["perm"])
        x_back, log_det_inv = coupling_inverse(p, y, perm=i["perm"])
        return {"y": y, "log_det": log_det, "x_back": x_back, "log_det_inv": log_det_inv}

    from .flows.coupling import ACTIVATION, SCALE_BOUND
    return Fixture("coupling_layer", "RealNVP, eq. (3) and its inverse",
                   f"with xp = x[:, perm], x1 = xp[:, :2], x2 = xp[:, 2:]: s = {SCALE_BOUND:g} tanh(MLP_s(x1) / "
                   f"{SCALE_BOUND:g}), y2 = x2 exp(s) + MLP_t(x1), yp = [x1, y2], y[:, perm] = yp; log_det = sum(s)",
                   make, compute, notes=f"s_W*/s_b* and t_W*/t_b* are the MLPs of s and t, with {ACTIVATION} "
                                        "(not SiLU) between their layers")


def _velocity_mlp():
    def make(rng):
        from .nn import velocity_init
        return {**_mlp_arrays(velocity_init(2, (16, 16), rng)), "x": rng.normal(size=(5, 2)), "t": rng.uniform(size=5)}

    def compute(i):
        from .nn import velocity_apply
        return {"v": velocity_apply(_mlp_params(i), i["x"], i["t"])}

    return Fixture("velocity_mlp", "Theorem 2 (v_theta)", "v_theta(x, t) = MLP([x, t]) (t appended as a last input column)",
                   make, compute)


def _integrator(method):
    def make(rng):
        return {**_field_inputs(rng), "t": onp.asarray(0.3), "h": onp.asarray(0.25)}

    def compute(i):
        from .ode import get_tableau, integrate, rk_step
        u = _test_field(i)
        step, _ = rk_step(u, i["x"], float(i["t"]), float(i["h"]), get_tableau(method))
        forward = integrate(u, i["x"], 0.0, 1.0, 8, method=method)
        backward = integrate(u, forward, 1.0, 0.0, 8, method=method)
        return {"step": step, "integrate": forward, "integrate_backwards": backward}

    names = {"euler": "forward Euler", "midpoint": "explicit midpoint", "rk4": "classic RK4",
             "rk38": "Kutta's 3/8 rule (torchdiffeq's fixed-grid 'rk4')", "dopri5": "Dormand-Prince 5th-order solution"}
    return Fixture(f"integrator_{method}", "eq. (4)",
                   f"{names[method]}: step = one step of size h from (x, t); integrate = 8 equal steps from t = 0 "
                   "to 1; integrate_backwards = 8 steps from t = 1 back to 0 starting at integrate",
                   make, compute, notes=f"field {TEST_FIELD}")


def _divergence():
    def make(rng):
        i = _field_inputs(rng, n=5, d=3)
        return {**i, "t": rng.uniform(size=5), "probes": rng.choice([-1.0, 1.0], size=(3, 5, 3))}

    def compute(i):
        from .autodiff import divergence, hutchinson_divergence, jacobian
        u = _test_field(i)
        return {"jacobian": jacobian(lambda y: u(y, i["t"]), i["x"]), "divergence": divergence(u, i["x"], i["t"]),
                "hutchinson": hutchinson_divergence(u, i["x"], i["t"], probes=i["probes"])}

    return Fixture("divergence", "CNF Pros (trace of the Jacobian, Hutchinson)",
                   "jacobian[n, i, j] = d u_i / d x_j; divergence = tr J; hutchinson = (1/M) sum_m eps_m^T J eps_m "
                   "with the given probes (M, n, d)", make, compute, notes=f"field {TEST_FIELD}")


def _cnf():
    mu = onp.array([1.0, -0.5])

    def make(rng):
        return {"mu": mu, "x": mu + 2.0 * rng.normal(size=(6, 2))}

    def compute(i):
        import autograd.numpy as anp

        from .cnf import cnf_logpdf
        m = i["mu"]

        def u(x, t):
            t_col = anp.reshape(t, (-1, 1)) if anp.ndim(t) else t
            return (x - t_col * m) / (1.0 + t_col) + m

        d = i["x"].shape[1]
        closed = -0.5 * d * math.log(2 * math.pi * 4.0) - 0.5 * onp.sum((i["x"] - m) ** 2, axis=1) / 4.0
        return {"log_p1": cnf_logpdf(u, i["x"], n_steps=64, method="rk4", divergence="exact"), "closed_form": closed}

    return Fixture("cnf_logpdf_gaussian_path", "Continuous Normalizing Flows (instantaneous change of variables)",
                   "log p1(x) = log p0(x(0)) - int_0^1 div u(x(t), t) dt for u = (x - t mu) / (1 + t) + mu (p_t = "
                   "N(t mu, (1 + t)^2 I)), RK4 with 64 steps from t = 1 back to 0 and exact divergence; closed_form = "
                   "log N(x; mu, 4 I)", make, compute,
                   notes="log_p1 to the tolerance; closed_form differs from log_p1 by RK4's error (< 1e-7)")


def _continuity():
    def make(rng):
        return {"x": rng.normal(size=(6, 2)), "t": rng.uniform(0.05, 0.9, size=6), "x1": rng.normal(size=(6, 2))}

    def compute(i):
        from .continuity import continuity_terms
        from .paths import ConicalGaussianPath
        path, z = ConicalGaussianPath(), i["x1"]

        def log_p(x, t):
            return path.logpdf(x, t, z)

        def u(x, t):
            return path.velocity(x, t, z)

        dlogp_dt, transport, div_u = continuity_terms(log_p, u, i["x"], i["t"])
        wrong = continuity_terms(log_p, lambda x, t: -u(x, t), i["x"], i["t"])
        return {"dlogp_dt": dlogp_dt, "transport": transport, "div_u": div_u,
                "residual": dlogp_dt + transport + div_u, "residual_sign_flipped": sum(wrong)}

    return Fixture("continuity_residual_conical", "eq. (5); Example 2",
                   "r = d/dt log p_t + u . grad log p_t + div u for p_t = N(t x1, (1 - t)^2 I) and u = (x1 - x) / (1 - t) "
                   "(r = 0); residual_sign_flipped: the same with -u", make, compute, atol=1e-10,
                   notes="row i uses x1[i], t[i]; residual is 0 to round-off (atol 1e-10)")


def _conditional_path(label, make_path):
    def make(rng):
        return {"x0": rng.normal(size=(6, 2)), "x1": rng.normal(size=(6, 2)) + 2.0, "eps": rng.normal(size=(6, 2)),
                "t": onp.linspace(0.05, 0.95, 6)}

    def compute(i):
        path = make_path()
        z = (i["x0"], i["x1"]) if path.conditions_on_pairs else i["x1"]
        x_t = path.flow(i["eps"], i["t"], z)
        out = {"x_t": x_t, "u_cond": path.velocity(x_t, i["t"], z)}
        (_, _, sigma), _ = path.schedules(i["t"])
        if onp.all(sigma > 0):
            out["log_p"] = path.logpdf(x_t, i["t"], z)
        return out

    path = make_path()
    z_text = "z = (x0, x1), x_t = mu_t(z) + sigma_t eps" if path.conditions_on_pairs else \
        "z = x1, x_t = mu_t(x1) + sigma_t eps (x0 unused: eps is the noise)"
    return Fixture(f"conditional_path_{label}", "Modeling Choices; Example 1; Example 2",
                   f"{path!r}: {z_text}; u_cond = d/dt mu_t + (d/dt sigma_t / sigma_t)(x_t - mu_t); "
                   "log_p = log N(x_t; mu_t, sigma_t^2 I) where sigma_t > 0", make, compute)


def _posterior():
    def make(rng):
        return {"x": rng.normal(size=(6, 2)) * 2, "t": onp.linspace(0.1, 0.9, 6), "z": rng.normal(size=(5, 2)) * 2}

    def compute(i):
        from .marginal import marginal_logpdf, marginal_velocity, posterior_weights
        from .paths import ConicalGaussianPath
        path = ConicalGaussianPath()
        return {"weights": posterior_weights(path, i["x"], i["t"], i["z"]),
                "log_p": marginal_logpdf(path, i["x"], i["t"], i["z"]),
                "u": marginal_velocity(path, i["x"], i["t"], i["z"])}

    return Fixture("marginal_conical", "Theorem 1, eq. (9), (10)",
                   "conical path p(x | t, z_j) = N(t z_j, (1 - t)^2 I): weights[i, j] = p(z_j | x_i, t_i) (rows sum "
                   "to 1); log_p = log (1/m) sum_j p(x | t, z_j); u = sum_j weights_ij (z_j - x_i) / (1 - t_i)",
                   make, compute)


def _oracles():
    def make(rng):
        A = rng.normal(scale=0.4, size=(2, 2, 2))
        return {"data": rng.normal(scale=2.0, size=(7, 2)), "weights": onp.array([0.3, 0.7]),
                "means": rng.normal(scale=2.0, size=(2, 2)), "covs": A @ onp.swapaxes(A, 1, 2) + 0.1 * onp.eye(2),
                "x": rng.normal(size=(6, 2)), "t": onp.linspace(0.0, 0.9, 6)}

    def compute(i):
        from .distributions import GaussianMixture
        from .oracles import EmpiricalOracle, GaussianMixtureOracle
        emp = EmpiricalOracle(i["data"])
        gm = GaussianMixtureOracle(GaussianMixture(i["weights"], i["means"], i["covs"]))
        return {"empirical_u": emp.velocity(i["x"], i["t"]), "empirical_log_p": emp.logpdf(i["x"], i["t"]),
                "mixture_u": gm.velocity(i["x"], i["t"]), "mixture_log_p": gm.logpdf(i["x"], i["t"])}

    return Fixture("marginal_oracles", "Theorem 1, eq. (9) (closed forms)",
                   "the lecture's path (x_t = t x1 + (1 - t) x0) with x1 uniform on data (empirical_*: p_t = (1/N) sum_i "
                   "N(t y_i, (1-t)^2 I)) or x1 ~ sum_k w_k N(m_k, S_k) (mixture_*: p_t = sum_k w_k N(t m_k, "
                   "(1-t)^2 I + t^2 S_k)); u = E[x1 - x0 | x_t = x]", make, compute)


def _losses():
    def make(rng):
        from .nn import velocity_init
        x0, x1 = rng.normal(size=(8, 2)), rng.normal(size=(8, 2)) + 1.5
        return {**_mlp_arrays(velocity_init(2, (16,), rng)), "x0": x0, "x1": x1, "t": rng.uniform(size=8),
                "data": x1}

    def compute(i):
        from .losses import cfm_loss, fm_loss
        from .nn import velocity_apply
        from .oracles import EmpiricalOracle
        from .paths import LinearInterpolationPath
        params = _mlp_params(i)

        def v(x, t):
            return velocity_apply(params, x, t)

        t = i["t"]
        x_t = (1 - t)[:, None] * i["x0"] + t[:, None] * i["x1"]
        return {"x_t": x_t, "cfm_loss": onp.asarray(cfm_loss(v, LinearInterpolationPath(), t, (i["x0"], i["x1"]), x_t)),
                "fm_loss": onp.asarray(fm_loss(v, EmpiricalOracle(i["data"]).velocity, t, x_t))}

    return Fixture("losses", "eq. (5) (FM loss); Theorem 2 (CFM loss)",
                   "v = velocity MLP (W*, b*); x_t = (1 - t) x0 + t x1; cfm_loss = mean |v(x_t, t) - (x1 - x0)|^2; "
                   "fm_loss = mean |v(x_t, t) - u(x_t, t)|^2 with u the exact field of the empirical data", make, compute)


def _ot():
    def make(rng):
        return {"x0": rng.normal(size=(7, 2)), "x1": rng.normal(size=(7, 2)) + 1.0}

    def compute(i):
        from .ot import ot_permutation
        sigma = ot_permutation(i["x0"], i["x1"])
        return {"sigma": sigma, "cost": onp.asarray(onp.sum((i["x0"] - i["x1"][sigma]) ** 2))}

    return Fixture("ot_pairing", "Flow Matching In Practice, step 4 (minibatch OT)",
                   "sigma = argmin over permutations of sum_i |x0_i - x1_sigma(i)|^2 (x0[i] pairs with x1[sigma[i]]); "
                   "cost = that minimum", make, compute, notes="sigma is an integer array: compare exactly")


def _paths():
    from .paths import ConicalGaussianPath, LinearInterpolationPath, OptimalTransportPath, VariancePreservingPath
    return [
        _conditional_path("linear", LinearInterpolationPath),
        _conditional_path("linear_sigma", lambda: LinearInterpolationPath(sigma=0.5)),
        _conditional_path("conical", ConicalGaussianPath),
        _conditional_path("ot_sigma_min", lambda: OptimalTransportPath(sigma_min=0.01)),
        _conditional_path("variance_preserving", VariancePreservingPath),
    ]


FIXTURES = [
    _standard_normal(), _mixture(), _pushforward(), _planar(), _coupling(), _velocity_mlp(),
    *[_integrator(m) for m in ("euler", "midpoint", "rk4", "rk38", "dopri5")],
    _divergence(), _cnf(), _continuity(), *_paths(), _posterior(), _oracles(), _losses(), _ot(),
]
"""Every fixture, in the order of the lecture."""


# ----------------------------------------------------------------------------- files

class FixtureError(ValueError):
    """A fixture folder that does not hold what the reference wrote: ``"fixture NAME: what is wrong"``."""


class _Row(NamedTuple):
    name: str
    key: str
    ratio: float
    passed: bool
    problem: str = ""


class CheckRow(_Row):
    """One row of ``verify_fixtures``: an output checked, or a problem with a fixture or the index.

    Attributes:
        name: the fixture's name (``"index.json"`` for a problem with the index as a whole).
        key: the output's name, or ``"-"`` for a problem with the fixture as a whole.
        ratio: ``max |recomputed - stored| / (atol + rtol |stored|)`` (``inf`` for a problem), >= 0.
        passed: ``ratio <= 1`` and no problem.
        problem: ``"fixture NAME: what is wrong"``, or ``""``.
    """

    __slots__ = ()

    def __new__(cls, name, key, ratio, passed, problem=""):
        for value, attr in ((name, "name"), (key, "key"), (problem, "problem")):
            if not isinstance(value, str):
                raise TypeError(f"{attr} must be a str, got {type(value).__name__}")
        if not name.strip():
            raise ValueError("name must be a non-empty str")
        if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real):
            raise TypeError(f"ratio must be a real number >= 0 (inf for a problem), got {type(ratio).__name__}")
        if math.isnan(ratio) or ratio < 0:
            raise ValueError(f"ratio must be a real number >= 0 (inf for a problem), got {ratio}")
        if not isinstance(passed, bool):
            raise TypeError(f"passed must be a bool, got {type(passed).__name__}")
        if passed and (ratio > 1 or problem):
            raise ValueError(f"passed must be False for a row with ratio > 1 or a problem, got ratio = {ratio} and "
                             f"problem = {problem!r}")
        return super().__new__(cls, name, key, float(ratio), passed, problem)


def _describe(arr):
    arr = onp.asarray(arr)
    return {"shape": list(arr.shape), "dtype": str(arr.dtype)}


def _select(names, arg="names"):
    """The fixtures of the code named in ``names`` (all when None), in the code's order (a name listed twice is
    one fixture)."""
    if names is None:
        return list(FIXTURES)
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"{arg} must be a list of fixture names (str), got {names!r}")
    if not names:
        raise ValueError(f"{arg} must name at least one fixture (None: all of them)")
    known = {f.name for f in FIXTURES}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(f"{arg}: unknown fixture(s) {unknown}; known: {[f.name for f in FIXTURES]}")
    return [f for f in FIXTURES if f.name in set(names)]


def _as_directory(directory, name):
    """``directory`` as a ``Path``: a str or ``pathlib.Path`` that is not an existing file."""
    if not isinstance(directory, (str, Path)):
        raise TypeError(f"{name} must be a folder (str or pathlib.Path), got {type(directory).__name__}")
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} must be a folder, got the file {path}")
    return path


def build(fixture):
    """``(inputs, outputs)`` of a fixture, as float64 (or integer) arrays."""
    inputs = {k: onp.asarray(v) for k, v in fixture.make(_rng(fixture.name)).items()}
    outputs = {k: onp.asarray(v) for k, v in fixture.compute(inputs).items()}
    return inputs, outputs


def _savez(path, arrays):
    """``numpy.savez`` with fixed time stamps and key order, so that the same arrays give the same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w") as fh:
                onp.lib.format.write_array(fh, onp.array(arrays[key], order="C"), allow_pickle=False)  # keeps 0-d


def _entry(fx, inputs, outputs):
    """The fixture's record in ``index.json``."""
    return {
        "name": fx.name, "file": f"{fx.name}.npz", "lecture": fx.lecture, "formula": fx.formula, "notes": fx.notes,
        "rtol": fx.rtol, "atol": fx.atol,
        "inputs": {k: _describe(v) for k, v in inputs.items()},
        "outputs": {k: _describe(v) for k, v in outputs.items()},
    }


def write_fixtures(out_dir, names=None):
    """Write ``<name>.npz`` for each fixture and ``index.json``; return the paths written.

    Args:
        out_dir: the folder (created if missing).
        names: only these fixtures (default all).
    """
    out_dir = _as_directory(out_dir, "out_dir")
    chosen = _select(names)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries, paths = [], []
    for fx in chosen:
        inputs, outputs = build(fx)
        path = out_dir / f"{fx.name}.npz"
        _savez(path, {**{f"in_{k}": v for k, v in inputs.items()}, **{f"out_{k}": v for k, v in outputs.items()}})
        paths.append(path)
        entries.append(_entry(fx, inputs, outputs))
    index = {"format_version": FORMAT_VERSION, "generator": "python -m reference.fixtures",
             "conventions": CONVENTIONS, "fixtures": entries}
    index_path = out_dir / "index.json"
    index_path.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    return paths + [index_path]


def _read_index(directory):
    """``(entries by name, problems)``: the index's records, and what is wrong with the index as a whole."""
    path = directory / "index.json"
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        return {}, [f"{directory} has no index.json"]
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return {}, [f"index.json cannot be read: {type(err).__name__}: {err}"]
    if not isinstance(index, dict) or not isinstance(index.get("fixtures"), list):
        return {}, ["index.json has no list 'fixtures'"]
    problems = []
    if index.get("format_version") != FORMAT_VERSION:
        problems.append(f"index.json has format_version {index.get('format_version')!r}, the reference writes {FORMAT_VERSION}")
    entries = {}
    for k, entry in enumerate(index["fixtures"]):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            problems.append(f"index.json: record {k} of 'fixtures' has no name")
        elif name in entries:
            problems.append(f"fixture {name}: listed twice in index.json")
        else:
            entries[name] = entry
    return entries, problems


def _read_npz(directory, fx):
    """``{key: array}`` of ``<name>.npz`` in ``directory``; raises ``FixtureError`` saying what is wrong."""
    path = directory / f"{fx.name}.npz"
    if path.resolve().parent != directory.resolve():
        raise FixtureError(f"fixture {fx.name}: {path.name} leads out of {directory} (a link)")
    try:
        with onp.load(path, allow_pickle=False) as data:
            if not isinstance(data, onp.lib.npyio.NpzFile):
                raise FixtureError(f"fixture {fx.name}: {path.name} is not an .npz archive")
            return {k: onp.asarray(data[k]) for k in data.files}
    except FileNotFoundError:
        raise FixtureError(f"fixture {fx.name}: {path.name} is missing") from None
    except FixtureError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise FixtureError(f"fixture {fx.name}: {path.name} cannot be read ({type(err).__name__}: {err})") from None


def _split(fx, arrays):
    """``(inputs, outputs)`` from the npz keys ``in_*``/``out_*``, refusing keys the fixture does not have."""
    expected_in, expected_out = build(fx)
    want = {f"in_{k}" for k in expected_in} | {f"out_{k}" for k in expected_out}
    missing, extra = sorted(want - set(arrays)), sorted(set(arrays) - want)
    if missing or extra:
        said = [f"missing key(s) {missing}"] * bool(missing) + [f"unexpected key(s) {extra}"] * bool(extra)
        raise FixtureError(f"fixture {fx.name}: {fx.name}.npz has {' and '.join(said)}")
    for prefix, expected in (("in_", expected_in), ("out_", expected_out)):
        for k, ref in expected.items():
            got = arrays[prefix + k]
            if got.shape != ref.shape or got.dtype != ref.dtype:
                raise FixtureError(f"fixture {fx.name}: {prefix}{k} has shape {got.shape} and dtype {got.dtype}; "
                                   f"the reference's has shape {ref.shape} and dtype {ref.dtype}")
    inputs = {k[3:]: v for k, v in arrays.items() if k.startswith("in_")}
    outputs = {k[4:]: v for k, v in arrays.items() if k.startswith("out_")}
    return inputs, outputs, expected_in, expected_out


def load_fixture(directory, name):
    """``(inputs, outputs, entry)`` of the fixture ``name`` stored in ``directory``.

    The file is ``<name>.npz`` in ``directory`` whatever the index says; ``entry`` is the
    fixture's record in ``index.json``.

    Raises:
        FixtureError: the fixture is not in the index, or its file is missing, unreadable,
            or holds other keys or shapes than the reference writes.
    """
    directory = _as_directory(directory, "directory")
    if not isinstance(name, str):
        raise TypeError(f"name must be the name of a fixture (a str), got {type(name).__name__}")
    if name not in {f.name for f in FIXTURES}:
        raise ValueError(f"name: unknown fixture {name!r}; the reference's fixtures are {[f.name for f in FIXTURES]}")
    if not directory.is_dir():
        raise FixtureError(f"fixture {name}: the directory {directory} does not exist")
    (fx,) = _select([name])
    entries, problems = _read_index(directory)
    if name not in entries:
        raise FixtureError(f"fixture {name}: not in {directory / 'index.json'}" + (f" ({problems[0]})" if problems else ""))
    inputs, outputs, _, _ = _split(fx, _read_npz(directory, fx))
    return inputs, outputs, entries[name]


def _ratio(got, want, rtol, atol):
    """``max |got - want| / (atol + rtol |want|)`` (``inf`` where either is NaN; ``0`` for empty arrays)."""
    got, want = onp.asarray(got, dtype=onp.float64), onp.asarray(want, dtype=onp.float64)
    with onp.errstate(invalid="ignore", over="ignore"):
        ratio = onp.abs(got - want) / (atol + rtol * onp.abs(want))
    return float(onp.max(onp.where(onp.isnan(ratio), onp.inf, ratio), initial=0.0))


def _check_one(directory, fx, entry):
    """The rows of one fixture: problems with its record and file, then one row per output."""
    def problem(text, key="-"):
        return CheckRow(fx.name, key, math.inf, False, f"fixture {fx.name}: {text}")

    rows = []
    if entry.get("file") != f"{fx.name}.npz":
        rows.append(problem(f"index.json gives the file {entry.get('file')!r}; the fixture's file is "
                            f"{fx.name}.npz in the folder itself"))
    for tol in ("rtol", "atol"):
        if entry.get(tol) != getattr(fx, tol):
            rows.append(problem(f"index.json says {tol} = {entry.get(tol)!r}; the reference's tolerance is "
                                f"{tol} = {getattr(fx, tol)!r}"))
    try:
        inputs, stored, expected_in, expected_out = _split(fx, _read_npz(directory, fx))
    except FixtureError as err:
        return rows + [CheckRow(fx.name, "-", math.inf, False, str(err))]
    for k, expected in (("inputs", expected_in), ("outputs", expected_out)):
        described = {name: _describe(v) for name, v in expected.items()}
        if entry.get(k) != described:
            rows.append(problem(f"index.json describes the {k} as {entry.get(k)!r}; the reference's are {described!r}"))
    bad_inputs = False
    for k, ref in expected_in.items():
        r = _ratio(inputs[k], ref, fx.rtol, fx.atol)
        if r > 1.0:
            bad_inputs = True
            rows.append(problem(f"input {k} is not the reference's seeded input (max error / tolerance {r:.3g})"))
    if bad_inputs:
        return rows
    try:
        recomputed = {k: onp.asarray(v) for k, v in fx.compute(inputs).items()}
    except Exception as err:  # a tampered input can make the formula raise: say so, with the fixture's name
        return rows + [problem(f"recomputing from the stored inputs raised {type(err).__name__}: {err}")]
    for key, want in stored.items():
        if key not in recomputed:
            rows.append(problem(f"the reference computes no output {key} from the stored inputs"))
            continue
        r = _ratio(recomputed[key], want, fx.rtol, fx.atol)
        rows.append(CheckRow(fx.name, key, r, r <= 1.0,
                             "" if r <= 1.0 else f"fixture {fx.name}: output {key} differs from the reference by "
                                                 f"{r:.3g} times its tolerance (rtol = {fx.rtol:g}, atol = {fx.atol:g})"))
    return rows


def verify_fixtures(directory, names=None):
    """Check a fixture folder against the reference: every fixture of the code, recomputed and compared.

    The list of fixtures, their files (``<name>.npz`` in ``directory``), keys, shapes and
    tolerances come from the code, not from the folder. It is an error when a fixture of
    the code is missing from ``index.json`` or from the folder, when the index lists a
    fixture the code does not have, gives another file name or tolerance, or describes
    other shapes, when an ``.npz`` is unreadable, misses a key or has an extra one, when an
    input is not the reference's seeded input, and when an output differs from the
    reference recomputed on the stored inputs by more than ``atol + rtol |stored|``.

    Args:
        directory: the folder (written by ``write_fixtures``, outputs perhaps overwritten by a port).
        names: check only these fixtures (default: every fixture of the code).

    Returns:
        a list of ``CheckRow(name, key, ratio, passed, problem)``: one row per output with
        ``ratio = max |recomputed - stored| / (atol + rtol |stored|)``, and one row per
        problem (``ratio = inf``, ``problem = "fixture NAME: what is wrong"``).
    """
    directory = _as_directory(directory, "directory")
    chosen = _select(names)
    entries, problems = _read_index(directory)
    rows = [CheckRow("index.json", "-", math.inf, False, p) for p in problems]
    known = {f.name for f in FIXTURES}
    for name in entries:
        if name not in known:
            rows.append(CheckRow(name, "-", math.inf, False,
                                 f"fixture {name}: listed in index.json but not a fixture of the reference"))
    for fx in chosen:
        if fx.name not in entries:
            rows.append(CheckRow(fx.name, "-", math.inf, False, f"fixture {fx.name}: missing from index.json"))
        else:
            rows.extend(_check_one(directory, fx, entries[fx.name]))
    return rows


# ----------------------------------------------------------------------------- rounding

ROUNDING_DELTA = 2.0**-44
"""Relative size of the perturbation of every drawn number in ``_rounding_tolerances`` (256 units in the last place)."""


class _PerturbedGenerator(onp.random.Generator):
    """A ``Generator`` whose floating-point draws are multiplied by ``1 + delta u``, ``u`` uniform in [-1, 1]."""

    def __init__(self, seed, delta, noise_seed):
        super().__init__(onp.random.PCG64(seed))
        self._noise, self._delta = onp.random.default_rng(noise_seed), delta

    def _perturb(self, value):
        arr = onp.asarray(value)
        if arr.dtype.kind != "f":
            return value
        out = arr * (1.0 + self._delta * self._noise.uniform(-1.0, 1.0, arr.shape))
        return out if arr.ndim else float(out)


def _perturbed(method):
    def draw(self, *args, **kwargs):
        return self._perturb(getattr(onp.random.Generator, method)(self, *args, **kwargs))
    draw.__name__ = method
    return draw


for _method in ("normal", "standard_normal", "uniform", "random", "choice", "exponential", "standard_exponential",
                "multivariate_normal"):
    setattr(_PerturbedGenerator, _method, _perturbed(_method))


def _rounding_tolerances(fixture, n_runs=4, delta=ROUNDING_DELTA):
    """How far a fixture's arrays may move between machines: the spread under perturbed draws.

    Two machines (or NumPy builds) that both round correctly can still differ in the last
    bits of a transcendental function or in the order of a BLAS sum. Their effect on a
    value is the computation's sensitivity to rounding, which this measures: the fixture
    is rebuilt ``n_runs`` times from draws each multiplied by ``1 + delta u`` (``u``
    uniform in ``[-1, 1]``; ``delta = 2^-44`` is 256 units in the last place, more than
    any one operation differs by), through the same computations, inputs that are
    computed from draws included. The tolerance of an array is the largest change seen
    anywhere in it, and at least 4 units in the last place of its largest entry.

    Args:
        fixture: a ``Fixture``.
        n_runs: number of perturbed rebuilds.
        delta: relative size of the perturbation.

    Returns:
        ``(inputs, outputs, input_tolerances, output_tolerances)``: the fixture built from
        its seed, and an absolute tolerance (float) per array.
    """
    inputs, outputs = build(fixture)
    seed = zlib.crc32(fixture.name.encode())
    spread = {("in", k): 0.0 for k in inputs} | {("out", k): 0.0 for k in outputs}
    for run in range(n_runs):
        i = {k: onp.asarray(v) for k, v in fixture.make(_PerturbedGenerator(seed, delta, run)).items()}
        o = {k: onp.asarray(v) for k, v in fixture.compute(i).items()}
        for side, new, base in (("in", i, inputs), ("out", o, outputs)):
            for k, v in base.items():
                change = onp.abs(onp.asarray(new[k], dtype=onp.float64) - v)
                spread[side, k] = max(spread[side, k], float(onp.max(change, initial=0.0)))

    def tolerance(side, k, v):
        scale = float(onp.max(onp.abs(v), initial=0.0))
        return max(spread[side, k], 4.0 * float(onp.spacing(scale)) if scale > 0 else 0.0)

    return (inputs, outputs, {k: tolerance("in", k, v) for k, v in inputs.items()},
            {k: tolerance("out", k, v) for k, v in outputs.items()})


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m reference.fixtures",
                                     description="Write (or check) the golden fixtures of every formula.")
    parser.add_argument("out_dir", type=Path, nargs="?", help="folder to write the fixtures into")
    parser.add_argument("--check", type=Path, metavar="DIR", help="recompute the fixtures stored in DIR and compare")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these fixtures")
    args = parser.parse_args(argv)
    if args.check is None and args.out_dir is None:
        parser.error("give OUT_DIR to write fixtures, or --check DIR")
    try:
        _select(args.only, "--only")
        for folder, option in ((args.check, "--check"), (args.out_dir, "OUT_DIR")):
            if folder is not None:
                _as_directory(folder, option)
    except ValueError as err:
        parser.error(str(err))
    if args.check is not None:
        rows = verify_fixtures(args.check, args.only)
        for row in rows:
            if row.problem and row.key == "-":
                print(f"FAIL {row.problem}")
            else:
                print(f"{'ok  ' if row.passed else 'FAIL'} {row.name}:{row.key}  (max error / tolerance {row.ratio:.3g})"
                      + (f"  {row.problem}" if row.problem else ""))
        outputs = [r for r in rows if r.key != "-"]
        failed = sum(not r.passed for r in rows)
        print(f"{sum(r.passed for r in outputs)}/{len(outputs)} outputs reproduce within their tolerance"
              + (f"; {failed} failure(s)." if failed else "."))
        return 1 if failed or not outputs else 0
    paths = write_fixtures(args.out_dir, args.only)
    size = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths) - 1} fixtures and index.json to {args.out_dir} ({size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

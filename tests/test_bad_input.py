"""Every public callable of ``reference`` answers bad input with a clear error, or a documented acceptance.

``MODULES`` is the table: one entry per module, a function returning the module's cases
(one per public function, class and public method, each with a good call whose
arguments carry their kind) and the names of its ``__all__`` that are not callables to
probe (constants, exception types), each with the reason. The battery of
``tests/bad_input.py`` replaces one argument at a time by each bad value of its kind
(wrong shapes, NaN and inf, t outside [0, 1], wrong types including complex, bool, str,
None and ragged lists, bad options, callables returning the wrong shape, NaN or complex,
or raising, points out at |x| ~ 1e154 and 1e300, tiny standard deviations) and fails on
anything but a ``ValueError``/``TypeError`` naming the argument, or an acceptance listed
in ``ACCEPT`` with its reason and a check that the result is finite and right.

Adding a module is one entry in ``MODULES``: ``"reference.name": name_cases`` with
``name_cases()`` returning ``(cases, not_probed)``; the coverage test then requires a
case for every callable of its ``__all__`` (and every public method of its classes).

The negative control runs a deliberately unvalidated function through the same battery.
"""

import importlib
import importlib.util
import inspect
import re
import tempfile
from functools import partial
from typing import NamedTuple

import autograd.numpy as anp
import matplotlib
import numpy as np
import pytest

from tests import bad_input_references as ref
from tests.bad_input import (
    Acceptance, Array, Boom, Case, Choice, Fixed, Flag, Func, Int, Layers, Mode, Obj, Points, Real, Rng, Time, Tree,
    positive_control, run_case,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from reference import (  # noqa: E402
    autodiff, bridge, change_of_variables, cnf, continuity, distributions, losses, marginal, metrics, nn, ode,
    oracles, ot, paths, plot, testing, train,
)
from reference import engines  # noqa: E402
from reference.engines import adam as engines_adam, cfm as engines_cfm, mlp as engines_mlp  # noqa: E402
from reference.engines import parallel as engines_parallel  # noqa: E402
from reference.flows import chain, coupling, planar  # noqa: E402


# --------------------------------------------------------------------------------------
# Good values shared by the cases: small, so the whole battery runs in seconds.
# --------------------------------------------------------------------------------------

_r = np.random.default_rng(7)
N, D = 4, 2
X = _r.standard_normal((N, D))
X1 = _r.standard_normal((N, D))
X0 = _r.standard_normal((N, D))
T = 0.3
TV = np.linspace(0.1, 0.9, N)


def RNG():
    return np.random.default_rng(0)


# The callables the cases pass are good user code: finite wherever the package lets them be
# called (at |x| ~ 1e300 too), or refusing what they cannot compute, by name.


def field(x, t):
    """A smooth velocity field u(x, t) = sin(x) / 2 - x t / 5, in autograd.numpy (t a float or (n,))."""
    return 0.5 * anp.sin(x) - 0.2 * x * anp.reshape(t, (-1, 1))


def log_p_xt(x, t):
    """log of N(x; 0, (1 + t) I), in autograd.numpy, t of shape (n,); far points refused by the package."""
    s2 = 1.0 + anp.reshape(t, (-1,))
    return distributions.standard_normal_logpdf(x / anp.sqrt(s2)[:, None]) - 0.5 * anp.shape(x)[1] * anp.log(s2)


def log_p(x):
    return distributions.standard_normal_logpdf(x)


def rowmap(x):
    """A row-wise map with Jacobian diag(0.5 + cos x): finite at any finite x."""
    return anp.sin(x) + 0.5 * x


def u_and_div(x, t):
    return autodiff.value_and_divergence(field, x, t)


def _fig():
    fig, ax = plt.subplots()
    return fig, ax


FIG, AX = _fig()

# parameters shared by the cases and by the checks of their acceptances
BRIDGE_PARAMS = bridge.planar_field_init(D, RNG())
VPARAMS = nn.velocity_init(D, (4,), RNG())
MLP = nn.mlp_init((3, 4, 2), RNG())
H = _r.standard_normal((N, D + 1))
RP = chain.realnvp_init(D, 2, (4,), RNG())
PL = [planar.planar_constrain(planar.planar_init(D, np.random.default_rng(k))) for k in range(2)]
CP = coupling.coupling_init(3, 1, (4,), RNG())
X3 = _r.standard_normal((N, 3))
PP = planar.planar_constrain(planar.planar_init(D, RNG()))
FOLDING = {"a": np.array([-2.0, 0.0]), "b": np.array([1.0, 0.5]), "c": np.array(0.1)}
GM = distributions.GaussianMixture(np.array([0.3, 0.7]), X[:2], np.array([0.5, 2.0]))


class FreshAx(Obj):
    """The battery's axes, emptied of what earlier calls drew before every call."""

    def value(self):
        for artist in list(AX.collections) + list(AX.images) + list(AX.lines):
            artist.remove()
        return AX


# --------------------------------------------------------------------------------------
# The table: one function per module.
# --------------------------------------------------------------------------------------


def autodiff_cases():
    J = autodiff.jacobian(rowmap, X)
    t = Time(T, n=N, unit=False)
    cases = [
        Case("jacobian", autodiff.jacobian, dict(f=Func(rowmap, shape="row"), x=Points(X, d_free=True))),
        Case("log_abs_det_jacobian", autodiff.log_abs_det_jacobian, dict(f=Func(rowmap), x=Points(X, d_free=True))),
        Case("divergence", autodiff.divergence, dict(u=Func(field), x=Points(X, d_free=True), t=t)),
        Case("value_and_divergence", autodiff.value_and_divergence, dict(u=Func(field), x=Points(X, d_free=True), t=t)),
        Case("sample_probes", autodiff.sample_probes,
             dict(rng=Rng(), shape=Fixed((2, N, D)), noise=Choice("rademacher")),
             extra=[("shape", label, v, ("shape",)) for label, v in (
                 ("negative entry", (2, -1)), ("float entry", (2, 1.5)), ("str", "abc"), ("None", None),
                 ("nested", ((2,), 3)), ("bool entry", (True, 2)))]),
        Case("hutchinson_divergence", autodiff.hutchinson_divergence,
             dict(u=Func(field), x=Points(X, d_free=True), t=t, rng=Rng(), n_probes=Int(2),
                  noise=Choice("gaussian"), return_value=Flag(False))),
        Case("hutchinson_divergence(probes=...)", autodiff.hutchinson_divergence,
             dict(u=Func(field), x=Points(X, d_free=True), t=t, probes=Array(np.ones((3, N, D)), shapes=("extra", "missing", "last")))),
        Case("hutchinson_variance", autodiff.hutchinson_variance,
             dict(J=Array(J, shapes=("extra", "last")), noise=Choice("rademacher"))),
    ]
    return cases, {"NOISES": "a tuple of option names"}


def bridge_cases():
    t = Time(T, n=N, unit=False)
    p = Tree(BRIDGE_PARAMS)
    return [
        Case("planar_field_init", bridge.planar_field_init, dict(d=Int(D), rng=Rng(), scale=Real(1.0, low=0.0, low_open=True))),
        Case("planar_coefficients", bridge.planar_coefficients, dict(params=p, t=Time(TV, n=None, unit=False))),
        Case("planar_velocity", bridge.planar_velocity, dict(params=p, x=Points(X), t=t)),
        Case("planar_divergence", bridge.planar_divergence, dict(params=p, x=Points(X), t=t)),
        Case("planar_layers", bridge.planar_layers, dict(params=p, K=Int(3))),
        Case("planar_layers_forward", bridge.planar_layers_forward, dict(params=p, x0=Points(X), K=Int(3))),
        Case("planar_ode_forward", bridge.planar_ode_forward,
             dict(params=p, x0=Points(X), n_steps=Int(4), method=Choice("rk4"))),
    ], {}


def change_of_variables_cases():
    return [
        Case("pushforward_logpdf", change_of_variables.pushforward_logpdf,
             dict(inverse_map=Func(rowmap), base_logpdf=Func(log_p), x=Points(X, d_free=True))),
        Case("negative_log_likelihood", change_of_variables.negative_log_likelihood,
             dict(log_p1=Func(log_p), x=Points(X, d_free=True))),
    ], {}


def cnf_cases():
    Z = np.concatenate([X, np.zeros((N, 1))], axis=1)

    def augmented(u_and_div, d):
        return cnf.augmented_field(u_and_div, d)(Z, T)

    common = dict(u=Func(field), x=Points(X, d_free=True), n_steps=Int(3), method=Choice("rk4"),
                  t=Real(1.0), log_p0=Func(log_p), return_x0=Flag(False))
    hutch = dict(divergence=Choice("hutchinson"), rng=Rng(), noise=Choice("rademacher"), n_probes=Int(1),
                 resample_probes=Flag(False))
    adaptive = dict(method=Choice("adaptive"), rtol=Real(1e-2, low=0.0), atol=Real(1e-2, low=0.0, low_open=True))
    sample = dict(common, return_logpdf=Flag(True), x0=common["x"])
    del sample["x"], sample["return_x0"]
    return [
        Case("augmented_field", augmented, dict(u_and_div=Func(u_and_div, elements=(0, 1)), d=Int(D))),
        Case("cnf_logpdf", cnf.cnf_logpdf, dict(common, divergence=Choice("exact"))),
        Case("cnf_logpdf(hutchinson)", cnf.cnf_logpdf, dict(common, **hutch)),
        Case("cnf_logpdf(adaptive)", cnf.cnf_logpdf, dict(common, **adaptive)),
        Case("cnf_sample", cnf.cnf_sample, dict(sample, divergence=Choice("exact"))),
        Case("cnf_sample(hutchinson)", cnf.cnf_sample, dict(sample, **hutch)),
        Case("cnf_sample(adaptive)", cnf.cnf_sample, dict(sample, **adaptive)),
    ], {"DIVERGENCES": "a tuple of option names"}


def continuity_cases():
    args = dict(log_p=Func(log_p_xt), u=Func(field), x=Points(X, d_free=True), t=Time(TV, n=N, unit=False))
    return [Case("continuity_terms", continuity.continuity_terms, args),
            Case("continuity_residual", continuity.continuity_residual, args)], {}


def distributions_cases():
    gm = GM
    covs = np.stack([np.eye(D), 2 * np.eye(D)])
    return [
        Case("standard_normal_logpdf", distributions.standard_normal_logpdf, dict(x=Points(X, d_free=True))),
        Case("sample_standard_normal", distributions.sample_standard_normal, dict(n=Int(3), d=Int(D), rng=Rng())),
        Case("GaussianMixture()", distributions.GaussianMixture,
             dict(weights=Array(np.array([0.3, 0.7]), shapes=("extra", "last"), extreme=False),
                  means=Points(X[:2], tied=("weights", "covs"), n_tied=True), covs=Array(covs, shapes=("extra", "last"))),
             extra=[("weights", "negative", np.array([-0.3, 1.3]), ("weights",)),
                    ("weights", "not summing to 1", np.array([0.3, 0.3]), ("weights",)),
                    ("covs", "not symmetric", np.stack([np.eye(D), [[1.0, 0.5], [0.0, 1.0]]]), ("covs",)),
                    ("covs", "not positive definite", np.stack([np.eye(D), -np.eye(D)]), ("covs",)),
                    ("covs", "negative variances", np.array([1.0, -1.0]), ("covs",)),
                    ("covs", "tiny variances", np.array([1e-300, 1.0]), ("covs",))]),
        Case("GaussianMixture.sample", gm.sample, dict(n=Int(3), rng=Rng(), return_components=Flag(False))),
        Case("GaussianMixture.component_logpdf", gm.component_logpdf, dict(x=Points(X))),
        Case("GaussianMixture.logpdf", gm.logpdf, dict(x=Points(X))),
        Case("GaussianMixture.mean", gm.mean, {}),
        Case("GaussianMixture.covariance", gm.covariance, {}),
        Case("dataset_mixture", distributions.dataset_mixture, dict(name=Choice("cross"))),
        Case("make_dataset", distributions.make_dataset, dict(name=Choice("moons"), n=Int(5), rng=Rng())),
    ], {"DATASETS": "a tuple of the data sets' names"}


def _spike(t, value):
    """``value`` at the battery's times t = 0.1 and 0.3 (and 0 elsewhere): a schedule that goes wrong there."""
    hit = (anp.abs(t - 0.1) < 1e-3) | (anp.abs(t - 0.3) < 1e-3) | (anp.abs(t - TV[1]) < 1e-3)
    return anp.where(hit, value, 0.0)


def bad_paths(pairs):
    """Paths that are wrong at the battery's times 0.1 and 0.3 only: a NaN or infinite alpha, a negative sigma.

    ``pairs``: conditioned on ``z = (x0, x1)`` (with a beta) like the good path they replace.
    """
    beta = (lambda t: 1.0 - t) if pairs else None
    return [
        ("path with a NaN alpha", paths.GaussianPath(alpha=lambda t: t + _spike(t, np.nan), sigma=lambda t: 1.0 - 0.9 * t, beta=beta)),
        ("path with a negative sigma", paths.GaussianPath(alpha=lambda t: t, sigma=lambda t: 1.0 - 0.9 * t + _spike(t, -5.0), beta=beta)),
        ("path with an infinite alpha", paths.GaussianPath(alpha=lambda t: t + _spike(t, np.inf), sigma=lambda t: 1.0 - 0.9 * t, beta=beta)),
    ]


PATH_NAMES = ("path", "alpha", "sigma", "beta")


def path_arg(path, spiked=True, optional=False):
    """A path argument; ``spiked``: probe paths that go wrong at t = 0.1 and 0.3 (where the case evaluates them)."""
    others = (tuple(bad_paths(path.conditions_on_pairs)) if spiked else ()) + (("an oracle instead", oracles.EmpiricalOracle(X1)),)
    return Obj(path, others=others, names=PATH_NAMES, optional=optional)


def pair_probes(arg, x0, x1):
    """Bad ``z = (x0, x1)`` for the paths on pairs."""
    return [(arg, label, v, (arg,)) for label, v in (
        ("x1 alone", x1), ("a 3-tuple", (x0, x1, x1)), ("x0 NaN", (_nan(x0), x1)), ("x1 inf", (x0, _inf(x1))),
        ("shapes differ", (x0, x1[:-1])), ("x0 complex", (x0 + 1j, x1)), ("x1 str", (x0, "x1")), ("None", None),
        ("x0 of another d", (np.concatenate([x0, x0], axis=1), x1)), ("|x1| ~ 1e300", (x0, 1e300 * np.sign(x1))))]


def _nan(a):
    a = np.array(a, dtype=float)
    a.flat[0] = np.nan
    return a


def _inf(a):
    a = np.array(a, dtype=float)
    a.flat[0] = np.inf
    return a


TINY_PATH = paths.GaussianPath(alpha=lambda t: t, sigma=lambda t: 1e-300 + 0.0 * t, name="tiny sigma")
"""A path whose standard deviation is 1e-300 at every time."""


def losses_cases():
    path = paths.ConicalGaussianPath()
    gm1 = distributions.GaussianMixture(np.array([1.0]), X1[:1], np.array([0.5]))
    gm2 = distributions.GaussianMixture(np.array([0.4, 0.6]), X1[:2], np.array([0.5, 0.3]))
    oracle1, oracle2 = oracles.GaussianMixtureOracle(gm1), oracles.GaussianMixtureOracle(gm2)
    t = Time(TV, n=N)
    weights = Array(np.full(N, 1.0 / N), shapes=("extra", "last", "first"), extreme=False, optional=True)
    fm = dict(v=Func(field), u=Func(oracle1.velocity), t=t, x=Points(X, d_free=True))
    cfm = dict(v=Func(field), path=path_arg(path), t=t, z=Points(X1, tied=("x",), n_tied=True),
               x=Points(X, tied=("z",), n_tied=True))
    bad_oracles = (("an EmpiricalOracle", oracles.EmpiricalOracle(X1)),)
    return [
        Case("fm_loss", losses.fm_loss, fm),
        Case("fm_loss(weights=...)", losses.fm_loss, dict(fm, weights=weights),
             extra=[("weights", "negative", np.array([-1.0, 1.0, 0.5, 0.5]), ("weights",))]),
        Case("cfm_loss", losses.cfm_loss, cfm),
        Case("cfm_loss(weights=...)", losses.cfm_loss, dict(cfm, weights=weights)),
        Case("conditional_velocity_second_moment", losses.conditional_velocity_second_moment,
             dict(path=path_arg(path), second_moment=Real(2.0, low=0.0), d=Int(D), t=Time(TV, n=None))),
        Case("cfm_constant", losses.cfm_constant,
             dict(oracle=Obj(oracle2, others=bad_oracles), n_t=Int(3), n_x=Int(3, optional=True), rule=Choice("hermite", optional=True))),
    ], {}


def marginal_cases():
    conical = paths.ConicalGaussianPath()
    linear = paths.LinearInterpolationPath(0.5)
    cases = []
    for name in ("posterior_weights", "marginal_logpdf", "marginal_velocity"):
        fn = getattr(marginal, name)
        args = dict(path=path_arg(conical), x=Points(X, tied=("z",)), t=Time(T, n=N), z=Points(X1, tied=("x",)),
                    chunk_size=Int(2, optional=True))
        extreme = dict(path=Fixed(conical), x=Points(X, tied=("z",)), t=Fixed(T), z=Points(X1, tied=("x",)), chunk_size=Fixed(2))
        cases += [
            Case(name, fn, args),
            Case(f"{name}(chunk_size=None, t per point)", fn, dict(args, chunk_size=Fixed(None), t=Time(TV, n=N))),
            Case(f"{name}(pairs)", fn, dict(args, path=path_arg(linear), z=Fixed((X0, X1))), extra=pair_probes("z", X0, X1)),
            Case(f"{name}(sigma_t = 1e-300)", fn, dict(extreme, path=Fixed(TINY_PATH)),
                 may_refuse=("x", "sigma_t"), check=lambda r, name=name: ref.close(r, ref.marginal(TINY_PATH, X, T, X1)[name])),
            Case(f"{name}(t = 1e-149)", fn, dict(extreme, t=Fixed(1e-149), x=Points(1e5 * X, tied=("z",))),
                 may_refuse=("x",), check=lambda r, name=name: ref.close(r, ref.marginal(conical, 1e5 * X, 1e-149, X1)[name])),
        ]
    return cases, {"DEFAULT_CHUNK": "an integer constant"}


Y = _r.standard_normal((5, D))


def metrics_cases():
    xy = dict(x=Points(X, tied=("y",)), y=Points(Y, tied=("x",)))
    K = np.stack([X, X + 0.5, X + 1.0])
    return [
        Case("energy_distance", metrics.energy_distance, dict(xy, unbiased=Flag(True))),
        Case("gaussian_kernel", metrics.gaussian_kernel, dict(xy, bandwidth=Real(1.0, low=0.0, low_open=True)),
             extra=[("bandwidth", "tiny", 1e-300, ("bandwidth",))]),
        Case("median_bandwidth", metrics.median_bandwidth, xy),
        Case("mmd2", metrics.mmd2, dict(xy, bandwidth=Real(1.0, low=0.0, low_open=True, optional=True), unbiased=Flag(True))),
        Case("mmd2(bandwidth=None)", metrics.mmd2, dict(xy, bandwidth=Fixed(None), unbiased=Flag(False))),
        Case("wasserstein2_1d", metrics.wasserstein2_1d,
             dict(a=Array(X.T, shapes=("extra", "missing", "first")), b=Array(Y.T, shapes=("extra", "missing", "first")))),
        Case("sliced_wasserstein2", metrics.sliced_wasserstein2, dict(xy, rng=Rng(), n_projections=Int(8))),
        Case("NoiseFloor()", metrics.NoiseFloor, dict(mean=Real(0.1), se=Real(0.01, low=0.0))),
        Case("noise_floor", metrics.noise_floor,
             dict(metric=Func(lambda x, y: metrics.energy_distance(x, y)),
                  sampler=Func(lambda n, rng: rng.standard_normal((n, 2)), shape="row"),
                  n=Int(5), rng=Rng(), n_repeats=Int(3, minimum=2))),
        Case("path_length_ratio", metrics.path_length_ratio, dict(path=Array(K, shapes=("extra", "missing"))),
             extra=[("path", "one time only", K[:1], ("path",)), ("path", "a trajectory that ends where it starts",
                                                                  np.stack([X, X + 1.0, X]), ("path", "trajectory"))]),
    ], {}


def _size_probes(arg, good):
    return [(arg, label, v, (arg,)) for label, v in (
        ("too short", good[:1]), ("a zero width", (good[0], 0, good[-1])), ("a float width", (good[0], 2.5, good[-1])),
        ("a negative width", (good[0], -1, good[-1])), ("a bool width", (good[0], True, good[-1])), ("str", "abc"),
        ("None", None), ("an int", 3), ("a str width", (good[0], "4", good[-1])))]


def _hidden_probes(arg):
    return [(arg, label, v, (arg,)) for label, v in (
        ("a zero width", (0,)), ("a float width", (2.5,)), ("an int", 4), ("str", "ab"), ("None", None),
        ("a negative width", (-3,)), ("a bool width", (True,)), ("a NaN width", (np.nan,)))]


def _workspace_probes(arg):
    return [(arg, label, v, (arg,)) for label, v in (("str", "ws"), ("list", []), ("int", 3))]


def nn_cases():
    params, mlp = VPARAMS, MLP
    theta, sizes = nn.mlp_flatten(params)
    t = Time(T, n=N, unit=False)
    flat = dict(theta=Array(theta, shapes=("extra", "last")), h=Points(H), sizes=Fixed(sizes), workspace=Fixed(None))
    flat_extra = _size_probes("sizes", sizes) + [("sizes", "not theta's", (D + 1, 5, D), ("sizes", "theta"))] + \
        _workspace_probes("workspace")
    return [
        Case("sigmoid", nn.sigmoid, dict(h=Array(H, shapes=()))),
        Case("silu", nn.silu, dict(h=Array(H, shapes=()))),
        Case("mlp_init", nn.mlp_init, dict(sizes=Fixed((3, 4, 2)), rng=Rng(), zero_last=Flag(False)),
             extra=_size_probes("sizes", (3, 4, 2))),
        Case("mlp_apply", nn.mlp_apply, dict(params=Tree(mlp, tied=("h",)), h=Points(H, names=("params",)), activation=Choice("silu"))),
        Case("velocity_init", nn.velocity_init, dict(d=Int(D), hidden=Fixed((4,)), rng=Rng()), extra=_hidden_probes("hidden")),
        Case("velocity_apply", nn.velocity_apply,
             dict(params=Tree(params), x=Points(X, names=("params",)), t=t, activation=Choice("tanh"))),
        Case("mlp_flatten", nn.mlp_flatten, dict(params=Tree(mlp))),
        Case("mlp_unflatten", nn.mlp_unflatten, dict(theta=Array(theta, shapes=("extra", "last")), sizes=Fixed(sizes)),
             extra=_size_probes("sizes", sizes) + [("sizes", "not theta's", (D + 1, 5, D), ("sizes", "theta"))]),
    ], {"ACTIVATIONS": "a tuple of option names"}


def engines_mlp_cases():
    params = VPARAMS
    theta, sizes = nn.mlp_flatten(params)
    net = engines_mlp.VelocityNetwork(params)
    t = Time(T, n=N, unit=False)
    flat = dict(theta=Array(theta, shapes=("extra", "last")), h=Points(H), sizes=Fixed(sizes), workspace=Fixed(None))
    flat_extra = _size_probes("sizes", sizes) + [("sizes", "not theta's", (D + 1, 5, D), ("sizes", "theta"))] + \
        _workspace_probes("workspace")
    return [
        Case("mlp_apply_flat", engines_mlp.mlp_apply_flat, flat, extra=flat_extra),
        Case("mlp_forward_flat", engines_mlp.mlp_forward_flat, flat, extra=flat_extra),
        Case("velocity_and_divergence_flat", engines_mlp.velocity_and_divergence_flat,
             dict(theta=Array(theta, shapes=("extra", "last")), sizes=Fixed(sizes), x=Points(X, names=("sizes",)), t=t),
             extra=_size_probes("sizes", sizes) + [("sizes", "not theta's", (D + 1, 5, D), ("sizes", "theta"))]),
        Case("VelocityNetwork()", engines_mlp.VelocityNetwork, dict(params=Tree(params))),
        Case("VelocityNetwork.__call__", net, dict(x=Points(X), t=t)),
        Case("VelocityNetwork.velocity_and_divergence", net.velocity_and_divergence, dict(x=Points(X), t=t)),
    ], {}


def engines_adam_cases():
    theta = _r.standard_normal(6)

    def adam_step(theta, lr, b1, b2, eps):
        opt = engines_adam.FlatAdam(np.array(theta, dtype=float) if isinstance(theta, np.ndarray) and theta.dtype == float
                                    else theta, lr, b1, b2, eps)
        return opt.step(np.ones(6))

    opt = engines_adam.FlatAdam(theta.copy())
    bad_g = [("g", label, v, ("g",)) for label, v in (
        ("wrong shape", np.ones(5)), ("NaN", _nan(np.ones(6))), ("complex", np.ones(6) + 1j), ("str", "g"), ("None", None))]
    return [
        Case("FlatAdam()", adam_step,
             dict(theta=Array(theta, shapes=("extra", "missing"), extreme=False), lr=Real(1e-3, low=0.0, low_open=True),
                  b1=Real(0.9, low=0.0, high=1.0, high_open=True), b2=Real(0.999, low=0.0, high=1.0, high_open=True),
                  eps=Real(1e-8, low=0.0, low_open=True)),
             extra=[("theta", "a list", list(theta), ("theta",)), ("theta", "int array", np.arange(6), ("theta",))]),
        Case("FlatAdam.step", opt.step, dict(g=Fixed(np.ones(6))), extra=bad_g),
    ], {}


def engines_cases():
    def in_mode(on):
        with engines.readable(on):
            return engines.is_readable()

    return [
        Case("readable", in_mode, dict(on=Flag(True))),
        Case("is_readable", engines.is_readable, {}),
        Case("engines_on", engines.engines_on, {}),
        Case("use_engine", engines.use_engine, dict(fused=Mode(True))),
    ], {"ENVIRONMENT_VARIABLE": "the variable's name, a str"}


def engines_cfm_cases():
    linear = paths.LinearInterpolationPath()

    def step_once(**kw):
        step, current = engines_cfm.cfm_step(**kw)
        return step(), current()

    return [
        Case("cfm_step", step_once,
             dict(data=Points(TRAIN_DATA, d_free=True), path=path_arg(linear, spiked=False), params=Tree(VPARAMS),
                  batch_size=Int(4), lr=Real(1e-3, low=0.0, low_open=True), rng=Rng(), ot_pairing=Flag(False))),
    ], {}


def engines_parallel_cases():
    return [
        Case("parallel_map", engines_parallel.parallel_map, dict(fn=Func(abs, outputs=False), items=Fixed([1, -2, 3]))),
        Case("blas_single_threaded", lambda: engines_parallel.blas_single_threaded().__enter__() and None, {}),
    ], {"N_WORKERS": "a number"}


def ode_cases():
    rk4 = ode.RK4
    tab = dict(name=Fixed("mine"), order=Int(4), c=Fixed(rk4.c), a=Fixed(rk4.a), b=Fixed(rk4.b), b_err=Fixed(None),
               err_order=Fixed(None), doc=Fixed(""))
    a_bad = [list(row) for row in rk4.a]
    a_bad[0][1] = 0.5
    tab_extra = [(arg, label, v, (arg,)) for arg, label, v in (
        ("name", "None", None), ("name", "int", 3), ("doc", "int", 3),
        ("c", "NaN entry", (np.nan, 0.5, 0.5, 1.0)), ("c", "str", "abc"), ("c", "None", None),
        ("c", "complex entry", (0.0, 0.5 + 1j, 0.5, 1.0)), ("c", "wrong length", rk4.c[:3]), ("c", "str entry", (0.0, "a", 0.5, 1.0)),
        ("a", "ragged", ((0.0,), (0.5, 0.0))), ("a", "NaN entry", tuple(tuple(np.nan if (i, j) == (1, 0) else v for j, v in enumerate(r)) for i, r in enumerate(rk4.a))),
        ("a", "str", "abc"), ("a", "None", None), ("a", "not lower triangular", tuple(map(tuple, a_bad))),
        ("a", "complex entry", tuple(tuple(v + (1j if (i, j) == (1, 0) else 0) for j, v in enumerate(r)) for i, r in enumerate(rk4.a))),
        ("b", "not summing to 1", (0.5, 0.5, 0.5, 0.5)), ("b", "NaN entry", (np.nan, 1 / 3, 1 / 3, 1 / 6)), ("b", "str", "abc"),
        ("b", "None", None), ("b", "complex entry", (1 / 6 + 1j, 1 / 3, 1 / 3, 1 / 6)),
        ("b_err", "wrong length", (1.0,)), ("b_err", "str", "abc"), ("b_err", "NaN entry", (np.nan, 0.5, 0.5, 0.0)),
        ("err_order", "str", "3"), ("err_order", "negative", -1))]
    u = Func(field)
    x0 = Points(X, d_free=True)
    adaptive = dict(u=u, x0=x0, t0=Real(0.0), t1=Real(1.0), rtol=Real(1e-3, low=0.0), atol=Real(1e-6, low=0.0, low_open=True),
                    max_steps=Int(100), first_step=Fixed(None), safety=Real(0.9, low=0.0, high=1.0, low_open=True, high_open=True),
                    min_factor=Real(0.2, low=0.0, high=1.0, low_open=True, high_open=True),
                    max_factor=Real(10.0, low=1.0, low_open=True), return_states=Flag(False))
    first_step = [("first_step", label, v, ("first_step",)) for label, v in (
        ("zero", 0.0), ("negative", -0.1), ("NaN", np.nan), ("inf", np.inf), ("str", "0.1"), ("complex", 0.1j), ("bool", True))]
    k1 = [("k1", label, v, ("k1",)) for label, v in (
        ("wrong shape", X[:, :1]), ("NaN", _nan(X)), ("complex", X + 1j), ("str", "k1"), ("list", [[1.0]]))]
    initial = dict(u=u, x0=x0, t0=Real(0.0), t1=Real(1.0), rtol=Real(1e-3, low=0.0), atol=Real(1e-6, low=0.0, low_open=True),
                   order=Int(4), f0=Fixed(None))
    f0 = [("f0", label, v, ("f0",)) for label, v in (("wrong shape", X[:, :1]), ("NaN", _nan(X)), ("complex", X + 1j), ("str", "f0"))]
    times = Array(np.array([0.2, 0.5]), shapes=("extra",))
    return [
        Case("ButcherTableau()", ode.ButcherTableau, tab, extra=tab_extra),
        Case("get_tableau", ode.get_tableau, dict(method=Choice("rk4"))),
        Case("rk_step", ode.rk_step, dict(u=u, x=x0, t=Real(0.3), h=Real(0.1), tableau=Obj(rk4), k1=Fixed(None)), extra=k1),
        Case("integrate", ode.integrate,
             dict(u=u, x0=x0, t0=Real(0.0), t1=Real(1.0), n_steps=Int(3), method=Choice("rk4"), return_path=Flag(False))),
        Case("AdaptiveResult()", ode.AdaptiveResult,
             dict(x=Points(X, d_free=True), times=Array(np.array([0.0, 0.5, 1.0]), shapes=("extra",), extreme=False), states=Fixed(None),
                  n_fev=Int(13, minimum=0), n_accepted=Int(2, minimum=0), n_rejected=Int(0, minimum=0)),
             extra=[("times", "decreasing then increasing", np.array([0.0, 1.0, 0.5]), ("times",)),
                    ("states", "wrong shape", np.stack([X, X]), ("states",)), ("states", "NaN", np.stack([X, X, _nan(X)]), ("states",)),
                    ("states", "str", "states", ("states",))]),
        Case("integrate_adaptive", ode.integrate_adaptive, adaptive, extra=first_step),
        Case("integrate_adaptive(rtol = 0)", ode.integrate_adaptive, dict(adaptive, rtol=Fixed(0.0)),
             extra=[("atol", "tiny with rtol = 0", 1e-300, ("atol", "rtol"))]),
        Case("initial_step", ode.initial_step, initial, extra=f0),
        Case("initial_step(rtol = 0)", ode.initial_step, dict(initial, rtol=Fixed(0.0)),
             extra=[("atol", "tiny with rtol = 0", 1e-300, ("atol", "rtol"))]),
        Case("flow", ode.flow, dict(u=u, x=Points(X, d_free=True), t=Time(TV, n=N, unit=False), n_steps=Int(3), method=Choice("rk4"))),
        Case("flow_inverse", ode.flow_inverse, dict(u=u, y=Points(X, d_free=True), t=Real(0.7), n_steps=Int(3), method=Choice("rk4"))),
        Case("push_samples", ode.push_samples, dict(u=u, x0=x0, times=times, n_steps=Int(3), method=Choice("rk4")),
             extra=[("times", "decreasing", np.array([0.5, 0.2]), ("times",)), ("times", "negative", np.array([-0.2, 0.5]), ("times",))]),
    ], {"IntegrationError": "an exception type", "EULER": "a tableau (data)", "MIDPOINT": "a tableau (data)",
        "RK4": "a tableau (data)", "RK38": "a tableau (data)", "DOPRI5": "a tableau (data)", "TABLEAUS": "a dict of tableaus"}


def oracles_cases():
    emp = oracles.EmpiricalOracle(X1, sigma=0.1)
    emp0 = oracles.EmpiricalOracle(X1)
    gm1 = distributions.GaussianMixture(np.array([1.0]), X1[:1], np.array([0.5]))
    gm2 = distributions.GaussianMixture(np.array([0.4, 0.6]), X1[:2], np.array([0.5, 0.3]))
    conical = paths.ConicalGaussianPath()
    gmo = oracles.GaussianMixtureOracle(gm2)
    gmo1 = oracles.GaussianMixtureOracle(gm1, paths.LinearInterpolationPath(0.2))
    xt = dict(x=Points(X), t=Time(TV, n=N))
    bad_mixtures = (("an oracle", emp),)
    S = np.array([[1.0, 0.3], [0.3, 0.5]])
    cases = [
        Case("EmpiricalOracle()", oracles.EmpiricalOracle, dict(data=Points(X1, d_free=True), sigma=Real(0.1, low=0.0))),
        Case("GaussianMixtureOracle()", lambda mixture, path: oracles.GaussianMixtureOracle(mixture, path).velocity(X, TV),
             dict(mixture=Obj(gm2, others=bad_mixtures), path=path_arg(conical, optional=True))),
        Case("GaussianMixtureOracle.conditional_variance", gmo1.conditional_variance, dict(t=Time(TV, n=None))),
        Case("gaussian_flow_map", oracles.gaussian_flow_map,
             dict(x=Points(X), t=Time(TV, n=N), mean=Array(X1[0], shapes=("extra", "last")), cov=Array(S, shapes=("extra", "last")),
                  path=path_arg(conical, optional=True), s=Time(0.0, n=N)),
             extra=[("cov", "not symmetric", np.array([[1.0, 0.3], [0.0, 1.0]]), ("cov",)),
                    ("cov", "not positive definite", -S, ("cov",))]),
        Case("path_quadrature", oracles.path_quadrature, dict(oracle=Obj(gmo, others=(("an EmpiricalOracle", emp),)),
                                                           n_t=Int(3), n_x=Int(3), rule=Choice("hermite"))),
        Case("conditional_quadrature", oracles.conditional_quadrature,
             dict(mixture=Obj(gm2, others=bad_mixtures), path=path_arg(conical, spiked=False), n_t=Int(3), n_x=Int(3))),
    ]
    for obj, label in ((emp, "EmpiricalOracle"), (gmo, "GaussianMixtureOracle")):
        for method in ("logpdf", "velocity") + (("component_posteriors",) if label == "GaussianMixtureOracle" else ()):
            cases.append(Case(f"{label}.{method}", getattr(obj, method), xt))
    for obj, label in ((oracles.EmpiricalOracle(X1, sigma=1e-300), "EmpiricalOracle(sigma = 1e-300)"),
                       (emp0, "EmpiricalOracle(sigma = 0)")):
        for method in ("logpdf", "velocity"):
            cases.append(Case(f"{label}.{method}(t near 1)", getattr(obj, method), dict(x=Points(X), t=Time(1.0 - 1e-16, n=N)),
                              may_refuse=("x", "t", "sigma"),
                              check=lambda r, o=obj, m=method: ref.close(r, ref.empirical_oracle(m, o.data, o.sigma, X, 1.0 - 1e-16))))
    return cases, {}


def ot_cases():
    pair = dict(x0=Points(X0, tied=("x1",), n_tied=True), x1=Points(X1, tied=("x0",), n_tied=True))
    return [Case(name, getattr(ot, name), pair) for name in ("squared_cost_matrix", "ot_permutation", "ot_pair", "pairing_cost")], {}


PATH_OBJECTS = [
    ("GaussianPath(custom)", paths.GaussianPath(alpha=lambda t: t, sigma=lambda t: 1.0 - 0.9 * t, beta=lambda t: 1.0 - t,
                                                name="custom")),
    ("LinearInterpolationPath", paths.LinearInterpolationPath(0.1)),
    ("LinearInterpolationPath(sigma = 0)", paths.LinearInterpolationPath()),
    ("ConicalGaussianPath", paths.ConicalGaussianPath()),
    ("OptimalTransportPath", paths.OptimalTransportPath(1e-3)),
    ("VariancePreservingPath", paths.VariancePreservingPath()),
]


def paths_cases():
    sched_a = Func(lambda t: t, shape="col")
    sched_s = Func(lambda t: 1.0 - 0.9 * t, shape="col")
    sched_b = Func(lambda t: 1.0 - t, shape="col")
    objects = PATH_OBJECTS
    t = Time(T, n=N)
    cases = [
        Case("gaussian_logpdf", paths.gaussian_logpdf,
             dict(x=Array(X, shapes=("last",), names=("mean",)), mean=Array(X1, shapes=("last",), names=("x",)),
                  std=Array(np.full(N, 0.5), shapes=("last",), names=("x", "mean"))),
             extra=[("std", "zero", 0.0, ("std",)), ("std", "negative", -1.0, ("std",)), ("std", "tiny", 1e-300, ("std", "x"))]),
        Case("gaussian_path_velocity", paths.gaussian_path_velocity,
             dict(x=Array(X, shapes=("last",), names=("mean", "dmean")), mean=Array(X1, shapes=("last",), names=("x", "dmean")),
                  dmean=Array(X0, shapes=("last",), names=("x", "mean")),
                  std=Array(np.full(N, 0.5), shapes=("last",), names=("x", "dstd")), dstd=Array(np.full(N, -0.9), shapes=("last",), names=("x", "std"))),
             extra=[("std", "zero where dstd != 0", 0.0, ("std",)), ("std", "negative", -1.0, ("std",)),
                    ("std", "tiny", 1e-300, ("std", "x", "dstd"))]),
        Case("linear_interpolation_velocity", paths.linear_interpolation_velocity,
             dict(x0=Points(X0, tied=("x1",), n_tied=True), x1=Points(X1, tied=("x0",), n_tied=True))),
        Case("conical_velocity", paths.conical_velocity,
             dict(x=Points(X, tied=("x1",), n_tied=True), t=t, x1=Points(X1, tied=("x",), n_tied=True)),
             extra=[("t", "t = 1", 1.0, ("t",)), ("t", "t = 1 in an array", np.array([0.2, 1.0, 0.5, 0.1]), ("t",))]),
        Case("GaussianPath()", paths.GaussianPath,
             dict(alpha=sched_a, sigma=sched_s, beta=Func(lambda t: 1.0 - t, shape="col", optional=True), name=Fixed("custom")),
             extra=[("name", "int", 3, ("name",)), ("name", "None", None, ("name",)),
                    ("sigma", "negative", lambda t: t - 2.0, ("sigma",))]),
        Case("LinearInterpolationPath()", paths.LinearInterpolationPath, dict(sigma=Real(0.1, low=0.0))),
        Case("ConicalGaussianPath()", paths.ConicalGaussianPath, {}),
        Case("OptimalTransportPath()", paths.OptimalTransportPath,
             dict(sigma_min=Real(1e-3, low=0.0, high=1.0, high_open=True))),
        Case("VariancePreservingPath()", paths.VariancePreservingPath,
             dict(beta_min=Real(0.1, low=0.0), beta_max=Real(20.0, low=0.0, low_open=True)),
             extra=[("beta_max", "below beta_min", 0.05, ("beta_max", "beta_min"))]),
        Case("VariancePreservingPath.integrated_rate", paths.VariancePreservingPath().integrated_rate, dict(s=Time(TV, n=None))),
    ]
    for label, path in objects:
        pairs = path.conditions_on_pairs
        if pairs:
            z, z_extra = Fixed((X0, X1)), pair_probes("z", X0, X1)
        else:
            z, z_extra = Points(X1, tied=("x", "eps"), n_tied=True), []
        z_free = z if pairs else Points(X1, d_free=True)
        x = Points(X, tied=("z",), n_tied=True)
        singular = [("t", "t = 1", 1.0, ("t",)), ("t", "t = 1 in an array", np.array([0.2, 1.0, 0.5, 0.1]), ("t",))]
        sing_logpdf = singular if label in ("ConicalGaussianPath", "VariancePreservingPath") else []
        sing_velocity = sing_logpdf
        cases += [
            Case(f"{label}.split_z", path.split_z, dict(z=z_free, d=Fixed(None)), extra=z_extra + [
                ("d", label_, v, ("d",)) for label_, v in (("zero", 0), ("str", "2"), ("float", 2.5), ("wrong", 3))]),
            Case(f"{label}.sample_z", path.sample_z, dict(n=Int(3), data=Points(X1, d_free=True), rng=Rng())),
            Case(f"{label}.mean", path.mean, dict(t=t, z=z_free), extra=z_extra),
            Case(f"{label}.std", path.std, dict(t=Time(TV, n=None))),
            Case(f"{label}.schedules", path.schedules, dict(t=Time(TV, n=None))),
            Case(f"{label}.flow", path.flow, dict(eps=Points(X, tied=("z",), n_tied=True), t=t, z=z), extra=z_extra),
            Case(f"{label}.sample_x", path.sample_x, dict(t=t, z=z_free, rng=Rng()), extra=z_extra),
            Case(f"{label}.logpdf", path.logpdf, dict(x=x, t=t, z=z), extra=z_extra + sing_logpdf,
                 may_refuse=("sigma", "t") if label.endswith("(sigma = 0)") else ()),
            Case(f"{label}.velocity", path.velocity, dict(x=x, t=t, z=z), extra=z_extra + sing_velocity),
        ]
    tiny = paths.LinearInterpolationPath(1e-300)
    cases += [Case("LinearInterpolationPath(sigma = 1e-300).logpdf", tiny.logpdf, dict(x=Fixed(X), t=Fixed(T), z=Fixed((X0, X1))),
                   may_refuse=("x", "sigma", "sigma_t"),
                   check=lambda r: ref.close(r, ref.gauss_logpdf(X, (1 - T) * ref.ld(X0) + T * ref.ld(X1), 1e-300))),
              Case("GaussianPath(sigma_t = 1e-300).velocity", TINY_PATH.velocity,
                   dict(x=Points(X, tied=("z",), n_tied=True), t=Time(T, n=N), z=Points(X1, tied=("x",), n_tied=True)),
                   check=lambda r: ref.close(r, X1)),
              Case("GaussianPath(sigma_t = 1e-300).logpdf", TINY_PATH.logpdf, dict(x=Fixed(X), t=Fixed(T), z=Fixed(X1)),
                   may_refuse=("x", "sigma", "sigma_t"), check=lambda r: ref.close(r, ref.gauss_logpdf(X, T * ref.ld(X1), 1e-300)))]
    return cases, {}


_TMP = tempfile.TemporaryDirectory(prefix="bad-input-")
"""Where plot.save's probes write (removed when the test process exits)."""


def plot_cases():
    tmp = _TMP.name
    extent = (-2.0, 2.0, -1.5, 1.5)
    ext_extra = [("extent", label, v, ("extent",)) for label, v in (
        ("three numbers", (0.0, 1.0, 0.0)), ("reversed", (2.0, -2.0, -1.5, 1.5)), ("empty", (0.0, 0.0, 0.0, 1.0)),
        ("NaN", (np.nan, 1.0, 0.0, 1.0)), ("inf", (0.0, np.inf, 0.0, 1.0)), ("str", "abcd"), ("None", None),
        ("complex", (0j, 1.0, 0.0, 1.0)), ("str entry", ("0", 1.0, 0.0, 1.0)))]
    ax = FreshAx(AX, names=("ax",))
    path = np.stack([X, X + 0.1, X + 0.3])
    tgrid, xgrid = np.linspace(0.05, 0.95, 4), np.linspace(-2, 2, 5)
    values = np.abs(_r.standard_normal((5, 4)))

    def save(fig, out_dir, name, dpi):
        fresh = isinstance(fig, str) and fig == "fresh"
        if fresh:
            fig = plt.figure()
        try:
            return plot.save(fig, out_dir, name, dpi)
        finally:
            if fresh:
                plt.close(fig)

    def fn_t(x, t):
        return paths.ConicalGaussianPath().logpdf(x, t, np.zeros_like(x))

    return [
        Case("grid_points", plot.grid_points, dict(extent=Fixed(extent), n=Int(5, minimum=2)), extra=ext_extra),
        Case("density_image", plot.density_image,
             dict(ax=ax, logpdf=Func(log_p), extent=Fixed(extent), n=Int(5, minimum=2), cmap=Choice("viridis")), extra=ext_extra),
        Case("samples", plot.samples, dict(ax=ax, x=Points(X), color=Fixed("k"), size=Real(2.0, low=0.0), alpha=Real(0.5, low=0.0, high=1.0))),
        Case("velocity_arrows", plot.velocity_arrows,
             dict(ax=ax, u=Func(field), t=Real(0.5), extent=Fixed(extent), n=Int(3, minimum=2), color=Fixed("k")), extra=ext_extra),
        Case("trajectories", plot.trajectories,
             dict(ax=ax, path=Array(path, shapes=("extra", "missing", "last")), n_show=Int(2), color=Fixed("k"),
                  alpha=Real(0.5, low=0.0, high=1.0), lw=Real(0.7, low=0.0))),
        Case("time_space_values", plot.time_space_values,
             dict(f=Func(fn_t), t=Array(tgrid, shapes=("extra",)), x=Array(xgrid, shapes=("extra",)))),
        Case("save", save, dict(fig=Obj("fresh", names=("fig",)), out_dir=Fixed(tmp), name=Fixed("probe.png"),
                                dpi=Real(20.0, low=1.0, optional=True)),
             extra=[("out_dir", "None", None, ("out_dir",)), ("out_dir", "int", 3, ("out_dir",)),
                    ("name", "None", None, ("name",)), ("name", "empty", "", ("name",)), ("name", "int", 3, ("name",)),
                    ("name", "leaving the folder", "../probe.png", ("name",)), ("name", "a folder", "sub/", ("name",))]),
        Case("time_space_image", plot.time_space_image,
             dict(ax=ax, values=Array(values, shapes=("extra", "missing", "last")), t=Array(tgrid, shapes=("extra",), names=("values",)),
                  x=Array(xgrid, shapes=("extra",), names=("values",)), cmap=Choice("magma"),
                  clip_quantile=Real(0.99, low=0.0, high=1.0, low_open=True, optional=True),
                  vmax=Real(1.0, low=0.0, low_open=True, optional=True))),
    ], {"BLUE": "a colour constant", "RED": "a colour constant"}


TRAIN_DATA = _r.standard_normal((8, D))


def train_cases():
    linear, conical = paths.LinearInterpolationPath(), paths.ConicalGaussianPath()
    data = TRAIN_DATA
    vparams = VPARAMS
    rp = RP
    theta = _r.standard_normal(6)

    def flat_and_back(params):
        theta, unflatten = train.flatten_params(params)
        return theta, unflatten(theta)

    def step_once(**kw):
        step, current = train.cfm_step(**kw)
        return step(), current()

    def velocity_of(params, fused):
        return train.model_velocity(params, fused)(X, T)

    d = dict(data=Points(data, d_free=True), path=path_arg(linear, spiked=False))
    cfm = dict(d, params=Tree(vparams), batch_size=Int(4), lr=Real(1e-3, low=0.0, low_open=True), rng=Rng(),
               ot_pairing=Flag(False), fused=Mode(True))
    return [
        Case("minibatch_indices", train.minibatch_indices, dict(n_data=Int(8), n_steps=Int(2), batch_size=Int(3), rng=Rng())),
        Case("flatten_params", flat_and_back, dict(params=Tree(rp, generic=True))),
        Case("train_mle", train.train_mle,
             dict(log_p1=Func(chain.realnvp_logpdf), params=Tree(rp), data=Points(data, d_free=True), n_steps=Int(2), batch_size=Int(4),
                  lr=Real(1e-3, low=0.0), rng=Rng(), callback=Func(lambda p, k, v: None, outputs=False, optional=True))),
        Case("train_realnvp", train.train_realnvp,
             dict(data=Points(data, d_free=True), n_steps=Int(2), n_layers=Int(2), hidden=Fixed((4,)), batch_size=Int(4),
                  lr=Real(1e-3, low=0.0), rng=Rng(), params=Fixed(None)),
             extra=_hidden_probes("hidden") + [("data", "d = 1", data[:, :1], ("data",))]),
        Case("train_realnvp(params=...)", train.train_realnvp,
             dict(data=Points(data, names=("params",)), n_steps=Int(2), lr=Real(1e-3, low=0.0), rng=Rng(),
                  params=Tree(rp, optional=True))),
        Case("train_planar", train.train_planar,
             dict(data=Points(data, d_free=True), n_steps=Int(2), n_layers=Int(2), batch_size=Int(4), lr=Real(1e-2, low=0.0), rng=Rng(),
                  init_scale=Real(0.5, low=0.0, low_open=True))),
        Case("cfm_batch", train.cfm_batch, dict(d, batch_size=Int(4), rng=Rng(), ot_pairing=Flag(True)),
             extra=[("path", "a path on x1 with ot_pairing", conical, ("path", "ot_pairing"))]),
        Case("adam_update", train.adam_update,
             dict(theta=Array(theta, shapes=("extra", "missing"), extreme=False), g=Fixed(np.ones(6)), m=Fixed(np.zeros(6)),
                  v=Fixed(np.zeros(6)), k=Int(1), lr=Real(1e-3, low=0.0, low_open=True),
                  b1=Real(0.9, low=0.0, high=1.0, high_open=True), b2=Real(0.999, low=0.0, high=1.0, high_open=True),
                  eps=Real(1e-8, low=0.0, low_open=True)),
             extra=[(arg, label, v, (arg,)) for arg in ("g", "m", "v") for label, v in (
                 ("wrong shape", np.ones(5)), ("NaN", _nan(np.ones(6))), ("complex", np.ones(6) + 1j), ("str", "g"),
                 ("None", None))] + [("v", "negative", -np.ones(6), ("v",))]),
        Case("cfm_step", step_once, cfm),
        Case("cfm_step(fused=False)", step_once, dict(cfm, fused=Fixed(False))),
        Case("cfm_step(fused=True)", step_once, dict(cfm, fused=Fixed(True))),
        Case("train_cfm", train.train_cfm,
             dict(d, n_steps=Int(2), batch_size=Int(4), hidden=Fixed((4,)), lr=Real(1e-3, low=0.0, low_open=True), rng=Rng(),
                  ot_pairing=Flag(False), callback=Func(lambda p, k, v: None, outputs=False, optional=True), fused=Mode(True),
                  lr_decay=Real(0.5, low=0.0, high=1.0)),
             extra=_hidden_probes("hidden")),
        Case("step_size", train.step_size,
             dict(lr=Real(1e-3, low=0.0, low_open=True), k=Int(1, minimum=0), n_steps=Int(4), lr_decay=Real(0.5, low=0.0, high=1.0)),
             extra=[("k", "equal to n_steps", 4, ("k", "n_steps"))]),
        Case("model_velocity", velocity_of, dict(params=Tree(vparams), fused=Mode(True))),
        Case("model_velocity(fused=False)", velocity_of, dict(params=Tree(vparams), fused=Fixed(False))),
        Case("sample_model", train.sample_model,
             dict(params=Tree(vparams), n=Int(3), rng=Rng(), method=Choice("euler"), n_steps=Int(3), adaptive=Flag(False),
                  return_path=Flag(False))),
        Case("sample_model(adaptive)", train.sample_model,
             dict(params=Tree(vparams), n=Int(3), rng=Rng(), adaptive=Fixed(True), rtol=Real(1e-3, low=0.0),
                  atol=Real(1e-3, low=0.0, low_open=True), return_path=Flag(False))),
    ], {"TrainingDiverged": "an exception type"}


def _perm_probes(arg, n_layers, d):
    ident = np.arange(d)
    return [(arg, label, v, (arg,)) for label, v in (
        ("one too few", [ident] * (n_layers - 1)), ("not a permutation", [np.zeros(d, dtype=int)] * n_layers),
        ("float", [ident.astype(float)] * n_layers), ("str", "ab"), ("wrong length", [np.arange(d + 1)] * n_layers),
        ("an int", 3))]


def flows_chain_cases():
    rp, pl = RP, PL
    fw = [partial(coupling.coupling_forward, p) for p in rp]
    inv = [partial(coupling.coupling_inverse, p) for p in rp]
    z = Points(X, d_free=True)
    perms = _perm_probes("perms", 2, D)
    return [
        Case("chain_forward", chain.chain_forward, dict(forwards=Layers(fw), z=z, return_path=Flag(False))),
        Case("chain_inverse", chain.chain_inverse, dict(inverses=Layers(inv), x=z, return_path=Flag(False))),
        Case("chain_logpdf", chain.chain_logpdf, dict(inverses=Layers(inv), x=z, base_logpdf=Func(log_p))),
        Case("alternating_permutations", chain.alternating_permutations, dict(d=Int(D, minimum=2), n_layers=Int(2))),
        Case("realnvp_init", chain.realnvp_init,
             dict(d=Int(D, minimum=2), n_layers=Int(2), hidden=Fixed((4,)), rng=Rng(), identity=Flag(False)),
             extra=_hidden_probes("hidden")),
        Case("realnvp_forward", chain.realnvp_forward,
             dict(params=Tree(rp), z=Points(X, names=("params",)), perms=Fixed(None), return_path=Flag(False)), extra=perms),
        Case("realnvp_inverse", chain.realnvp_inverse,
             dict(params=Tree(rp), x=Points(X, names=("params",)), perms=Fixed(None), return_path=Flag(False)), extra=perms),
        Case("realnvp_logpdf", chain.realnvp_logpdf, dict(params=Tree(rp), x=Points(X, names=("params",)), perms=Fixed(None)),
             extra=perms),
        Case("realnvp_sample", chain.realnvp_sample,
             dict(params=Tree(rp), n=Int(3), rng=Rng(), perms=Fixed(None), return_logpdf=Flag(True)), extra=perms),
        Case("planar_chain_forward", chain.planar_chain_forward,
             dict(params=Tree(pl), z=Points(X, names=("params",)), return_path=Flag(False))),
        Case("planar_chain_inverse", chain.planar_chain_inverse,
             dict(params=Tree(pl), x=Points(X, names=("params",)), return_path=Flag(False))),
        Case("planar_chain_logpdf", chain.planar_chain_logpdf, dict(params=Tree(pl), x=Points(X, names=("params",)))),
        Case("planar_chain_sample", chain.planar_chain_sample, dict(params=Tree(pl), n=Int(3), rng=Rng(), return_logpdf=Flag(True))),
    ], {}


def flows_coupling_cases():
    cp = CP
    perm = [("perm", label, v, ("perm",)) for label, v in (
        ("not a permutation", np.zeros(3, dtype=int)), ("float", np.arange(3.0)), ("str", "abc"), ("wrong length", np.arange(4)),
        ("2-D", np.arange(3)[None]), ("bool", np.array([True, False, True])))]
    return [
        Case("coupling_init", coupling.coupling_init,
             dict(d=Int(3, minimum=2), d_split=Int(1), hidden=Fixed((4,)), rng=Rng(), identity=Flag(False)),
             extra=_hidden_probes("hidden") + [("d_split", "d_split = d", 3, ("d_split",)), ("d_split", "above d", 4, ("d_split",))]),
        Case("coupling_scale", coupling.coupling_scale, dict(params=Tree(cp), x1=Points(X3[:, :1], names=("params",)))),
        Case("coupling_translation", coupling.coupling_translation, dict(params=Tree(cp), x1=Points(X3[:, :1], names=("params",)))),
        Case("coupling_log_det", coupling.coupling_log_det, dict(params=Tree(cp), x=Points(X3, names=("params",)), perm=Fixed(None)),
             extra=perm),
        Case("coupling_forward", coupling.coupling_forward, dict(params=Tree(cp), x=Points(X3, names=("params",)), perm=Fixed(None)),
             extra=perm),
        Case("coupling_inverse", coupling.coupling_inverse, dict(params=Tree(cp), y=Points(X3, names=("params",)), perm=Fixed(None)),
             extra=perm),
    ], {"SCALE_BOUND": "a number", "ACTIVATION": "an option name"}


def flows_planar_cases():
    pp, folding = PP, FOLDING
    return [
        Case("planar_init", planar.planar_init, dict(d=Int(D), rng=Rng(), scale=Real(1.0, low=0.0, low_open=True))),
        Case("planar_constrain", planar.planar_constrain, dict(params=Tree(pp))),
        Case("planar_is_invertible", planar.planar_is_invertible, dict(params=Tree(pp))),
        Case("planar_forward", planar.planar_forward, dict(params=Tree(pp), x=Points(X, names=("params",)))),
        Case("planar_log_det", planar.planar_log_det, dict(params=Tree(pp), x=Points(X, names=("params",)))),
        Case("planar_inverse", planar.planar_inverse, dict(params=Tree(pp), y=Points(X, names=("params",)), max_iter=Int(80)),
             extra=[("params", "not invertible", folding, ("params",))]),
        Case("planar_collision", planar.planar_collision, dict(params=Tree(folding)),
             extra=[("params", "invertible", pp, ("params",))]),
    ], {"PLANAR_MARGIN": "a number"}


# --------------------------------------------------------------------------------------
# reference.testing: the checkers validate their own arguments and judge the implementation they are given.
# --------------------------------------------------------------------------------------


class Judged(NamedTuple):
    """What the battery reads of a checker's verdict: a failed report's figures may be NaN by design (a figure
    that could not be measured never meets its bound), so the report itself is not what is returned."""

    passed: bool
    message: str
    diagnosis: str


def judged(check):
    """``check(**kwargs)`` returning its report's verdict; the report must be a ``CheckReport``."""
    def run(**kwargs):
        report = check(**kwargs)
        assert isinstance(report, testing.CheckReport), type(report)
        return Judged(report.passed, report.message, report.diagnosis or "")
    run.__name__ = check.__name__
    return run


def asserted(twin):
    """``assert_*(**kwargs)``: the ``AssertionError`` it raises for an implementation that fails is its verdict."""
    def run(**kwargs):
        try:
            report = twin(**kwargs)
        except AssertionError as err:
            return Judged(False, str(err), "")
        return Judged(report.passed, report.message, report.diagnosis or "")
    run.__name__ = twin.__name__
    return run


def _rk4_solve(u, x0, t0, t1, n_steps):
    """A fixed-step RK4 solver in plain NumPy (the implementation the battery hands check_ode_solver)."""
    h, x = (t1 - t0) / n_steps, np.array(x0, dtype=float)
    for k in range(n_steps):
        t = t0 + k * h
        k1 = u(x, t)
        k2 = u(x + h / 2 * k1, t + h / 2)
        k3 = u(x + h / 2 * k2, t + h / 2)
        k4 = u(x + h * k3, t + h)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def _linear_sample(x0, x1, t):
    t = np.asarray(t, dtype=float)[:, None]
    return (1 - t) * x0 + t * x1, x1 - x0


def _rademacher_hutchinson(u, x, t, rng):
    eps = rng.choice([-1.0, 1.0], size=np.shape(x))
    h = 1e-5
    return np.sum(eps * (u(x + h * eps, t) - u(x - h * eps, t)) / (2 * h), axis=1)


def _cnf_log_likelihood(u, x, n_steps=4):
    """log p1(x) by RK4 on d/dt [x, l] = [u, div u] from t = 1 to 0, the divergence by central differences."""
    n, d = x.shape
    h_fd = 1e-5

    def rhs(state, t):
        y = state[:, :d]
        div = sum((u(y + h_fd * e, t)[:, j] - u(y - h_fd * e, t)[:, j]) / (2 * h_fd) for j, e in enumerate(np.eye(d)))
        return np.concatenate([u(y, t), div[:, None]], axis=1)

    state = _rk4_solve(rhs, np.concatenate([x, np.zeros((n, 1))], axis=1), 1.0, 0.0, n_steps)
    z = state[:, :d]
    return -0.5 * np.sum(z**2, axis=1) - 0.5 * d * np.log(2 * np.pi) + state[:, d]


def _conical_marginal(x, t, data):
    return marginal.marginal_velocity(paths.ConicalGaussianPath(), x, t, data)


PRECISION = ("precision", "float64")


def _dims_probes(arg="dims"):
    return [(arg, label, v, (arg,)) for label, v in (
        ("zero", 0), ("empty", ()), ("repeated", (2, 2)), ("str", "2"), ("float", 2.5), ("too large", 1000),
        ("NaN entry", (np.nan,)), ("bool", True), ("a float entry", (2.5,)), ("a negative entry", (-1,)))]


def _str_probes(arg, empty_ok=True):
    return [(arg, label, v, (arg,)) for label, v in (("None", None), ("int", 3), ("bytes", b"abc"), ("list", ["a"]))
            + ((("empty", ""), ("blank", "  ")) if not empty_ok else ())]


def _report_args():
    m = testing.Measurement("error", 0.5, 1.0, "<=", "an error")
    return dict(name=Fixed("check_x"), passed=Flag(True), figures=Fixed({"error": 0.5}), message=Fixed("fine"),
                diagnosis=Fixed(None), measurements=Fixed((m,)), notes=Fixed(()), coverage=Fixed(()))


def testing_cases():
    fwd, inv = partial(coupling.coupling_forward, CP), partial(coupling.coupling_inverse, CP)
    k = Real(10.0, low=0.0, low_open=True)
    precision = Choice("float64", optional=True)
    seed = Int(0, minimum=0)
    tuple_out = dict(elements=(0, 1))
    xy = dict(x0=Points(X0, tied=("x1",), n_tied=True), x1=Points(X1, tied=("x0",), n_tied=True))
    steps_extra = [("steps", label, v, ("steps",)) for label, v in (
        ("decreasing", (8, 4)), ("one count", (4,)), ("an int", 4), ("a zero", (0, 4)), ("a float", (4, 8.5)),
        ("str", "48"), ("huge", (4, 10**9)), ("a NaN", (4, np.nan)), ("a bool", (True, 4)))]
    sizes_extra = [("sizes", label, v, ("sizes",)) for label, v in (
        ("above 8", (9,)), ("below 2", (1,)), ("empty", ()), ("an int", 4), ("str", "4"), ("a float", (4.5,)),
        ("None", None))]
    torch_dtype = [("torch_dtype", label, v, ("torch_dtype",)) for label, v in (
        ("float32 without torch", "float32"), ("an int dtype", "int32"), ("int", 3), ("None", None))]
    dtype = [("dtype", label, v, ("dtype",)) for label, v in (("float32 without a framework", "float32"), ("int", 3))]
    checkers = dict(
        check_bijection=dict(forward=Func(fwd, **tuple_out), inverse=Func(inv, **tuple_out),
                             x=Points(X3, d_free=True), round_trip_tol=Real(1e-8, low=0.0, low_open=True, optional=True),
                             k=k, precision=precision),
        check_conditional_path=dict(sample=Func(_linear_sample, **tuple_out), **xy, t=Time(TV, n=N),
                                    path=path_arg(paths.LinearInterpolationPath(), spiked=False, optional=True),
                                    sigma_min=Real(1e-2, low=0.0), boundary_tol=Real(1e-8, low=0.0, low_open=True, optional=True),
                                    k=k, precision=precision, dims=Fixed(None), seed=seed),
        check_ode_solver=dict(solve=Func(_rk4_solve), order=Int(4), steps=Fixed((4, 8, 16)), k=k, precision=precision),
        check_log_likelihood=dict(log_likelihood=Func(_cnf_log_likelihood, shape="col"), framework=Choice("numpy"),
                                  atol=Real(0.05, low=0.0, low_open=True), n=Int(2), seed=seed, stochastic=Flag(False),
                                  n_repeats=Int(256, minimum=2), k=k, torch_dtype=Fixed("float64"), dtype=Fixed(None),
                                  dims=Fixed((1,)), precision=precision, n_calls=Int(32, minimum=8)),
        check_divergence_estimator=dict(estimate=Func(_rademacher_hutchinson), framework=Choice("numpy"),
                                        n_repeats=Int(100, minimum=2), k=k, seed=seed, torch_dtype=Fixed("float64"),
                                        dtype=Fixed(None), dims=Fixed((2,)), precision=precision, n_calls=Int(8, minimum=8)),
        check_ot_pairing=dict(pair=Func(ot.ot_pair, **tuple_out), sizes=Fixed((4,)), d=Fixed(2), seed=seed,
                              precision=precision),
        check_marginal_velocity=dict(estimate=Func(_conical_marginal), data=Points(X1, d_free=True),
                                     sigma=Real(0.0, low=0.0), n=Int(8, minimum=4), seed=seed, precision=precision,
                                     dims=Fixed(None), n_data=Int(50, minimum=2)),
        check_velocity_field=dict(v=Func(oracles.EmpiricalOracle(X1).velocity), data=Points(X1, d_free=True),
                                  n=Int(16, minimum=16), max_relative_loss=Real(0.05, low=0.0, low_open=True), k=k,
                                  seed=seed, precision=precision),
    )
    extras = dict(
        check_conditional_path=[("t", "at t = 0", np.array([0.0, 0.3, 0.5, 0.7]), ("t",)),
                                ("dims", "with x0 and x1", (2,), ("dims",))],
        check_ode_solver=steps_extra + [("order", "above 12", 13, ("order",))],
        check_log_likelihood=torch_dtype + dtype + _dims_probes(),
        check_divergence_estimator=torch_dtype + dtype + _dims_probes(),
        check_ot_pairing=sizes_extra + _dims_probes("d"),
        check_marginal_velocity=[("dims", "with data", (2,), ("dims",)), ("sigma", "huge", 1e3, ("sigma",))],
        check_velocity_field=[("data", "an unknown data set", "moons", ("data",))],
    )
    cases = []
    for name, args in checkers.items():
        check, twin = getattr(testing, name), getattr(testing, name.replace("check_", "assert_"))
        extra = extras.get(name, [])
        cases.append(Case(name, judged(check), args, extra=extra, check=lambda r: r.passed))
        cases.append(Case(name.replace("check_", "assert_"), asserted(twin), args, extra=extra, check=lambda r: r.passed))
    # the default batches of check_conditional_path (no x0, x1): dims is theirs
    cases.append(Case("check_conditional_path(dims=...)", judged(testing.check_conditional_path),
                      dict(sample=Func(_linear_sample, **tuple_out), dims=Fixed((2,)), seed=seed), extra=_dims_probes(),
                      check=lambda r: r.passed))
    cases.append(Case("check_marginal_velocity(dims=...)", judged(testing.check_marginal_velocity),
                      dict(estimate=Func(_conical_marginal), dims=Fixed((2,)), n=Fixed(8), n_data=Int(20, minimum=2)),
                      extra=_dims_probes(), check=lambda r: r.passed))
    # the report and its figures
    report_extra = (_str_probes("name", empty_ok=False) + _str_probes("message") + [
        ("figures", label, v, ("figures",)) for label, v in (
            ("list", [0.5]), ("a str value", {"e": "x"}), ("an int key", {1: 0.5}), ("None", None),
            ("a complex value", {"e": 1j}), ("an array value", {"e": np.ones(2)}))] + [
        ("diagnosis", label, v, ("diagnosis",)) for label, v in (("int", 3), ("empty", ""), ("list", ["a"]))] + [
        ("measurements", label, v, ("measurements",)) for label, v in (("a dict", {"a": 1}), ("floats", (0.5,)), ("None", None))] + [
        (arg, label, v, (arg,)) for arg in ("notes", "coverage") for label, v in (
            ("a str", "a note"), ("ints", (1, 2)), ("None", None))])
    cases.append(Case("CheckReport()", testing.CheckReport, _report_args(), extra=report_extra))
    cases.append(Case("Measurement()", testing.Measurement,
                      dict(name=Fixed("error"), value=Fixed(0.5), bound=Real(1.0, optional=True), op=Choice("<="),
                           what=Fixed("an error")),
                      extra=_str_probes("name", empty_ok=False) + _str_probes("what") + [
                          ("value", label, v, ("value",)) for label, v in (
                              ("complex", 0.5j), ("bool", True), ("str", "0.5"), ("None", None), ("array", np.ones(2)))]))
    problem = testing.ODE_PROBLEMS[0]
    cases.append(Case("OdeProblem()", testing.OdeProblem,
                      dict(name=Fixed("spiral"), u=Func(problem.u, outputs=False), x0=Points(problem.x0, d_free=True),
                           t0=Real(0.0), t1=Real(1.0), exact=Func(problem.exact, outputs=False),
                           reversed_exact=Func(problem.exact, outputs=False, optional=True),
                           frozen_exact=Func(problem.exact, outputs=False, optional=True),
                           asymptotic_from=Fixed((3, 2, 2, 2, 16))),
                      extra=_str_probes("name", empty_ok=False) + [
                          ("t1", "equal to t0", 0.0, ("t0", "t1"))] + [
                          ("asymptotic_from", label, v, ("asymptotic_from",)) for label, v in (
                              ("too short", (1,)), ("a negative entry", (3, 2, 2, 2, -1)), ("a float entry", (3, 2, 2, 2, 1.5)),
                              ("a list", [3, 2, 2, 2, 16]), ("None", None), ("str", "32221"))]))
    not_probed = {"K_SAFETY": "a number", "K_SE": "a number", "ODE_PROBLEMS": "a tuple of problems (data)"}
    for framework, names in (("torch", ("from_torch", "to_torch", "torch_native", "is_torch_native")),
                             ("jax", ("from_jax", "to_jax", "jax_native", "is_jax_native"))):
        if importlib.util.find_spec(framework) is None:
            not_probed.update({n: f"needs {framework}, which is not installed here" for n in names})
            continue
        wrap = getattr(testing, f"from_{framework}")
        cases += [
            Case(f"from_{framework}", wrap, dict(fn=Func(field, outputs=False))
                 | (dict(dtype=Choice("float32", optional=True), device=Choice("cpu", optional=True))
                    if framework == "torch" else dict(dtype=Choice("float32"))),
                 extra=[("dtype", "an integer dtype", "int32", ("dtype",)), ("dtype", "a complex dtype", "complex64", ("dtype",))]),
            Case(f"to_{framework}", getattr(testing, f"to_{framework}"), dict(fn=Func(field, outputs=False))),
            Case(f"{framework}_native", getattr(testing, f"{framework}_native"), dict(fn=Func(lambda x: x, outputs=False))),
            Case(f"is_{framework}_native", getattr(testing, f"is_{framework}_native"),
                 dict(fn=Func(lambda x: x, outputs=False)), check=lambda r: r is False),
        ]
    return cases, not_probed


testing_cases.__test__ = False  # a table entry, not a test (pytest collects names that start with "test")


# --------------------------------------------------------------------------------------
# reference.fixtures: the golden files' writer, checker and reader.
# --------------------------------------------------------------------------------------

_FIXTURE_DIR = tempfile.TemporaryDirectory(prefix="bad-input-fixtures-")
"""Where the fixture probes write (removed when the test process exits)."""


def _fixture_folders():
    """A folder holding one fixture written by the reference, and a file where a folder is expected."""
    from reference import fixtures

    root = _FIXTURE_DIR.name
    good = f"{root}/good"
    fixtures.write_fixtures(good, ["standard_normal_logpdf"])
    a_file = f"{root}/a-file"
    with open(a_file, "w") as f:
        f.write("not a folder")
    return good, a_file


def _rows(verify):
    """``verify_fixtures`` with each row read as ``(name, key, passed, problem)``: a problem row's ratio is inf by
    design, which the battery would take for an overflow."""
    def run(**kwargs):
        return [(row.name, row.key, row.passed, row.problem) for row in verify(**kwargs)]
    run.__name__ = verify.__name__
    return run


def fixtures_cases():
    from reference import fixtures

    good, a_file = _fixture_folders()
    folder_probes = [(label, v) for label, v in (("None", None), ("int", 3), ("bytes", b"dir"), ("a list", [good]),
                                                 ("a file", a_file))]
    names = [("names", label, v, ("names",)) for label, v in (
        ("a str", "standard_normal_logpdf"), ("an unknown name", ["no_such_fixture"]), ("an int entry", [3]), ("empty", []),
        ("a dict", {"standard_normal_logpdf": 1}), ("None entry", [None]))]
    fixture = fixtures.FIXTURES[0]
    fx_args = dict(name=Fixed("mine"), lecture=Fixed("eq. (1)"), formula=Fixed("y = x"),
                   make=Func(fixture.make, outputs=False), compute=Func(fixture.compute, outputs=False),
                   rtol=Real(1e-9, low=0.0), atol=Real(1e-12, low=0.0), notes=Fixed(""))
    row_args = dict(name=Fixed("standard_normal_logpdf"), key=Fixed("logpdf"), ratio=Real(0.5, low=0.0), passed=Flag(True),
                    problem=Fixed(""))
    return [
        Case("write_fixtures", fixtures.write_fixtures, dict(out_dir=Fixed(f"{_FIXTURE_DIR.name}/written"),
                                                             names=Fixed(["standard_normal_logpdf"])),
             extra=names + [("out_dir", label, v, ("out_dir",)) for label, v in folder_probes]),
        Case("verify_fixtures", _rows(fixtures.verify_fixtures), dict(directory=Fixed(good), names=Fixed(["standard_normal_logpdf"])),
             extra=names + [("directory", label, v, ("directory",)) for label, v in folder_probes + [
                 ("a missing folder", f"{_FIXTURE_DIR.name}/missing")]],
             check=lambda rows: all(r[2] for r in rows) and rows),
        Case("load_fixture", fixtures.load_fixture, dict(directory=Fixed(good), name=Fixed("standard_normal_logpdf")),
             extra=[("name", label, v, ("name",)) for label, v in (
                 ("unknown", "no_such_fixture"), ("int", 3), ("None", None), ("a list", ["standard_normal_logpdf"]))]
             # a fixture of the reference that the folder does not hold: "fixture NAME: not in .../index.json"
             + [("name", "not written there", "gaussian_mixture_logpdf", ("name", "fixture"))]
             + [("directory", label, v, ("directory",)) for label, v in folder_probes + [
                 ("a missing folder", f"{_FIXTURE_DIR.name}/missing")]]),
        Case("Fixture()", fixtures.Fixture, fx_args, extra=_str_probes("name", empty_ok=False) + _str_probes("lecture")
             + _str_probes("formula") + _str_probes("notes")),
        Case("CheckRow()", fixtures.CheckRow, row_args, extra=_str_probes("name", empty_ok=False) + _str_probes("key")
             + _str_probes("problem") + [("ratio", "NaN", np.nan, ("ratio",))]),
    ], {"FIXTURES": "a tuple of fixtures (data)", "CONVENTIONS": "a dict of conventions (data)",
        "FixtureError": "an exception type"}


MODULES = {
    "reference.autodiff": autodiff_cases,
    "reference.bridge": bridge_cases,
    "reference.change_of_variables": change_of_variables_cases,
    "reference.cnf": cnf_cases,
    "reference.continuity": continuity_cases,
    "reference.distributions": distributions_cases,
    "reference.losses": losses_cases,
    "reference.marginal": marginal_cases,
    "reference.metrics": metrics_cases,
    "reference.nn": nn_cases,
    "reference.ode": ode_cases,
    "reference.oracles": oracles_cases,
    "reference.ot": ot_cases,
    "reference.paths": paths_cases,
    "reference.plot": plot_cases,
    "reference.train": train_cases,
    "reference.flows.chain": flows_chain_cases,
    "reference.flows.coupling": flows_coupling_cases,
    "reference.flows.planar": flows_planar_cases,
    "reference.engines": engines_cases,
    "reference.engines.adam": engines_adam_cases,
    "reference.engines.cfm": engines_cfm_cases,
    "reference.engines.mlp": engines_mlp_cases,
    "reference.engines.parallel": engines_parallel_cases,
    "reference.testing": testing_cases,
    "reference.fixtures": fixtures_cases,
}
"""The table: module -> its cases."""


# --------------------------------------------------------------------------------------
# Documented acceptances: (case, argument, probe) patterns -> the reason, and a check that
# the result is right (tests/bad_input_references.py: each formula again, in long double).
# --------------------------------------------------------------------------------------

R = ref


def _pick(value, default, is_params):
    return (value, default) if is_params else (default, value)


def _field_ref(result, value, call_with):
    return R.close(result, R.sin_field(value, T)[1])


def _planar_field_check(which):
    def check(result, value, call_with):
        params, x = _pick(value, X, True) if isinstance(value, dict) else (BRIDGE_PARAMS, value)
        return R.close(result, R.planar_field(params, x, np.full(N, T))[which])
    return check


def _planar_coefficients_check(result, value, call_with):
    t = R.ld(TV)
    refs = [R.ld(value[k])[0] + (t[:, None] if k != "c" else t) * R.ld(value[k])[1] for k in "abc"]
    return all(R.close(r, q) for r, q in zip(result, refs))


def _bridge_layers(params, K):
    return [{"a": (R.ld(params["a"])[0] + R.LD(k / K) * R.ld(params["a"])[1]) / K,
             "b": R.ld(params["b"])[0] + R.LD(k / K) * R.ld(params["b"])[1],
             "c": R.ld(params["c"])[0] + R.LD(k / K) * R.ld(params["c"])[1]} for k in range(K)]


def _planar_layers_check(result, value, call_with):
    return all(R.close(r["a"], q["a"]) and R.close(r["b"], q["b"]) and R.close(r["c"], q["c"])
               for r, q in zip(result, _bridge_layers(value, 3)))


def _planar_layers_forward_check(result, value, call_with):
    params, x0 = (value, X) if isinstance(value, dict) else (BRIDGE_PARAMS, value)
    return R.close(result, R.planar_chain(_bridge_layers(params, 3), x0))


def _planar_ode_check(result, value, call_with):
    params, x0 = (value, X) if isinstance(value, dict) else (BRIDGE_PARAMS, value)

    def field(state, t):
        u, div = R.planar_field(params, state[:, :D], np.full(N, float(t)))
        return np.concatenate([u, -div[:, None]], axis=1)
    z1 = R.rk4(field, np.concatenate([R.ld(x0), np.zeros((N, 1), dtype=R.LD)], axis=1), 0.0, 1.0, 4)
    return R.close(result, (z1[:, :D], -z1[:, D]))


def _chain_check(kind):
    def check(result, value, call_with):
        x = R.ld(value)
        if kind == "forward":
            total = 0
            for p in RP:
                x, ld_k = R.coupling(p, x)
                total = total + ld_k
            return R.close(result, (x, total))
        total = 0
        for p in reversed(RP):
            x, ld_k = R.coupling(p, x, inverse=True)
            total = total + ld_k
        return R.close(result, (x, total) if kind == "inverse" else R.std_normal_logpdf(x) + total)
    return check


def _realnvp_check(kind):
    def check(result, value, call_with):
        params, x = (value, X) if isinstance(value, list) else (RP, value)
        if kind == "sample":
            z = np.random.default_rng(0).standard_normal((3, D))
            y, log_det = R.realnvp(params, z)
            return R.close(result, (y, R.std_normal_logpdf(z) - log_det))
        y, log_det = R.realnvp(params, x, inverse=kind != "forward")
        return R.close(result, R.std_normal_logpdf(y) + log_det if kind == "logpdf" else (y, log_det))
    return check


def _planar_chain_check(kind):
    def check(result, value, call_with):
        params, x = (value, X) if isinstance(value, list) else (PL, value)
        if kind == "forward":
            return R.close(result, R.planar_chain(params, x))
        if kind == "sample":
            z = np.random.default_rng(0).standard_normal((3, D))
            y, log_det = R.planar_chain(params, z)
            return R.close(result, (y, R.std_normal_logpdf(z) - log_det))
        x0 = chain.planar_chain_inverse(params, x)[0]  # the root solve's answer, checked through the forward map
        y, log_det = R.planar_chain(params, x0)
        scale = float(np.max(np.abs(np.asarray(x, dtype=float))))
        if not R.close(y, x, atol=1e-12 * scale):
            return False
        return R.close(result, (x0, -log_det) if kind == "inverse" else R.std_normal_logpdf(x0) - log_det)
    return check


def _coupling_check(kind):
    def check(result, value, call_with):
        params = value if isinstance(value, dict) else CP
        x = X3 if isinstance(value, dict) else value
        if kind in ("scale", "translation"):
            x1 = X3[:, :1] if isinstance(value, dict) else value
            mlp = R.mlp(params["s" if kind == "scale" else "t"], x1, "tanh")
            return R.close(result, 2 * np.tanh(mlp / 2) if kind == "scale" else mlp)
        y, log_det = R.coupling(params, x, inverse=kind == "inverse")
        return R.close(result, log_det if kind == "log_det" else (y, log_det))
    return check


def _planar_check(kind):
    def check(result, value, call_with):
        params = value if isinstance(value, dict) else PP
        x = X if isinstance(value, dict) else value
        a, b, c = (R.ld(params[k]) for k in "abc")
        if kind == "constrain":
            ab = a @ b
            m = -1 + R.LD(planar.PLANAR_MARGIN) + np.logaddexp(R.LD(0), ab + 1 - R.LD(planar.PLANAR_MARGIN))
            return R.close(result["a"], a + (m - ab) * b / (b @ b + R.LD(1e-300)))
        if kind == "invertible":
            return result == bool(a @ b > -1)
        if kind == "collision":
            kappa = -(a @ b)
            tau = R.LD(1.0)  # tau = tanh(kappa tau) has the root 1 to long double precision when kappa > 50
            assert kappa > 50 and np.tanh(kappa) == 1
            p = -c * b / (b @ b)
            return R.close(result, (np.stack([p + tau * a, p - tau * a]), p[None, :]))
        if kind == "inverse":
            y, _ = R.planar_layer(params, result[0])
            scale = float(np.max(np.abs(np.asarray(x, dtype=float))))
            return R.close(y, x, atol=1e-12 * scale) and R.close(result[1], -R.planar_layer(params, result[0])[1])
        y, log_det = R.planar_layer(params, x)
        return R.close(result, log_det if kind == "log_det" else (y, log_det))
    return check


def _mlp_check(kind):
    def check(result, value, call_with):
        if kind == "mlp_apply":
            params, h = (value, H) if isinstance(value, list) else (MLP, value)
            return R.close(result, R.mlp(params, h, "silu"))
        params, x = (value, X) if isinstance(value, list) else (VPARAMS, value)
        if kind == "velocity_apply":
            return R.close(result, R.velocity(params, x, T, "tanh"))
        if kind == "flat":
            return R.close(result, R.mlp(VPARAMS, value, "silu"))
        v = R.velocity(params, x, T)
        if kind == "v":
            return R.close(result, v)
        div = autodiff.divergence(lambda y, s: nn.velocity_apply(params, y, s), x, T)  # reverse mode, readable network
        return R.close(result, (v, div))
    return check


def _marginal_accept(name, path, t, x, z, arg):
    def check(result, value, call_with):
        return R.close(result, R.marginal(path, value if arg == "x" else x, t, value if arg == "z" else z)[name], atol=1e-300)
    return check


def _metric(kind):
    def check(result, value, call_with, arg):
        x, y = (value, Y) if arg == "x" else (X, value)
        if kind == "energy":
            scale = float(np.max(np.abs(np.asarray(value, dtype=float))))
            return R.close(result, R.energy_distance(x, y), rtol=1e-6, atol=1e-9 * scale)
        if kind == "median":
            return R.close(result, R.median_distance(x, y))
        if kind == "kernel":
            return R.close(result, R.kernel(x, y, 1.0), atol=1e-300)
        h = 1.0 if kind == "mmd" else R.median_distance(x, y)
        return R.close(result, R.mmd2(x, y, h, unbiased=kind == "mmd"), atol=1e-12)
    return lambda arg: (lambda r, v, c: check(r, v, c, arg))


def _ot(arg):
    def check(result, value, call_with):
        x0, x1 = (value, X1) if arg == "x0" else (X0, value)
        best = R.best_permutation(x0, x1)
        if isinstance(result, tuple):
            return R.close(result[0], x0) and R.close(result[1], R.ld(x1)[best])
        return list(result) == best
    return check


def _first_loss(log_p1, batch_size):
    """train_mle's first loss is the NLL of the initial params on the first minibatch (the same rng)."""
    def check(result, value, call_with):
        params, losses = result
        rows = train.minibatch_indices(8, 2, batch_size, RNG())[0]
        batch = TRAIN_DATA[rows]
        expected = -np.mean(log_p1(value, batch))
        return R.close(losses[0], expected) and np.all(np.isfinite(losses))
    return check


def _initial_step_check(rtol, atol, x0=None):
    """The heuristic of Hairer, Norsett and Wanner (the docstring's formulas), again in long double."""
    def check(result, value, call_with):
        x = R.ld(value if x0 is None else x0)
        a, r = R.ld(value if x0 is not None else atol), R.ld(rtol)
        scale = a + r * np.abs(x)

        def norm(v):
            return np.max(np.sqrt(np.mean((v / scale) ** 2, axis=1)))

        f0 = R.sin_field(x, 0.0)[0]
        d0, d1 = norm(x), norm(f0)
        h0 = R.LD(1e-6) if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
        h0 = min(h0, R.LD(1.0))
        d2 = norm(R.sin_field(x + h0 * f0, h0)[0] - f0) / h0
        h1 = max(R.LD(1e-6), h0 * R.LD(1e-3)) if d1 <= 1e-15 and d2 <= 1e-15 else (0.01 / max(d1, d2)) ** (R.LD(1) / 5)
        return result[1] == 2 and R.close(result[0], min(100 * h0, h1, R.LD(1.0)), rtol=1e-6)
    return check


def _gpv_ref(**override):
    """u = dmean + (dstd / std) (x - mean) with the case's good arguments, one of them replaced."""
    args = dict(x=X, mean=X1, dmean=X0, std=np.full(N, 0.5), dstd=np.full(N, -0.9))
    args.update(override)
    x, mean, dmean, std, dstd = (R.ld(args[k]) for k in ("x", "mean", "dmean", "std", "dstd"))
    return dmean + (dstd / std)[:, None] * (x - mean)


def _path_logpdf_ref(path):
    def check(result, value, call_with):
        (a, b, s), _ = path.schedules(np.full(N, T))
        x0, x1 = value if isinstance(value, tuple) else (None, value)
        mean = R.ld(a)[:, None] * R.ld(x1) + (0 if x0 is None else R.ld(b)[:, None] * R.ld(x0))
        return R.close(result, R.gauss_logpdf(X, mean, R.ld(s)))
    return check


def _cfm_batch_check(result, data):
    t, (x0, x1), x = result
    rows_ok = all(any(np.array_equal(row, d) for d in np.asarray(data)) for row in x1)
    best = R.best_permutation(x0, x1)
    return bool(rows_ok and best == list(range(len(x1))) and np.all((t >= 0) & (t <= 1))
                and R.close(x, (1 - R.ld(t))[:, None] * R.ld(x0) + R.ld(t)[:, None] * R.ld(x1), atol=1e-280 * np.max(np.abs(data))))


def _marginal_entries():
    """The marginal's far points (scaled, see marginal._scaled_row) against the long-double marginal."""
    conical, linear = paths.ConicalGaussianPath(), paths.LinearInterpolationPath(0.5)
    out = {}
    for name in ("posterior_weights", "marginal_logpdf", "marginal_velocity"):
        for suffix, path, t, x, z in (("", conical, T, X, X1), ("(chunk_size=None, t per point)", conical, TV, X, X1),
                                      ("(pairs)", linear, T, X, (X0, X1)), ("(sigma_t = 1e-300)", TINY_PATH, T, X, X1),
                                      ("(t = 1e-149)", conical, 1e-149, 1e5 * X, X1)):
            for arg in ("x", "z"):
                out[(f"marginal.{name}{suffix}", arg, "|x*| ~ *")] = Acceptance(
                    "Theorem 1's weights and field at far points, from scaled differences or the cross term (the "
                    "log-density only where it is representable)", _marginal_accept(name, path, t, x, z, arg))
    return out


AFFINE = "affine in this argument: far points are ordinary input (checked: f(v) = c (f(v / c) - f(0)) + f(0))"

ACCEPT = {
    # autodiff: the derivatives of the battery's callables at far points are what their formulas give
    ("autodiff.jacobian", "x", "|x| ~ *"): Acceptance(
        "f's Jacobian diag(1/2 + cos x) at any finite point",
        lambda r, v, c: R.close(r, np.stack([np.diag(0.5 + np.cos(R.ld(p))) for p in v]))),
    ("autodiff.log_abs_det_jacobian", "x", "|x| ~ *"): Acceptance(
        "f's log-determinant at any finite point", lambda r, v, c: R.close(r, np.sum(np.log(np.abs(0.5 + np.cos(R.ld(v)))), axis=1))),
    ("autodiff.divergence", "x", "|x| ~ *"): Acceptance("u's divergence at any finite point", _field_ref),
    ("autodiff.value_and_divergence", "x", "|x| ~ *"): Acceptance(
        "u and its divergence at any finite point", lambda r, v, c: R.close(r, R.sin_field(v, T))),
    ("autodiff.hutchinson_divergence(probes=...)", "x", "|x| ~ *"): Acceptance(
        "eps = 1 on a diagonal Jacobian gives the exact divergence", _field_ref),
    ("autodiff.hutchinson_divergence", "x", "|x| ~ *"): Acceptance(
        "mean_m eps_m^T J eps_m with the probes of default_rng(0), at any finite point",
        lambda r, v, c: R.close(r, np.mean(np.sum(R.ld(autodiff.sample_probes(RNG(), (2, N, D), "gaussian")) ** 2
                                                  * (0.5 * np.cos(R.ld(v)) - 0.2 * T), axis=2), axis=0))),
    # bridge: the planar field is bounded by |a(t)|; far points and large coefficients are ordinary input
    ("bridge.planar_velocity", "*", "*1e*"): Acceptance("u = tanh(b(t)^T x + c(t)) a(t) is finite at any finite input",
                                                        _planar_field_check(0)),
    ("bridge.planar_divergence", "*", "*1e*"): Acceptance("div u = tanh'(s) a(t)^T b(t) is finite at any finite input",
                                                          _planar_field_check(1)),
    ("bridge.planar_coefficients", "params", "leaf ~ 1e300"): Acceptance("a(t) = a0 + t a1 at any finite coefficients",
                                                                         _planar_coefficients_check),
    ("bridge.planar_layers", "params", "leaf ~ 1e300"): Acceptance("a_k = a(t_{k-1}) / K, b_k = b(t_{k-1}), c_k = c(t_{k-1})",
                                                                   _planar_layers_check),
    ("bridge.planar_layers_forward", "*", "*1e*"): Acceptance("K planar layers, each finite at any finite input",
                                                              _planar_layers_forward_check),
    ("bridge.planar_ode_forward", "*", "*1e*"): Acceptance("RK4 on the bounded planar field (the same steps in long double)",
                                                           _planar_ode_check),
    # change of variables: log p0(T^-1(x)) + log |det J| is representable while |T^-1(x)| < 1e154
    ("change_of_variables.pushforward_logpdf", "x", "|x| ~ 1e154"): Acceptance(
        "T^-1(x) ~ 5e153: log p0 is representable",
        lambda r, v, c: R.close(r, R.std_normal_logpdf(np.sin(R.ld(v)) + 0.5 * R.ld(v)) + np.sum(np.log(np.abs(0.5 + np.cos(R.ld(v)))), axis=1))),
    # distributions
    ("distributions.GaussianMixture()", "means", "|x| ~ *"): Acceptance("a mixture with far means is a mixture",
                                                                        lambda r, v, c: R.close(r.means, v)),
    ("distributions.GaussianMixture()", "covs", "tiny variances"): Acceptance(
        "a component of variance 1e-300 is a Gaussian", lambda r, v, c: R.close(r.covs[:, 0, 0], v)),
    ("distributions.GaussianMixture.logpdf", "x", "|x| ~ 1e154"): Acceptance(
        "the wide component's log-density is representable (the narrow one's is not, and weighs nothing)",
        lambda r, v, c: R.close(r, R.mixture_logpdf(GM, v))),
    # flows
    ("flows.chain.chain_forward", "z", "|x| ~ *"): Acceptance("the coupling layers are finite at any finite point", _chain_check("forward")),
    ("flows.chain.chain_inverse", "x", "|x| ~ *"): Acceptance("the inverse couplings are finite at any finite point", _chain_check("inverse")),
    ("flows.chain.chain_logpdf", "x", "|x| ~ 1e154"): Acceptance("log p0(x_0) is representable at |x_0| ~ 1e154 / e^2", _chain_check("logpdf")),
    ("flows.chain.realnvp_forward", "*", "*1e*"): Acceptance("bounded scales: finite at any finite input", _realnvp_check("forward")),
    ("flows.chain.realnvp_inverse", "*", "*1e*"): Acceptance("bounded scales: finite at any finite input", _realnvp_check("inverse")),
    ("flows.chain.realnvp_logpdf", "*", "*1e*"): Acceptance("log p0(x_0) representable", _realnvp_check("logpdf")),
    ("flows.chain.realnvp_sample", "params", "leaf ~ 1e300"): Acceptance("bounded scales: finite samples", _realnvp_check("sample")),
    ("flows.chain.planar_chain_forward", "*", "*1e*"): Acceptance("planar layers are finite at any finite input", _planar_chain_check("forward")),
    ("flows.chain.planar_chain_inverse", "*", "*1e*"): Acceptance("the root solves converge at any finite input (checked by the forward map)",
                                                                  _planar_chain_check("inverse")),
    ("flows.chain.planar_chain_logpdf", "*", "*1e*"): Acceptance("log p0(x_0) representable", _planar_chain_check("logpdf")),
    ("flows.chain.planar_chain_sample", "params", "leaf ~ 1e300"): Acceptance("finite samples", _planar_chain_check("sample")),
    ("flows.coupling.coupling_scale", "*", "*1e*"): Acceptance("|s| < 2: finite at any finite input", _coupling_check("scale")),
    ("flows.coupling.coupling_translation", "*", "*1e*"): Acceptance("tanh hidden layers: finite", _coupling_check("translation")),
    ("flows.coupling.coupling_log_det", "*", "*1e*"): Acceptance("|log det| < 2 (d - d')", _coupling_check("log_det")),
    ("flows.coupling.coupling_forward", "*", "*1e*"): Acceptance("x2 e^s + t with |s| < 2: finite", _coupling_check("forward")),
    ("flows.coupling.coupling_inverse", "*", "*1e*"): Acceptance("(y2 - t) e^-s with |s| < 2: finite", _coupling_check("inverse")),
    ("flows.planar.planar_constrain", "params", "leaf ~ 1e300"): Acceptance("a_hat = a + (m(a^T b) - a^T b) b / |b|^2", _planar_check("constrain")),
    ("flows.planar.planar_is_invertible", "params", "leaf ~ 1e300"): Acceptance("a^T b > -1", _planar_check("invertible")),
    ("flows.planar.planar_forward", "*", "*1e*"): Acceptance("x + tanh(s) a: finite", _planar_check("forward")),
    ("flows.planar.planar_log_det", "*", "*1e*"): Acceptance("log |1 + tanh'(s) a^T b|: finite", _planar_check("log_det")),
    ("flows.planar.planar_inverse", "*", "*1e*"): Acceptance("the root solve converges (checked by the forward map)", _planar_check("inverse")),
    ("flows.planar.planar_collision", "params", "leaf ~ 1e300"): Acceptance("p +- tau* a with tau* = 1 when a^T b << -1",
                                                                            _planar_check("collision")),
    # metrics: scale-free, computed on points scaled by a power of two
    ("metrics.energy_distance", "x", "|x| ~ *"): Acceptance("E(c x, c y) = c E(x, y): computed at scale", _metric("energy")("x")),
    ("metrics.energy_distance", "y", "|x| ~ *"): Acceptance("E(c x, c y) = c E(x, y): computed at scale", _metric("energy")("y")),
    ("metrics.median_bandwidth", "x", "|x| ~ *"): Acceptance("the median distance, computed at scale", _metric("median")("x")),
    ("metrics.median_bandwidth", "y", "|x| ~ *"): Acceptance("the median distance, computed at scale", _metric("median")("y")),
    ("metrics.gaussian_kernel", "x", "|x| ~ *"): Acceptance("k = exp(-|x - y|^2 / 2h^2) underflows to 0, as it should", _metric("kernel")("x")),
    ("metrics.gaussian_kernel", "y", "|x| ~ *"): Acceptance("k = exp(-|x - y|^2 / 2h^2) underflows to 0, as it should", _metric("kernel")("y")),
    ("metrics.gaussian_kernel", "bandwidth", "tiny"): Acceptance(
        "h = 1e-300: k = 1 where points coincide, 0 elsewhere",
        lambda r, v, c: R.close(r, (R.distances(X, Y) == 0).astype(float), atol=1e-300)),
    ("metrics.mmd2", "x", "|x| ~ *"): Acceptance("the kernel terms underflow to 0, as they should", _metric("mmd")("x")),
    ("metrics.mmd2", "y", "|x| ~ *"): Acceptance("the kernel terms underflow to 0, as they should", _metric("mmd")("y")),
    ("metrics.mmd2(bandwidth=None)", "x", "|x| ~ *"): Acceptance("scale-free with the median bandwidth", _metric("mmd-median")("x")),
    ("metrics.mmd2(bandwidth=None)", "y", "|x| ~ *"): Acceptance("scale-free with the median bandwidth", _metric("mmd-median")("y")),
    # nn: saturating activations; far inputs and large weights give what the network's formula gives
    ("nn.sigmoid", "h", "|v| ~ *"): Acceptance("sigmoid(h) -> 1 or -> 0 for large |h|, never overflowing",
                                               lambda r, v, c: R.close(r, 1 / (1 + np.exp(-R.ld(v))), atol=1e-300)),
    ("nn.silu", "h", "|v| ~ *"): Acceptance("silu(h) -> h or -> 0 for large |h|, never overflowing",
                                            lambda r, v, c: R.close(r, R.ld(v) / (1 + np.exp(-R.ld(v))), atol=1e-300)),
    ("nn.mlp_apply", "*", "*1e*"): Acceptance("the network's formula at any finite input", _mlp_check("mlp_apply")),
    ("nn.velocity_apply", "*", "*1e*"): Acceptance("the network's formula at any finite input", _mlp_check("velocity_apply")),
    ("engines.mlp.mlp_apply_flat", "h", "|x| ~ *"): Acceptance("the network's formula at any finite input", _mlp_check("flat")),
    ("engines.mlp.mlp_forward_flat", "h", "|x| ~ *"): Acceptance("the network's formula at any finite input", _mlp_check("flat")),
    ("engines.mlp.mlp_*_flat", "theta", "|v| ~ 1e154"): Acceptance(
        "one weight of 1e154: the network's formula (the tanh-free SiLU grows linearly)",
        lambda r, v, c: R.close(r, R.mlp(nn.mlp_unflatten(v, nn.mlp_flatten(VPARAMS)[1]), H, "silu"))),
    ("engines.mlp.velocity_and_divergence_flat", "x", "|x| ~ *"): Acceptance("the network and its divergence at any finite input",
                                                                    _mlp_check("v-div")),
    ("engines.mlp.VelocityNetwork.__call__", "x", "|x| ~ *"): Acceptance("the network at any finite input", _mlp_check("v")),
    ("engines.mlp.VelocityNetwork.velocity_and_divergence", "x", "|x| ~ *"): Acceptance("the network and its divergence", _mlp_check("v-div")),
    ("engines.mlp.VelocityNetwork()", "params", "leaf ~ 1e300"): Acceptance("large weights are weights", lambda r, v, c: R.close(r.theta, nn.mlp_flatten(v)[0])),
    ("nn.mlp_flatten", "params", "leaf ~ 1e300"): Acceptance("flattening is exact", lambda r, v, c: R.close(r[0], np.concatenate(
        [np.concatenate([np.ravel(W), b]) for W, b in v]))),
    ("nn.mlp_unflatten", "theta", "|v| ~ *"): Acceptance("unflattening is exact", lambda r, v, c: R.close(r[0][0].ravel(), v[:r[0][0].size])),
    ("train.model_velocity", "params", "leaf ~ 1e300"): Acceptance("the network at large weights", lambda r, v, c: R.close(r, R.velocity(v, X, T))),
    ("train.model_velocity(fused=False)", "params", "leaf ~ 1e300"): Acceptance("the network at large weights",
                                                                                lambda r, v, c: R.close(r, R.velocity(v, X, T))),
    ("train.flatten_params", "params", "leaf ~ 1e300"): Acceptance("flattening is exact", lambda r, v, c: R.close(r[1][0]["s"][0][0], v[0]["s"][0][0])),
    ("train.train_mle", "params", "leaf ~ 1e300"): Acceptance("training starts from any finite parameters",
                                                             _first_loss(chain.realnvp_logpdf, 4)),
    ("train.train_realnvp(params=...)", "params", "leaf ~ 1e300"): Acceptance("training starts from any finite parameters",
                                                                              _first_loss(chain.realnvp_logpdf, 256)),
    ("train.cfm_batch", "data", "|x| ~ *"): Acceptance(
        "far data resampled, paired by OT and interpolated: x = (1 - t) x0 + t x1 (checked, and the pairing against every "
        "permutation)", lambda r, v, c: _cfm_batch_check(r, v)),
    # ode: the battery's field at |x| >= 1e154 is dx/dt = -x t / 5 to 1e-150: x(t1) = x(t0) exp(-(t1^2 - t0^2) / 10)
    ("ode.rk_step", "x", "|x| ~ *"): Acceptance("an RK4 step on a linear ODE (error ~1e-8)",
                                               lambda r, v, c: R.ode_decay(0.3, 0.4, 1e-7)(r[0], v, c)),
    ("ode.integrate", "x0", "|x| ~ *"): Acceptance("3 RK4 steps on a linear ODE (error ~1e-4)", R.ode_decay(0.0, 1.0, 1e-3)),
    ("ode.integrate_adaptive", "x0", "|x| ~ *"): Acceptance("Dormand-Prince at rtol 1e-3 on a linear ODE", R.ode_decay(0.0, 1.0, 1e-2)),
    ("ode.flow", "x", "|x| ~ *"): Acceptance("the flow of a linear ODE", R.ode_decay(0.0, TV, 1e-3)),
    ("ode.flow_inverse", "y", "|x| ~ *"): Acceptance("the inverse flow of a linear ODE", R.ode_decay(0.7, 0.0, 1e-3)),
    ("ode.push_samples", "x0", "|x| ~ *"): Acceptance(
        "the flow of a linear ODE at each time",
        lambda r, v, c: R.ode_decay(0.0, 0.2, 1e-3)(r[0], v, c) and R.ode_decay(0.0, 0.5, 1e-3)(r[1], v, c)),
    ("ode.AdaptiveResult()", "x", "|x| ~ *"): Acceptance("a record of a far solution", lambda r, v, c: R.close(r.x, v)),
    ("ode.initial_step", "x0", "|x| ~ *"): Acceptance("the tolerances scale with |x0|: an ordinary first step",
                                                      _initial_step_check(1e-3, 1e-6)),
    ("ode.initial_step(rtol = 0)", "x0", "|x| ~ *"): Acceptance("an ordinary first step", _initial_step_check(0.0, 1e-6)),
    ("ode.initial_step(rtol = 0)", "atol", "tiny with rtol = 0"): Acceptance(
        "the weighted norms overflow float64 and are taken in logs: the same first step", _initial_step_check(0.0, None, x0=X)),
    # oracles
    ("oracles.EmpiricalOracle()", "data", "|x| ~ *"): Acceptance("far data are data", lambda r, v, c: R.close(r.data, v)),
    ("oracles.gaussian_flow_map", "*", "|*| ~ *"): Acceptance(AFFINE, R.affine),
    # ot: the pairing is scale-free, computed on points scaled by a power of two
    ("ot.ot_permutation", "x0", "|x| ~ *"): Acceptance("the pairing of minimal cost (every permutation tried)", _ot("x0")),
    ("ot.ot_permutation", "x1", "|x| ~ *"): Acceptance("the pairing of minimal cost (every permutation tried)", _ot("x1")),
    ("ot.ot_pair", "x0", "|x| ~ *"): Acceptance("the pairing of minimal cost (every permutation tried)", _ot("x0")),
    ("ot.ot_pair", "x1", "|x| ~ *"): Acceptance("the pairing of minimal cost (every permutation tried)", _ot("x1")),
    # paths: means, flows and velocities are affine in x, eps and z
    ("paths.*.mean", "z", "|x*| ~ *"): Acceptance(AFFINE, R.affine),
    ("paths.*.flow", "*", "|x*| ~ *"): Acceptance(AFFINE, R.affine),
    ("paths.*.sample_x", "z", "|x*| ~ *"): Acceptance(AFFINE, R.affine),
    ("paths.*.sample_z", "data", "|x| ~ *"): Acceptance(AFFINE, R.affine),
    ("paths.*.split_z", "z", "|x*| ~ *"): Acceptance(AFFINE, R.affine),
    ("paths.*.velocity", "*", "|x*| ~ *"): Acceptance(AFFINE, R.affine),
    ("paths.linear_interpolation_velocity", "*", "|x| ~ *"): Acceptance(AFFINE, R.affine),
    ("paths.conical_velocity", "*", "|x| ~ *"): Acceptance(AFFINE, R.affine),
    ("paths.gaussian_path_velocity", "std", "|v| ~ *"): Acceptance(
        "a wide Gaussian: the ratio sigma'/sigma is small", lambda r, v, c: R.close(r, _gpv_ref(std=v))),
    ("paths.gaussian_path_velocity", "std", "tiny"): Acceptance(
        "a large but finite ratio sigma'/sigma", lambda r, v, c: R.close(r, _gpv_ref(std=np.full(N, v)))),
    ("paths.gaussian_path_velocity", "*", "|v| ~ *"): Acceptance(AFFINE + " (x, mean, dmean, dstd)", R.affine),
    ("paths.gaussian_logpdf", "std", "|v| ~ *"): Acceptance(
        "a wide Gaussian's log-density", lambda r, v, c: R.close(r, R.gauss_logpdf(X, X1, R.ld(v)))),
    # plot: drawing far points draws them
    ("plot.samples", "x", "|x| ~ *"): Acceptance("drawing far points", lambda r, v, c: R.close(AX.collections[-1].get_offsets(), v)),
    ("plot.trajectories", "path", "|v| ~ *"): Acceptance("drawing far trajectories", lambda r, v, c: R.close(AX.lines[-1].get_xydata(), v[:, 1])),
    ("plot.time_space_image", "values", "|v| ~ *"): Acceptance("an image of large values", lambda r, v, c: R.close(r.get_array(), v)),
}
ACCEPT.update(_marginal_entries())


def _failed_report(raised):
    """The checker's verdict on an implementation that raises (the report names the exception) or returns garbage."""
    def check(result, value, call_with):
        return not result.passed and bool(result.message) and ("Boom" in result.message if raised else True)
    return check


def _stored(attr):
    return lambda r, v, c: getattr(r, attr) is v


def _calls_through(result, value, call_with):
    """A wrapper that did not call the callable: calling the wrapper does (its exception propagates)."""
    try:
        result(X, T)
    except Boom:
        return True
    return False


JUDGED = ("a checker judges the implementation it is given: one that raises or returns something wrong gets a failed "
          "report saying so (the assert_ twin raises AssertionError with it)")
ACCEPT.update({
    ("testing.check_*", "*", "raises"): Acceptance(JUDGED, _failed_report(raised=True)),
    ("testing.assert_*", "*", "raises"): Acceptance(JUDGED, _failed_report(raised=True)),
    ("testing.check_*", "*", "returns *"): Acceptance(JUDGED, _failed_report(raised=False)),
    ("testing.assert_*", "*", "returns *"): Acceptance(JUDGED, _failed_report(raised=False)),
    ("testing.*", "precision", "upper case"): Acceptance(
        "precision names are read without regard to case (parse_precision's docstring): FLOAT64 is float64",
        lambda r, v, c: r.passed),
    ("testing.*_conditional_path", "t", "None"): Acceptance("t = None: the default interior times", lambda r, v, c: r.passed),
    ("testing.*_marginal_velocity", "data", "None"): Acceptance("data = None: the default data sets", lambda r, v, c: r.passed),
    ("testing.OdeProblem()", "x0", "|x| ~ *"): Acceptance("an initial value far out is an initial value",
                                                          lambda r, v, c: np.array_equal(r.x0, v)),
    ("testing.OdeProblem()", "u", "raises"): Acceptance("a problem stores its field; the solver under check calls it",
                                                        _stored("u")),
    ("testing.OdeProblem()", "*exact", "raises"): Acceptance("a problem stores its solution; the checker calls it",
                                                             lambda r, v, c: v in (r.exact, r.reversed_exact, r.frozen_exact)),
    ("testing.from_*", "fn", "raises"): Acceptance("wrapping does not call fn: the wrapper does", _calls_through),
    ("testing.to_*", "fn", "raises"): Acceptance("wrapping does not call fn: the wrapper does", _calls_through),
    ("testing.torch_native", "fn", "raises"): Acceptance("marking does not call fn", lambda r, v, c: r is v),
    ("testing.jax_native", "fn", "raises"): Acceptance("marking does not call fn", lambda r, v, c: r is v),
    ("testing.is_*_native", "fn", "*"): Acceptance("the predicate answers False for anything that was not marked",
                                                   lambda r, v, c: r is False),
    ("fixtures.Fixture()", "make", "raises"): Acceptance("a fixture stores how its inputs are drawn; write_fixtures calls it",
                                                         _stored("make")),
    ("fixtures.Fixture()", "compute", "raises"): Acceptance("a fixture stores its formula; write_fixtures calls it",
                                                            _stored("compute")),
    ("fixtures.verify_fixtures", "directory", "a missing folder"): Acceptance(
        "a missing folder is a failed check, reported as rows (what --check prints), not an exception",
        lambda r, v, c: bool(r) and not any(row[2] for row in r) and "has no index.json" in r[0][3]),
})
for _label, _path in PATH_OBJECTS:
    ACCEPT[(f"paths.{_label}.logpdf", "z", "|x*| ~ 1e154")] = Acceptance(
        "|x - mu_t(z)|^2 / sigma_t^2 ~ 1e307 is representable", _path_logpdf_ref(_path))


# --------------------------------------------------------------------------------------
# The tests.
# --------------------------------------------------------------------------------------


def _all_cases():
    out, not_probed = [], {}
    for module, cases_of in MODULES.items():
        cases, skipped = cases_of()
        short = module.removeprefix("reference.")
        not_probed[module] = skipped
        for case in cases:
            case.name = f"{short}.{case.name}"
            out.append(case)
    return out, not_probed


CASES, NOT_PROBED = _all_cases()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_bad_input_gets_a_clear_error_or_a_documented_acceptance(case):
    problem = positive_control(case)
    assert problem is None, f"{case.name}: {problem}"
    n, failures, _ = run_case(case, ACCEPT)
    assert not failures, f"{len(failures)} of {n} probes failed:\n" + "\n".join(failures)


def _public_methods(cls):
    """The public methods a class adds to the package (not those of object, tuple or Exception)."""
    names = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("reference"):
            continue
        for name, member in vars(klass).items():
            if not name.startswith("_") and inspect.isfunction(member):
                names.add(name)
    return names


@pytest.mark.parametrize("module", list(MODULES))
def test_the_table_covers_every_public_name_of_the_module(module):
    mod = importlib.import_module(module)
    short = module.removeprefix("reference.")
    names = [c.name.removeprefix(short + ".") for c in CASES if c.name.startswith(short + ".")]
    missing = []
    for attr in mod.__all__:
        obj = getattr(mod, attr)
        if attr in NOT_PROBED[module]:
            reason = NOT_PROBED[module][attr]
            missing_framework = reason.startswith("needs ") and importlib.util.find_spec(reason.split()[1].rstrip(",")) is None
            assert missing_framework or not (callable(obj) and inspect.isfunction(obj)), \
                f"{module}.{attr} is a function: it must be probed"
            continue
        if not any(n == attr or n.startswith((attr + "(", attr + ".")) for n in names):
            missing.append(attr)
        if inspect.isclass(obj):
            for method in _public_methods(obj):
                pattern = re.compile(rf"^{re.escape(attr)}(\([^)]*\))?\.{method}\b")
                subclasses = [a for a in mod.__all__ if inspect.isclass(getattr(mod, a)) and issubclass(getattr(mod, a), obj)]
                if not any(pattern.match(n) or any(n.startswith(f"{sub}.{method}") or n.startswith(f"{sub}(")
                                                   and f").{method}" in n for sub in subclasses) for n in names):
                    missing.append(f"{attr}.{method}")
    assert not missing, f"{module}: no case probes {missing} (add a Case, or list a non-callable in the module's entry)"
    stale = [n for n in NOT_PROBED[module] if n not in mod.__all__]
    assert not stale, f"{module}: the table lists {stale}, which are not in __all__"


def count_probes():
    return sum(sum(1 for _ in case.probes()) for case in CASES)


def test_the_battery_counts_its_probes():
    n = count_probes()
    per_module = {}
    for case in CASES:
        key = case.name.split(".")[0] if not case.name.startswith("flows.") else ".".join(case.name.split(".")[:2])
        per_module[key] = per_module.get(key, 0) + sum(1 for _ in case.probes())
    print(f"\nbad-input battery: {n} probes over {len(CASES)} cases: " + ", ".join(f"{k} {v}" for k, v in per_module.items()))
    assert n >= 8000, f"the battery shrank to {n} probes"
    # the checkers (with their assert_ twins, reports and, where installed, adapters) and the fixtures' files
    assert per_module["testing"] >= 1300 and per_module["fixtures"] >= 100, per_module
    assert len(ACCEPT) > 0 and all(isinstance(a, Acceptance) and a.reason for a in ACCEPT.values())


# -- negative controls: the same battery on functions that do not validate ------------------


def unvalidated_velocity(x, t):
    """u(x, t) = -x t with no checks at all: NumPy broadcasting and NaN propagation decide what happens."""
    return -np.asarray(x) * np.reshape(t, (-1, 1))


def misnamed_inverse(u, y, t):
    """Validates, but names the wrong argument (as flow_inverse once did: 'x0' for y)."""
    from reference._validate import as_points, check_callable, check_finite_number
    check_callable(u, "u")
    check_finite_number(t, "t")
    y = as_points(y, "x0")
    return y - t * u(y, t)


def test_the_battery_fails_a_function_that_does_not_validate():
    control = Case("negative control: unvalidated_velocity", unvalidated_velocity,
                   dict(x=Points(X, d_free=True), t=Time(T, n=N, unit=False)))
    assert positive_control(control) is None
    n, failures, _ = run_case(control, ACCEPT)
    print(f"\nnegative control: the battery fails {len(failures)} of {n} probes of an unvalidated function, e.g.\n  "
          + "\n  ".join(failures[:5]))
    # every probe but the few NumPy refuses with a message that happens to name nothing wrong must fail
    assert len(failures) >= 0.8 * n, (len(failures), n)


def test_the_battery_fails_a_message_that_names_the_wrong_argument():
    control = Case("negative control: misnamed_inverse", misnamed_inverse,
                   dict(u=Func(lambda y, t: -y), y=Points(X, d_free=True, extreme=False), t=Real(0.5)))
    n, failures, _ = run_case(control, ACCEPT)
    misnamed = [f for f in failures if "(y = " in f and "does not name y" in f]
    assert len(misnamed) >= 10, failures  # every bad y is refused, but as "x0"
    assert not [f for f in failures if "(t = " in f], "t is named right: its probes must pass"


def test_a_documented_acceptance_whose_result_is_wrong_is_reported():
    # max(x, 1) is not affine: the affine check of a far point must reject it
    control = Case("negative control: not affine", lambda x: np.maximum(x, 1.0), dict(x=Points(X, d_free=True)))
    accept = {("negative control: not affine", "x", "|x| ~ *"): Acceptance("claimed affine", ref.affine)}
    n, failures, skipped = run_case(control, accept)
    wrong = [f for f in failures if "|x| ~ 1e" in f]
    assert len(wrong) + skipped == 2 and all("the result is wrong" in f for f in wrong), failures

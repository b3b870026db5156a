"""Claims of the verification tools: the black-box checkers confirm the reference and name the usual mistakes."""

from pathlib import Path

import numpy as onp

from figures.claims import Claim
from reference.cnf import cnf_logpdf
from reference.distributions import dataset_mixture, standard_normal_logpdf
from reference.flows.coupling import coupling_forward, coupling_init, coupling_inverse
from reference.marginal import marginal_velocity
from reference.ode import integrate
from reference.oracles import GaussianMixtureOracle
from reference.ot import ot_pair, ot_permutation
from reference.paths import ConicalGaussianPath
from reference.testing import (
    check_bijection,
    check_conditional_path,
    check_divergence_estimator,
    check_log_likelihood,
    check_marginal_velocity,
    check_ode_solver,
    check_ot_pairing,
    check_velocity_field,
)
from reference.testing.solvers import ORDER_TOL

GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "golden"


def check_coupling_log_det_black_box(quick):
    rng = onp.random.default_rng(0)
    worst = 0.0
    for d, d_split in ((2, 1), (4, 2)) if quick else ((2, 1), (3, 1), (4, 2), (5, 3)):
        params = coupling_init(d, d_split, (16,), rng)
        report = check_bijection(lambda x, p=params: coupling_forward(p, x), lambda y, p=params: coupling_inverse(p, y),
                                 rng.standard_normal((8, d)))
        worst = max(worst, report.figures["forward_log_det_error_over_tol"], 0.0 if report else float("inf"))
    return Claim("RealNVP, eq. (3); eq. (2)", "the coupling log-det sum(s) is log|det J| of a finite-difference Jacobian",
                 "max |log_det - slogdet(J_fd)| / tolerance", worst, 1.0,
                 note="tolerance: 10 x Richardson error estimate propagated through tr(J^-1 dJ), plus sqrt(eps)")


def check_integrator_orders_black_box(quick):
    methods = (("euler", 1), ("rk4", 4)) if quick else (("euler", 1), ("midpoint", 2), ("rk4", 4), ("rk38", 4),
                                                        ("dopri5", 5))
    worst = 0.0
    for method, order in methods:
        report = check_ode_solver(lambda u, x0, t0, t1, n, m=method: integrate(u, x0, t0, t1, n, method=m), order)
        worst = max([worst] + [v for k, v in report.figures.items() if k.startswith("order_")])
    return Claim("eq. (4)", "black-box order check: each integrator shows its order, forwards and backwards",
                 "max |observed order - claimed| over methods x 3 problems x 2 directions", worst, ORDER_TOL,
                 note="a linear system, a forced (non-autonomous) one and a Riccati equation, steps doubled 3 times")


def check_marginal_velocity_black_box(quick):
    report = check_marginal_velocity(lambda x, t, data: marginal_velocity(ConicalGaussianPath(), x, t, data))
    return Claim("Theorem 1, eq. (9), (10)", "eq. (10) over the data set is the exact marginal field of the data",
                 "max |u_ref - u_exact| / (sqrt(eps)(1 + |u|)), points near and 25 away from the data",
                 report.figures["error_over_tol"], 1.0)


def _catalogue(quick):
    """Broken implementations and the name the checker must give each."""
    rng = onp.random.default_rng(1)
    x0, x1 = rng.standard_normal((6, 2)), rng.standard_normal((6, 2)) + 2.0
    params = coupling_init(4, 2, (16,), rng)
    oracle = GaussianMixtureOracle(dataset_mixture("8gaussians"))

    def conical_text_sign(a, b, t):  # Example 2's text: u = (x - x1) / (1 - t)
        x_t = t[:, None] * b + (1 - t)[:, None] * a
        return x_t, (x_t - b) / (1 - t)[:, None]

    def heun(u, x, t0, t1, n):  # second order, claimed fourth below
        h = (t1 - t0) / n
        for k in range(n):
            t = t0 + k * h
            k1 = u(x, t)
            x = x + h / 2 * (k1 + u(x + h * k1, t + h))
        return x

    def reversed_clock(u, x, t0, t1, n):
        return integrate(lambda y, s: u(y, t0 + t1 - s), x, t0, t1, n, method="rk4")

    def unnormalised(x, t, data):
        var = (1 - t) ** 2
        n_i = onp.exp(-((x[:, None] - t[:, None, None] * data[None]) ** 2).sum(-1) / (2 * var[:, None])) / (2 * onp.pi * var[:, None])
        return onp.einsum("nj,njd->nd", n_i / len(data), (data[None] - x[:, None]) / (1 - t)[:, None, None])

    def with_replacement(a, b):
        i = onp.random.default_rng(0).integers(0, len(a), len(a))
        pa, pb = ot_pair(a, b)
        return pa[i], pb[i]

    from reference.autodiff import hutchinson_divergence

    def divergence_added(u, x):  # log p0(x(0)) + int div u instead of minus
        log_p, z0 = cnf_logpdf(u, x, n_steps=50, return_x0=True)
        return 2 * standard_normal_logpdf(z0) - log_p

    cases = [
        (lambda: check_bijection(lambda x: (coupling_forward(params, x)[0], -coupling_forward(params, x)[1]),
                                 lambda y: coupling_inverse(params, y), rng.standard_normal((6, 4))),
         "log-det sign flipped"),
        (lambda: check_conditional_path(conical_text_sign, x0, x1), "velocity sign flipped"),
        (lambda: check_conditional_path(lambda a, b, t: (t[:, None] * a + (1 - t)[:, None] * b, a - b), x0, x1),
         "reversed time convention"),
        (lambda: check_ode_solver(heun, 4), "order 2, not 4"),
        (lambda: check_ot_pairing(lambda a, b: (a, b[onp.argsort(ot_permutation(a, b))])), "inverse permutation"),
        (lambda: check_ot_pairing(with_replacement), "pairs drawn with replacement"),
        (lambda: check_velocity_field(lambda x, t: -oracle.velocity(x, 1 - t), "8gaussians", n=1000),
         "reversed time convention"),
    ]
    if not quick:
        cases += [
            (lambda: check_ode_solver(reversed_clock, 4), "time runs the wrong way"),
            (lambda: check_divergence_estimator(lambda u, x, t, r: -hutchinson_divergence(u, x, t, r), n_repeats=500),
             "sign flipped"),
            (lambda: check_marginal_velocity(unnormalised), "weights not normalised"),
            (lambda: check_log_likelihood(divergence_added, n=4), "divergence sign flipped"),
        ]
    return cases


def check_mistakes_are_named(quick):
    cases = _catalogue(quick)
    named = 0
    missed = []
    for run, label in cases:
        with onp.errstate(all="ignore"):
            report = run()
        if not report.passed and report.diagnosis and label in report.diagnosis:
            named += 1
        else:
            missed.append(label)
    return Claim("all sections (verification)", "negative control: each broken implementation is rejected and named",
                 "fraction of the catalogue rejected with the right diagnosis", named / len(cases), 1.0, op=">=",
                 note=f"{len(cases)} cases" + (f"; missed: {missed}" if missed else ""))


def check_golden_fixtures_reproduce(quick):
    from reference.fixtures import verify_fixtures

    rows = verify_fixtures(GOLDEN)
    worst = max(r.ratio for r in rows)
    return Claim("all sections (golden fixtures)", "the reference reproduces every committed fixture",
                 "max over outputs of |recomputed - stored| / (atol + rtol |stored|)", worst, 1.0,
                 note=f"{len(rows)} outputs of {len({r[0] for r in rows})} formulas in tests/golden")


CHECKS = [
    check_coupling_log_det_black_box,
    check_integrator_orders_black_box,
    check_marginal_velocity_black_box,
    check_mistakes_are_named,
    check_golden_fixtures_reproduce,
]

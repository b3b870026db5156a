"""Claims of the verification tools: the black-box checkers confirm the reference and name the usual mistakes."""

from pathlib import Path

import numpy as onp

from figures.claims import Claim
from reference.flows.coupling import coupling_forward, coupling_init, coupling_inverse
from reference.marginal import marginal_velocity
from reference.ode import integrate
from reference.paths import ConicalGaussianPath
from reference.testing import check_bijection, check_marginal_velocity, check_ode_solver
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
                 "max |observed order - claimed| over methods x 4 problems x 2 directions (where measured)", worst,
                 ORDER_TOL, note="linear systems in d = 2 and 5, a forced (non-autonomous) one in d = 3, a Riccati "
                                 "equation in d = 1; orders fitted on the finest doubling above round-off")


def check_marginal_velocity_black_box(quick):
    report = check_marginal_velocity(lambda x, t, data: marginal_velocity(ConicalGaussianPath(), x, t, data))
    return Claim("Theorem 1, eq. (9), (10)", "eq. (10) over the data set is the exact marginal field of the data",
                 "max |u_ref - u_exact| / (sqrt(eps)(1 + |u|)), points near and 25 away from the data, 12 and "
                 "5000 data points in d = 1, 2, 3, 5", report.figures["error_over_tol"] if report else float("inf"),
                 1.0)


def _catalogue(quick, correct):
    """The NumPy catalogue's correct (or broken) cases; in quick mode one per checker (the least precise correct one)."""
    from reference.testing._catalogue import CATALOGUE

    cases = [c for c in CATALOGUE if (c.expected is None) == correct]
    if quick:
        by_checker = {}
        for c in cases:
            by_checker.setdefault(c.checker, []).append(c)
        rank = {"float64": 0, "float32": 1, "float16": 2}
        cases = [max(group, key=lambda c: rank.get(c.precision, 3)) if correct else group[0]
                 for group in by_checker.values()]
    return cases


def check_mistakes_are_named(quick):
    cases = _catalogue(quick, correct=False)
    missed = []
    for case in cases:
        with onp.errstate(all="ignore"):
            report = case.run()
        names = frozenset(report.diagnosis.split("; ")) if report.diagnosis else frozenset()
        if report.passed or names != case.expected:
            missed.append(case.title)
    classes = sorted({c.kind for c in cases})
    return Claim("all sections (verification)", "negative control: each broken implementation of the catalogue is "
                 "rejected and given exactly its names (side effects, state, dimension, size, boundary, convention, "
                 "formula)", "fraction of the broken cases rejected with exactly the catalogue's diagnoses",
                 (len(cases) - len(missed)) / len(cases), 1.0, op=">=",
                 note=f"{len(cases)} cases of {len({c.checker for c in cases})} checkers; classes: {', '.join(classes)}"
                      + (f"; missed: {missed}" if missed else ""))


def check_correct_code_is_accepted_in_every_precision(quick):
    cases = _catalogue(quick, correct=True)
    rejected, covered = [], set()
    for case in cases:
        with onp.errstate(all="ignore"):
            report = case.run()
        if not report.passed:
            rejected.append(case.title)
        covered.update(item for item in report.coverage if item.startswith(("d = ", "precision")))
    precisions = sorted({c.precision for c in cases})
    return Claim("all sections (verification)", "correct implementations are accepted in the precision they compute "
                 "in, with the default probes in d = 1, 2, 3, 5", "fraction of the correct cases accepted",
                 (len(cases) - len(rejected)) / len(cases), 1.0, op=">=",
                 note=f"{len(cases)} cases in {', '.join(precisions)} (PyTorch float16/bfloat16 and JAX in tests/interop)"
                      + (f"; rejected: {rejected}" if rejected else ""))


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
    check_correct_code_is_accepted_in_every_precision,
    check_golden_fixtures_reproduce,
]

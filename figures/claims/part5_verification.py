"""The project's checks of its verification tools: the black-box checkers confirm the reference and name the usual
mistakes; the golden fixtures are reproduced, and a changed output is caught."""

import shutil
import tempfile
from pathlib import Path

import numpy as onp

from figures.claims import Claim, project
from reference.flows.coupling import coupling_forward, coupling_init, coupling_inverse
from reference.marginal import marginal_velocity
from reference.ode import integrate
from reference.paths import ConicalGaussianPath
from reference.testing import check_bijection, check_marginal_velocity, check_ode_solver
from reference.testing.solvers import ORDER_TOL

GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "golden"


@project
def check_coupling_log_det_black_box(quick):
    rng = onp.random.default_rng(0)
    worst = 0.0
    for d, d_split in ((2, 1), (4, 2)) if quick else ((2, 1), (3, 1), (4, 2), (5, 3)):
        params = coupling_init(d, d_split, (16,), rng)
        report = check_bijection(lambda x, p=params: coupling_forward(p, x), lambda y, p=params: coupling_inverse(p, y),
                                 rng.standard_normal((8, d)))
        worst = max(worst, report.figures["forward_log_det_error_over_tol"], 0.0 if report else float("inf"))
    return Claim("checkers", "check_bijection accepts the coupling layer",
                 "max |log_det - slogdet(J_fd)| / tolerance (and the report passes)", worst, 1.0,
                 note="J_fd by finite differences; tolerance: 10 x Richardson error estimate propagated through "
                      "tr(J^-1 dJ), plus sqrt(eps)")


@project
def check_integrator_orders_black_box(quick):
    methods = (("euler", 1), ("rk4", 4)) if quick else (("euler", 1), ("midpoint", 2), ("rk4", 4), ("rk38", 4),
                                                        ("dopri5", 5))
    worst = 0.0
    for method, order in methods:
        report = check_ode_solver(lambda u, x0, t0, t1, n, m=method: integrate(u, x0, t0, t1, n, method=m), order)
        worst = max([worst] + [v for k, v in report.figures.items() if k.startswith("order_")])
    return Claim("checkers", "check_ode_solver sees each method's order",
                 "max |observed order - claimed| over methods x 4 problems x 2 directions (where measured)", worst,
                 ORDER_TOL, note="linear systems in d = 2 and 5, a forced (non-autonomous) one in d = 3, a Riccati "
                                 "equation in d = 1; orders fitted on the finest doubling above round-off")


@project
def check_marginal_velocity_black_box(quick):
    report = check_marginal_velocity(lambda x, t, data: marginal_velocity(ConicalGaussianPath(), x, t, data))
    return Claim("checkers", "check_marginal_velocity accepts eq. (10)",
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


def _checkers():
    import reference.testing as testing

    return sorted(name for name in testing.__all__ if name.startswith("check_"))


@project
def check_mistakes_are_named(quick):
    cases = _catalogue(quick, correct=False)
    missed = []
    for case in cases:
        with onp.errstate(all="ignore"):
            report = case.run()
        names = frozenset(report.diagnosis.split("; ")) if report.diagnosis else frozenset()
        if report.passed or names != case.expected:
            missed.append(case.title)
    covered = {c.checker for c in cases}
    uncovered = [name for name in _checkers() if name not in covered]
    classes = sorted({c.kind for c in cases})
    return Claim("checkers", "broken code rejected, with its names",
                 "count of the catalogue's broken cases rejected with exactly the catalogue's diagnoses",
                 len(cases) - len(missed), len(cases), op=">=",
                 note=f"fails if any broken case passes or is given other names; {len(cases)} cases"
                      f"{' (one per checker in quick mode)' if quick else ''} covering {len(covered)} of the "
                      f"{len(_checkers())} checkers; classes: {', '.join(classes)}"
                      + (f"; checkers without a broken case: {uncovered}" if uncovered else "")
                      + (f"; missed: {missed}" if missed else ""))


@project
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
    return Claim("checkers", "correct implementations accepted",
                 "count of the catalogue's correct cases accepted, each in the precision it computes in",
                 len(cases) - len(rejected), len(cases), op=">=",
                 note=f"fails if any correct case is rejected; {len(cases)} cases in {', '.join(precisions)} "
                      "(PyTorch float16/bfloat16 and JAX in tests/interop)"
                      + (f"; rejected: {rejected}" if rejected else ""))


@project
def check_golden_fixtures_reproduce(quick):
    from reference.fixtures import verify_fixtures

    rows = verify_fixtures(GOLDEN)
    worst = max(r.ratio for r in rows)
    return Claim("golden fixtures", "the reference reproduces every fixture",
                 "max over outputs of |recomputed - stored| / (atol + rtol |stored|)", worst, 1.0,
                 note=f"{len(rows)} outputs of {len({r[0] for r in rows})} formulas in tests/golden; a regression "
                      "check: the stored outputs were written by the reference")


def _perturbed_fixture_ratios():
    """verify_fixtures on a copy of tests/golden whose every float output is moved by 3 (atol + rtol |v|)."""
    from reference.fixtures import FIXTURES, verify_fixtures

    tolerances = {fx.name: (fx.rtol, fx.atol) for fx in FIXTURES}
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "golden"
        shutil.copytree(GOLDEN, copy)
        moved = set()
        for name, (rtol, atol) in tolerances.items():
            with onp.load(copy / f"{name}.npz") as stored:
                arrays = {k: stored[k] for k in stored.files}
            for key, v in arrays.items():
                if key.startswith("out_") and v.dtype.kind == "f" and v.size:
                    arrays[key] = v + 3.0 * (atol + rtol * onp.abs(v))
                    moved.add((name, key[len("out_"):]))
            onp.savez(copy / f"{name}.npz", **arrays)
        rows = [r for r in verify_fixtures(copy) if (r.name, r.key) in moved]
        if len(rows) != len(moved):
            raise RuntimeError(f"{len(moved)} outputs moved, {len(rows)} compared")
    return min(r.ratio for r in rows), len(rows)


@project
def check_golden_fixtures_control(quick):
    ratio, n = _perturbed_fixture_ratios()
    return Claim("golden fixtures", "control: an output moved by 3 tol is caught",
                 "min over the moved outputs of |recomputed - stored| / (atol + rtol |stored|)", ratio, 1.0, op=">=",
                 note=f"{n} outputs moved by 3 (atol + rtol |v|) in a copy of tests/golden")


CHECKS = [
    check_coupling_log_det_black_box,
    check_integrator_orders_black_box,
    check_marginal_velocity_black_box,
    check_mistakes_are_named,
    check_correct_code_is_accepted_in_every_precision,
    check_golden_fixtures_reproduce,
    check_golden_fixtures_control,
]

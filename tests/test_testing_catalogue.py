"""The catalogue: every correct NumPy implementation is accepted, every broken one rejected with exactly its names.

``reference.testing._catalogue`` holds, per checker, implementations written the way
people write them (RealNVP layers, RK4 loops, CNF likelihoods, Hutchinson estimators,
OT pairings, marginal velocities) in float64, float32 and float16, and broken variants
modelled on mistakes from the field's code. A broken case must be rejected and its
diagnosis must be exactly the set of names in the catalogue: so each name is shown to be
given (to its case) and not given to any other mistake of the same checker (every other
case of that checker is judged with a different set). The PyTorch and JAX catalogues are
in ``tests/interop``.
"""

import collections

import numpy as np
import pytest

from reference.testing import CheckReport
from reference.testing._catalogue import CATALOGUE, cases_for

CHECKERS = ("check_bijection", "check_conditional_path", "check_ode_solver", "check_log_likelihood",
            "check_divergence_estimator", "check_ot_pairing", "check_marginal_velocity", "check_velocity_field")


def _names(report):
    return frozenset(report.diagnosis.split("; ")) if report.diagnosis else frozenset()


@pytest.mark.parametrize("case", CATALOGUE, ids=lambda c: f"{c.checker[6:]}: {c.title}")
def test_each_implementation_gets_its_verdict(case):
    with np.errstate(all="ignore"):
        report = case.run()
    assert isinstance(report, CheckReport) and report.name == case.checker
    if case.expected is None:
        assert report.passed, str(report)
        assert any(case.precision in item for item in report.coverage), report.coverage
    else:
        assert not report.passed, f"{case.title} was accepted:\n{report}"
        assert _names(report) == case.expected, f"named {sorted(_names(report))}, expected {sorted(case.expected)}" \
                                                f"\n{report}"


def test_the_catalogue_covers_every_checker_with_correct_code_in_three_precisions_and_several_mistakes():
    by_checker = collections.defaultdict(list)
    for case in CATALOGUE:
        by_checker[case.checker].append(case)
    assert set(by_checker) == set(CHECKERS)
    for checker, cases in by_checker.items():
        correct = {c.precision for c in cases if c.expected is None}
        assert {"float64", "float32"} <= correct, checker
        broken = [c for c in cases if c.expected is not None]
        assert len(broken) >= 2, checker
        if checker != "check_marginal_velocity":  # float16 cannot hold its log-weights near t = 1: bfloat16 in interop
            assert correct & {"float16", "bfloat16"}, checker


def test_within_a_checker_the_broken_cases_expect_different_diagnoses():
    # two cases with the same expected names would not show that the names tell them apart; a repeat is another
    # precision, or a variant that says what differs (a first-order method, a constant dropped)
    seen = collections.defaultdict(list)
    for case in CATALOGUE:
        if case.expected:
            seen[(case.checker, case.expected)].append((case.precision, case.variant))
    repeated = {key: kinds for key, kinds in seen.items() if len(kinds) != len(set(kinds))}
    assert not repeated, repeated
    variants = [c for c in CATALOGUE if c.variant]
    assert all(c.expected and any(o.expected == c.expected and not o.variant for o in cases_for(c.checker))
               for c in variants), "a variant repeats the names of a case of the catalogue"


def test_the_mistake_classes_of_the_issue_are_all_in_the_catalogue():
    kinds = {c.kind for c in CATALOGUE if c.expected is not None}
    assert {"side effects", "state", "dimension", "size", "boundary", "convention", "formula"} <= kinds
    named = {n for c in CATALOGUE for n in c.expected or ()}
    for name in ("writes into its input x0", "returns a view of its input x0", "inverse reuses the log-det of the "
                 "last forward call", "base log-density constant of d = 2 (-log(2 pi) for every d)",
                 "divergence sums only the first 2 diagonal terms", "cost on the first 2 coordinates only",
                 "weights normalised per chunk of the data", "takes n_steps - 1 steps", "velocity wrong only near t = 1"):
        assert name in named, name


def test_the_readme_lists_the_catalogue():
    from pathlib import Path

    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text()
    section = text[text.index("### What the checkers catch"):text.index("### Using it with PyTorch")]
    for case in CATALOGUE:
        if case.expected is not None:
            assert case.title.replace("|", "\\|") in section, case.title
            for name in case.expected:
                assert name in section, name

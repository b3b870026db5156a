"""The main job's claims table: every claim holds in quick mode, every claim holds at full size
(slow: the sizes and bounds of the README's table), and the table can fail."""

import math

import pytest

from figures.claims import Claim, format_table, run_claims


def test_every_claim_holds_in_quick_mode():
    results = run_claims(quick=True)
    assert results
    failed = [r for r in results if not r.passed]
    assert not failed, format_table(failed)


@pytest.mark.slow
def test_every_claim_holds_in_full_mode():
    # what `python -m figures` prints: the README's table, with its bounds
    results = run_claims(quick=False)
    assert results
    failed = [r for r in results if not r.passed]
    assert not failed, format_table(failed)


def test_a_failed_or_nan_claim_is_reported_as_failed():
    ok = Claim("eq. (2)", "c", "f", measured=1e-9, bound=1e-8)
    too_big = Claim("eq. (2)", "c", "f", measured=1e-7, bound=1e-8)
    nan = Claim("eq. (2)", "c", "f", measured=math.nan, bound=1e-8)
    control = Claim("eq. (5)", "c", "f", measured=0.01, bound=0.1, op=">=")
    assert ok.passed and not too_big.passed and not nan.passed and not control.passed
    assert "FAIL" in format_table([too_big]) and "pass" in format_table([ok])

"""The lecture's claims, each checked numerically by the ``reference`` package.

Every ``figures/claims/part*.py`` module holds a list ``CHECKS`` of functions
``check(quick) -> Claim``; ``run_claims`` runs them all, in file order, and
``format_table`` prints them as a table: the lecture's section, the claim, the
formula, the measured figure, the bound it must meet, and pass/fail.
"""

import importlib
import math
import pkgutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Claim", "run_claims", "format_table"]


@dataclass(frozen=True)
class Claim:
    """One claim of the lecture and how well the code meets it.

    Attributes:
        section: where the lecture states it (equation, theorem, figure or section).
        claim: the statement, in words.
        formula: the quantity measured, in plain text.
        measured: the measured figure (an error, a slope's distance to its target, ...).
        bound: the figure it must meet.
        op: ``"<="`` (an error below a tolerance) or ``">="`` (a negative control: a
            wrong input must be clearly detected).
        note: how the bound was derived, or what went wrong.
    """

    section: str
    claim: str
    formula: str
    measured: float
    bound: float
    op: str = "<="
    note: str = ""

    @property
    def passed(self):
        if not math.isfinite(self.measured):
            return False
        return self.measured <= self.bound if self.op == "<=" else self.measured >= self.bound


def _modules():
    here = Path(__file__).resolve().parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("part"))
    return [importlib.import_module(f"{__name__}.{n}") for n in names]


def run_claims(quick=False, progress=False):
    """Run every check; a check that raises becomes a failed claim that says why."""
    checks = [c for m in _modules() for c in m.CHECKS]
    results = []
    for i, check in enumerate(checks, 1):
        t0 = time.perf_counter()
        if progress:
            print(f"  [{i}/{len(checks)}] {check.__name__} ...", end=" ", file=sys.stderr, flush=True)
        try:
            result = check(quick)
        except Exception as err:  # a broken check is reported as a failed claim, not hidden
            result = Claim(section="?", claim=check.__name__, formula="(check raised)",
                           measured=math.nan, bound=math.nan,
                           note=f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=3)}")
        if progress:
            status = "pass" if result.passed else "FAIL"
            print(f"{status} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
        results.append(result)
    return results


def _fmt(v):
    if not math.isfinite(v):
        return str(v)
    return f"{v:.2e}" if (v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e3)) else f"{v:.3g}"


def format_table(results):
    """The claims as a Markdown table (bars inside cells, as in |x|, escaped as \\|)."""
    rows = [("section", "claim", "formula", "measured", "bound", "result")]
    for r in results:
        cells = (r.section, r.claim, r.formula, _fmt(r.measured), f"{r.op} {_fmt(r.bound)}",
                 "pass" if r.passed else "FAIL")
        rows.append(tuple(c.replace("|", "\\|") for c in cells))  # a bar inside a Markdown cell is escaped
    widths = [max(len(row[j]) for row in rows) for j in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    failures = [r for r in results if not r.passed and r.note]
    for r in failures:
        lines.append(f"\nFAIL {r.claim}: {r.note}")
    return "\n".join(lines)

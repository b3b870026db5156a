"""The lecture's claims and the project's own checks, each measured numerically by the ``reference`` package.

Every ``figures/claims/part*.py`` module holds a list ``CHECKS`` of functions
``check(quick) -> Claim``, each marked ``@lecture`` (a claim the lecture states, by
section, equation or theorem) or ``@project`` (a check of the project's own: integrator
orders, closed forms the lecture does not write, the black-box checkers, the golden
fixtures). ``run_claims`` runs them all, in file order; ``format_table`` prints two
Markdown tables, the lecture's claims first, then the project's checks: the section,
the claim, the measured figure, the bound it must meet and pass/fail, and with
``verbose=True`` also the formula measured and how the bound was set.

Rows with ``>=`` are negative controls: a wrong formula or an undertrained model that
the same measurement must reject, so that the row above it can fail.
"""

import dataclasses
import functools
import importlib
import math
import pkgutil
import sys
import textwrap
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Claim", "LECTURE", "PROJECT", "TABLES", "lecture", "project", "run_claims", "format_table", "summary"]

LECTURE, PROJECT = "lecture", "project"
TABLES = {LECTURE: "The lecture's claims", PROJECT: "The project's own checks"}
"""The two tables, in the order they are printed, and their headings."""

WIDTH = 100
"""Columns a row of the default table fits in (a claim longer than its column is wrapped)."""


@dataclass(frozen=True)
class Claim:
    """One claim (of the lecture, or of the project's own checks) and how well the code meets it.

    Attributes:
        section: where the lecture states it (equation, theorem, figure or section), or
            which part of the project it checks.
        claim: the statement, in words (short: it is a column of the default table).
        formula: the quantity measured, in plain text (shown with ``--verbose``).
        measured: the measured figure (an error, a slope's distance to its target, a count, ...).
        bound: the figure it must meet.
        op: ``"<="`` (an error below a tolerance) or ``">="`` (a negative control: a
            wrong input must be clearly detected; or a count that must be reached).
        note: how the bound was set, or what went wrong (shown with ``--verbose``, and
            always for a failed row).
        table: ``LECTURE`` or ``PROJECT`` (set by the ``@lecture``/``@project`` mark of the check).
    """

    section: str
    claim: str
    formula: str
    measured: float
    bound: float
    op: str = "<="
    note: str = ""
    table: str = LECTURE

    def __post_init__(self):
        if self.op not in ("<=", ">="):
            raise ValueError(f"op must be '<=' or '>=', got {self.op!r}")
        if self.table not in TABLES:
            raise ValueError(f"table must be one of {sorted(TABLES)}, got {self.table!r}")

    @property
    def passed(self):
        if not (math.isfinite(self.measured) and math.isfinite(self.bound)):
            return False
        return self.measured <= self.bound if self.op == "<=" else self.measured >= self.bound


def _mark(table):
    def mark(check):
        @functools.wraps(check)
        def checked(quick):
            result = check(quick)
            if not isinstance(result, Claim):
                raise TypeError(f"{check.__name__} returned {type(result).__name__}, not a Claim")
            return dataclasses.replace(result, table=table)

        checked.table = table
        return checked

    mark.__doc__ = f"Mark ``check(quick) -> Claim`` as a row of the table {TABLES[table]!r}."
    return mark


lecture = _mark(LECTURE)
project = _mark(PROJECT)


def _modules():
    here = Path(__file__).resolve().parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("part"))
    return [importlib.import_module(f"{__name__}.{n}") for n in names]


def all_checks():
    """Every check of every part, in file order; each carries ``.table``."""
    checks = [c for m in _modules() for c in m.CHECKS]
    unmarked = [c.__name__ for c in checks if getattr(c, "table", None) not in TABLES]
    if unmarked:
        raise TypeError(f"checks not marked @lecture or @project: {unmarked}")
    return checks


def run_claims(quick=False, progress=False):
    """Run every check; a check that raises becomes a failed row of its table that says why.

    Args:
        quick: the smaller sizes and the quick bounds (the default test suite).
        progress: report each check and its time on stderr.

    Returns:
        the ``Claim`` of every check, in file order (``.table`` says which table).
    """
    checks = all_checks()
    results = []
    for i, check in enumerate(checks, 1):
        t0 = time.perf_counter()
        if progress:
            print(f"  [{i}/{len(checks)}] {check.__name__} ...", end=" ", file=sys.stderr, flush=True)
        try:
            result = check(quick)
        except Exception as err:  # a broken check is reported as a failed claim, not hidden
            result = Claim(section="?", claim=check.__name__, formula="(check raised)",
                           measured=math.nan, bound=math.nan, table=check.table,
                           note=f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=3)}")
        if progress:
            status = "pass" if result.passed else "FAIL"
            print(f"{status} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
        results.append(result)
    return results


def _fmt(v):
    """A number in at most 3 significant digits, exponents without padding (``1e-10``, ``6.83e-6``, ``0.25``)."""
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if 1e-2 <= abs(v) < 1e3:
        return f"{v:.3g}"
    mantissa, exponent = f"{v:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _cell(text):
    """A Markdown cell: bars escaped (as in |x|), on one line."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _markdown(rows, wrap_column=None, width=WIDTH):
    """Rows of cells as a Markdown table; cells of ``wrap_column`` wrapped onto continuation rows to fit ``width``."""
    widths = [max(len(row[j]) for row in rows) for j in range(len(rows[0]))]
    if wrap_column is not None:
        others = sum(w for j, w in enumerate(widths) if j != wrap_column) + 3 * len(widths) + 1
        widths[wrap_column] = max(len(rows[0][wrap_column]), min(widths[wrap_column], width - others))
    lines = []
    for k, row in enumerate(rows):
        pieces = [[c] for c in row]
        if wrap_column is not None and len(row[wrap_column]) > widths[wrap_column]:
            pieces[wrap_column] = textwrap.wrap(row[wrap_column], widths[wrap_column], break_on_hyphens=False)
        for m in range(max(len(p) for p in pieces)):
            cells = [p[m] if m < len(p) else "" for p in pieces]
            lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |")
        if k == 0:
            lines.append("| " + " | ".join("-" * w for w in widths) + " |")
    return lines


def format_table(results, verbose=False, width=WIDTH):
    """The rows as Markdown: a heading and a table for each of ``TABLES`` that has rows, then the failures.

    Args:
        results: ``Claim``s (as ``run_claims`` returns them).
        verbose: add the formula measured and the note (how the bound was set) as
            columns; rows are then as wide as their text.
        width: the default table's rows fit in this many columns (the claim column is
            wrapped onto continuation rows where needed).

    Returns:
        a string. Failed rows are listed below the tables with their notes.
    """
    out = []
    for table, heading in TABLES.items():
        rows = [r for r in results if r.table == table]
        if not rows:
            continue
        n_pass = sum(r.passed for r in rows)
        out += [f"### {heading} ({n_pass}/{len(rows)} pass)", ""]
        if verbose:
            cells = [("section", "claim", "formula", "measured", "bound", "result", "note")]
            cells += [tuple(_cell(c) for c in (r.section, r.claim, r.formula, _fmt(r.measured),
                                               f"{r.op} {_fmt(r.bound)}", "pass" if r.passed else "FAIL",
                                               r.note.splitlines()[0] if r.note else "")) for r in rows]
            out += _markdown(cells)
        else:
            cells = [("section", "claim", "measured", "bound", "result")]
            cells += [tuple(_cell(c) for c in (r.section, r.claim, _fmt(r.measured), f"{r.op} {_fmt(r.bound)}",
                                               "pass" if r.passed else "FAIL")) for r in rows]
            out += _markdown(cells, wrap_column=1, width=width)
        out.append("")
    for r in results:
        if not r.passed:
            text = f"FAIL [{TABLES[r.table]}] {r.section}: {r.claim}: {r.formula} = {_fmt(r.measured)}, " \
                   f"must be {r.op} {_fmt(r.bound)}" + (f". {r.note}" if r.note else "")
            out += [textwrap.fill(line, width, subsequent_indent="    ") if not verbose else line
                    for line in text.splitlines()] + [""]
    return "\n".join(out).rstrip("\n")


def summary(results):
    """One line: how many rows of each table pass (``"54/54 of the lecture's claims and 30/30 of ... pass."``)."""
    parts = []
    for table, heading in TABLES.items():
        rows = [r for r in results if r.table == table]
        parts.append(f"{sum(r.passed for r in rows)}/{len(rows)} of {heading[0].lower()}{heading[1:]}")
    return " and ".join(parts) + " pass."

"""The main job: regenerate every figure, then print the lecture's claims checked numerically.

    python -m figures [--quick] [--out DIR] [--only NAME ...] [--no-claims] [--no-figures] [--verbose]

The claims are two tables: the lecture's claims, then the project's own checks. Exits with
status 1 if any row of either fails.
"""

import argparse
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from . import IMAGES, figure_names, load_figure  # noqa: E402
from .claims import format_table, run_claims, summary  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m figures", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test); claims in quick mode")
    parser.add_argument("--out", type=Path, default=IMAGES, help=f"output folder (default {IMAGES})")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these figures (names as in figures/)")
    parser.add_argument("--no-claims", action="store_true", help="skip the claims table")
    parser.add_argument("--no-figures", action="store_true", help="skip the figures")
    parser.add_argument("--verbose", action="store_true",
                        help="claims tables with the formula measured and how each bound was set")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    if not args.no_figures:
        names = args.only or figure_names()
        unknown = sorted(set(names) - set(figure_names()))
        if unknown:
            parser.error(f"unknown figure(s) {unknown}; known: {figure_names()}")
        args.out.mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(names, 1):
            t0 = time.perf_counter()
            print(f"[{i}/{len(names)}] {name} ...", flush=True)
            paths = load_figure(name).main(args.out, quick=args.quick)
            shown = ", ".join(Path(p).name for p in paths)
            print(f"    {time.perf_counter() - t0:.1f} s -> {shown}", flush=True)

    ok = True
    if not args.no_claims:
        print("\nThe lecture's claims and the project's own checks, measured:\n", flush=True)
        results = run_claims(quick=args.quick, progress=True)
        print(format_table(results, verbose=args.verbose))
        n_fail = sum(not r.passed for r in results)
        ok = n_fail == 0
        print(f"\n{summary(results)}")
    print(f"Total time {time.perf_counter() - start:.1f} s.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

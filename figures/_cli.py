"""Command-line entry of a single figure script: ``python -m figures.fig_<name> [--quick] [--out DIR]``."""

import argparse
import time
from pathlib import Path

from . import IMAGES


def run_figure(module, argv=None):
    parser = argparse.ArgumentParser(description=(module.__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--out", type=Path, default=IMAGES, help=f"output folder (default {IMAGES})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    paths = module.main(args.out, quick=args.quick)
    for p in paths:
        print(p)
    print(f"done in {time.perf_counter() - start:.1f} s")

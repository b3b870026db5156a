"""Command-line entries: where the figures go, and the single-figure entry ``python -m figures.fig_<name> [--quick] [--out DIR]``.

Only the full run of every figure (``python -m figures``, no ``--quick``, no
``--only``) writes into ``figures/images/`` by default; anything smaller (quick mode, a
few figures, one script on its own) writes into a new scratch folder, which it prints,
so that the committed figures are never overwritten with quick or partial ones. ``--out
DIR`` always says where.
"""

import argparse
import tempfile
import time
from pathlib import Path

from . import IMAGES


def output_folder(out, committed):
    """The folder to write into: ``out`` if given, else ``figures/images`` for a full run, else a new scratch folder.

    Args:
        out: the folder given by ``--out``, or None.
        committed: whether this run makes the committed figures (every figure, full mode).

    Returns:
        ``(folder, scratch)``: a ``Path`` that exists, and whether it is a new scratch folder.
    """
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        return out, False
    if committed:
        IMAGES.mkdir(parents=True, exist_ok=True)
        return IMAGES, False
    return Path(tempfile.mkdtemp(prefix="figures-")), True


def run_figure(module, argv=None):
    """Run one figure script from the command line (``python -m figures.fig_<name>``)."""
    parser = argparse.ArgumentParser(description=(module.__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output folder (default: a new scratch folder, printed; "
                             f"the committed figures in {IMAGES} are made by python -m figures)")
    args = parser.parse_args(argv)
    out, scratch = output_folder(args.out, committed=False)
    if scratch:
        print(f"writing into the scratch folder {out} (use --out to choose)", flush=True)
    start = time.perf_counter()
    paths = module.main(out, quick=args.quick)
    for p in paths:
        print(p)
    print(f"done in {time.perf_counter() - start:.1f} s")
    return paths

"""The main job: regenerate every figure, then print the lecture's claims checked numerically.

    python -m figures [--quick] [--readable] [--out DIR] [--only NAME ...] [--no-claims] [--no-figures]
                      [--one-process] [--verbose]

Every figure in full mode goes into figures/images/ (the committed figures); with
--quick or --only the figures go into a new scratch folder (printed) unless --out says
where. The claims are two tables: the lecture's claims, then the project's own checks.
Exits with status 1 if any row of either fails. With two cores or more, the figures that
train their own models are made in a second process beside the others.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from . import IMAGES, figure_names  # noqa: E402  (figures/__init__ imports nothing from reference)

READABLE_VARIABLE = "REFERENCE_READABLE"
"""The environment variable that routes every computation of ``reference`` through its readable formulas."""


SEPARATE = ("fig_14_ot_paths", "fig_15_samples")
"""Figures made in a second process, beside the others, when the machine has two cores or
more: figure 15 trains its own six models (most of the main job's work) and figure 14 its
own pair; neither shares a model with the other figures or the claims, so the two halves
of the work take about the same time."""

SEPARATE_QUICK = SEPARATE + ("fig_01_pushforward", "fig_03_realnvp", "fig_05_ode_orders")
"""The same in quick mode, where drawing costs more than training (figures 1 and 3 share a fit)."""


def _cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class _Separate:
    """Figures made by ``python -m figures --only NAME ... --one-process`` in a child process; ``finish`` waits."""

    def __init__(self, names, out, quick):
        self.names = list(names)
        root = Path(__file__).resolve().parent.parent
        env = dict(os.environ)  # REFERENCE_READABLE included
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
        self.output = tempfile.TemporaryFile(mode="w+")
        # its progress lines (stderr) show as they come; its results (stdout) when it is done
        self.process = subprocess.Popen(self.command(self.names, out, quick), cwd=root, env=env,
                                        stdout=self.output, text=True)

    @staticmethod
    def command(names, out, quick):
        """The child's command line: the main job on these figures alone, in one process."""
        return ([sys.executable, "-m", "figures", "--only", *names, "--out", str(out), "--no-claims", "--one-process"]
                + (["--quick"] if quick else []))

    def stop(self):
        """Kill the child if it still runs."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def finish(self):
        """Wait for the figures, print what they wrote; whether all were made."""
        code = self.process.wait()
        self.output.seek(0)
        lines = self.output.read().splitlines()
        self.output.close()
        if code != 0:
            print(f"\nthe second process ({', '.join(self.names)}) failed with status {code}:\n" + "\n".join(lines),
                  flush=True)
            return False
        print("\nmade in the second process:\n" + "\n".join(line for line in lines if line.startswith(("[", "    "))),
              flush=True)
        return True


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m figures", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[5:11]))
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (smoke test), claims in quick mode; writes into a scratch folder")
    parser.add_argument("--readable", action="store_true",
                        help=f"run the readable formulas instead of the fast engines: sets the environment "
                             f"variable {READABLE_VARIABLE}=1 before anything from reference is imported")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output folder (default {IMAGES} for every figure in full mode, "
                             "else a new scratch folder, printed)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="only these figures (names as in figures/); writes into a scratch folder")
    parser.add_argument("--no-claims", action="store_true", help="skip the claims table")
    parser.add_argument("--no-figures", action="store_true", help="skip the figures")
    parser.add_argument("--one-process", action="store_true",
                        help="make every figure in this process (by default, with two cores or more, the "
                             "figures that train their own models are made in a second process)")
    parser.add_argument("--verbose", action="store_true",
                        help="claims tables with the formula measured and how each bound was set")
    args = parser.parse_args(argv)
    if args.only:
        unknown = sorted(set(args.only) - set(figure_names()))
        if unknown:
            parser.error(f"unknown figure(s) {unknown}; known: {figure_names()}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.readable:
        # before the first import of reference (below), so that the package reads it as it loads
        if any(m == "reference" or m.startswith("reference.") for m in sys.modules):
            print(f"note: {READABLE_VARIABLE}=1 is set after reference was imported in this process; "
                  "run `python -m figures --readable` for it to apply from the start", file=sys.stderr)
        os.environ[READABLE_VARIABLE] = "1"
        print(f"readable formulas: {READABLE_VARIABLE}=1", flush=True)

    separate = []
    try:
        return _run(args, separate)
    finally:
        for job in separate:  # a figure of the main process raised: stop the second one too
            job.stop()


def _run(args, separate):
    from . import load_figure
    from ._cli import output_folder
    from .claims import format_table, run_claims, summary

    start = time.perf_counter()
    if not args.no_figures:
        names = args.only or figure_names()
        out, scratch = output_folder(args.out, committed=not (args.quick or args.only))
        print(f"writing into {'the scratch folder ' if scratch else ''}{out}"
              + (" (use --out to choose)" if scratch else ""), flush=True)
        separable = SEPARATE_QUICK if args.quick else SEPARATE
        apart = [n for n in names if n in separable]
        if args.one_process or all(n in separable for n in names) or _cores() < 2:
            apart = []
        for name in apart:
            print(f"[{names.index(name) + 1}/{len(names)}] {name}: in a second process, beside the others", flush=True)
        if apart:
            separate.append(_Separate(apart, out, args.quick))
        for i, name in enumerate(names, 1):
            if name in apart:
                continue
            t0 = time.perf_counter()
            print(f"[{i}/{len(names)}] {name} ...", flush=True)
            paths = load_figure(name).main(out, quick=args.quick)
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
    for job in separate:
        ok = job.finish() and ok
    print(f"Total time {time.perf_counter() - start:.1f} s.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

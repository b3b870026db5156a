"""The command line: ``python -m exercises list | start NAME DIR | grade NAME FILE``.

Exit status: 0 passed (or a command that worked), 1 failed, 2 cannot be graded or a
usage error (argparse's own convention for bad arguments), 3 an error inside the
grader itself (a bug to report, not the student's mistake).
"""

import argparse
import os
import shutil
import sys
import textwrap
import traceback

from . import EXERCISES, UsageError, grade, solution_path, template_path

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def _list(out):
    part = None
    for e in EXERCISES.values():
        if e.part != part:
            part = e.part
            print(f"\n{part}", file=out)
        print(f"  {e.name:20s} [{e.section}]", file=out)
        print(textwrap.fill(f"write {e.signature}: {e.task}", width=100, initial_indent=" " * 4,
                            subsequent_indent=" " * 6), file=out)
        print(textwrap.fill(f"graded by: {e.graded_by}", width=100, initial_indent=" " * 4,
                            subsequent_indent=" " * 6), file=out)
    print("\nStart one with `python -m exercises start NAME DIR`, grade it with "
          "`python -m exercises grade NAME DIR/NAME.py`.", file=out)
    return EXIT_PASSED


def _start(name, folder, force, out):
    src = template_path(name)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UsageError(f"{folder} is a file; give the folder to put {name}.py in")
    os.makedirs(folder, exist_ok=True)
    dest = os.path.join(folder, f"{name}.py")
    if os.path.exists(dest) and not force:
        raise UsageError(f"{dest} already exists (your work?); add --force to overwrite it with the template")
    shutil.copyfile(src, dest)
    print(f"wrote {dest}: write {EXERCISES[name].signature} there, then grade it with\n"
          f"    python -m exercises grade {name} {dest}", file=out)
    return EXIT_PASSED


def _parser():
    parser = argparse.ArgumentParser(prog="python -m exercises",
                                     description="Graded exercises on the lecture's formulas: write one function, "
                                                 "grade it with the project's checkers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("list", help="the exercises, by part of the lecture")
    start = sub.add_parser("start", help="copy an exercise's template (signature, formula, TODO) into a folder")
    start.add_argument("name", help="the exercise (see `list`)")
    start.add_argument("folder", help="where to write NAME.py (created if missing)")
    start.add_argument("--force", action="store_true", help="overwrite NAME.py if it exists")
    g = sub.add_parser("grade", help="grade the function NAME defined in FILE")
    g.add_argument("name", help="the exercise (see `list`)")
    g.add_argument("file", help="the .py file that defines the function NAME")
    g.add_argument("--verbose", "-v", action="store_true", help="print every report in full, also those that passed")
    sol = sub.add_parser("solution", help="print where the reference solution of an exercise is")
    sol.add_argument("name", help="the exercise (see `list`)")
    return parser


def main(argv=None, out=None):
    """Run the command line; returns the exit status."""
    out = out or sys.stdout
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("python -m exercises: error: give a command: list, start, grade or solution", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "list":
            return _list(out)
        if args.command == "start":
            template_path(args.name)  # an unknown name is refused before anything is written
            return _start(args.name, args.folder, args.force, out)
        if args.command == "solution":
            print(solution_path(args.name), file=out)
            return EXIT_PASSED
        result = grade(args.name, args.file)
    except UsageError as err:
        print(f"python -m exercises {args.command}: {err}", file=sys.stderr)
        return EXIT_USAGE
    except Exception:  # noqa: BLE001 - an error of the grader, not of the student's function
        print("python -m exercises: the grader itself failed (this is a bug in the exercises package, not in your "
              "function; please report it with this traceback):", file=sys.stderr)
        traceback.print_exc()
        return EXIT_INTERNAL
    status = EXIT_PASSED if result.passed else EXIT_FAILED
    try:
        print(result.format(verbose=args.verbose), file=out)
        out.flush()
    except BrokenPipeError:  # the output was piped into a command that stopped reading (| head): keep the status
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return status


if __name__ == "__main__":
    sys.exit(main())

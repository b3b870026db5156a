"""Loading a student's file, finding the exercise's function, and watching it when it runs.

Everything that can go wrong before grading starts (no such file, a file that does not
import, no function of the right name, a function with the wrong parameters) raises
``UsageError`` with a message for the student; the command line turns it into exit
status 2. A function that raises while it is graded is the student's mistake, not a
usage error: ``Watched`` keeps its first traceback (only the frames from the student's
own file on) so that the grade can show it.
"""

import importlib.util
import inspect
import itertools
import os
import sys
import traceback

__all__ = ["UsageError", "load_function", "check_signature", "Watched"]

_counter = itertools.count()


class UsageError(ValueError):
    """The file cannot be graded (missing, does not import, no such function, wrong signature), or an argument
    of ``grade``/``grade_function`` is not what they take; a ``ValueError``."""


def _student_traceback(err, path):
    """The traceback of ``err`` from the first frame in ``path`` on (the grader's frames left out)."""
    path = os.path.realpath(path)
    tb = err.__traceback__
    while tb is not None and os.path.realpath(tb.tb_frame.f_code.co_filename) != path:
        tb = tb.tb_next
    if tb is None:  # raised before reaching the student's file (a bad argument from the grader?): show it all
        tb = err.__traceback__
    return "".join(traceback.format_exception(type(err), err, tb)).rstrip()


def _import_file(path):
    module_name = f"_student_{os.path.splitext(os.path.basename(path))[0]}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path} is not a Python file that can be imported (it must end in .py)")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)  # the student's file may import helpers that sit beside it
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        detail = "".join(traceback.format_exception_only(type(err), err)).rstrip()
        raise UsageError(f"{path} has a syntax error, so nothing in it can be graded:\n{detail}") from None
    except Exception as err:  # noqa: BLE001 - the student's module-level code failed
        raise UsageError(f"{path} raised an exception when it was imported, so nothing in it can be graded:\n"
                         f"{_student_traceback(err, path)}") from None
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:  # pragma: no cover - the student's code removed it
            pass
    return module


def load_function(path, function, params):
    """The function ``function`` defined in the file ``path``, checked to take ``params``.

    Args:
        path: a ``.py`` file.
        function: the name of the function the exercise asks for.
        params: the names of its positional parameters (their number is what is checked;
            other names are accepted, extra parameters only with default values).

    Returns:
        the function.

    Raises:
        UsageError: with a message for the student.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise UsageError(f"the file must be a path, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UsageError(f"no such file: {path}")
    if os.path.isdir(path):
        raise UsageError(f"{path} is a folder; give the .py file that defines {function}")
    if not path.endswith(".py"):
        raise UsageError(f"{path} is not a .py file; give the Python file that defines {function}")
    module = _import_file(path)
    if not hasattr(module, function):
        defined = sorted(name for name, obj in vars(module).items()
                         if inspect.isfunction(obj) and obj.__module__ == module.__name__)
        found = f" (it defines {', '.join(defined)})" if defined else " (it defines no function)"
        raise UsageError(f"{path} defines no function named {function}{found}: the exercise grades {function}"
                         f"({', '.join(params)})")
    fn = getattr(module, function)
    if not callable(fn):
        raise UsageError(f"{function} in {path} is not a function (it is an object of type {type(fn).__name__})")
    return check_signature(fn, function, params, f" in {path}")


def check_signature(fn, function, params, where=""):
    """``fn``, checked to be a function (not a class) that can be called with the positional ``params``.

    Raises:
        UsageError: saying what the exercise calls it with.
    """
    if not callable(fn) or isinstance(fn, type):
        raise UsageError(f"{function}{where} must be a function, got {type(fn).__name__}")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return fn
    expected = f"{function}({', '.join(params)})"
    try:
        sig.bind(*params)
    except TypeError:
        raise UsageError(f"{function}{where} takes {function}{sig}, but the exercise calls it as {expected}: "
                         f"it must take {len(params)} positional argument(s) ({', '.join(params)})") from None
    return fn


class Watched:
    """The student's function, as the graders call it: it keeps the first exception's traceback.

    The exception is re-raised, so that a checker reports the failure where it happened
    (``solve raised ValueError in d = 1: ...``); the grade then shows the traceback.
    """

    def __init__(self, fn, path, name):
        self.fn, self.path, self.name = fn, path, name
        self.__name__ = name
        self.first_error = None  # (exception type name, formatted traceback)

    def __call__(self, *args, **kwargs):
        try:
            return self.fn(*args, **kwargs)
        except Exception as err:
            if self.first_error is None:
                self.first_error = (type(err).__name__, _student_traceback(err, self.path))
            raise

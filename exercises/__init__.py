"""Graded exercises: write one function of the lecture in a file of your own, and grade it

    python -m exercises list                         # the exercises, by part of the lecture
    python -m exercises start rk4_step my_work/      # my_work/rk4_step.py: the signature, the formula, a TODO
    python -m exercises grade rk4_step my_work/rk4_step.py

Grading runs the checkers of ``reference.testing`` (or, where none applies, the
project's own oracles) on the function, and prints their reports: what was measured,
against which bound, and the mistake it looks like (``sign flipped``, ``time not
advanced``, ``log-det missing``, ...). The exit status is 0 when the function passes, 1
when it fails (a function that raises fails, and its traceback is shown), 2 when it
cannot be graded (an unknown exercise, a missing file, a file that does not import, no
function of the right name, the wrong parameters).

From Python: ``grade("rk4_step", "my_work/rk4_step.py")`` returns a ``Grade``
(``bool(grade)`` is whether it passed, ``grade.diagnosis`` the mistakes named);
``grade_function("rk4_step", fn)`` grades a function object.
"""

import os
import warnings
from dataclasses import dataclass

import numpy as np

from . import graders
from ._load import UsageError, Watched, check_signature, load_function
from ._report import fmt

__all__ = ["EXERCISES", "Exercise", "Grade", "UsageError", "grade", "grade_function", "template_path",
           "solution_path"]

_HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class Exercise:
    """One exercise: the function the student writes, where it is in the lecture, and how it is graded.

    Attributes:
        name: the exercise's name, which is also the function's name and the file's.
        params: the function's positional parameters.
        part: the part of the lecture.
        section: the section or equation (as the ``[lecture: ...]`` tags write it).
        task: what the function computes, in one line.
        graded_by: how it is graded, in one line.
        grader: ``grader(fn) -> tuple of CheckReport``.
    """

    name: str
    params: tuple
    part: str
    section: str
    task: str
    graded_by: str
    grader: object

    @property
    def signature(self):
        return f"{self.name}({', '.join(self.params)})"


EXERCISES = {e.name: e for e in (
    Exercise("elbo", ("log_joint", "mu", "log_sigma", "n_samples", "rng"), "Variational auto-encoders",
             "Variational auto-encoders",
             "ELBO = E_q[log p(x, z) - log q(z)] by Monte Carlo for q = N(mu, diag(sigma^2)), reparameterised "
             "(z = mu + sigma eps, log q in closed form), and its standard error std(w) / sqrt(S)",
             "closed forms of the pPCA model (log p(x) - KL, the spread of w, the gradient in mu and log_sigma), "
             "d = 1, 2, 3",
             graders.grade_elbo),
    Exercise("change_of_variables", ("inverse", "x"), "Normalizing Flows", "eq. (2)",
             "log p1(x) = log p0(T^{-1}(x)) + log |det J_{T^{-1}}(x)|, the Jacobian of a given T^{-1} by finite "
             "differences",
             "closed forms (N(m, A A^T) for an affine map; a nonlinear map with det J < 0), d = 1, 2, 3, 5",
             graders.grade_change_of_variables),
    Exercise("realnvp_inverse", ("y", "s", "t", "d_split"), "Normalizing Flows", "RealNVP, inverse after eq. (3)",
             "x = phi^{-1}(y) = [y_{1:d'}, (y_{d'+1:d} - t(y_{1:d'})) exp(-s(y_{1:d'}))] and "
             "log |det J_{phi^{-1}}(y)| = -sum s",
             "check_bijection with the reference coupling layer as the forward map; the formula at fresh points",
             graders.grade_realnvp_inverse),
    Exercise("euler", ("u", "x0", "t0", "t1", "n_steps"), "Continuous Normalizing Flows",
             "eq. (4); Flow Matching In Practice, step 5",
             "n_steps Euler steps x_{k+1} = x_k + h u(x_k, t_k) from t0 to t1 (also backwards)",
             "check_ode_solver(order=1)", graders.grade_euler),
    Exercise("rk4_step", ("u", "x", "t", "h"), "Continuous Normalizing Flows", "eq. (4)",
             "one classic Runge-Kutta step x(t) -> x(t + h)",
             "check_ode_solver(order=4) on a fixed-step loop of your step", graders.grade_rk4_step),
    Exercise("hutchinson", ("u", "x", "t", "rng"), "Continuous Normalizing Flows", "CNF Pros (Hutchinson)",
             "div u(x, t) = tr J_u estimated by eps^T J_u eps with random probes eps",
             "check_divergence_estimator (unbiased within 5 standard errors; its variance)",
             graders.grade_hutchinson),
    Exercise("cnf_log_likelihood", ("u", "x"), "Continuous Normalizing Flows",
             "Continuous Normalizing Flows (instantaneous change of variables)",
             "log p1(x) = log p0(x(0)) - int_0^1 div u(x(t), t) dt, solving the ODE back from x(1) = x",
             "check_log_likelihood (closed forms and an accurate CNF, to 1e-3 nats)",
             graders.grade_cnf_log_likelihood),
    Exercise("linear_path", ("x0", "x1", "t"), "Flow Matching", "Example 1",
             "x_t = (1 - t) x0 + t x1 and u_cond = x1 - x0",
             "check_conditional_path against reference.paths.LinearInterpolationPath()", graders.grade_linear_path),
    Exercise("conical_path", ("x1", "t", "eps"), "Flow Matching", "Example 2",
             "a sample x = t x1 + (1 - t) eps of N(t x1, (1 - t)^2 I) and u_cond(x, t, x1) = (x1 - x) / (1 - t) "
             "(the summary table's sign: the README's erratum 1)",
             "check_conditional_path against reference.paths.ConicalGaussianPath()", graders.grade_conical_path),
    Exercise("posterior_weights", ("x", "t", "x1"), "Flow Matching", "Theorem 1, eq. (10)",
             "w_ij = p(x_i | t_i, z_j) / sum_k p(x_i | t_i, z_k) for the conical path, stable far from the data",
             "the weights' normalisation; check_marginal_velocity on sum_j w_j u_cond (Theorem 1)",
             graders.grade_posterior_weights),
    Exercise("cfm_step", ("v", "theta", "x1", "rng", "lr"), "Flow Matching", "Flow Matching In Practice, step 4",
             "one training step: draw t, x0; x_t = (1 - t) x0 + t x1; theta - lr grad mean ||v(x_t, t) - (x1 - x0)||^2",
             "the autograd gradient of reference.losses.cfm_loss on the batch it drew; fresh, well-distributed draws",
             graders.grade_cfm_step),
)}
"""The exercises, in the order of the lecture."""


def template_path(name):
    """The template a student starts from: the signature, the formula and ``raise NotImplementedError``."""
    return os.path.join(_HERE, "templates", f"{_exercise(name).name}.py")


def solution_path(name):
    """The reference solution, written as a student would (NumPy, autograd; no ``reference``)."""
    return os.path.join(_HERE, "solutions", f"{_exercise(name).name}.py")


def _exercise(name):
    if not isinstance(name, str) or name not in EXERCISES:
        known = ", ".join(EXERCISES)
        raise UsageError(f"no exercise named {name!r}; the exercises are: {known}")
    return EXERCISES[name]


@dataclass
class Grade:
    """The verdict on one student's function: ``bool(grade)`` is whether it passed.

    Attributes:
        exercise: the ``Exercise``.
        source: the file graded (or a description of the function).
        reports: the checkers' (and the graders') ``CheckReport``, in order.
        error: ``(type name, traceback)`` of the first exception the function raised, or None.
    """

    exercise: Exercise
    source: str
    reports: tuple
    error: tuple = None

    @property
    def passed(self):
        return bool(self.reports) and all(r.passed for r in self.reports)

    def __bool__(self):
        return self.passed

    @property
    def diagnosis(self):
        """The names of the mistakes the reports recognise (a tuple, in order; empty if none is named)."""
        names = []
        for r in self.reports:
            if not r.passed and r.diagnosis:
                for label in r.diagnosis.split("; "):
                    if label not in names:
                        names.append(label)
        return tuple(names)

    def format(self, verbose=False):
        """The grade as printed: a verdict, the mistakes named, the exception, then each report (``verbose``: every
        figure of each report, not only those that missed their bounds)."""
        if not isinstance(verbose, bool):
            raise TypeError(f"verbose must be a bool, got {type(verbose).__name__}")
        e = self.exercise
        lines = [f"{e.name} [lecture: {e.section}]: {'PASSED' if self.passed else 'FAILED'}  ({self.source})"]
        if not self.passed:
            if self.error is not None and self.error[0] == "NotImplementedError":
                lines.append(f"{e.name} is not written yet: replace `raise NotImplementedError` with your code.")
            if self.diagnosis:
                lines.append("Looks like: " + "; ".join(self.diagnosis) + " (the reports below say why).")
            elif self.error is None:
                lines.append("No known mistake fits: the reports below say what was measured and what failed.")
            if self.error is not None:
                lines += ["", f"Your function raised {self.error[0]} (the first time it did):", self.error[1]]
        if self.error is not None and self.error[0] == "NotImplementedError":
            return "\n".join(lines)  # the reports only repeat that it raised
        for r in self.reports:
            lines.append("")
            lines.append(str(r) if verbose else _brief(r))
        return "\n".join(lines)

    def __str__(self):
        return self.format()


def _brief(report):
    """A report without the figures that met their bounds (``--verbose`` prints them all)."""
    if report.passed:
        return f"{report.name}: PASSED\n{report.message}"
    lines = [f"{report.name}: FAILED", report.message]
    bad = [m for m in report.measurements if not m.ok]
    if bad:
        width = max(len(m.name) for m in bad)
        lines.append("")
        for m in bad:
            bound = "" if m.bound is None else f" {m.op} {fmt(m.bound)}"
            lines.append(f"  !! {m.name.ljust(width)}  {fmt(m.value)}{bound}   {m.what}")
    lines += [f"  note: {note}" for note in report.notes]
    hidden = len(report.measurements) - len(bad)
    if hidden:
        lines.append(f"  ({hidden} other figures met their bounds: --verbose prints them, and what was covered)")
    return "\n".join(lines)


def grade_function(name, fn, source=None, path=None):
    """Grade a function object for the exercise ``name``.

    Args:
        name: the exercise (a key of ``EXERCISES``).
        fn: the student's function, taking the exercise's positional parameters.
        source: how to call it in the printed grade (default: its name).
        path: the file it was defined in (its traceback is shown from there on).

    Raises:
        UsageError: an unknown exercise, ``fn`` not a function of the exercise's
            parameters, ``source`` or ``path`` of the wrong type.

    Returns:
        ``Grade``.
    """
    exercise = _exercise(name)
    check_signature(fn, exercise.name, exercise.params)
    if source is not None and not isinstance(source, str):
        raise UsageError(f"source must be None or a str (how to call the function in the grade), got "
                         f"{type(source).__name__}")
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise UsageError(f"path must be None or the file the function is defined in (a str or a path), got "
                         f"{type(path).__name__}")
    path = os.fspath(path) if path is not None else getattr(getattr(fn, "__code__", None), "co_filename", "")
    watched = Watched(fn, path, exercise.name)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        # a wrong function overflows, divides by zero, ...: every figure is checked for finiteness instead
        warnings.simplefilter("ignore", RuntimeWarning)
        reports = tuple(exercise.grader(watched))
    return Grade(exercise, source or getattr(fn, "__name__", repr(fn)), reports, watched.first_error)


def grade(name, path):
    """Grade the function ``name`` defined in the file ``path``.

    Raises:
        UsageError: unknown exercise, missing file, a file that does not import, no
            function ``name`` in it, or one with the wrong parameters.

    Returns:
        ``Grade``.
    """
    exercise = _exercise(name)
    fn = load_function(path, exercise.name, exercise.params)
    return grade_function(name, fn, source=os.fspath(path), path=os.fspath(path))

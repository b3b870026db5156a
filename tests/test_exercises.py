"""The graded exercises: reference solutions pass, typical wrong answers fail with their own names.

Each wrong answer is the reference solution with a line or two changed the way students
change them (a sign, a time, a missing term, a normalisation over the wrong axis, ...),
written to a file and graded through the same path as a student's file; it must fail
and be named exactly (no other mistake's name). The command line is tested for its exit
statuses: 0 passed, 1 failed, 2 cannot be graded.
"""

import os
import re

import numpy as np
import pytest

import exercises
from exercises import EXERCISES, UsageError, grade, solution_path, template_path
from exercises.__main__ import main



def slow(*values):
    """A wrong answer whose test runs with ``-m slow`` only (the default suite keeps one of each kind)."""
    return pytest.param(*values, marks=pytest.mark.slow)


# (exercise, [(text of the solution, replacement), ...], the names the grade must give, what the student did)
MISTAKES = [
    ("elbo", [(" - np.sum(log_sigma, axis=-1)", "")], {"log q without its -sum log sigma term"},
     "log q without -sum log sigma"),
    ("elbo", [("w = log_joint(z) - log_q", "w = log_joint(z)")], {"entropy missing (log q not subtracted)"},
     "log q not subtracted"),
    ("elbo", [("w = log_joint(z) - log_q", "w = log_joint(z) + log_q")], {"log q added, not subtracted (the KL's sign)"},
     "log q added"),
    ("elbo", [("/ np.sqrt(n_samples)", "/ n_samples")], {"standard error divided by n, not sqrt(n)"},
     "standard error over n"),
    slow("elbo", [(" / np.sqrt(n_samples)", "")], {"standard deviation, not the standard error"},
         "standard deviation for the standard error"),
    ("elbo", [("    eps = rng.standard_normal((n_samples,) + np.shape(mu))        # (S, n, d)\n"
               "    z = mu + sigma * eps                                          # a differentiable function of mu and "
               "log_sigma\n",
               "    z = rng.normal(mu, sigma, size=(n_samples,) + np.shape(mu))\n    eps = (z - mu) / sigma\n")],
     {"samples not reparameterised"}, "z = rng.normal(mu, sigma)"),
    ("change_of_variables", [("log_p0 + log_abs_det", "log_p0 - log_abs_det")], {"log-det sign flipped"},
     "log-det subtracted"),
    ("change_of_variables", [("log_p0 + log_abs_det", "log_p0")], {"log-det missing"}, "log-det left out"),
    ("change_of_variables", [(" - 0.5 * d * np.log(2 * np.pi)", "")],
     {"base log-density without its constant -d/2 log(2 pi)"}, "base density without its constant"),
    slow("change_of_variables", [("0.5 * d * np.log(2 * np.pi)", "np.log(2 * np.pi)")],
         {"base log-density constant of d = 2 (-log(2 pi) for every d)"}, "the 2-D constant in every d"),
    ("change_of_variables", [("_, log_abs_det = np.linalg.slogdet(J)", "log_abs_det = np.log(np.linalg.det(J))")],
     {"log det J without the absolute value"}, "log det instead of log |det|"),
    ("change_of_variables", [("J[:, :, j] = (inverse(x + e) - inverse(x - e)) / (2 * h)",
                              "J[:, :, j] = (inverse(z + e) - inverse(z - e)) / (2 * h)")],
     {"log-det evaluated at T^{-1}(x), not at x"}, "Jacobian taken at z"),
    ("realnvp_inverse", [("-np.sum(scale, axis=1)", "np.sum(scale, axis=1)")], {"inverse log-det sign flipped"},
     "log-det sign flipped"),
    ("realnvp_inverse", [("-np.sum(scale, axis=1)", "np.zeros(len(y))")], {"inverse log-det missing"},
     "log-det missing"),
    ("realnvp_inverse", [("-np.sum(scale, axis=1)", "-scale")], {"log-det not summed over coordinates"},
     "log-scales not summed"),
    # exp(+s): the x is wrong, and -sum(s) is then the wrong log-det for the map written, so both are named
    ("realnvp_inverse", [("np.exp(-scale)", "np.exp(scale)")],
     {"scale not inverted", "inverse log-det sign flipped"}, "exp(s) for exp(-s)"),
    ("realnvp_inverse", [("(y2 - t(y1)) * np.exp(-scale)", "y2 * np.exp(-scale) - t(y1)")],
     {"translation removed after the scaling"}, "translation after scaling"),
    ("euler", [("u(x, t0 + k * h)", "u(x, t0)")], {"time not advanced"}, "time not advanced (summary table)"),
    ("euler", [("x = x + h * u(x, t0 + k * h)", "x += h * u(x, t0 + k * h)")],
     {"writes into its input x0", "returns a view of its input x0"}, "in place"),
    ("euler", [("h = (t1 - t0) / n_steps\n    x = x0\n    for k in range(n_steps):\n        x = x + h * u(x, t0 + k * h)",
                "import numpy as np\n    ts = np.linspace(t0, t1, n_steps)\n    x = x0\n"
                "    for s, s_next in zip(ts[:-1], ts[1:]):\n        x = x + (s_next - s) * u(x, s)")],
     {"takes n_steps - 1 steps", "returns a view of its input x0"}, "linspace: n_steps - 1 steps"),
    ("euler", [("    h = (t1 - t0) / n_steps\n", "    h = abs(t1 - t0) / n_steps\n")], {"no reverse-time integration"},
     "no negative steps"),
    ("euler", [("u(x, t0 + k * h)", "u(x, t1 - k * h)")], {"time runs the wrong way"}, "time reversed"),
    ("rk4_step", [("k4 = u(x + h * k3, t + h)", "k4 = u(x + h * k3, t + h / 2)")], {"stage at the wrong time"},
     "last stage at t + h/2"),
    ("rk4_step", [("k2 = u(x + h / 2 * k1, t + h / 2)", "k2 = u(x + h / 2 * k1, t)")], {"stage at the wrong time"},
     "second stage at t"),
    ("rk4_step", [("h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)", "h / 4 * (k1 + k2 + k3 + k4)")], {"order 2, not 4"},
     "equal weights"),
    ("hutchinson", [("return np.sum(", "return -np.sum(")], {"sign flipped"}, "sign flipped"),
    ("hutchinson", [("jacobian_vector_product(u, x, t, eps)", "jacobian_vector_product(u, x, 1 - t, eps)")],
     {"time reversed"}, "field at 1 - t"),
    ("hutchinson", [("rng.choice([-1.0, 1.0], size=x.shape)", "np.ones(x.shape)")], {"sums all Jacobian entries"},
     "probe of ones"),
    ("hutchinson", [("rng.choice([-1.0, 1.0], size=x.shape)", "rng.uniform(-1.0, 1.0, size=x.shape)")],
     {"probes not normalised"}, "uniform probes"),
    ("hutchinson", [("np.sum(eps * jacobian_vector_product(u, x, t, eps), axis=1)",
                     "np.sum(jacobian_vector_product(u, x, t, eps), axis=1)")], {"mean 0 instead of the trace"},
     "eps^T left out"),
    ("cnf_log_likelihood", [("return log_p0 + l", "return log_p0 - l")], {"divergence sign flipped"},
     "divergence added"),
    slow("cnf_log_likelihood", [("return log_p0 + l", "return log_p0")], {"divergence missing"}, "divergence left out"),
    ("cnf_log_likelihood", [("h = -1.0 / n_steps", "h = 1.0 / n_steps"), ("t = 1.0 + k * h", "t = k * h"),
                            ("return log_p0 + l", "return log_p0 - l")],
     {"time reversed (x pushed forwards to t = 1)"}, "pushed forwards from t = 0"),
    slow("cnf_log_likelihood", [(" - 0.5 * d * np.log(2 * np.pi)", "")],
     {"base log-density without its constant -d/2 log(2 pi)"}, "base density without its constant"),
    ("linear_path", [("return (1 - t) * x0 + t * x1, x1 - x0", "return t * x0 + (1 - t) * x1, x0 - x1")],
     {"reversed time convention"}, "data at t = 0"),
    ("linear_path", [("return (1 - t) * x0 + t * x1, x1 - x0", "return (1 - t) * x0 + t * x1, x0 - x1")],
     {"velocity sign flipped"}, "velocity x0 - x1"),
    ("conical_path", [("return x, (x1 - x) / (1 - t)", "return x, (x - x1) / (1 - t)")], {"velocity sign flipped"},
     "the text's sign (erratum 1)"),
    ("conical_path", [("return x, (x1 - x) / (1 - t)", "return x, (x1 - x) / (1 - t).clip(0.01)")],
     {"velocity wrong only near t = 1"}, "1 - t clamped"),
    ("conical_path", [("x = t * x1 + (1 - t) * eps", "x = (1 - t) * x1 + t * eps"),
                      ("return x, (x1 - x) / (1 - t)", "return x, (eps - x) / (1 - t)")],
     {"reversed time convention"}, "data at t = 0"),
    ("posterior_weights", [("return w / np.sum(w, axis=1, keepdims=True)", "return w")], {"weights not normalised"},
     "not normalised"),
    ("posterior_weights", [("return w / np.sum(w, axis=1, keepdims=True)",
                            "return w / np.sum(w, axis=0, keepdims=True)")],
     {"weights normalised over the wrong axis"}, "normalised over the points"),
    ("posterior_weights", [("    log_p = log_p - np.max(log_p, axis=1, keepdims=True)\n", "")],
     {"weights underflow far from the data"}, "no log-sum-exp"),
    slow("posterior_weights", [("w = np.exp(log_p)", "w = np.exp(0 * log_p)")], {"uniform weights"}, "uniform"),
    ("cfm_step", [("u_cond = x1 - x0\n", "u_cond = x0 - x1\n")], {"sign flipped"}, "target x0 - x1"),
    ("cfm_step", [("u_cond = x1 - x0\n", "u_cond = x1\n")], {"regresses on x1, not on u_cond = x1 - x0"},
     "target x1"),
    slow("cfm_step", [("x_t = (1 - t)[:, None] * x0 + t[:, None] * x1", "x_t = t[:, None] * x0 + (1 - t)[:, None] * x1")],
     {"reversed time convention"}, "data at t = 0"),
    slow("cfm_step", [("np.mean(np.sum((v(theta, x_t, t) - u_cond) ** 2, axis=1))", "np.mean((v(theta, x_t, t) - u_cond) ** 2)")],
     {"loss averaged over coordinates too"}, "mean over coordinates"),
    ("cfm_step", [("t = rng.uniform(0.0, 1.0, size=n)", "t = np.random.default_rng(0).uniform(0.0, 1.0, size=n)")],
     {"t not resampled at each step"}, "t drawn once"),
    slow("cfm_step", [("x0 = rng.standard_normal((n, d))", "x0 = np.random.default_rng(0).standard_normal((n, d))")],
     {"x0 not resampled at each step"}, "x0 drawn once"),
    slow("cfm_step", [("t = rng.uniform(0.0, 1.0, size=n)", "t = np.full(n, rng.uniform())")],
     {"one t for the whole batch"}, "one t per batch"),
    slow("cfm_step", [("t = rng.uniform(0.0, 1.0, size=n)", "t = rng.uniform(0.0, 0.5, size=n)")],
     {"t not drawn from U[0, 1]"}, "t on [0, 1/2]"),
    slow("cfm_step", [("x0 = rng.standard_normal((n, d))", "x0 = rng.uniform(-1.0, 1.0, (n, d))")],
     {"x0 not drawn from N(0, I)"}, "uniform noise"),
    slow("cfm_step", [("t = rng.uniform(0.0, 1.0, size=n)", "t = np.random.uniform(0.0, 1.0, size=n)")],
     {"not reproducible from rng"}, "global random state"),
    slow("cfm_step", [("return theta - lr * g, value", "return theta + lr * g, value")], {"update goes uphill"},
     "gradient ascent"),
    slow("cfm_step", [("return theta - lr * g, value", "return theta - lr * g, loss(theta - lr * g)")],
     {"loss returned after the update"}, "loss after the update"),
]


def _mistake_id(p):
    values = p.values if hasattr(p, "values") else p
    return f"{values[0]}: {values[3]}"


def _mutate(name, edits, folder):
    """The reference solution of ``name`` with ``edits`` applied, as a student's file in ``folder``."""
    text = open(solution_path(name)).read()
    for old, new in edits:
        assert text.count(old) == 1, f"{name}: {old!r} must occur once in the solution (it occurs {text.count(old)})"
        text = text.replace(old, new)
    path = os.path.join(folder, f"{name}.py")
    with open(path, "w") as f:
        f.write(text)
    return path


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_reference_solution_passes(name):
    result = grade(name, solution_path(name))
    assert result.passed, result.format(verbose=True)
    assert result.diagnosis == () and result.error is None


@pytest.mark.parametrize("name, edits, expected, what", MISTAKES, ids=[_mistake_id(p) for p in MISTAKES])
def test_a_typical_wrong_answer_is_graded_wrong_with_its_own_name(name, edits, expected, what, tmp_path):
    result = grade(name, _mutate(name, edits, tmp_path))
    assert not result.passed, f"{what}: passed\n{result.format()}"
    assert set(result.diagnosis) == expected, f"{what}: named {result.diagnosis}\n{result.format()}"
    assert result.error is None


def test_every_exercise_has_wrong_answers_among_the_tests():
    covered = {(p.values if hasattr(p, "values") else p)[0] for p in MISTAKES}
    assert covered == set(EXERCISES)


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_template_has_the_signature_the_formula_and_a_todo(name, tmp_path):
    exercise = EXERCISES[name]
    text = open(template_path(name)).read()
    assert f"def {exercise.signature}:" in text
    assert "raise NotImplementedError" in text
    assert re.search(r"\[lecture: [^\]]+\]", text)
    assert f"python -m exercises grade {name} {name}.py" in text
    # the template is graded as not written yet: it fails, shows the NotImplementedError, names no mistake
    result = grade(name, template_path(name))
    assert not result.passed and result.error[0] == "NotImplementedError" and result.diagnosis == ()
    assert "not written yet" in result.format()


def test_a_function_that_raises_is_graded_wrong_and_its_traceback_is_shown(tmp_path):
    path = _mutate("rk4_step", [("k4 = u(x + h * k3, t + h)", "k4 = u(x + h * k3, t + h)[:, :1] @ h")], tmp_path)
    result = grade("rk4_step", path)
    assert not result.passed
    text = result.format()
    assert "Your function raised" in text and path in text and "k4 = u(x + h * k3, t + h)[:, :1] @ h" in text
    # the traceback starts in the student's file: no frame of the grader or the checker before it
    traceback_text = result.error[1]
    assert "Traceback" in traceback_text and "reference/testing" not in traceback_text.split(path)[0]


def test_grade_function_grades_a_function_object():
    from exercises._load import load_function

    fn = load_function(solution_path("linear_path"), "linear_path", ("x0", "x1", "t"))
    result = exercises.grade_function("linear_path", fn)
    assert result and result.passed and bool(result) is True
    wrong = exercises.grade_function("linear_path", lambda x0, x1, t: fn(x1, x0, t))  # swapped ends
    assert not wrong and wrong.diagnosis


@pytest.fixture
def cli(capsys):
    def run(*argv):
        status = main(list(argv))
        out, err = capsys.readouterr()
        return status, out, err
    return run


def test_the_command_line_exits_0_when_the_solution_passes_and_1_when_it_fails(cli, tmp_path):
    status, out, _ = cli("grade", "conical_path", solution_path("conical_path"))
    assert status == 0 and "conical_path [lecture: Example 2" in out and "PASSED" in out
    wrong = _mutate("conical_path", [("return x, (x1 - x) / (1 - t)", "return x, (x - x1) / (1 - t)")], tmp_path)
    status, out, _ = cli("grade", "conical_path", wrong)
    assert status == 1 and "FAILED" in out and "Looks like: velocity sign flipped" in out


def test_list_names_every_exercise_with_its_section(cli):
    status, out, _ = cli("list")
    assert status == 0
    for e in EXERCISES.values():
        assert e.name in out and e.section in out


def test_start_copies_the_template_and_does_not_overwrite_work(cli, tmp_path):
    folder = tmp_path / "work"
    status, out, _ = cli("start", "rk4_step", str(folder))
    path = folder / "rk4_step.py"
    assert status == 0 and path.read_text() == open(template_path("rk4_step")).read()
    path.write_text(open(solution_path("rk4_step")).read())  # the student's work
    status, _, err = cli("start", "rk4_step", str(folder))
    assert status == 2 and "already exists" in err
    assert "raise NotImplementedError" not in path.read_text()
    status, _, _ = cli("start", "rk4_step", str(folder), "--force")
    assert status == 0 and "raise NotImplementedError" in path.read_text()


@pytest.mark.parametrize("source, message", [
    ("def rk4_step(u, x, t, h)\n    return x\n", "syntax error"),
    ("import numpy as np\nnp.no_such_function()\n\ndef rk4_step(u, x, t, h):\n    return x\n",
     "raised an exception when it was imported"),
    ("def rk_step(u, x, t, h):\n    return x\n", "defines no function named rk4_step (it defines rk_step)"),
    ("rk4_step = 3\n", "is not a function"),
    ("def rk4_step(u, x, t):\n    return x\n", "must take 4 positional argument(s) (u, x, t, h)"),
    ("def rk4_step(u, x, t, h, order):\n    return x\n", "must take 4 positional argument(s)"),
])
def test_a_file_that_cannot_be_graded_exits_2_with_a_message_and_no_raw_traceback(cli, tmp_path, source, message):
    path = tmp_path / "student.py"
    path.write_text(source)
    status, out, err = cli("grade", "rk4_step", str(path))
    assert status == 2 and message in err and out == ""
    assert "exercises/_load.py" not in err and "exercises/__main__.py" not in err  # only the student's own frames


def test_usage_errors_exit_2(cli, tmp_path):
    status, _, err = cli("grade", "no_such_exercise", solution_path("euler"))
    assert status == 2 and "no exercise named 'no_such_exercise'" in err and "rk4_step" in err
    status, _, err = cli("grade", "euler", str(tmp_path / "missing.py"))
    assert status == 2 and "no such file" in err
    status, _, err = cli("grade", "euler", str(tmp_path))
    assert status == 2 and "is a folder" in err
    status, _, err = cli("start", "no_such_exercise", str(tmp_path))
    assert status == 2 and not os.listdir(tmp_path)
    status, _, _ = cli()
    assert status == 2
    with pytest.raises(SystemExit) as exc:  # argparse's own usage errors exit 2 too
        main(["grade", "euler"])
    assert exc.value.code == 2


def test_grade_raises_usage_error_from_python(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        grade("euler", tmp_path / "missing.py")
    with pytest.raises(UsageError, match="no exercise named"):
        grade("Euler", solution_path("euler"))


def test_a_failing_report_shows_the_figures_that_missed_and_verbose_shows_all(cli, tmp_path):
    wrong = _mutate("rk4_step", [("k4 = u(x + h * k3, t + h)", "k4 = u(x + h * k3, t + h / 2)")], tmp_path)
    _, brief, _ = cli("grade", "rk4_step", wrong)
    _, verbose, _ = cli("grade", "rk4_step", wrong, "--verbose")
    assert "!! order_P2 " in brief and "order_P1 " not in brief and "--verbose prints them" in brief
    assert "!! order_P2 " in verbose and "order_P1 " in verbose and "covered:" in verbose


def test_the_readme_lists_every_exercise_with_its_section_and_signature():
    text = open(os.path.join(os.path.dirname(exercises.__file__), "README.md")).read()
    for e in EXERCISES.values():
        assert f"| `{e.name}` | {e.section} | `{e.signature}`" in text, e.name


# ----------------------------------------------------------------------------- bad input
# The exercises' public API answers bad arguments with UsageError (a ValueError) saying what it takes, never a raw
# error or a grade; the command line turns each into exit status 2 with that message and no traceback.


def _linear(x0, x1, t):
    return (1 - t)[:, None] * x0 + t[:, None] * x1, x1 - x0


BAD_CALLS = [
    ("grade: unknown exercise", lambda p: grade("no_such_exercise", solution_path("euler")), "no exercise named"),
    ("grade: exercise name in upper case", lambda p: grade("EULER", solution_path("euler")), "no exercise named"),
    ("grade: exercise name not a str", lambda p: grade(3, solution_path("euler")), "no exercise named 3"),
    ("grade: exercise name None", lambda p: grade(None, solution_path("euler")), "no exercise named None"),
    ("grade: path None", lambda p: grade("euler", None), "the file must be a path, got NoneType"),
    ("grade: path an int", lambda p: grade("euler", 3), "the file must be a path, got int"),
    ("grade: path bytes", lambda p: grade("euler", b"euler.py"), "the file must be a path, got bytes"),
    ("grade: path a list", lambda p: grade("euler", [solution_path("euler")]), "the file must be a path, got list"),
    ("grade: a folder", lambda p: grade("euler", p), "is a folder"),
    ("grade: not a .py file", lambda p: grade("euler", _write(p, "euler.txt", "x = 1\n")), "is not a .py file"),
    ("grade: missing file", lambda p: grade("euler", p / "missing.py"), "no such file"),
    ("grade_function: unknown exercise", lambda p: exercises.grade_function("nope", _linear), "no exercise named"),
    ("grade_function: fn None", lambda p: exercises.grade_function("linear_path", None), "must be a function"),
    ("grade_function: fn not callable", lambda p: exercises.grade_function("linear_path", 3), "must be a function"),
    ("grade_function: fn a class", lambda p: exercises.grade_function("linear_path", dict), "must be a function"),
    ("grade_function: fn of another arity", lambda p: exercises.grade_function("linear_path", lambda x0, x1: x0),
     "must take 3 positional argument(s) (x0, x1, t)"),
    ("grade_function: source not a str", lambda p: exercises.grade_function("linear_path", _linear, source=3),
     "source must be None or a str"),
    ("grade_function: path not a path", lambda p: exercises.grade_function("linear_path", _linear, path=3),
     "path must be None or the file"),
    ("template_path: unknown exercise", lambda p: exercises.template_path("nope"), "no exercise named"),
    ("solution_path: exercise name None", lambda p: exercises.solution_path(None), "no exercise named None"),
]


def _write(folder, name, text):
    path = folder / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("what, call, words", BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_bad_arguments_get_a_usage_error_saying_what_is_taken(what, call, words, tmp_path):
    with pytest.raises(UsageError) as err:
        call(tmp_path)
    assert isinstance(err.value, ValueError) and words in str(err.value), f"{what}: {err.value}"


def test_a_grade_is_formatted_verbose_or_not_and_nothing_else():
    result = exercises.grade_function("linear_path", _linear)
    assert result.format(verbose=True) != result.format() or result.passed
    with pytest.raises(TypeError, match="verbose must be a bool"):
        result.format(verbose="yes")


@pytest.mark.parametrize("argv, words", [
    (["grade", "euler", "{tmp}/euler.txt"], "is not a .py file"),
    (["grade", "no_such_exercise", "{tmp}/euler.txt"], "no exercise named 'no_such_exercise'"),
    (["start", "rk4_step", "{tmp}/a-file"], "is a file"),
    (["start", "RK4_STEP", "{tmp}/work"], "no exercise named 'RK4_STEP'"),
    (["solution", "no_such_exercise"], "no exercise named 'no_such_exercise'"),
    (["grade", "euler", "{tmp}"], "is a folder"),
], ids=["not .py", "unknown exercise", "start into a file", "start an unknown exercise", "solution of an unknown",
        "grade a folder"])
def test_the_command_line_answers_bad_arguments_with_status_2_and_a_message(cli, tmp_path, argv, words):
    _write(tmp_path, "euler.txt", "x = 1\n")
    _write(tmp_path, "a-file", "not a folder")
    status, out, err = cli(*[a.format(tmp=tmp_path) for a in argv])
    assert status == 2 and words in err and out == "" and "Traceback" not in err, err
    assert not (tmp_path / "work").exists()  # nothing written for a refused start


@pytest.mark.parametrize("argv", [["grade"], ["grade", "euler", "a.py", "--no-such-option"], ["frobnicate"],
                                  ["start", "euler"], ["list", "extra"]])
def test_argparse_refuses_malformed_command_lines_with_status_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and "usage:" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the ELBO grader's closed forms
# The ELBO exercise is graded against closed forms for the pPCA model: the mean, variance and fourth moment of
# w = log p(x, z) - log q(z) (a quadratic form in eps), and the mean and variance of the reparameterised gradient.
# Each is checked here against a direct Monte Carlo through reference.variational.PPCA.log_joint and autograd,
# within K standard errors of that Monte Carlo (K = 5).

K = 5.0


def _w_samples(model, x, mu, log_sigma, eps, alpha=0.0, shift=0.0):
    """w_s = log p(x, z_s) - log q(z_s) + alpha log q(z_s) + shift sum log sigma, computed directly, shape (S, n)."""
    import autograd.numpy as anp

    S, n, d = eps.shape
    z = mu + np.exp(log_sigma) * eps
    log_joint = model.log_joint(np.concatenate([x] * S, axis=0), z.reshape(S * n, d)).reshape(S, n)
    log_q = -0.5 * np.sum(eps**2, axis=-1) - np.sum(log_sigma, axis=-1) - 0.5 * d * np.log(2 * np.pi)
    return anp.asarray(log_joint - log_q + alpha * log_q + shift * np.sum(log_sigma, axis=-1))


@pytest.mark.parametrize("d, D", [(1, 2), (3, 5)])
def test_the_elbo_graders_moments_of_w_are_those_of_a_direct_monte_carlo(d, D):
    from exercises import graders

    model, x, mu, log_sigma, log_px, m, P = graders._elbo_case(d, D, "offset")
    forms = graders._quadratic_forms(mu, log_sigma, m, P, log_px)
    eps = np.random.default_rng(11).standard_normal((20_000, x.shape[0], d))
    variants = {"truth": (0.0, 0.0), "log q without its -sum log sigma term": (0.0, -1.0),
                "entropy missing (log q not subtracted)": (1.0, 0.0), "log q added, not subtracted (the KL's sign)": (2.0, 0.0)}
    for name, (alpha, shift) in variants.items():
        w = _w_samples(model, x, mu, log_sigma, eps, alpha, shift)
        mean, var, m4 = forms[name]
        S = w.shape[0]
        centred = w - w.mean(axis=0)
        sample_var, sample_m4 = np.mean(centred**2, axis=0), np.mean(centred**4, axis=0)
        assert np.all(np.abs(w.mean(axis=0) - mean) <= K * np.sqrt(var / S)), name
        # the sample variance's standard error from the fourth moment; the fourth moment's from the eighth (sampled)
        assert np.all(np.abs(sample_var - var) <= K * np.sqrt((m4 - var**2) / S)), name
        se_m4 = np.sqrt((np.mean(centred**8, axis=0) - sample_m4**2) / S)
        assert np.all(np.abs(sample_m4 - m4) <= K * se_m4), name
        if name == "truth":  # negative control: a Gaussian's fourth moment, 3 var^2 (the kappa_4 term left out), fails
            assert np.any(np.abs(sample_m4 - 3 * var**2) > K * se_m4)
    # the truth's mean is log p(x) - KL(q || p(. | x)), the KL by reference.variational.gaussian_kl
    from reference.variational import gaussian_kl

    S_post = np.linalg.inv(P)
    kl = [gaussian_kl(mu[i], np.diag(np.exp(2 * log_sigma[i])), m[i], S_post) for i in range(len(x))]
    assert np.allclose(forms["truth"][0], log_px - np.array(kl), rtol=1e-12, atol=1e-12)


def test_with_the_exact_posterior_every_w_is_log_p_x_and_a_negative_control_is_not():
    from exercises import graders

    model, x, mu, log_sigma, log_px, m, P = graders._elbo_case(2, 3, "exact")
    eps = np.random.default_rng(12).standard_normal((64, x.shape[0], 2))
    w = _w_samples(model, x, mu, log_sigma, eps)
    assert np.allclose(w, log_px, rtol=1e-12, atol=1e-12)
    assert np.allclose(np.diag(np.diag(P)), P, atol=1e-12)  # the posterior is diagonal: q can equal it
    assert not np.allclose(_w_samples(model, x, mu, log_sigma + 0.1, eps), log_px, rtol=1e-6)


def test_the_elbo_graders_gradient_mean_and_variance_are_those_of_autograd_per_sample():
    import autograd.numpy as anp
    from autograd import grad

    from exercises import graders

    d, D = 2, 3
    model, x, mu, log_sigma, log_px, m, P = graders._elbo_case(d, D, "offset")
    S = 20_000
    eps = np.random.default_rng(13).standard_normal((S, 1, d))
    i = 1  # one datum: the per-sample gradients of w_s in (mu_i, log_sigma_i), by autograd

    def total_w(params):  # one copy of (mu_i, log_sigma_i) per sample: the gradient of the sum is per sample
        mu_i, ls_i = params[:, :d], params[:, d:]
        z = mu_i + anp.exp(ls_i) * eps[:, 0, :]
        log_joint = model.log_joint(np.repeat(x[i:i + 1], S, axis=0), z)
        log_q = -0.5 * anp.sum(eps[:, 0, :] ** 2, axis=1) - anp.sum(ls_i, axis=1) - 0.5 * d * np.log(2 * np.pi)
        return anp.sum(log_joint - log_q)

    g = grad(total_w)(np.tile(np.concatenate([mu[i], log_sigma[i]]), (S, 1)))  # (S, 2 d)
    sig = np.exp(log_sigma[i])
    a = P @ (mu[i] - m[i])
    PS = P * sig[None, :]
    mean = np.concatenate([-a, 1.0 - np.diag(P) * sig**2])
    var = np.concatenate([np.diag(PS @ PS.T), sig**2 * (a**2 + np.diag(PS) ** 2 + np.sum(PS**2, axis=1))])
    assert np.all(np.abs(g.mean(axis=0) - mean) <= K * np.sqrt(var / S))
    fourth = np.mean((g - g.mean(axis=0)) ** 4, axis=0)
    se_var = np.sqrt((fourth - var**2) / S)
    assert np.all(np.abs(g.var(axis=0) - var) <= K * se_var)
    # negative control: the log-sigma variance without E[eps_j^4] = 3 (the r_j^2 term) is told apart
    slip = np.concatenate([var[:d], sig**2 * (a**2 + np.sum(PS**2, axis=1))])
    assert np.any(np.abs(g.var(axis=0) - slip) > K * se_var)


def test_a_draw_detached_from_mu_and_log_sigma_is_named_not_reparameterised():
    import autograd.numpy as anp
    from autograd.tracer import getval

    def elbo(log_joint, mu, log_sigma, n_samples, rng):
        sigma = anp.exp(log_sigma)
        z = getval(mu) + getval(sigma) * rng.standard_normal((n_samples,) + anp.shape(mu))  # the value, no gradient
        eps = (z - mu) / sigma
        log_q = -0.5 * anp.sum(eps**2, axis=-1) - anp.sum(log_sigma, axis=-1) - 0.5 * anp.shape(mu)[-1] * np.log(2 * np.pi)
        w = log_joint(z) - log_q
        return anp.mean(w, axis=0), anp.std(w, axis=0, ddof=1) / np.sqrt(n_samples)

    result = exercises.grade_function("elbo", elbo)
    assert result.reports[0].passed and not result.reports[1].passed  # right values, wrong gradient
    assert result.diagnosis == ("samples not reparameterised",) and result.error is None

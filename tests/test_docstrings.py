"""Every public function of the mathematical modules says which formula of the lecture it computes.

Its docstring's first paragraph carries a tag ``[lecture: ...]`` whose every item names
something the lecture has: an equation number that exists, a figure, Example 1 or 2,
Theorem 1 or 2, or one of the lecture's section titles.
"""

import importlib
import inspect
import re
from pathlib import Path

import pytest

LECTURE = (Path(__file__).resolve().parents[2] / "shared" / "lecture" / "flow_matching_lecture.md")

MODULES = [
    "reference.distributions", "reference.autodiff", "reference.change_of_variables", "reference.flows.planar",
    "reference.flows.coupling", "reference.flows.chain", "reference.nn", "reference.ode", "reference.cnf",
    "reference.bridge", "reference.continuity", "reference.paths", "reference.marginal", "reference.oracles",
    "reference.losses", "reference.train", "reference.ot", "reference.metrics", "exercises.graders",
]

EQUATIONS = {"1", "2", "3", "4", "5", "9", "10", "11"}  # the lecture numbers these (and no others)
SECTIONS = [
    "Generative Modeling", "Normalizing Flows", "NF", "RealNVP", "Continuous Normalizing Flows", "CNF",
    "The Continuity Equation", "CNF Pros", "Flow Matching", "Modeling Choices", "Linear Interpolation",
    "Conical Gaussian Paths", "From Conditional to Unconditional Velocity", "Learning with Conditional Velocity Fields",
    "Flow Matching In Practice", "summary table", "planar flow",
]


def tag_items(doc):
    """The ';'-separated items of the ``[lecture: ...]`` tag in the first paragraph of ``doc``."""
    first = doc.split("\n\n")[0]
    match = re.search(r"\[lecture: ([^\]]*)\]", first)
    return None if match is None else [item.strip() for item in match.group(1).split(";")]


def item_is_in_the_lecture(item):
    if any(item.startswith(s) for s in SECTIONS):
        return True
    for kind, allowed in (("eq.", EQUATIONS), ("Fig.", {"1", "2", "3", "4", "8", "9", "10", "12"}),
                          ("Figure", {"1", "2", "3", "4", "8", "9", "10", "12"}),
                          ("Example", {"1", "2"}), ("Theorem", {"1", "2"})):
        if item.startswith(kind):
            numbers = re.findall(r"\d+", item.split(":")[0].split("(", 1)[-1] if kind == "eq." else item)
            return bool(numbers) and set(numbers[:1]) <= allowed
    return False


def public_functions():
    for name in MODULES:
        module = importlib.import_module(name)
        for attr in module.__all__:
            obj = getattr(module, attr)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == name:
                yield f"{name}.{attr}", inspect.getdoc(obj) or ""


def test_the_lecture_is_where_the_tags_point():
    if not LECTURE.exists():
        pytest.skip(f"the lecture's text is not beside this checkout ({LECTURE})")
    text = LECTURE.read_text()
    for n in EQUATIONS:
        assert f"({n})" in text, n
    for title in ("Generative Modeling", "Normalizing Flows", "RealNVP", "Continuous Normalizing Flows",
                  "The Continuity Equation", "Modeling Choices", "Theorem 1", "Theorem 2", "Flow Matching In Practice"):
        assert title.lower() in text.lower(), title


@pytest.mark.parametrize("name, doc", list(public_functions()))
def test_every_public_function_names_its_formula_in_the_lecture(name, doc):
    items = tag_items(doc)
    assert items, f"{name}: the docstring's first paragraph has no [lecture: ...] tag"
    unknown = [item for item in items if not item_is_in_the_lecture(item)]
    assert not unknown, f"{name}: {unknown} name nothing in the lecture"


def test_the_tag_check_rejects_what_is_not_in_the_lecture():
    # negative controls: no tag, an equation the lecture does not number, an invented section
    assert tag_items("Some function.\n\nMore text [lecture: eq. (2)].") is None
    assert not item_is_in_the_lecture("eq. (7)")
    assert not item_is_in_the_lecture("Theorem 3")
    assert not item_is_in_the_lecture("Diffusion Models")
    assert item_is_in_the_lecture("eq. (4)") and item_is_in_the_lecture("Theorem 1, eq. (9)")

"""Every public function of the mathematical modules says which formula of the lecture it computes.

Its docstring's first paragraph carries a tag ``[lecture: ...]`` whose every ``;``-separated
item starts with something the lecture has (a section title, an equation, a figure,
Example 1 or 2, Theorem 1 or 2, the summary table) and whose every number is one the
lecture has: equations ``(n)``, figures (and their panels), examples, theorems, steps of
the summary table. What the lecture has is listed in ``tests/lecture_index.json`` (the
lecture's text is not part of the repository); when the text is beside the checkout,
that list is checked against it.
"""

import copy
import importlib
import inspect
import json
import re
from pathlib import Path

import pytest

LECTURE = (Path(__file__).resolve().parents[2] / "shared" / "lecture" / "flow_matching_lecture.md")
INDEX = json.loads((Path(__file__).resolve().parent / "lecture_index.json").read_text())

MODULES = [
    "reference.distributions", "reference.autodiff", "reference.change_of_variables", "reference.flows.planar",
    "reference.flows.coupling", "reference.flows.chain", "reference.nn", "reference.ode", "reference.cnf",
    "reference.bridge", "reference.continuity", "reference.paths", "reference.marginal", "reference.oracles",
    "reference.losses", "reference.train", "reference.ot", "reference.metrics", "reference.variational",
    "exercises.graders", "reference.engines.mlp", "reference.engines.adam", "reference.engines.cfm",
    "reference.engines.marginal", "reference.engines.variational",  # the switch and the threads hold no formula
]

KIND_WORDS = {"eq": "equations", "eqs": "equations", "Fig": "figures", "Figs": "figures", "Figure": "figures",
              "Figures": "figures", "Example": "examples", "Examples": "examples", "Theorem": "theorems",
              "Theorems": "theorems", "step": "summary_steps", "steps": "summary_steps"}
TOKENS = re.compile(r"""
    (?P<word>\b(?:eqs?\.|Figs?\.|Figures?\b|Examples?\b|Theorems?\b|steps?\b))
  | \((?P<paren>\d+)\)                                      # (9): an equation
  | \((?P<panel>[a-z])\)                                    # (a): a panel of the figure just named
  | (?<![\w.])(?P<lo>\d+)\s*-\s*(?P<hi>\d+)(?![\w.])        # 4-5: a range
  | (?<![\w.(])(?P<num>\d+)(?![\w.)])                       # 8: a number of the kind just named
""", re.X)


def tag_items(doc):
    """The ';'-separated items of the ``[lecture: ...]`` tag in the first paragraph of ``doc``."""
    first = doc.split("\n\n")[0]
    match = re.search(r"\[lecture: ([^\]]*)\]", first)
    return None if match is None else [item.strip() for item in match.group(1).split(";")]


def known(index, kind):
    return {str(k) for k in index[kind]}


def unknown_references(item, index=INDEX):
    """What in ``item`` the lecture does not have (empty when every name and number is the lecture's)."""
    names = index["sections"] + list(index["aliases"])
    problems = []
    if not (any(item.startswith(n) for n in names) or re.match(r"(eqs?\.|Figs?\.|Figures?|Examples?|Theorems?)\s", item)):
        problems.append(f"{item!r} starts with nothing the lecture names")
    kind, figure = None, None
    for m in TOKENS.finditer(item):
        if m["word"]:
            kind = KIND_WORDS[m["word"].rstrip(".")]
            continue
        if m["paren"]:
            kind = "equations"  # a parenthesised number is an equation, as in "Theorem 1, eq. (9), (10)"
            numbers = [m["paren"]]
        elif m["panel"]:
            if kind != "figures" or m["panel"] not in index["figure_panels"].get(figure, []):
                problems.append(f"panel ({m['panel']}) of no figure the lecture has")
            continue
        elif m["lo"]:
            numbers = [str(k) for k in range(int(m["lo"]), int(m["hi"]) + 1)]
        else:
            numbers = [m["num"]]
        if kind is None:
            problems.append(f"the number {numbers[0]} follows no eq., Fig., Example, Theorem or step")
            continue
        for n in numbers:
            if n not in known(index, kind):
                problems.append(f"{kind[:-1].replace('_', ' ')} {n} is not in the lecture")
            figure = n if kind == "figures" else figure
    return problems


def item_is_in_the_lecture(item, index=INDEX):
    return not unknown_references(item, index)


def public_functions():
    for name in MODULES:
        module = importlib.import_module(name)
        for attr in module.__all__:
            obj = getattr(module, attr)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == name:
                yield f"{name}.{attr}", inspect.getdoc(obj) or ""


@pytest.mark.parametrize("name, doc", list(public_functions()))
def test_every_public_function_names_its_formula_in_the_lecture(name, doc):
    items = tag_items(doc)
    assert items, f"{name}: the docstring's first paragraph has no [lecture: ...] tag"
    unknown = {item: unknown_references(item) for item in items if unknown_references(item)}
    assert not unknown, f"{name}: {unknown}"


def test_the_tag_check_rejects_what_is_not_in_the_lecture():
    assert tag_items("Some function.\n\nMore text [lecture: eq. (2)].") is None  # not in the first paragraph
    for item in ("eq. (4)", "Theorem 1, eq. (9), (10)", "Fig. 8, 9", "Fig. 1, Fig. 2", "Fig. 3 (b) inverse propagation",
                 "Flow Matching In Practice, steps 4-5", "summary table, step 3", "Example 2 (sigma_min variant)",
                 "CNF Pros (Hutchinson)", "Flow Matching In Practice, step 4 (z = (x0, x1))"):
        assert item_is_in_the_lecture(item), (item, unknown_references(item))
    # negative controls: a number the lecture does not have, after a real name as well as alone
    for item in ("eq. (7)", "Theorem 3", "Example 3", "Diffusion Models", "Theorem 1, eq. (99)", "Theorem 1, (99)",
                 "RealNVP, eq. (3), (6)", "Fig. 13", "Fig. 8, 99", "Generative Modeling, Fig. 1, Fig. 5",
                 "Fig. 3 (c)", "Fig. 8 (a)", "Flow Matching In Practice, step 6", "Flow Matching In Practice, steps 4-6",
                 "RealNVP 7", "Normalizing Flows, Figure 11"):
        assert not item_is_in_the_lecture(item), item


# ------------------------------------------------------------------ the list against the lecture's text

def index_differences(index, text):
    """Where ``index`` and the lecture's ``text`` disagree (empty when the list is the lecture's)."""
    diffs = []

    def compare(what, listed, found):
        if set(listed) != set(found):
            diffs.append(f"{what}: listed {sorted(set(listed) - set(found))} but not in the text, "
                         f"in the text {sorted(set(found) - set(listed))} but not listed")

    headings = [re.sub(r"^#+\s*", "", line).strip().rstrip(".") for line in text.splitlines() if line.startswith("#")]
    examples = [m[1] for h in headings if (m := re.match(r"Example (\d+):", h))]
    theorems = [m[1] for h in headings if (m := re.fullmatch(r"Theorem (\d+)", h))]
    sections = [h for h in headings if not re.match(r"(Example|Theorem) \d+", h)]
    compare("sections", index["sections"], sections)
    compare("examples", known(index, "examples"), examples)
    compare("theorems", known(index, "theorems"), theorems)
    labels = re.findall(r"\\quad\s*\((\d+)\)\s*\$\$", text)  # a displayed equation's label
    cited = re.findall(r"\b(?:in|of)\s+\\?\((\d+)\\?\)", text)  # "the objective in (1)", "the proof of (10)"
    compare("equations", known(index, "equations"), labels + cited)
    numbered = {m[1]: m.start() for m in re.finditer(r"^Figure (\d+)\.", text, re.M)}
    figures = set(numbered)
    for fig, panels in index["figure_panels"].items():  # a figure shown by its panels' captions, without its number
        where = [m.start() for p in panels for m in re.finditer(rf"^\({p}\) \w", text, re.M)]
        before = [int(n) for n, pos in numbered.items() if where and pos < min(where)]
        after = [int(n) for n, pos in numbered.items() if where and pos > max(where)]
        if fig in numbered or (len(where) >= len(panels) and before and after and max(before) < int(fig) < min(after)):
            figures.add(fig)
    compare("figures", known(index, "figures"), figures)
    summary = text[text.find("SUMMARY"):] if "SUMMARY" in text else ""
    compare("summary steps", known(index, "summary_steps"), re.findall(r"^(\d+)\. ", summary, re.M))
    for alias, meaning in index["aliases"].items():
        if meaning["lecture_says"] not in text:
            diffs.append(f"alias {alias!r}: the text does not say {meaning['lecture_says']!r}")
    return diffs


@pytest.fixture(scope="module")
def lecture_text():
    if not LECTURE.exists():
        pytest.skip(f"the lecture's text is not beside this checkout ({LECTURE})")
    return LECTURE.read_text()


def test_the_list_is_the_lectures(lecture_text):
    assert INDEX["source"].startswith("ENM5310 Lecture #24: Flow Matching")
    assert "Lecture #24: Flow Matching" in lecture_text
    assert index_differences(INDEX, lecture_text) == []


def test_the_list_check_finds_what_the_lecture_does_not_have(lecture_text):
    # negative controls: an equation, a figure, a section, a step, a panel too many, a section missing
    for edit in (lambda ix: ix["equations"].update({"7": "?"}), lambda ix: ix["figures"].update({"5": "?"}),
                 lambda ix: ix["sections"].append("Diffusion Models"), lambda ix: ix["summary_steps"].append(6),
                 lambda ix: ix["figure_panels"].update({"3": ["a", "b", "c"]}), lambda ix: ix["sections"].remove("RealNVP"),
                 lambda ix: ix["theorems"].update({"3": "?"}),
                 lambda ix: ix["aliases"].update({"DM": {"for": "?", "lecture_says": "diffusion model"}})):
        tampered = copy.deepcopy(INDEX)
        edit(tampered)
        assert index_differences(tampered, lecture_text), edit

"""``reference.fixtures``: the golden fixtures are reproducible, the reference passes its own
fixtures, and ``--check`` cannot be fooled by a folder that was tampered with."""

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from reference.fixtures import (
    FIXTURES,
    FixtureError,
    _rounding_tolerances,
    load_fixture,
    main,
    verify_fixtures,
    write_fixtures,
)

GOLDEN = Path(__file__).resolve().parent / "golden"
REGENERATE = "if the reference changed on purpose, regenerate: python -m reference.fixtures tests/golden"


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("golden")
    write_fixtures(out)
    return out


@pytest.fixture(scope="module")
def rounding():
    """Per fixture: this machine's inputs and outputs and a rounding tolerance for each array."""
    return {fx.name: _rounding_tolerances(fx) for fx in FIXTURES}


def _beyond_rounding(new, old, tolerances):
    """The keys whose arrays differ by more than their rounding tolerance (or in shape or dtype kind)."""
    bad = []
    for key, tol in tolerances.items():
        a, b = np.asarray(new[key]), np.asarray(old[key])
        if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
            bad.append(key)
        elif np.any(~(np.abs(a.astype(np.float64) - b) <= tol)):
            bad.append(key)
    return bad


def test_the_committed_set_holds_every_fixture_and_stays_small():
    index = json.loads((GOLDEN / "index.json").read_text())
    assert [e["name"] for e in index["fixtures"]] == [f.name for f in FIXTURES]
    assert sum(p.stat().st_size for p in GOLDEN.iterdir()) < 1_000_000


def test_regenerating_reproduces_the_committed_fixtures_to_rounding(regenerated, rounding):
    # the index holds text, shapes and tolerances only: equal exactly
    assert json.loads((regenerated / "index.json").read_text()) == json.loads((GOLDEN / "index.json").read_text()), \
        REGENERATE
    for fx in FIXTURES:
        new_in, new_out, in_tol, out_tol = rounding[fx.name]
        old_in, old_out, _ = load_fixture(GOLDEN, fx.name)
        assert new_in.keys() == old_in.keys() and new_out.keys() == old_out.keys()
        # inputs too: some are computed (planar_constrain's a, MLP inits, mixture covariances), not drawn
        assert not _beyond_rounding(new_in, old_in, in_tol), f"{fx.name}: inputs; {REGENERATE}"
        assert not _beyond_rounding(new_out, old_out, out_tol), f"{fx.name}: outputs; {REGENERATE}"


def test_the_rounding_tolerances_are_at_the_rounding_level_and_catch_a_real_change(rounding):
    # each tolerance is below 1e-11 of its array's scale, so a changed formula still shows
    for name, (inputs, outputs, in_tol, out_tol) in rounding.items():
        for arrays, tols in ((inputs, in_tol), (outputs, out_tol)):
            for key, tol in tols.items():
                scale = float(np.max(np.abs(arrays[key]), initial=0.0))
                assert tol <= 1e-11 * max(scale, 1.0), (name, key, tol, scale)
    # negative controls: an input moved by 1e-11 (relative) and a flipped sign are beyond rounding
    inputs, outputs, in_tol, out_tol = rounding["planar_flow"]
    moved = dict(inputs, a=inputs["a"] * (1 + 1e-11))
    assert _beyond_rounding(moved, inputs, in_tol) == ["a"]
    _, outputs, _, out_tol = rounding["conditional_path_conical"]
    assert _beyond_rounding(dict(outputs, u_cond=-outputs["u_cond"]), outputs, out_tol) == ["u_cond"]
    # and the perturbed rebuilds did perturb: every float array has a nonzero tolerance
    assert all(tol > 0 for _, _, in_tol, out_tol in rounding.values() for tol in {**in_tol, **out_tol}.values())


def test_writing_twice_gives_the_same_bytes(regenerated, tmp_path):
    # byte identity holds on one machine with one set of library versions (here: within one run)
    write_fixtures(tmp_path, names=["planar_flow", "ot_pairing"])
    for name in ("planar_flow.npz", "ot_pairing.npz"):
        assert (tmp_path / name).read_bytes() == (regenerated / name).read_bytes()


def test_the_reference_passes_its_own_fixtures():
    rows = verify_fixtures(GOLDEN)
    failed = [r for r in rows if not r.passed]
    assert rows and not failed, f"{failed}; {REGENERATE}"
    assert {r.name for r in rows} == {f.name for f in FIXTURES}


def _save(directory, name, inputs, outputs):
    np.savez(directory / f"{name}.npz", **{f"in_{k}": v for k, v in inputs.items()},
             **{f"out_{k}": v for k, v in outputs.items()})


def test_a_perturbed_output_is_caught(tmp_path):
    shutil.copytree(GOLDEN, tmp_path, dirs_exist_ok=True)
    inputs, outputs, _ = load_fixture(tmp_path, "conditional_path_conical")
    # a port with the lecture's Example 2 sign, u = (x - x1) / (1 - t), writes its result over the reference's
    outputs["u_cond"] = -outputs["u_cond"]
    _save(tmp_path, "conditional_path_conical", inputs, outputs)
    bad = [(r.name, r.key) for r in verify_fixtures(tmp_path) if not r.passed]
    assert bad == [("conditional_path_conical", "u_cond")]


# -------------------------------------------------------------------------------- tampering

def _edit_index(directory, edit):
    path = directory / "index.json"
    index = json.loads(path.read_text())
    edit(index)
    path.write_text(json.dumps(index))


def _entry(index, name):
    return next(e for e in index["fixtures"] if e["name"] == name)


def _drop_entry(d):
    _edit_index(d, lambda ix: ix["fixtures"].remove(_entry(ix, "planar_flow")))


def _delete_file(d):
    (d / "planar_flow.npz").unlink()


def _truncate_file(d):
    data = (d / "planar_flow.npz").read_bytes()
    (d / "planar_flow.npz").write_bytes(data[: len(data) // 2])


def _garbage_file(d):
    (d / "planar_flow.npz").write_bytes(b"not an npz archive at all")


def _drop_output_key(d):
    inputs, outputs, _ = load_fixture(d, "planar_flow")
    del outputs["x_back"]
    _save(d, "planar_flow", inputs, outputs)


def _extra_key(d):
    inputs, outputs, _ = load_fixture(d, "planar_flow")
    _save(d, "planar_flow", inputs, {**outputs, "bonus": np.zeros(3)})


def _emptied_outputs(d):
    inputs, outputs, _ = load_fixture(d, "planar_flow")
    _save(d, "planar_flow", inputs, {k: np.zeros((0,) + v.shape[1:]) for k, v in outputs.items()})
    _edit_index(d, lambda ix: _entry(ix, "planar_flow")["outputs"].update(
        {k: {"shape": [0] + list(v.shape[1:]), "dtype": "float64"} for k, v in outputs.items()}))


def _changed_input(d):
    inputs, outputs, _ = load_fixture(d, "planar_flow")
    _save(d, "planar_flow", dict(inputs, x=inputs["x"] + 0.5), outputs)


def _file_outside(d):
    # the index points at a copy outside the folder, whose output was changed: it must not be followed
    outside = d.parent / "elsewhere"
    outside.mkdir()
    inputs, outputs, _ = load_fixture(d, "planar_flow")
    _save(outside, "planar_flow", inputs, dict(outputs, y=outputs["y"] + 1.0))
    _edit_index(d, lambda ix: _entry(ix, "planar_flow").update(file="../elsewhere/planar_flow.npz"))


def _link_outside(d):
    outside = d.parent / "elsewhere"
    outside.mkdir()
    shutil.move(d / "planar_flow.npz", outside / "planar_flow.npz")
    (d / "planar_flow.npz").symlink_to(outside / "planar_flow.npz")


def _loose_tolerance_and_wrong_output(d):
    inputs, outputs, _ = load_fixture(d, "planar_flow")
    _save(d, "planar_flow", inputs, dict(outputs, y=outputs["y"] + 1.0))
    _edit_index(d, lambda ix: _entry(ix, "planar_flow").update(atol=1e300, rtol=1e300))


def _loose_tolerance_only(d):
    _edit_index(d, lambda ix: _entry(ix, "planar_flow").update(atol=1e300))


def _duplicate_entry(d):
    _edit_index(d, lambda ix: ix["fixtures"].append(dict(_entry(ix, "planar_flow"))))


TAMPERINGS = {
    "entry removed from the index": (_drop_entry, "missing from index.json"),
    "file deleted": (_delete_file, "planar_flow.npz is missing"),
    "file truncated": (_truncate_file, "cannot be read"),
    "file not an npz": (_garbage_file, "cannot be read"),
    "output key removed": (_drop_output_key, "missing key(s) ['out_x_back']"),
    "extra key": (_extra_key, "unexpected key(s) ['out_bonus']"),
    "outputs emptied": (_emptied_outputs, "has shape (0,"),
    "input changed": (_changed_input, "input x is not the reference's seeded input"),
    "file name leaving the folder": (_file_outside, "index.json gives the file '../elsewhere/planar_flow.npz'"),
    "file linked from outside": (_link_outside, "leads out of"),
    "atol = 1e300 and a wrong output": (_loose_tolerance_and_wrong_output, "atol = 1e+300"),
    "atol = 1e300 alone": (_loose_tolerance_only, "atol = 1e+300"),
    "entry listed twice": (_duplicate_entry, "listed twice in index.json"),
}


@pytest.mark.parametrize("tampering", list(TAMPERINGS))
def test_each_tampering_fails_with_a_message_naming_the_fixture(tampering, tmp_path, capsys):
    tamper, said = TAMPERINGS[tampering]
    folder = tmp_path / "golden"
    shutil.copytree(GOLDEN, folder)
    # control: the copy, untouched, passes
    assert all(r.passed for r in verify_fixtures(folder, names=["planar_flow", "ot_pairing"]))
    tamper(folder)
    rows = verify_fixtures(folder, names=["planar_flow", "ot_pairing"])
    failed = [r for r in rows if not r.passed]
    assert failed and all(r.problem.startswith("fixture planar_flow: ") for r in failed), failed
    assert any(said in r.problem for r in failed), [r.problem for r in failed]
    assert all(r.passed for r in rows if r.name == "ot_pairing")  # the untouched fixture still passes
    if tampering == "atol = 1e300 and a wrong output":
        assert any(r.key == "y" for r in failed)  # the output is judged by the code's tolerance
    # the command says the same, without a traceback, and exits 1
    capsys.readouterr()
    assert main(["--check", str(folder), "--only", "planar_flow", "ot_pairing"]) == 1
    out = capsys.readouterr()
    assert "FAIL fixture planar_flow: " in out.out and said in out.out
    assert "Traceback" not in out.out + out.err


def test_an_emptied_index_or_an_unknown_fixture_fails_naming_every_fixture(tmp_path, capsys):
    shutil.copytree(GOLDEN, tmp_path, dirs_exist_ok=True)
    _edit_index(tmp_path, lambda ix: ix.update(fixtures=[]))
    rows = verify_fixtures(tmp_path)
    assert {r.name for r in rows if not r.passed} == {f.name for f in FIXTURES}
    assert all(r.problem == f"fixture {r.name}: missing from index.json" for r in rows)
    assert main(["--check", str(tmp_path)]) == 1
    assert "0/0 outputs reproduce" in capsys.readouterr().out
    # an index that lists a fixture the reference does not have
    shutil.copytree(GOLDEN, tmp_path, dirs_exist_ok=True)
    _edit_index(tmp_path, lambda ix: ix["fixtures"].append({"name": "my_formula", "file": "my_formula.npz"}))
    failed = [r for r in verify_fixtures(tmp_path) if not r.passed]
    assert [r.problem for r in failed] == ["fixture my_formula: listed in index.json but not a fixture of the reference"]


def test_an_unreadable_index_is_reported_without_a_traceback(tmp_path, capsys):
    shutil.copytree(GOLDEN, tmp_path, dirs_exist_ok=True)
    (tmp_path / "index.json").write_text("{ not json")
    assert main(["--check", str(tmp_path), "--only", "planar_flow"]) == 1
    out = capsys.readouterr().out
    assert "index.json cannot be read" in out and "fixture planar_flow: missing from index.json" in out


def test_load_fixture_refuses_a_tampered_file_by_name(tmp_path):
    shutil.copytree(GOLDEN, tmp_path, dirs_exist_ok=True)
    _drop_output_key(tmp_path)
    with pytest.raises(FixtureError, match=r"fixture planar_flow: .*missing key"):
        load_fixture(tmp_path, "planar_flow")
    with pytest.raises(ValueError, match="unknown fixture"):
        load_fixture(tmp_path, "no_such_formula")


def test_the_command_writes_and_checks(tmp_path, capsys):
    assert main([str(tmp_path), "--only", "standard_normal_logpdf", "divergence"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["divergence.npz", "index.json", "standard_normal_logpdf.npz"]
    assert main(["--check", str(tmp_path), "--only", "standard_normal_logpdf", "divergence"]) == 0
    assert "4/4 outputs reproduce" in capsys.readouterr().out
    # the whole set is the code's: checked without --only, the fixtures not written are missing
    assert main(["--check", str(tmp_path)]) == 1
    assert "FAIL fixture planar_flow: missing from index.json" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown fixture"):
        write_fixtures(tmp_path, names=["no_such_formula"])

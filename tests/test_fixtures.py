"""``reference.fixtures``: the golden fixtures are reproducible and the reference passes its own fixtures."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from reference.fixtures import FIXTURES, load_fixture, main, verify_fixtures, write_fixtures

GOLDEN = Path(__file__).resolve().parent / "golden"
REGENERATE = "if the reference changed on purpose, regenerate: python -m reference.fixtures tests/golden"


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("golden")
    write_fixtures(out)
    return out


def test_the_committed_set_holds_every_fixture_and_stays_small():
    index = json.loads((GOLDEN / "index.json").read_text())
    assert [e["name"] for e in index["fixtures"]] == [f.name for f in FIXTURES]
    assert sum(p.stat().st_size for p in GOLDEN.iterdir()) < 1_000_000


def test_regenerating_reproduces_the_committed_fixtures(regenerated):
    new_index = json.loads((regenerated / "index.json").read_text())
    assert new_index == json.loads((GOLDEN / "index.json").read_text()), REGENERATE
    for fx in FIXTURES:
        new_in, new_out, _ = load_fixture(regenerated, fx.name)
        old_in, old_out, _ = load_fixture(GOLDEN, fx.name)
        assert new_in.keys() == old_in.keys() and new_out.keys() == old_out.keys()
        for key in old_in:
            np.testing.assert_array_equal(new_in[key], old_in[key], err_msg=f"{fx.name}: input {key}")
        for key in old_out:
            # the same arithmetic on the same inputs: equal up to the last bits a different BLAS may change
            np.testing.assert_allclose(new_out[key], old_out[key], rtol=1e-13, atol=1e-15,
                                       err_msg=f"{fx.name}: {key}; {REGENERATE}")


def test_writing_twice_gives_the_same_bytes(regenerated, tmp_path):
    write_fixtures(tmp_path, names=["planar_flow", "ot_pairing"])
    for name in ("planar_flow.npz", "ot_pairing.npz"):
        assert (tmp_path / name).read_bytes() == (regenerated / name).read_bytes()


def test_the_reference_passes_its_own_fixtures():
    rows = verify_fixtures(GOLDEN)
    failed = [r for r in rows if not r[3]]
    assert rows and not failed, f"{failed}; {REGENERATE}"


def test_a_perturbed_output_is_caught(tmp_path):
    shutil.copytree(GOLDEN, tmp_path, dirs_exist_ok=True)
    inputs, outputs, entry = load_fixture(tmp_path, "conditional_path_conical")
    # a port with the lecture's Example 2 sign, u = (x - x1) / (1 - t), writes its result over the reference's
    outputs["u_cond"] = -outputs["u_cond"]
    np.savez(tmp_path / entry["file"], **{f"in_{k}": v for k, v in inputs.items()},
             **{f"out_{k}": v for k, v in outputs.items()})
    bad = [(name, key) for name, key, _, ok in verify_fixtures(tmp_path) if not ok]
    assert bad == [("conditional_path_conical", "u_cond")]


def test_the_command_writes_and_checks(tmp_path, capsys):
    assert main([str(tmp_path), "--only", "standard_normal_logpdf", "divergence"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["divergence.npz", "index.json", "standard_normal_logpdf.npz"]
    assert main(["--check", str(tmp_path)]) == 0
    assert "4/4 outputs reproduce" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown fixture"):
        write_fixtures(tmp_path, names=["no_such_formula"])

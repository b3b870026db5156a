"""Every figure script runs in quick mode and writes the files it says it wrote."""

from pathlib import Path

import pytest

from figures import figure_names, load_figure


def test_there_are_figures():
    assert figure_names(), "figures/ holds no fig_*.py script"


@pytest.mark.parametrize("name", figure_names())
def test_figure_runs_quickly(name, tmp_path):
    paths = load_figure(name).main(tmp_path, quick=True)
    assert paths, f"{name}.main returned no paths"
    for p in paths:
        p = Path(p)
        assert p.parent == tmp_path and p.exists() and p.stat().st_size > 1000, p
    # it writes nothing but its outputs
    assert sorted(tmp_path.iterdir()) == sorted(Path(p) for p in paths)

"""Every figure script runs in quick mode and writes the files it says it wrote; the command line writes where it says."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import figures
from figures import IMAGES, figure_names, load_figure
from figures import __main__ as main_job
from figures._cli import output_folder, run_figure
from figures._progress import Progress, _duration

ROOT = Path(__file__).resolve().parents[1]


def test_there_are_figures():
    assert figure_names(), "figures/ holds no fig_*.py script"


@pytest.mark.parametrize("name", figure_names())
def test_figure_runs_quickly(name, tmp_path, capsys):
    paths = load_figure(name).main(tmp_path, quick=True)
    assert paths, f"{name}.main returned no paths"
    for p in paths:
        p = Path(p)
        assert p.parent == tmp_path and p.exists() and p.stat().st_size > 1000, p
    # it writes nothing but its outputs, and in quick mode says nothing (no progress lines)
    assert sorted(tmp_path.iterdir()) == sorted(Path(p) for p in paths)
    captured = capsys.readouterr()
    assert captured.err == "", captured.err


# ---------------------------------------------------------------- where the figures go


@pytest.fixture
def scratch_root(tmp_path, monkeypatch):
    """New scratch folders are made under tmp_path (and removed with it)."""
    root = tmp_path / "scratch"
    root.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(root))
    return root


def test_output_folder_is_the_committed_images_only_for_a_full_run(tmp_path, scratch_root):
    assert output_folder(None, committed=True) == (IMAGES, False)
    folder, scratch = output_folder(None, committed=False)
    assert scratch and folder.is_dir() and folder.parent == scratch_root
    assert folder.resolve() != IMAGES.resolve()
    assert output_folder(tmp_path / "mine", committed=False) == (tmp_path / "mine", False)
    assert output_folder(tmp_path / "mine", committed=True) == (tmp_path / "mine", False)
    assert (tmp_path / "mine").is_dir()


def _images_state():
    return {p.name: p.stat().st_mtime_ns for p in IMAGES.iterdir()}


class FakeFigure:
    """A figure script that writes one small file at once (the command line is tested, not a figure)."""

    __doc__ = "A fake figure."

    def __init__(self):
        self.calls = []

    def main(self, out_dir, quick=False):
        self.calls.append((Path(out_dir), quick))
        path = Path(out_dir) / "fig_99_fake.png"
        path.write_bytes(b"fake")
        return [path]


@pytest.fixture
def fake_figure(monkeypatch):
    fake = FakeFigure()
    monkeypatch.setattr(main_job, "figure_names", lambda: ["fig_99_fake"])
    monkeypatch.setattr(figures, "load_figure", lambda name: fake)
    return fake


@pytest.mark.parametrize("argv", [["--quick"], ["--only", "fig_99_fake"], ["--quick", "--only", "fig_99_fake"]])
def test_main_job_quick_or_partial_writes_to_a_scratch_folder(argv, fake_figure, scratch_root, capsys):
    before = _images_state()
    assert main_job.main(argv + ["--no-claims"]) == 0
    out = capsys.readouterr().out
    (folder,) = list(scratch_root.iterdir())
    assert f"scratch folder {folder}" in out
    assert fake_figure.calls == [(folder, "--quick" in argv)]
    assert (folder / "fig_99_fake.png").exists()
    assert _images_state() == before  # the committed figures are untouched


def test_main_job_full_run_writes_the_committed_figures(fake_figure, scratch_root, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("figures._cli.IMAGES", tmp_path / "images")  # stands for figures/images
    assert main_job.main(["--no-claims"]) == 0
    assert fake_figure.calls == [(tmp_path / "images", False)]
    assert list(scratch_root.iterdir()) == []
    assert "scratch" not in capsys.readouterr().out


def test_main_job_writes_where_out_says(fake_figure, tmp_path, scratch_root, capsys):
    for argv in (["--quick"], ["--only", "fig_99_fake"], []):
        assert main_job.main(argv + ["--no-claims", "--out", str(tmp_path / "o")]) == 0
    assert [c[0] for c in fake_figure.calls] == [tmp_path / "o"] * 3
    assert list(scratch_root.iterdir()) == []
    assert "scratch" not in capsys.readouterr().out


def _child_writes(name):
    """A command line standing for the second process: it writes the file and prints as the main job does."""
    def command(names, out, quick):
        assert names == [name]
        code = (f"import pathlib, sys; p = pathlib.Path({str(out)!r}) / '{name}.png'; p.write_bytes(b'x'); "
                f"print('[1/1] {name} ...'); print('    0.0 s -> {name}.png'); print('quick' if {quick} else 'full', file=sys.stderr)")
        return [sys.executable, "-c", code]
    return command


def test_main_job_makes_the_separate_figure_in_a_second_process_on_two_cores(fake_figure, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(main_job, "figure_names", lambda: ["fig_99_fake", "fig_98_apart"])
    monkeypatch.setattr(main_job, "SEPARATE", ("fig_98_apart",))
    monkeypatch.setattr(main_job, "SEPARATE_QUICK", ("fig_98_apart",))
    monkeypatch.setattr(main_job._Separate, "command", staticmethod(_child_writes("fig_98_apart")))
    monkeypatch.setattr(main_job, "_cores", lambda: 2)
    assert main_job.main(["--no-claims", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert fake_figure.calls == [(tmp_path, False)]  # the other figure, in this process
    assert (tmp_path / "fig_98_apart.png").exists()
    assert "fig_98_apart: in a second process" in out
    assert "made in the second process:\n[1/1] fig_98_apart ...\n    0.0 s -> fig_98_apart.png" in out
    # on one core, or alone, it is made in this process like any other
    for cores, argv in ((1, []), (2, ["--only", "fig_98_apart"]), (2, ["--one-process"])):
        monkeypatch.setattr(main_job, "_cores", lambda cores=cores: cores)
        fake_figure.calls.clear()
        assert main_job.main(argv + ["--no-claims", "--out", str(tmp_path)]) == 0
        assert (tmp_path, False) in fake_figure.calls and "second process" not in capsys.readouterr().out


def test_main_job_exits_1_when_the_second_process_fails(fake_figure, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(main_job, "figure_names", lambda: ["fig_99_fake", "fig_98_apart"])
    monkeypatch.setattr(main_job, "SEPARATE", ("fig_98_apart",))
    monkeypatch.setattr(main_job, "SEPARATE_QUICK", ("fig_98_apart",))
    monkeypatch.setattr(main_job._Separate, "command",
                        staticmethod(lambda names, out, quick: [sys.executable, "-c", "print('boom'); raise SystemExit(3)"]))
    monkeypatch.setattr(main_job, "_cores", lambda: 2)
    assert main_job.main(["--no-claims", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "the second process (fig_98_apart) failed with status 3" in out and "boom" in out


def test_single_figure_entry_writes_to_a_scratch_folder_unless_out(tmp_path, scratch_root, capsys):
    fake = FakeFigure()
    before = _images_state()
    for argv in (["--quick"], []):
        for p in scratch_root.iterdir():
            p.rename(tmp_path / ("old-" + p.name))
        (path,) = run_figure(fake, argv)
        (folder,) = list(scratch_root.iterdir())
        assert Path(path).parent == folder and Path(path).exists()
        assert f"scratch folder {folder}" in capsys.readouterr().out
    assert _images_state() == before
    (path,) = run_figure(fake, ["--quick", "--out", str(tmp_path / "o")])
    assert Path(path).parent == tmp_path / "o"
    assert fake.calls[-1] == (tmp_path / "o", True)


# ---------------------------------------------------------------- --readable


_RECORD_ENV_AT_IMPORT = """
import importlib.abc, os, runpy, sys
seen = []
class Recorder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "reference" and not seen:
            seen.append(os.environ.get("REFERENCE_READABLE"))
        return None
sys.meta_path.insert(0, Recorder())
sys.argv = ["figures"] + sys.argv[1:]
try:
    runpy.run_module("figures", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
import reference  # the first import of reference, if the main job made none
print("AT_IMPORT", seen)
"""


@pytest.mark.parametrize("flag, expected", [(["--readable"], "['1']"), ([], "[None]")])
def test_readable_flag_sets_the_variable_before_reference_is_imported(flag, expected):
    # the recorder sees the variable as it is at the first import of reference, whoever makes it;
    # the negative control (no flag) shows that it would see a missing variable
    env = {k: v for k, v in os.environ.items() if k != "REFERENCE_READABLE"}
    env["MPLBACKEND"] = "Agg"
    result = subprocess.run([sys.executable, "-c", _RECORD_ENV_AT_IMPORT] + flag + ["--no-figures", "--no-claims"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"AT_IMPORT {expected}" in result.stdout, result.stdout + result.stderr
    assert ("REFERENCE_READABLE=1" in result.stdout) == bool(flag)


def test_help_names_the_readable_variable(capsys):
    with pytest.raises(SystemExit):
        main_job.parse_args(["--help"])
    text = capsys.readouterr().out
    assert "--readable" in text and "REFERENCE_READABLE=1" in text and "scratch" in text


def test_unknown_figure_is_refused(capsys):
    with pytest.raises(SystemExit):
        main_job.parse_args(["--only", "fig_99_nothing"])
    assert "fig_99_nothing" in capsys.readouterr().err


# ---------------------------------------------------------------- progress of long loops


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_prints_after_a_few_seconds_and_at_most_every_few_seconds():
    clock, stream = FakeClock(), io.StringIO()
    progress = Progress("training", 1000, after=3.0, every=5.0, stream=stream, clock=clock)
    for step in range(1, 1001):
        clock.now = step / 100  # 10 s in all
        progress.update(step, loss=2.0)
    progress.close()
    lines = stream.getvalue().splitlines()
    # first line at 3 s (step 300), then at 8 s (step 800), then the closing line
    assert len(lines) == 3, lines
    assert "300/1000 steps (30%)" in lines[0] and "loss 2" in lines[0] and "about 7 s left" in lines[0]
    assert "800/1000 steps" in lines[1] and "about 2 s left" in lines[1]
    assert "done, 1000 steps in 10 s" in lines[2]


def test_progress_durations_round_to_whole_seconds():
    assert [_duration(s) for s in (0.4, 59.4, 59.6, 119.7, 3725.2)] == ["0 s", "59 s", "1 min 00 s", "2 min 00 s",
                                                                        "62 min 05 s"]


def test_progress_is_silent_for_short_loops_and_when_disabled():
    for enabled, seconds in ((True, 2.9), (False, 100.0)):
        clock, stream = FakeClock(), io.StringIO()
        progress = Progress("x", 100, enabled=enabled, stream=stream, clock=clock)
        for step in range(1, 101):
            clock.now = seconds * step / 100
            progress.update(step, loss=1.0)
        progress.close()
        assert stream.getvalue() == ""


# ---------------------------------------------------------------- the drawing helpers' scale arguments


def test_plot_helpers_draw_colour_bars_on_a_shared_scale_and_refuse_bad_scales():
    import matplotlib.pyplot as plt
    import numpy as np

    from reference.plot import density_image, time_space_image

    fig, (ax1, ax2) = plt.subplots(1, 2)
    values = np.outer(np.linspace(0.0, 2.0, 5), np.ones(4))  # peak 2, above the shared top 1
    im = time_space_image(ax1, values, np.linspace(0, 1, 4), np.linspace(-1, 1, 5), vmax=1.0, colorbar="p")
    assert im.get_clim() == (0.0, 1.0) and len(fig.axes) == 3  # the colour bar is an axes of its own
    assert fig.axes[-1].get_ylabel() == "p"
    density_image(ax2, lambda x: -np.sum(x**2, axis=1), (-1, 1, -1, 1), n=8, vmin=0.0, vmax=1.0, colorbar="q")
    assert ax2.images[-1].get_clim() == (0.0, 1.0) and fig.axes[-1].get_ylabel() == "q"
    for bad, error in ((-1.0, ValueError), (0.0, ValueError), (np.inf, ValueError), ("1", TypeError), (True, TypeError)):
        with pytest.raises(error, match="vmax"):
            time_space_image(ax1, values, np.linspace(0, 1, 4), np.linspace(-1, 1, 5), vmax=bad)
    with pytest.raises(TypeError, match="colorbar"):
        density_image(ax2, lambda x: -np.sum(x**2, axis=1), (-1, 1, -1, 1), n=8, colorbar=1)
    plt.close(fig)

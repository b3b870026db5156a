"""``benchmarks``: the commands run end to end in quick mode, and the scale figure's slopes are power-law exponents.

Nothing here asserts a timing: times depend on the machine and its load. The commands
are checked to run and to write what they say (the smoke tests, marked ``bench``: they
leave the default run and run with ``pytest -m bench``); the slope fit is checked on
exact power laws (in the default run).
"""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from benchmarks import scale
from benchmarks.__main__ import main as benchmarks_main


@given(p=st.floats(-2.0, 3.0), log_c=st.floats(-10.0, 5.0), n=st.integers(2, 12))
def test_fit_slope_recovers_the_exponent_of_a_power_law(p, log_c, n):
    x = np.geomspace(10.0, 1e5, n)
    assert scale.fit_slope(x, np.exp(log_c) * x**p) == pytest.approx(p, abs=1e-8)
    # negative control: a fixed cost that dwarfs c x^p over the range hides the exponent
    overhead = 1e3 * np.exp(log_c) * x.max() ** max(p, 0.0)
    assert abs(scale.fit_slope(x, np.exp(log_c) * x**p + overhead) - p) > 0.5 or abs(p) < 0.5


@given(n=st.integers(2, 12))
def test_fit_ranges_hold_the_ends_of_the_range_and_at_least_two_points(n):
    x = np.geomspace(32, 4096, n)
    upper, lower = scale.upper_half(x), scale.lower_third(x)
    assert upper[-2:].all() and lower[:2].all()
    assert np.all(x[upper] >= np.sqrt(x[0] * x[-1]) * (1 - 1e-12)) or upper.sum() == 2
    assert not upper[0] or n == 2  # negative control: the smallest point is never in the upper half


@pytest.mark.bench
def test_scale_quick_writes_only_its_figure(tmp_path, capsys):
    assert scale.main(["--out", str(tmp_path), "--quick"]) == 0
    png = tmp_path / "scale.png"
    assert png.exists() and png.stat().st_size > 10_000
    assert sorted(tmp_path.iterdir()) == [png]
    table = capsys.readouterr().out
    for measurement in ("training step vs B", "sampling vs points", "divergence vs d",
                        "marginal velocity vs n_x n_z"):
        assert measurement in table


@pytest.mark.bench
def test_benchmark_command_quick_marginal_prints_its_row_with_peak_memory(capsys):
    assert benchmarks_main(["--quick", "--only", "marginal", "--rounds", "3"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| marginal")]
    assert len(rows) == 1 and "reference (marginal_velocity)" in rows[0]
    peak = rows[0].split("|")[7].strip()
    assert float(peak) > 0  # the peak memory was measured


@pytest.mark.bench
def test_contention_mode_adds_the_contended_median_and_the_slowdown(capsys):
    assert benchmarks_main(["--quick", "--only", "marginal", "--rounds", "1", "--contention"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("| workload"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    row = next(line for line in out.splitlines() if line.startswith("| marginal"))
    cells = dict(zip(columns, (c.strip() for c in row.strip("|").split("|"))))
    assert float(cells["slowdown"]) > 0 and cells["contended"] != "-"
    # the first line says where it ran: the CPU and the BLAS library with its kernel and threads
    assert "logical cores" in out and "thread pools:" in out and "threads" in out and "SiLU layers" in out

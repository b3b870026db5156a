"""Figure 12's mouse interaction, driven by synthetic events (no GUI needed)."""

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np

from figures.fig_12_posterior import PosteriorView, connect_mouse, interactive, sample_pairs
from reference.marginal import marginal_velocity


def test_moving_the_mouse_moves_the_point_and_recomputes_the_average_velocity():
    path, z = sample_pairs(80, np.random.default_rng(0))
    fig, ax = plt.subplots()
    view = PosteriorView(ax, path, z)
    view.move_to(0.5, 0.0)
    on_move = connect_mouse(fig, view)
    on_move(SimpleNamespace(inaxes=ax, xdata=0.3, ydata=1.2))
    np.testing.assert_array_equal(np.ravel(view.dot.get_data()), [0.3, 1.2])
    (t0, t1), (x0, x1) = view.arrow.get_data()
    u = marginal_velocity(path, np.array([[1.2]]), 0.3, z)[0, 0]
    np.testing.assert_allclose((x1 - x0) / (t1 - t0), u, rtol=1e-12)
    # negative control: an event outside the axes (or at t = 1) leaves the point where it was
    on_move(SimpleNamespace(inaxes=None, xdata=0.7, ydata=-1.0))
    on_move(SimpleNamespace(inaxes=ax, xdata=1.0, ydata=-1.0))
    np.testing.assert_array_equal(np.ravel(view.dot.get_data()), [0.3, 1.2])
    plt.close(fig)


def test_no_interactive_window_without_a_gui_backend_or_in_quick_mode():
    assert not interactive(quick=False)  # the tests run with Agg
    assert not interactive(quick=True)

"""One text style for every figure, sized to be read when projected at 1280 x 720.

A figure ``W`` inches wide projected 1280 pixels wide draws an ``s``-point font
``s / 72 / W * 1280`` pixels tall. The figures are at most about 15 inches wide, so the
smallest text here (11 points, tick labels) is about 13 pixels tall on the screen and
titles (13-14 points) about 16 pixels. ``projected(main)`` runs a figure's ``main`` with
this style; the figure scripts set no smaller font sizes of their own.
"""

import functools

import matplotlib.pyplot as plt

STYLE = {
    "font.size": 12,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "legend.fontsize": 11,
    "legend.title_fontsize": 11,
    "figure.titlesize": 14,
}


DPI, QUICK_DPI = 110, 50
"""Resolution of the saved figures (a 15-inch figure is 1650 pixels wide), and in quick mode (a smoke test)."""


def projected(main):
    """Decorate a figure's ``main(out_dir, quick=False)`` so that it draws with ``STYLE`` (and saves at ``DPI``)."""

    @functools.wraps(main)
    def wrapped(out_dir, quick=False):
        with plt.rc_context({**STYLE, "savefig.dpi": QUICK_DPI if quick else DPI}):
            return main(out_dir, quick=quick)

    return wrapped

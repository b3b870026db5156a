"""Shared drawing helpers for the figure scripts: density heat maps, samples, velocity arrows, trajectories.

Nothing here computes mathematics; it only draws what the other modules computed.
"""

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.layout_engine import ConstrainedLayoutEngine
import numpy as onp

__all__ = [
    "grid_points",
    "density_image",
    "samples",
    "velocity_arrows",
    "trajectories",
    "time_space_values",
    "save",
    "time_space_image",
    "BLUE",
    "RED",
]

BLUE, RED, GREY = "#1f5fa8", "#c0392b", "#7f7f7f"


def _check_colorbar(colorbar):
    if colorbar is not None and not isinstance(colorbar, str):
        raise TypeError(f"colorbar must be None or the colour bar's label (a str), got {colorbar!r}")


def grid_points(extent, n=200):
    """A regular ``n x n`` grid over ``extent = (xmin, xmax, ymin, ymax)``.

    Returns:
        ``(X, Y, points)`` with ``X, Y`` of shape ``(n, n)`` and ``points`` of shape
        ``(n * n, 2)`` (row-major, so ``values.reshape(n, n)`` lines up with ``X``).
    """
    xmin, xmax, ymin, ymax = extent
    X, Y = onp.meshgrid(onp.linspace(xmin, xmax, n), onp.linspace(ymin, ymax, n))
    return X, Y, onp.stack([X.ravel(), Y.ravel()], axis=1)


def density_image(ax, logpdf, extent, n=200, cmap="viridis", colorbar=None, **kwargs):
    """Draw ``exp(logpdf)`` over ``extent`` as a heat map; ``logpdf`` maps ``(m, 2) -> (m,)``.

    With ``colorbar`` (a label such as ``"p_t(x)"``) a colour bar with that label is drawn
    beside ``ax``. Panels that are compared should share ``vmin``/``vmax`` (passed to
    ``imshow`` with the other ``kwargs``); the image is ``ax.images[-1]``.

    Returns:
        the density on the grid, shape ``(n, n)``.
    """
    _check_colorbar(colorbar)
    X, _, pts = grid_points(extent, n)
    p = onp.exp(onp.asarray(logpdf(pts))).reshape(X.shape)
    im = ax.imshow(p, origin="lower", extent=extent, cmap=cmap, aspect="auto", **kwargs)
    ax.set_xlim(extent[:2])
    ax.set_ylim(extent[2:])
    if colorbar is not None:
        ax.figure.colorbar(im, ax=ax, label=colorbar)
    return p


def samples(ax, x, color=BLUE, size=2.0, alpha=0.5, **kwargs):
    """Scatter a batch of 2-D points ``(n, 2)``."""
    x = onp.asarray(x)
    ax.scatter(x[:, 0], x[:, 1], s=size, c=color, alpha=alpha, linewidths=0, **kwargs)


def velocity_arrows(ax, u, t, extent, n=17, color="k", **kwargs):
    """Arrows of a velocity field ``u(x, t)`` on an ``n x n`` grid over ``extent``.

    By default matplotlib scales the arrows of each call on its own; to compare panels,
    give them all the same ``scale_units="xy", scale=s`` (an arrow of speed ``|u|`` is
    then ``|u| / s`` long in data units) and label one of them with ``ax.quiverkey``.

    Returns:
        the ``Quiver``.
    """
    X, Y, pts = grid_points(extent, n)
    v = onp.asarray(u(pts, t))
    return ax.quiver(X, Y, v[:, 0].reshape(X.shape), v[:, 1].reshape(X.shape), color=color, **kwargs)


def trajectories(ax, path, n_show=50, color=GREY, alpha=0.6, lw=0.7):
    """Draw trajectories ``path`` of shape ``(n_times, n, 2)`` (as ``integrate(..., return_path=True)``)."""
    path = onp.asarray(path)
    for i in range(min(n_show, path.shape[1])):
        ax.plot(path[:, i, 0], path[:, i, 1], color=color, alpha=alpha, lw=lw)


def time_space_values(f, t, x):
    """``f(points, times)`` on the ``(t, x)`` grid of a 1-D path, shape ``(len(x), len(t), ...)``.

    ``f`` takes points of shape ``(m, 1)`` and one time per point (``m = len(x) len(t)``),
    as ``path.logpdf``-like callables and velocity fields do.
    """
    T, X = onp.meshgrid(t, x)
    out = onp.asarray(f(X.reshape(-1, 1), T.ravel()))
    return out.reshape(X.shape + out.shape[1:])


def save(fig, out_dir, name, dpi=None):
    """Save ``fig`` as ``out_dir/name`` and close it; return the path.

    ``dpi`` defaults to matplotlib's ``savefig.dpi`` when that is a number, else 110. A
    figure laid out by matplotlib's constrained layout already fills its canvas and is
    saved as it is (one drawing); any other is cropped to its contents
    (``bbox_inches="tight"``, which draws it twice).
    """
    if dpi is None:
        dpi = plt.rcParams["savefig.dpi"]
        dpi = 110 if dpi == "figure" else dpi
    path = Path(out_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    constrained = isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)
    fig.savefig(path, dpi=dpi, bbox_inches=None if constrained else "tight")
    plt.close(fig)
    return path


def time_space_image(ax, values, t, x, cmap="magma", clip_quantile=0.995, vmax=None, colorbar=None, **kwargs):
    """Draw ``values`` of shape ``(len(x), len(t))`` over the ``(t, x)`` plane, t horizontal.

    The colour scale runs from 0 to ``vmax``; by default ``vmax`` is the ``clip_quantile``
    of the values, so a few narrow peaks (a path near a Dirac) do not wash out the rest.
    Panels that are compared should be given the same ``vmax``. With ``colorbar`` (a
    label) a colour bar is drawn beside ``ax``, with an arrow at the top when values
    exceed ``vmax``.

    Returns:
        the ``AxesImage``.
    """
    _check_colorbar(colorbar)
    if vmax is not None and (isinstance(vmax, bool) or not isinstance(vmax, (int, float, onp.floating, onp.integer))
                             or not 0 < vmax < onp.inf):
        raise ValueError(f"vmax must be None or a finite number > 0 (the top of the colour scale), got {vmax!r}")
    values = onp.asarray(values)
    if vmax is None:
        vmax = onp.quantile(values, clip_quantile) if clip_quantile is not None else values.max()
    im = ax.imshow(values, origin="lower", extent=(t[0], t[-1], x[0], x[-1]), aspect="auto",
                   cmap=cmap, vmin=0.0, vmax=vmax, interpolation="bilinear", **kwargs)
    ax.set_xlabel("t")
    ax.set_ylabel("x")
    if colorbar is not None:
        ax.figure.colorbar(im, ax=ax, label=colorbar, extend="max" if values.max() > vmax else "neither")
    return im

"""Shared drawing helpers for the figure scripts: density heat maps, samples, velocity arrows, trajectories.

Nothing here computes mathematics; it only draws what the other modules computed.
"""

import os
from pathlib import Path, PurePath

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.layout_engine import ConstrainedLayoutEngine
import numpy as onp
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, is_color_like
from matplotlib.figure import Figure

from ._validate import (
    as_points,
    as_real_array,
    check_callable,
    check_field_output,
    check_instance,
    check_log_density,
    check_count,
    check_real,
)

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


def _extent(extent):
    """``(xmin, xmax, ymin, ymax)`` as floats, finite, with ``xmin < xmax`` and ``ymin < ymax``."""
    if isinstance(extent, (str, bytes)) or not isinstance(extent, (tuple, list, onp.ndarray)) or onp.ndim(extent) != 1 \
            or len(extent) != 4:
        raise TypeError(f"extent must be four numbers (xmin, xmax, ymin, ymax), got {extent!r}")
    xmin, xmax, ymin, ymax = (check_real(v, f"extent[{k}]") for k, v in enumerate(extent))
    if not (xmin < xmax and ymin < ymax):
        raise ValueError(f"extent must have xmin < xmax and ymin < ymax, got {tuple(extent)}")
    return xmin, xmax, ymin, ymax


def _ax(ax):
    return check_instance(ax, Axes, "ax", "matplotlib Axes")


def _color(color, name="color"):
    if not is_color_like(color):
        raise ValueError(f"{name} must be a matplotlib colour (e.g. 'k' or '#1f5fa8'), got {color!r}")
    return color


def _cmap(cmap):
    if isinstance(cmap, Colormap):
        return cmap
    if not isinstance(cmap, str) or cmap not in matplotlib.colormaps:
        raise (ValueError if isinstance(cmap, str) else TypeError)(
            f"cmap must be the name of a matplotlib colormap (e.g. 'viridis') or a Colormap, got {cmap!r}")
    return cmap


def _axis(v, name, minimum=1):
    v = as_real_array(v, name, ndim=1, what="a 1-D array", allow_traced=False)
    if v.size < minimum:
        raise ValueError(f"{name} must hold at least {minimum} value(s), got {v.size}")
    return v


def _check_colorbar(colorbar):
    if colorbar is not None and not isinstance(colorbar, str):
        raise TypeError(f"colorbar must be None or the colour bar's label (a str), got {colorbar!r}")


def grid_points(extent, n=200):
    """A regular ``n x n`` grid over ``extent = (xmin, xmax, ymin, ymax)``.

    Returns:
        ``(X, Y, points)`` with ``X, Y`` of shape ``(n, n)`` and ``points`` of shape
        ``(n * n, 2)`` (row-major, so ``values.reshape(n, n)`` lines up with ``X``).
    """
    xmin, xmax, ymin, ymax = _extent(extent)
    n = check_count(n, "n", minimum=2)
    X, Y = onp.meshgrid(onp.linspace(xmin, xmax, n), onp.linspace(ymin, ymax, n))
    return X, Y, onp.stack([X.ravel(), Y.ravel()], axis=1)


def density_image(ax, logpdf, extent, n=200, cmap="viridis", colorbar=None, **kwargs):
    """Draw ``exp(logpdf)`` over ``extent`` as a heat map; ``logpdf`` maps ``(m, 2) -> (m,)`` (``-inf`` allowed).

    With ``colorbar`` (a label such as ``"p_t(x)"``) a colour bar with that label is drawn
    beside ``ax``. Panels that are compared should share ``vmin``/``vmax`` (passed to
    ``imshow`` with the other ``kwargs``); the image is ``ax.images[-1]``.

    Returns:
        the density on the grid, shape ``(n, n)``.
    """
    _ax(ax)
    check_callable(logpdf, "logpdf")
    extent = _extent(extent)
    _cmap(cmap)
    _check_colorbar(colorbar)
    X, _, pts = grid_points(extent, n)
    log_p = check_log_density(logpdf(pts), pts.shape[0], "logpdf(points)")
    p = onp.exp(onp.asarray(log_p)).reshape(X.shape)
    im = ax.imshow(p, origin="lower", extent=extent, cmap=cmap, aspect="auto", **kwargs)
    ax.set_xlim(extent[:2])
    ax.set_ylim(extent[2:])
    if colorbar is not None:
        ax.figure.colorbar(im, ax=ax, label=colorbar)
    return p


def samples(ax, x, color=BLUE, size=2.0, alpha=0.5, **kwargs):
    """Scatter a batch of 2-D points ``(n, 2)``."""
    _ax(ax)
    x = as_points(x, "x", d=2, allow_traced=False)
    _color(color)
    size = check_real(size, "size", low=0.0)
    alpha = check_real(alpha, "alpha", low=0.0, high=1.0)
    ax.scatter(x[:, 0], x[:, 1], s=size, color=color, alpha=alpha, linewidths=0, **kwargs)


def velocity_arrows(ax, u, t, extent, n=17, color="k", **kwargs):
    """Arrows of a velocity field ``u(x, t)`` (``t`` a float) on an ``n x n`` grid over ``extent``.

    By default matplotlib scales the arrows of each call on its own; to compare panels,
    give them all the same ``scale_units="xy", scale=s`` (an arrow of speed ``|u|`` is
    then ``|u| / s`` long in data units) and label one of them with ``ax.quiverkey``.

    Returns:
        the ``Quiver``.
    """
    _ax(ax)
    check_callable(u, "u")
    t = check_real(t, "t")
    _color(color)
    X, Y, pts = grid_points(extent, n)
    v = check_field_output(u(pts, t), pts.shape[0], 2, "u")
    return ax.quiver(X, Y, v[:, 0].reshape(X.shape), v[:, 1].reshape(X.shape), color=color, **kwargs)


def trajectories(ax, path, n_show=50, color=GREY, alpha=0.6, lw=0.7):
    """Draw trajectories ``path`` of shape ``(n_times, n, 2)`` (as ``integrate(..., return_path=True)``)."""
    _ax(ax)
    path = as_real_array(path, "path", shape=(None, None, 2), what="an array of shape (n_times, n, 2)", allow_traced=False)
    if path.shape[0] < 1 or path.shape[1] < 1:
        raise ValueError(f"path must hold at least one time and one trajectory, got shape {path.shape}")
    n_show = check_count(n_show, "n_show")
    _color(color)
    alpha = check_real(alpha, "alpha", low=0.0, high=1.0)
    lw = check_real(lw, "lw", low=0.0)
    for i in range(min(n_show, path.shape[1])):
        ax.plot(path[:, i, 0], path[:, i, 1], color=color, alpha=alpha, lw=lw)


def time_space_values(f, t, x):
    """``f(points, times)`` on the ``(t, x)`` grid of a 1-D path, shape ``(len(x), len(t), ...)``.

    ``f`` takes points of shape ``(m, 1)`` and one time per point (``m = len(x) len(t)``),
    as ``path.logpdf``-like callables and velocity fields do.
    """
    check_callable(f, "f")
    t, x = _axis(t, "t"), _axis(x, "x")
    T, X = onp.meshgrid(t, x)
    m = X.size
    out = f(X.reshape(-1, 1), T.ravel())
    if not isinstance(out, onp.ndarray) or out.dtype.kind not in "iuf":
        raise TypeError(f"f(points, times) must return a real NumPy array, got {type(out).__name__}"
                        + (f" of dtype {out.dtype}" if isinstance(out, onp.ndarray) else ""))
    if out.ndim < 1 or out.shape[0] != m:
        raise ValueError(f"f(points, times) must return one value (or row) per point, shape ({m}, ...), got {out.shape}")
    if onp.any(onp.isnan(out)):
        raise ValueError("f(points, times) returned NaN")
    return out.reshape(X.shape + out.shape[1:])


def save(fig, out_dir, name, dpi=None):
    """Save ``fig`` as ``out_dir/name`` and close it; return the path.

    ``name`` is a file name relative to ``out_dir`` (sub-folders allowed, ``..`` and absolute
    paths not). ``dpi`` (>= 1) defaults to matplotlib's ``savefig.dpi`` when that is a
    number, else 110. A figure laid out by matplotlib's constrained layout already fills
    its canvas and is saved as it is (one drawing); any other is cropped to its contents
    (``bbox_inches="tight"``, which draws it twice).
    """
    check_instance(fig, Figure, "fig", "matplotlib Figure")
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be a folder (a str or a path), got {type(out_dir).__name__}")
    if not isinstance(name, str) or not name or name.endswith(("/", os.sep)):
        raise (TypeError if not isinstance(name, str) else ValueError)(
            f"name must be a file name such as 'fig.png', got {name!r}")
    if PurePath(name).is_absolute() or ".." in PurePath(name).parts:
        raise ValueError(f"name must stay inside out_dir (no '..', not absolute), got {name!r}")
    if dpi is None:
        dpi = plt.rcParams["savefig.dpi"]
        dpi = 110 if dpi == "figure" else dpi
    dpi = check_real(dpi, "dpi", low=1.0)
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
    _ax(ax)
    t, x = _axis(t, "t", 2), _axis(x, "x", 2)
    for name, v in (("t", t), ("x", x)):
        if not onp.all(onp.diff(v) > 0):
            raise ValueError(f"{name} must be strictly increasing (the grid of the image), got {v}")
    values = as_real_array(values, "values", shape=(x.size, t.size), what=f"an array of shape (len(x), len(t)) = {(x.size, t.size)}",
                           allow_traced=False)
    _cmap(cmap)
    _check_colorbar(colorbar)
    if clip_quantile is not None:
        clip_quantile = check_real(clip_quantile, "clip_quantile", low=0.0, high=1.0, low_open=True)
    if vmax is not None:
        vmax = check_real(vmax, "vmax", low=0.0, low_open=True)
    else:
        vmax = onp.quantile(values, clip_quantile) if clip_quantile is not None else values.max()
    im = ax.imshow(values, origin="lower", extent=(t[0], t[-1], x[0], x[-1]), aspect="auto",
                   cmap=cmap, vmin=0.0, vmax=vmax, interpolation="bilinear", **kwargs)
    ax.set_xlabel("t")
    ax.set_ylabel("x")
    if colorbar is not None:
        ax.figure.colorbar(im, ax=ax, label=colorbar, extend="max" if values.max() > vmax else "neither")
    return im

"""Every figure of the lecture, redrawn from the ``reference`` package.

Each ``figures/fig_*.py`` script has ``main(out_dir, quick=False)`` that writes its PNG
(or GIF) into ``out_dir`` and returns the paths it wrote; it runs on its own with
``python -m figures.fig_<name>``. ``python -m figures`` regenerates all of them into
``figures/images/`` and then prints the table of the lecture's claims checked
numerically (``figures.claims``); quick or partial runs write into a scratch folder
(``figures._cli.output_folder``). This package imports nothing from ``reference`` itself,
so that ``python -m figures --readable`` can set ``REFERENCE_READABLE`` first.
"""

import functools
import importlib
import pkgutil
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"


def figure_names():
    """The figure scripts, in file-name order (``fig_01_...`` before ``fig_02_...``)."""
    here = Path(__file__).resolve().parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("fig_"))


def load_figure(name):
    """Import the figure script ``figures.<name>``."""
    return importlib.import_module(f"{__name__}.{name}")


def cached_per_mode(fn):
    """``functools.lru_cache`` keyed also by ``reference.is_readable()``.

    A model trained (or a fit made) by the fast engines is never reused by a readable run
    in the same process, nor the other way round, so an edited readable formula always
    shows in the figures made with ``--readable``.
    """
    cached = functools.lru_cache(maxsize=None)(lambda readable, *args, **kwargs: fn(*args, **kwargs))

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from reference import is_readable  # here, not at the top: see the module's docstring

        return cached(is_readable(), *args, **kwargs)

    wrapper.cache_clear = cached.cache_clear
    return wrapper

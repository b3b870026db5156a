"""flow-matching reference: the mathematics of a lecture on flow matching, in NumPy + autograd.

Each module is a section of the lecture (see the README's lecture map). Submodules are
imported on first use, so ``import reference`` is cheap and ``reference.ode`` works
without an explicit ``import reference.ode``.

Each lecture module shows the formula as the lecture writes it; the fast engines that
compute the same numbers for the heavy workloads live apart, in ``reference.engines``.
``with reference.readable():`` (or ``REFERENCE_READABLE=1``) runs the readable formulas
everywhere.
"""

import importlib

from .engines import is_readable, readable

__version__ = "0.1.0"
__all__ = ["readable", "is_readable"]


def __getattr__(name):
    if name.startswith("_"):
        raise AttributeError(name)
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute or submodule {name!r}") from None

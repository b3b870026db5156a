"""The fast engines, apart from the lecture's formulas, and the one switch that turns them off.

Each lecture module of ``reference`` shows the formula as the lecture writes it, and that
readable form is the reference. Where the workloads people run thousands of times need
speed, a fast engine computes the same numbers here, and the lecture module hands its
work to the engine unless the switch says otherwise. Every engine is tested equal to its
readable form (``tests/test_engines.py``), to float64 rounding:

| engine | computes | the readable form it is tested against |
| --- | --- | --- |
| ``engines.mlp`` | the SiLU MLP as one autograd primitive (forward and backward written out), an evaluation-only forward pass in reused buffers, the exact divergence by forward mode, ``VelocityNetwork`` | ``nn.velocity_apply``, ``autodiff.divergence`` |
| ``engines.adam`` | Adam in place on one flat vector (``FlatAdam``) | ``train.adam_update`` |
| ``engines.cfm`` | the CFM training step with the network as one primitive | ``losses.cfm_loss`` of ``nn.velocity_apply`` (``train.cfm_step``) |
| ``engines.marginal`` | Theorem 1 through the posterior mean of ``z`` (no ``(n, m, d)`` array), far points exactly | the pairwise sums of ``marginal`` |
| ``engines.variational`` | the planar chain and the 2-D energies as autograd primitives | ``flows.planar``, ``variational.energy`` |
| ``engines.parallel`` | two threads over blocks of a batch, BLAS held to one thread meanwhile | (no formula: the same blocks in turn) |

The switch: the readable forms run everywhere

- inside ``with reference.readable():`` (a context manager; it nests, and
  ``reference.readable(False)`` turns the engines back on inside it),
- when the environment variable ``REFERENCE_READABLE`` is ``1`` (or ``true``, ``yes``,
  ``on``), read at each call, which is what ``python -m figures --readable`` sets,
- and always where autograd differentiates through a function of ``x`` or ``t`` (the
  engines compute values, and the readable forms are what autograd traces).

Functions that take ``fused=`` follow the switch when it is ``None`` (their default);
``fused=True`` or ``False`` chooses explicitly.
"""

import contextlib
import contextvars
import os

__all__ = ["readable", "is_readable", "engines_on", "use_engine", "ENVIRONMENT_VARIABLE"]

ENVIRONMENT_VARIABLE = "REFERENCE_READABLE"
"""``REFERENCE_READABLE=1`` runs the readable formulas everywhere (``python -m figures --readable`` sets it)."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}

_mode = contextvars.ContextVar("reference_readable", default=None)  # None: the environment decides


def _from_environment():
    value = os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"the environment variable {ENVIRONMENT_VARIABLE} must be one of 1, true, yes, on "
                     f"(readable formulas) or 0, false, no, off, empty (fast engines), got "
                     f"{os.environ[ENVIRONMENT_VARIABLE]!r}")


def is_readable():
    """Whether the readable formulas run now (``reference.readable()`` or ``REFERENCE_READABLE``)  [lecture: all sections]

    Returns:
        ``True`` inside ``with reference.readable():`` (and not inside a nested
        ``readable(False)``), or, outside any such block, when ``REFERENCE_READABLE`` is set
        to a true value; ``False`` otherwise.
    """
    mode = _mode.get()
    return _from_environment() if mode is None else mode


def engines_on():
    """``not is_readable()``: whether a lecture module may hand its work to a fast engine."""
    return not is_readable()


def use_engine(fused, name="fused"):
    """Whether to run the fast engine: ``fused`` if it is ``True`` or ``False``, the switch if it is ``None``.

    Args:
        fused: ``None`` (follow ``reference.readable()`` and ``REFERENCE_READABLE``),
            ``True`` (the engine) or ``False`` (the readable formula).
        name: the argument's name, for the error message.
    """
    if fused is None:
        return engines_on()
    if not isinstance(fused, bool):
        raise TypeError(f"{name} must be None (follow reference.readable()), True or False, got "
                        f"{type(fused).__name__} {fused!r}")
    return fused


@contextlib.contextmanager
def readable(on=True):
    """Run the readable formulas (``on=True``) or the fast engines (``on=False``) inside the block  [lecture: all sections]

    ::

        import reference
        with reference.readable():
            u = reference.marginal.marginal_velocity(path, x, t, z)  # the pairwise sum of eq. (9)

    It nests (the innermost block decides) and is local to the thread or task that
    enters it (a ``contextvars`` variable): another thread keeps its own mode.

    Args:
        on: ``True`` for the readable formulas, ``False`` for the fast engines.
    """
    if not isinstance(on, bool):
        raise TypeError(f"on must be True or False, got {type(on).__name__} {on!r}")
    token = _mode.set(on)
    try:
        yield
    finally:
        _mode.reset(token)

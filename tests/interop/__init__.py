"""Cross-checks of the field's libraries (torchcfm, flow_matching, torchdiffeq, zuko) with ``reference.testing``.

They need the ``interop`` extra; without it every module here is skipped with the reason.
"""

import pytest

INSTALL = (
    "the interop extra is not installed: pip install torch==2.13.0 (a CPU build), then "
    "pip install --no-deps torchcfm flow-matching torchdiffeq zuko pot tqdm"
)


def require(*modules):
    """Import ``modules`` or skip the calling test module, saying what to install."""
    found = [pytest.importorskip(name, reason=f"{name} is missing; {INSTALL}") for name in modules]
    return found[0] if len(found) == 1 else found

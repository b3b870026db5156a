"""The interop tests run only with the ``interop`` extra; the header says which libraries were found."""

import importlib.util

LIBRARIES = ("torch", "torchcfm", "flow_matching", "torchdiffeq", "zuko", "ot")


def pytest_configure(config):
    if importlib.util.find_spec("torch") is not None:
        import torch

        # the checkers' batches are tiny: one thread avoids thread start-up and contention costs
        # that otherwise make these tests ten times slower on a shared 2-core machine
        torch.set_num_threads(1)


def pytest_report_header(config):
    lines = []
    missing = [name for name in LIBRARIES if importlib.util.find_spec(name) is None]
    if missing:
        lines.append(f"interop: {', '.join(missing)} not installed, the PyTorch cross-checks are skipped")
    else:
        import torch

        lines.append(f"interop: torch {torch.__version__} with {', '.join(LIBRARIES[1:])}")
    jax_missing = [name for name in ("jax", "diffrax") if importlib.util.find_spec(name) is None]
    lines.append(f"interop: {', '.join(jax_missing)} not installed, the JAX cross-checks are skipped" if jax_missing
                 else "interop: jax and diffrax found")
    return lines

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
    missing = [name for name in LIBRARIES if importlib.util.find_spec(name) is None]
    if missing:
        return f"interop: {', '.join(missing)} not installed, tests/interop is skipped"
    import torch

    return f"interop: torch {torch.__version__} with {', '.join(LIBRARIES[1:])}"

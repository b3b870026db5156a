"""Shared test configuration: hypothesis profiles and fixtures.

Profiles (choose with the environment variable ``HYPOTHESIS_PROFILE``):

- ``ci`` (default): deterministic (derandomised) and fast, 20 examples per property;
- ``deep``: 500 random examples per property, for long runs before a release;
- ``dev``: 50 random examples, for local work.
"""

import os

import matplotlib
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")

settings.register_profile(
    "ci", max_examples=20, derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", max_examples=50, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "deep", max_examples=500, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under `pytest -n 2` each worker has a core of its own: BLAS threads of its own would
    # only spin against the other worker's (the suite took 148 s with them, 135 s without).
    # The limit is set from a short-lived thread, so that the main thread does not keep
    # OpenBLAS's right to change its count (tests/test_parallel.py changes it from threads).
    import threading

    from threadpoolctl import ThreadpoolController

    _setter = threading.Thread(target=lambda: ThreadpoolController().limit(limits=1, user_api="blas"))
    _setter.start()
    _setter.join()


@pytest.fixture
def rng():
    """A fresh, seeded generator for tests that are not hypothesis properties."""
    return np.random.default_rng(20261129)

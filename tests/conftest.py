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


@pytest.fixture
def rng():
    """A fresh, seeded generator for tests that are not hypothesis properties."""
    return np.random.default_rng(20261129)

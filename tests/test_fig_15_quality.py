"""Figure 15's sample-quality measure sees what the eye sees: fresh data sits at the floor, wrong samples do not.

The measure is the kernel MMD^2 of ``figures.fig_15_samples`` (Gaussian kernel of bandwidth
``H``, mean and standard error over blocks) against the data's noise floor. On every data
set it must put a fresh draw of the data at the floor, and rank a visibly wrong sample set
above the floor by more than ``K_SE`` standard errors, and above the fresh draw: the data
blurred by Gaussian noise of standard deviation 0.4 (the checkerboard's squares lose their
corners, the spiral arms, 1.25 apart, and the rings, 1 apart, run into each other). Another
data set is far easier to tell apart (20 to 90 standard errors at these sizes).
"""

import numpy as np
import pytest

from figures.fig_15_samples import K_SE, Quality, noise_floor_blocks, sample_quality
from reference.distributions import DATASETS, make_dataset

N, BLOCKS = 800, 6
BLUR = 0.4


def draw(name, rng):
    """``BLOCKS`` independent draws of ``N`` points (``make_dataset`` orders some sets, e.g. moon by moon)."""
    return np.concatenate([make_dataset(name, N, rng) for _ in range(BLOCKS)])


@pytest.mark.parametrize("name", list(DATASETS))
def test_measure_ranks_wrong_samples_above_the_floor_and_fresh_data_at_it(name):
    rng = np.random.default_rng(150)
    floor = noise_floor_blocks(name, N, BLOCKS, rng)
    fresh = sample_quality(draw(name, rng), name, BLOCKS, rng, floor)
    blurred = sample_quality(draw(name, rng) + BLUR * rng.standard_normal((N * BLOCKS, 2)), name, BLOCKS, rng, floor)
    assert fresh.at_floor and fresh.verdict() == "at the floor", fresh
    # the negative control: a visibly wrong sample set
    assert not blurred.at_floor and blurred.excess_se > K_SE, blurred
    gap = (blurred.mmd2 - fresh.mmd2) / np.hypot(blurred.se, fresh.se)
    assert gap > K_SE, (blurred, fresh)
    assert blurred.verdict().endswith("SE above the floor")


def test_a_value_below_the_floor_reads_at_the_floor():
    below = Quality(mmd2=-5e-4, se=1e-4, floor=0.0, floor_se=1e-4)
    assert below.excess_se < 0 and below.at_floor and below.verdict() == "at the floor"
    above = Quality(mmd2=4.5e-4, se=1e-4, floor=0.0, floor_se=1e-4)  # 3.18 SE: just above K_SE = 3
    assert not above.at_floor and above.verdict() == "3.2 SE above the floor"
    far = Quality(mmd2=30e-4, se=1e-4, floor=0.0, floor_se=1e-4)
    assert far.verdict() == "21 SE above the floor"

"""torchcfm's conditional flow matchers against the reference paths and the brute-force OT pairing.

torchcfm's matchers draw their Gaussian noise inside ``sample_location_and_conditional_flow``;
``check_conditional_path`` needs the deterministic interpolant, which is
``sample_xt(x0, x1, t, epsilon)`` with the noise passed in, and ``compute_conditional_flow``.
"""

import numpy as np
import pytest

from reference.paths import ConicalGaussianPath, LinearInterpolationPath, OptimalTransportPath
from reference.testing import check_conditional_path, check_ot_pairing, from_torch
from tests.interop import require

torch = require("torch")
cfm = require("torchcfm.conditional_flow_matching")


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((8, 2)), rng.standard_normal((8, 2)) + 2.0


def _interpolant(matcher, noise):
    """``(x_t, u_t)`` of a torchcfm matcher with its noise ``epsilon`` chosen by ``noise(x0)``."""
    def sample(x0, x1, t):
        x_t = matcher.sample_xt(x0, x1, t, noise(x0))
        return x_t, matcher.compute_conditional_flow(x0, x1, t, x_t)
    return from_torch(sample)


@pytest.mark.parametrize("sigma", [0.0, 0.1])
def test_conditional_flow_matcher_is_the_linear_interpolation_path(batch, sigma):
    x0, x1 = batch
    # the deterministic part (epsilon = 0): N((1 - t) x0 + t x1, sigma^2) has this mean and u = x1 - x0
    matcher = cfm.ConditionalFlowMatcher(sigma=sigma)
    report = check_conditional_path(_interpolant(matcher, torch.zeros_like), x0, x1, path=LinearInterpolationPath(sigma))
    assert report, str(report)


def test_conditional_flow_matcher_with_sigma_draws_noise_inside_and_is_refused_as_an_interpolant(batch):
    x0, x1 = batch
    torch.manual_seed(0)
    matcher = cfm.ConditionalFlowMatcher(sigma=0.1)

    def sample(a, b, t):
        _, x_t, u_t = matcher.sample_location_and_conditional_flow(a, b, t)
        return x_t, u_t

    report = check_conditional_path(from_torch(sample), x0, x1)
    assert not report and report.diagnosis == "noise drawn inside sample"
    # with sigma = 0 the same call is deterministic and passes
    exact = cfm.ConditionalFlowMatcher(sigma=0.0)
    assert check_conditional_path(from_torch(lambda a, b, t: exact.sample_location_and_conditional_flow(a, b, t)[1:]),
                                  x0, x1, path=LinearInterpolationPath())


@pytest.mark.parametrize("sigma, path", [(0.0, ConicalGaussianPath()), (0.01, OptimalTransportPath(0.01))], ids=repr)
def test_target_flow_matcher_is_the_conical_path_and_its_sigma_min_variant(batch, sigma, path):
    x0, x1 = batch
    # Lipman et al.'s path N(t x1, (1 - (1 - sigma) t)^2): x0 enters as the noise epsilon
    matcher = cfm.TargetConditionalFlowMatcher(sigma=sigma)
    report = check_conditional_path(_interpolant(matcher, lambda a: a), x0, x1, path=path)
    assert report, str(report)
    assert abs(report.figures["end_x0_weight"] - sigma) < 1e-12  # the measured sigma_min is torchcfm's sigma


def test_exact_ot_matcher_pairs_optimally_but_samples_the_plan_with_replacement():
    matcher = cfm.ExactOptimalTransportConditionalFlowMatcher(sigma=0.0)
    np.random.seed(0)  # torchcfm draws from NumPy's global generator
    default = check_ot_pairing(from_torch(lambda x0, x1: matcher.ot_sampler.sample_plan(x0, x1)))
    assert not default and default.diagnosis == "pairs drawn with replacement"
    # every pair it draws is a pair of the optimal assignment
    on_plan = [v for name, v in default.figures.items() if name.startswith("pairs_on_optimal_plan")]
    assert len(on_plan) == 12 and all(v == 1.0 for v in on_plan)  # 3 batch sizes in each of d = 1, 2, 3, 5
    without = check_ot_pairing(from_torch(lambda x0, x1: matcher.ot_sampler.sample_plan(x0, x1, replace=False)))
    assert without, str(without)

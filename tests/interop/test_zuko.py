"""zuko's coupling transforms: bijections whose log-dets are log |det J| of the forward map."""

import numpy as np
import pytest

from reference.testing import check_bijection, from_torch
from tests.interop import require

torch = require("torch")
zuko = require("zuko")


def _perturbed(module, seed):
    """Move the parameters away from their initialisation (whose last layer is near the identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return module


def _check(transform, x, dtype="float64"):
    forward = from_torch(lambda z: transform.call_and_ladj(z), dtype=dtype)
    inverse = from_torch(lambda y: transform.inv.call_and_ladj(y), dtype=dtype)
    return check_bijection(forward, inverse, x)


@pytest.mark.parametrize("d", [2, 3, 5])
def test_affine_coupling_transform(d):
    torch.manual_seed(d)
    lazy = _perturbed(zuko.flows.GeneralCouplingTransform(d, hidden_features=(16,)).double(), d)
    report = _check(lazy(), np.random.default_rng(d).standard_normal((6, d)))
    assert report, str(report)


def test_spline_coupling_transform():
    torch.manual_seed(0)
    spline = zuko.transforms.MonotonicRQSTransform
    lazy = _perturbed(zuko.flows.GeneralCouplingTransform(3, univariate=spline, shapes=[(8,), (8,), (7,)]).double(), 1)
    report = _check(lazy(), np.random.default_rng(0).standard_normal((6, 3)))
    assert report, str(report)


def test_realnvp_flow_transform_composes_couplings_with_summed_log_dets():
    torch.manual_seed(0)
    flow = _perturbed(zuko.flows.RealNVP(3, transforms=3).double(), 2)
    report = _check(flow.transform(), np.random.default_rng(1).standard_normal((6, 3)))
    assert report, str(report)


def test_float32_coupling_passes_with_float32_tolerances_and_a_flipped_log_det_does_not():
    torch.manual_seed(0)
    transform = _perturbed(zuko.flows.GeneralCouplingTransform(4, hidden_features=(16,)), 3)()
    x = np.random.default_rng(2).standard_normal((6, 4))
    report = _check(transform, x, dtype="float32")
    assert report, str(report)
    assert report.measurements[0].bound == pytest.approx(np.sqrt(np.finfo(np.float32).eps))
    flipped = check_bijection(from_torch(lambda z: (transform(z), -transform.call_and_ladj(z)[1]), dtype="float32"),
                              from_torch(lambda y: transform.inv.call_and_ladj(y), dtype="float32"), x)
    assert not flipped and flipped.diagnosis == "log-det sign flipped"

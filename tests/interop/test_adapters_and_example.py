"""``from_torch`` / ``to_torch`` and the README's worked example on a PyTorch training script."""

import collections

import numpy as np
import pytest

from reference.testing import check_divergence_estimator, from_torch, is_torch_native, to_torch, torch_native
from tests.interop import require

torch = require("torch")


def test_from_torch_converts_arrays_floats_callables_and_results_and_keeps_the_precision():
    Pair = collections.namedtuple("Pair", "a b")
    seen = {}

    def fn(x, t, field, n, rng=None):
        seen.update(x=x.dtype, t=type(t), n=n, rng=rng)
        return Pair(field(x, t), {"sum": x.sum()})

    out = from_torch(fn)(np.ones((2, 3)), 0.5, lambda x, t: 2 * x * t, 4, rng=None)
    assert seen == {"x": torch.float64, "t": torch.Tensor, "n": 4, "rng": None}
    assert isinstance(out, Pair) and isinstance(out.a, np.ndarray) and np.array_equal(out.a, np.ones((2, 3)))
    assert out.b["sum"] == 6.0
    single = from_torch(lambda x: x * 2, dtype="float32")(np.ones((1, 2)))
    assert single.dtype == np.float32  # the checkers then use float32 tolerances


def test_to_torch_is_the_inverse_adapter_and_torch_native_callables_pass_through():
    f = to_torch(lambda x, t: x * t)
    assert is_torch_native(f)
    out = f(torch.ones(2, 2, dtype=torch.float32), torch.tensor(3.0))
    assert out.dtype == torch.float32 and torch.all(out == 3.0)
    native = torch_native(lambda x, t: x + t)
    assert from_torch(lambda g, x: g(x, 1.0))(native, np.zeros((1, 1)))[0, 0] == 1.0
    assert not is_torch_native(from_torch(native))


def _torch_hutchinson(u, x, t, rng):
    """A PyTorch Hutchinson estimator: eps^T (d/dx u) eps by one vector-Jacobian product, probes from rng."""
    eps = torch.as_tensor(rng.choice([-1.0, 1.0], size=tuple(x.shape)), dtype=x.dtype)
    x = x.detach().requires_grad_(True)
    out = u(x, t)
    (vjp,) = torch.autograd.grad(out, x, grad_outputs=eps)
    return (vjp * eps).sum(1)


def test_a_pytorch_divergence_estimator_is_checked_on_pytorch_fields():
    report = check_divergence_estimator(_torch_hutchinson, framework="torch", n_repeats=500, dims=(1, 3))
    assert report and any("Rademacher" in note for note in report.notes), str(report)
    flipped = check_divergence_estimator(lambda u, x, t, rng: -_torch_hutchinson(u, x, t, rng), framework="torch",
                                         n_repeats=500, dims=(1, 3))
    assert not flipped and flipped.diagnosis == "sign flipped"


def test_the_readme_example_trains_wraps_and_checks():
    from tests.interop import example_pytorch_cfm

    # the likelihood check in two dimensions here (the script's own run covers 1, 2, 3, 5)
    path, solver, likelihood, field = example_pytorch_cfm.main(n_train=300, dims=(1, 3))
    assert path and solver and likelihood, "\n".join(map(str, (path, solver, likelihood)))
    # 300 steps is a short training run: far from the zero field (relative loss 1), not yet under 5 %
    assert field.figures["relative_fm_loss"] < 0.5 and not field.passed
    # Theorem 2: the reported C is the closed-form constant (within 5 standard errors), and it
    # dominates the CFM loss the script printed: that loss says little about the model
    from reference.distributions import dataset_mixture
    from reference.losses import cfm_constant
    from reference.oracles import GaussianMixtureOracle
    C = cfm_constant(GaussianMixtureOracle(dataset_mixture("8gaussians")))
    assert abs(field.figures["cfm_constant"] - C) <= 5 * field.figures["cfm_constant_se"]
    assert field.figures["cfm_constant"] > 2 * field.figures["fm_loss"]

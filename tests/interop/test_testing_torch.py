"""The PyTorch catalogue: correct code in float64, float32, float16 and bfloat16 passes, broken code is named.

PyTorch implementations written the way the field writes them (a coupling layer, an
interpolant, an RK4 loop, a CNF likelihood with an exact divergence by autograd,
Hutchinson estimators, a log-sum-exp marginal velocity), wrapped with ``from_torch``
in each floating dtype; and the mistakes only PyTorch makes easy: in-place ``add_`` on
an argument, a result that is a view of an argument, ``BatchNorm`` left in training
mode. Also the adapters themselves: the dtype and device of the model, bfloat16 and
float8 results, write-back of in-place updates, aliasing.
"""

import math

import numpy as np
import pytest

from reference.testing import (
    check_bijection,
    check_conditional_path,
    check_divergence_estimator,
    check_log_likelihood,
    check_marginal_velocity,
    check_ode_solver,
    check_ot_pairing,
    from_torch,
    to_torch,
)
from tests.interop import require

torch = require("torch")

DTYPES = ("float64", "float32", "float16", "bfloat16")


def _names(report):
    return frozenset(report.diagnosis.split("; ")) if report.diagnosis else frozenset()


# ----------------------------------------------------------------------------- implementations


class Coupling(torch.nn.Module):
    """A RealNVP affine coupling layer on d = 4 (eq. (3)); ``in_place`` writes the result into x."""

    def __init__(self, in_place=False):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
        with torch.no_grad():
            for p in self.net.parameters():
                p.copy_(0.5 * torch.randn(p.shape, generator=generator))
        self.in_place = in_place

    def st(self, x1):
        out = self.net(x1)
        return torch.tanh(out[:, :2]), out[:, 2:]

    def forward(self, x):
        s, t = self.st(x[:, :2])
        if self.in_place:
            x[:, 2:] = x[:, 2:] * torch.exp(s) + t
            return x, s.sum(1)
        return torch.cat([x[:, :2], x[:, 2:] * torch.exp(s) + t], 1), s.sum(1)

    def inverse(self, y):
        s, t = self.st(y[:, :2])
        return torch.cat([y[:, :2], (y[:, 2:] - t) * torch.exp(-s)], 1), -s.sum(1)


def linear_interpolant(x0, x1, t):
    t = t.reshape(-1, 1)
    return (1 - t) * x0 + t * x1, x1 - x0


def in_place_interpolant(x0, x1, t):
    t = t.reshape(-1, 1)
    u = x1 - x0
    return x0.mul_(1 - t).add_(t * x1), u  # x_t built in the caller's x0


def rk4(u, x0, t0, t1, n):
    h = (t1 - t0) / n
    x = x0
    for k in range(n):
        t = t0 + k * h
        k1 = u(x, t)
        k2 = u(x + h / 2 * k1, t + h / 2)
        k3 = u(x + h / 2 * k2, t + h / 2)
        k4 = u(x + h * k3, t + h)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def in_place_euler(u, x0, t0, t1, n):
    h = (t1 - t0) / n
    for k in range(n):
        x0.add_(h * u(x0, t0 + k * h))  # integrates in the caller's tensor
    return x0


def cnf_log_likelihood(v, x, n_steps=8, constant="d"):
    """log p1(x) = log p0(x(0)) - int_0^1 div v dt: RK4 from t = 1 back to 0, exact divergence by autograd."""
    def rhs(state, t):
        with torch.enable_grad():
            y = state[:, :-1].detach().requires_grad_(True)
            out = v(y, t)
            div = sum(torch.autograd.grad(out[:, i].sum(), y, retain_graph=True)[0][:, i] for i in range(y.shape[1]))
        return torch.cat([out.detach(), div.detach().reshape(-1, 1)], dim=1)

    state, h = torch.cat([x, torch.zeros(len(x), 1, dtype=x.dtype)], dim=1), -1.0 / n_steps
    for k in range(n_steps):
        t = 1.0 + k * h
        k1 = rhs(state, t)
        k2 = rhs(state + h / 2 * k1, t + h / 2)
        k3 = rhs(state + h / 2 * k2, t + h / 2)
        k4 = rhs(state + h * k3, t + h)
        state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    z, integral = state[:, :-1], state[:, -1]
    const = 0.5 * z.shape[1] * math.log(2 * math.pi) if constant == "d" else math.log(2 * math.pi)
    return -0.5 * (z**2).sum(1) - const + integral


def hutchinson(u, x, t, rng, shared=False, ones=False):
    shape = (1, x.shape[1]) if shared else tuple(x.shape)
    eps = torch.ones(shape, dtype=x.dtype) if ones else torch.as_tensor(rng.choice([-1.0, 1.0], size=shape),
                                                                       dtype=x.dtype)
    eps = eps.expand(x.shape)
    x = x.detach().requires_grad_(True)
    (vjp,) = torch.autograd.grad(u(x, t), x, grad_outputs=eps)
    return (vjp * eps).sum(1)


def marginal_velocity(x, t, data):
    """Theorem 1's field of empirical data: softmax over the data of -|x - t y|^2 / (2 (1 - t)^2)."""
    tc = t.reshape(-1, 1, 1)
    log_w = -((x[:, None, :] - tc * data[None]) ** 2).sum(-1) / (2 * (1 - tc[:, :, 0]) ** 2)
    w = torch.softmax(log_w.float(), dim=1).to(x.dtype)
    return torch.einsum("nj,njd->nd", w, (data[None] - x[:, None, :]) / (1 - tc))


def ot_pair(x0, x1):
    from scipy.optimize import linear_sum_assignment

    _, cols = linear_sum_assignment(((x0[:, None] - x1[None]) ** 2).sum(-1).float().numpy())
    return x0.clone(), x1[torch.as_tensor(cols)]


# ----------------------------------------------------------------------------- correct code passes


@pytest.mark.parametrize("dtype", DTYPES)
def test_correct_pytorch_code_passes_in_every_dtype(dtype):
    layer = Coupling().to(getattr(torch, dtype))
    x = np.random.default_rng(1).normal(size=(8, 4))
    reports = [
        check_bijection(from_torch(layer.forward), from_torch(layer.inverse), x),
        check_conditional_path(from_torch(linear_interpolant, dtype=dtype)),
        check_ode_solver(from_torch(rk4, dtype=dtype), 4),
        check_divergence_estimator(hutchinson, framework="torch", dtype=dtype, n_repeats=500),
        check_ot_pairing(from_torch(ot_pair, dtype=dtype)),
    ]
    for report in reports:
        assert report, str(report)
        assert any(dtype in c for c in report.coverage), report.coverage


@pytest.mark.parametrize("dtype, dims", [("float32", None), ("float16", (1, 3)), ("bfloat16", (2, 5))])
def test_a_pytorch_cnf_with_an_exact_divergence_passes_in_low_precision(dtype, dims):
    report = check_log_likelihood(cnf_log_likelihood, framework="torch", dtype=dtype, atol=1e-3, n=4, dims=dims)
    assert report, str(report)


def test_hutchinson_in_pytorch_is_unbiased_with_the_probe_per_point_or_shared_by_the_batch():
    per_point = check_divergence_estimator(hutchinson, framework="torch", n_repeats=500, dims=(2, 3))
    shared = check_divergence_estimator(lambda u, x, t, rng: hutchinson(u, x, t, rng, shared=True),
                                        framework="torch", n_repeats=20, dims=(2, 3), n_calls=64)
    assert per_point and shared, f"{per_point}\n{shared}"
    assert any("per point" in n for n in per_point.notes) and any("shared by the whole batch" in n for n in shared.notes)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_pytorch_marginal_velocity_passes_on_thousands_of_points(dtype):
    report = check_marginal_velocity(from_torch(marginal_velocity, dtype=dtype), dims=(1, 3), n_data=3000)
    assert report, str(report)


# ----------------------------------------------------------------------------- broken code is named


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
def test_in_place_updates_of_arguments_are_named_whatever_the_dtype(dtype):
    solver = check_ode_solver(from_torch(in_place_euler, dtype=dtype), 1)
    assert not solver and {"writes into its input x0", "returns a view of its input x0"} <= _names(solver), str(solver)
    path = check_conditional_path(from_torch(in_place_interpolant, dtype=dtype))
    assert not path and "writes into its input x0" in _names(path), str(path)
    layer = Coupling(in_place=True).to(getattr(torch, dtype))
    bij = check_bijection(from_torch(layer.forward), from_torch(layer.inverse),
                          np.random.default_rng(1).normal(size=(8, 4)))
    assert not bij and "writes into its input x" in _names(bij), str(bij)


def test_a_result_that_is_a_view_of_an_argument_is_named_also_through_a_dtype_conversion():
    report = check_ot_pairing(from_torch(lambda x0, x1: (x0, ot_pair(x0, x1)[1]), dtype="float32"))
    assert not report and _names(report) == {"returns a view of its input x0"}, str(report)


def test_batch_norm_left_in_training_mode_is_named():
    norm = torch.nn.BatchNorm1d(4).double()

    def forward(x):
        return norm(x), torch.log(norm.weight / torch.sqrt(x.var(0, unbiased=False) + norm.eps)).sum().expand(len(x))

    def inverse(y):
        return y, torch.zeros(len(y), dtype=y.dtype)

    report = check_bijection(from_torch(forward), from_torch(inverse), np.random.default_rng(0).normal(size=(8, 4)))
    assert not report and "rows depend on the batch" in _names(report), str(report)


def test_broken_pytorch_likelihoods_and_estimators_are_named():
    ll = check_log_likelihood(lambda v, x: cnf_log_likelihood(v, x, constant="2d"), framework="torch",
                              dtype="float32", atol=1e-3, n=4, dims=(1, 2, 3))
    assert not ll and _names(ll) == {"base log-density constant of d = 2 (-log(2 pi) for every d)"}, str(ll)
    ones = check_divergence_estimator(lambda u, x, t, rng: hutchinson(u, x, t, rng, ones=True), framework="torch",
                                      n_repeats=50, dims=(2, 3))
    assert not ones and _names(ones) == {"sums all Jacobian entries"}, str(ones)


# ----------------------------------------------------------------------------- the adapters


def test_from_torch_takes_the_dtype_and_device_of_the_model_and_brings_results_back():
    model = torch.nn.Linear(3, 3).to(torch.float32)
    seen = {}

    def fn(x):
        seen["dtype"], seen["device"] = x.dtype, x.device
        return model(x)

    out = from_torch(lambda x: fn(x) + 0 * model.weight.sum())(np.ones((2, 3)))
    assert seen == {"dtype": torch.float32, "device": torch.device("cpu")} and out.dtype == np.float32
    assert from_torch(model)(np.ones((2, 3))).dtype == np.float32  # a module itself
    assert from_torch(model.forward).torch_dtype == torch.float32  # a bound method
    assert from_torch(lambda x: x * 2).torch_dtype == torch.float64  # nothing to take it from: float64
    assert from_torch(model, dtype="float64").torch_dtype == torch.float64  # an explicit dtype wins
    with pytest.raises(ValueError, match="device"):
        from_torch(model, device="nowhere")
    with pytest.raises(ValueError, match="dtype"):
        from_torch(model, dtype="int32")


@pytest.mark.parametrize("dtype, eps", [("bfloat16", 2.0**-7), ("float8_e4m3fn", 2.0**-3)])
def test_formats_numpy_lacks_arrive_as_float32_with_their_precision_recorded(dtype, eps):
    fn = from_torch(lambda x: x.to(getattr(torch, dtype)), dtype="float32")
    out = fn(np.array([[1.0 + 2**-9, 3.3]]))
    assert out.dtype == np.float32 and fn.__reference_precision__.eps == eps
    back = to_torch(lambda x: x * 2)(torch.ones(2, dtype=torch.bfloat16))
    assert back.dtype == torch.bfloat16 and torch.all(back == 2)


def test_in_place_writes_reach_the_numpy_array_and_views_of_arguments_are_recorded():
    x = np.ones((2, 2))
    from_torch(lambda a: a.add_(1.0), dtype="float32")(x)
    assert np.all(x == 2.0)  # converted to float32 and written back
    fn = from_torch(lambda a, b: (a[:, :1], b + 1), dtype="float32")
    fn(np.ones((2, 2)), np.ones((2, 2)))
    assert fn.__reference_aliases__ == [(0, 0)]

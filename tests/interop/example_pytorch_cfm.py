"""Train a small PyTorch flow-matching model, then check it with reference.testing (the README's worked example)."""

import math

import numpy as np
import torch

from reference.distributions import dataset_mixture
from reference.testing import (
    check_conditional_path,
    check_log_likelihood,
    check_ode_solver,
    check_velocity_field,
    from_torch,
)

torch.manual_seed(0)


# ---- 1. a typical PyTorch flow-matching script --------------------------------------------------
class Field(torch.nn.Module):
    """v_theta(x, t): an MLP on [x, t]."""

    def __init__(self, d=2, width=64):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(d + 1, width), torch.nn.SiLU(),
                                       torch.nn.Linear(width, width), torch.nn.SiLU(),
                                       torch.nn.Linear(width, d))

    def forward(self, x, t):
        t = torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1).expand(x.shape[0], 1)
        return self.net(torch.cat([x, t], dim=1))


def interpolant(x0, x1, t):
    """Linear path: x_t = (1 - t) x0 + t x1, u_t = x1 - x0 (t = 0 noise, t = 1 data)."""
    t = t.reshape(-1, 1)
    return (1 - t) * x0 + t * x1, x1 - x0


def euler(v, x0, t0, t1, n_steps):
    """Sample by Euler steps of dx/dt = v(x, t) from t0 to t1 (t1 < t0 runs backwards)."""
    h = (t1 - t0) / n_steps
    x = x0
    for k in range(n_steps):
        x = x + h * v(x, t0 + k * h)
    return x


def log_likelihood(v, x, n_steps=40):
    """log p1(x) = log p0(x(0)) - int_0^1 div v dt, RK4 from t = 1 back to 0, exact divergence by autograd."""
    def rhs(state, t):
        with torch.enable_grad():
            y = state[:, :-1].detach().requires_grad_(True)
            out = v(y, t)
            div = sum(torch.autograd.grad(out[:, i].sum(), y, retain_graph=True)[0][:, i]
                      for i in range(y.shape[1]))
        return torch.cat([out.detach(), div.detach().reshape(-1, 1)], dim=1)

    state, h = torch.cat([x, torch.zeros(len(x), 1, dtype=x.dtype)], dim=1), -1.0 / n_steps
    for k in range(n_steps):
        t = 1.0 + k * h
        k1 = rhs(state, t)
        k2 = rhs(state + h / 2 * k1, t + h / 2)
        k3 = rhs(state + h / 2 * k2, t + h / 2)
        k4 = rhs(state + h * k3, t + h)
        state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    z, integral = state[:, :-1], state[:, -1]  # integral = int_1^0 div v dt = -int_0^1 div v dt
    return -0.5 * (z**2).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi) + integral


def train(n_steps=3000, batch=256):
    data = dataset_mixture("8gaussians")  # the data distribution, a Gaussian mixture
    rng = np.random.default_rng(0)
    model = Field().double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(n_steps):
        x1 = torch.as_tensor(data.sample(batch, rng))
        x0, t = torch.randn_like(x1), torch.rand(batch, dtype=x1.dtype)
        x_t, u_t = interpolant(x0, x1, t)
        loss = ((model(x_t, t) - u_t) ** 2).sum(1).mean()  # the CFM loss: it plateaus, never reaches 0
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, loss.item()


# ---- 2. wrap with from_torch and check ------------------------------------------------------------
def main(n_train=3000, dims=None):
    model, last_loss = train(n_train)
    print(f"last CFM loss {last_loss:.3f}")
    v = from_torch(lambda x, t: model(x, t))  # NumPy in, NumPy out, float64

    reports = [
        check_conditional_path(from_torch(interpolant)),  # its own batches in d = 1, 2, 3, 5
        check_ode_solver(from_torch(euler), order=1),
        check_log_likelihood(log_likelihood, framework="torch", atol=1e-4, dims=dims),
        check_velocity_field(v, "8gaussians", max_relative_loss=0.05),
    ]
    for report in reports:
        print(report, end="\n\n")
    return reports


if __name__ == "__main__":
    main()

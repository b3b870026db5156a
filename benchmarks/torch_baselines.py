"""PyTorch baselines for the benchmarks: the same network, batch and workloads in PyTorch.

Imported only when torch is installed (the ``interop`` extra). Each network is built from
the project's own parameters, so both sides start from identical weights.
"""

import numpy as np
import torch

from reference.nn import mlp_unflatten


def torch_mlp(theta, sizes, dtype):
    """``nn.Sequential`` of Linear + SiLU layers holding the project's weights."""
    layers = []
    params = mlp_unflatten(theta, sizes)
    for k, (W, b) in enumerate(params):
        lin = torch.nn.Linear(W.shape[0], W.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W.T.copy()))
            lin.bias.copy_(torch.from_numpy(b.copy()))
        layers.append(lin)
        if k < len(params) - 1:
            layers.append(torch.nn.SiLU())
    return torch.nn.Sequential(*layers).to(dtype)


def torch_train_step_factory(theta, sizes, data, batch_size, dtype, seed=0, lr=1e-3):
    """One CFM training step (linear path, sigma = 0): sample, loss, backward, Adam."""
    torch.manual_seed(seed)
    net = torch_mlp(theta, sizes, dtype)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    data_t = torch.as_tensor(data, dtype=dtype)
    n, d = batch_size, data.shape[1]

    def step():
        x1 = data_t[torch.randint(0, data_t.shape[0], (n,))]
        x0 = torch.randn(n, d, dtype=dtype)
        t = torch.rand(n, dtype=dtype)
        x_t = x0 + t[:, None] * (x1 - x0)
        v = net(torch.cat([x_t, t[:, None]], dim=1))
        loss = ((v - (x1 - x0)) ** 2).sum(dim=1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def torch_sample(theta, sizes, x0, n_steps, method, dtype=torch.float64):
    """Euler or RK4 from t = 0 to 1 in a PyTorch loop, without autograd."""
    net = torch_mlp(theta, sizes, dtype)
    x = torch.as_tensor(x0, dtype=dtype).clone()
    n = x.shape[0]
    dt = 1.0 / n_steps
    ones = torch.ones(n, 1, dtype=dtype)

    def u(y, t):
        return net(torch.cat([y, t * ones], dim=1))

    with torch.no_grad():
        for k in range(n_steps):
            t = k * dt
            if method == "euler":
                x = x + dt * u(x, t)
            else:
                k1 = u(x, t)
                k2 = u(x + dt / 2 * k1, t + dt / 2)
                k3 = u(x + dt / 2 * k2, t + dt / 2)
                k4 = u(x + dt * k3, t + dt)
                x = x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x.numpy()


def flow_matching_loglik(theta, sizes, x1, n_steps, dtype=torch.float64):
    """``flow_matching``'s ``ODESolver.compute_likelihood``: exact divergence, RK4, ``n_steps`` steps."""
    from flow_matching.solver import ODESolver
    from flow_matching.utils import ModelWrapper

    net = torch_mlp(theta, sizes, dtype)

    class Velocity(ModelWrapper):
        def forward(self, x, t, **extras):
            return self.model(torch.cat([x, t.expand(x.shape[0], 1).to(x.dtype)], dim=1))

    d = x1.shape[1]

    def log_p0(x):
        return -0.5 * d * np.log(2 * np.pi) - 0.5 * (x**2).sum(dim=1)

    solver = ODESolver(velocity_model=Velocity(net))
    _, log_p = solver.compute_likelihood(
        x_1=torch.as_tensor(x1, dtype=dtype), log_p0=log_p0, step_size=1.0 / n_steps,
        method="rk4", exact_divergence=True, time_grid=torch.tensor([1.0, 0.0], dtype=dtype),
    )
    return log_p.detach().numpy()

"""The hand-written NumPy floor: the benchmark workloads with no autograd at all.

Forward and backward passes written out with preallocated buffers and in-place
operations; Adam on one flat vector. This is what plain NumPy float64 can do on this
machine, the lower bound the project's autograd code is measured against. It is
benchmark code, not part of the library (the library's version of each formula is the
readable one; its fast paths are tested equal to it).
"""

import numpy as np

from reference.nn import mlp_unflatten


class FloorMLP:
    """A SiLU MLP on flat parameters with buffers for a fixed batch size."""

    def __init__(self, theta, sizes, n):
        self.theta, self.sizes, self.n = theta, tuple(sizes), n
        self.layers = mlp_unflatten(theta, sizes)
        widths = self.sizes[1:]
        self.a = [np.empty((n, w)) for w in widths]  # pre-activations, then silu in place
        self.s = [np.empty((n, w)) for w in widths[:-1]]  # sigmoids
        self.delta = [np.empty((n, w)) for w in widths]
        self.scratch = [np.empty((n, w)) for w in widths[:-1]]
        self.grad = np.empty_like(theta)
        self.grads = mlp_unflatten(self.grad, sizes)

    def forward(self, h):
        for k, (W, b) in enumerate(self.layers):
            a = self.a[k]
            np.matmul(h, W, out=a)
            a += b
            if k < len(self.layers) - 1:
                s = self.s[k]
                np.negative(a, out=s)
                np.exp(s, out=s)
                s += 1.0
                np.reciprocal(s, out=s)
                a *= s
            h = a
        return self.a[-1]

    def backward(self, h, g_out):
        """Gradient of ``sum(g_out * out)`` with respect to theta, into ``self.grad``."""
        inputs = [h] + self.a[:-1]
        delta = g_out
        for k in range(len(self.layers) - 1, -1, -1):
            gW, gb = self.grads[k]
            np.matmul(inputs[k].T, delta, out=gW)
            np.sum(delta, axis=0, out=gb)
            if k == 0:
                break
            W = self.layers[k][0]
            d = self.delta[k - 1]
            np.matmul(delta, W.T, out=d)
            s, hk, c = self.s[k - 1], self.a[k - 1], self.scratch[k - 1]
            np.subtract(1.0, s, out=c)
            c *= hk
            c += s  # silu'(a) = s + h (1 - s)
            d *= c
            delta = d
        return self.grad


class FloorAdam:
    def __init__(self, theta, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        self.theta, self.lr, self.b1, self.b2, self.eps = theta, lr, b1, b2, eps
        self.m, self.v, self.k = np.zeros_like(theta), np.zeros_like(theta), 0
        self.tmp = np.empty_like(theta)

    def step(self, g):
        self.k += 1
        self.m *= self.b1
        self.m += (1 - self.b1) * g
        np.multiply(g, g, out=self.tmp)
        self.v *= self.b2
        self.tmp *= 1 - self.b2
        self.v += self.tmp
        lr_t = self.lr * np.sqrt(1 - self.b2**self.k) / (1 - self.b1**self.k)
        np.sqrt(self.v, out=self.tmp)
        self.tmp += self.eps * np.sqrt(1 - self.b2**self.k)
        np.divide(self.m, self.tmp, out=self.tmp)
        self.tmp *= lr_t
        self.theta -= self.tmp


def floor_train_step_factory(theta, sizes, data, batch_size, rng, lr=1e-3):
    """A CFM training step (linear path, sigma = 0) written out by hand."""
    n, d = batch_size, data.shape[1]
    net, adam = FloorMLP(theta, sizes, n), FloorAdam(theta, lr)
    h = np.empty((n, d + 1))
    target = np.empty((n, d))
    g_out = np.empty((n, d))

    def step():
        x1 = data[rng.integers(0, data.shape[0], n)]
        x0 = rng.standard_normal((n, d))
        t = rng.random(n)
        np.subtract(x1, x0, out=target)  # u_cond = x1 - x0
        np.multiply(target, t[:, None], out=h[:, :d])
        h[:, :d] += x0  # x_t = x0 + t (x1 - x0)
        h[:, d] = t
        out = net.forward(h)
        np.subtract(out, target, out=g_out)
        loss = np.sum(g_out * g_out) / n
        np.multiply(g_out, 2.0 / n, out=g_out)
        adam.step(net.backward(h, g_out))
        return loss

    return step


def floor_sample(theta, sizes, x0, n_steps, method):
    """Euler or RK4 from t = 0 to 1 with the MLP evaluated into preallocated buffers."""
    n, d = x0.shape
    net = FloorMLP(theta, sizes, n)
    h = np.empty((n, d + 1))
    x = x0.copy()
    dt = 1.0 / n_steps

    def u(y, t):
        h[:, :d] = y
        h[:, d] = t
        return net.forward(h)

    if method == "euler":
        for k in range(n_steps):
            x += dt * u(x, k * dt)
        return x
    k1, k2, k3, k4, y = (np.empty_like(x) for _ in range(5))
    for k in range(n_steps):
        t = k * dt
        k1[:] = u(x, t)
        np.multiply(k1, dt / 2, out=y)
        y += x
        k2[:] = u(y, t + dt / 2)
        np.multiply(k2, dt / 2, out=y)
        y += x
        k3[:] = u(y, t + dt / 2)
        np.multiply(k3, dt, out=y)
        y += x
        k4[:] = u(y, t + dt)
        k2 += k3
        k2 *= 2.0
        k1 += k2
        k1 += k4
        k1 *= dt / 6
        x += k1
    return x


def floor_loglik(theta, sizes, x1, n_steps):
    """Exact CNF log-likelihood, RK4 from t = 1 to 0, forward-mode divergence written by hand."""
    layers = mlp_unflatten(theta, sizes)
    n, d = x1.shape

    def field(y, t):
        h = np.empty((n, d + 1))
        h[:, :d] = y
        h[:, d] = t
        W, b = layers[0]
        a = h @ W + b
        da = np.broadcast_to(W[:d, None, :], (d, n, W.shape[1]))
        for W, b in layers[1:]:
            s = 1.0 / (1.0 + np.exp(-a))
            hk = a * s
            dh = (s + hk * (1.0 - s)) * da
            a = hk @ W + b
            da = dh @ W
        return a, sum(da[i, :, i] for i in range(d))

    x, int_div = x1.copy(), np.zeros(n)
    dt = -1.0 / n_steps
    for k in range(n_steps):
        t = 1.0 + k * dt
        v1, g1 = field(x, t)
        v2, g2 = field(x + dt / 2 * v1, t + dt / 2)
        v3, g3 = field(x + dt / 2 * v2, t + dt / 2)
        v4, g4 = field(x + dt * v3, t + dt)
        x = x + dt / 6 * (v1 + 2 * v2 + 2 * v3 + v4)
        int_div = int_div + dt / 6 * (g1 + 2 * g2 + 2 * g3 + g4)
    # dt < 0, so int_div holds -int_0^1 div u dt and log p1(x1) = log p0(x(0)) + int_div
    log_p0 = -0.5 * d * np.log(2 * np.pi) - 0.5 * np.sum(x**2, axis=1)
    return log_p0 + int_div

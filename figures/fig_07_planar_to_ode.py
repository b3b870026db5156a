"""From planar layers to a CNF: K planar layers are K Euler steps, and converge to the ODE as K grows.

A time-dependent planar field u(x, t) = tanh(b(t)^T x + c(t)) a(t) in 2-D
(``reference.bridge``). Left: the points x_0, x_1, ..., x_K that K = 4 and K = 16 planar
layers (a_k = a(t_{k-1}) / K, b_k = b(t_{k-1}), c_k = c(t_{k-1})) pass through, against
the trajectories of the ODE (RK4). Right: as K grows, the end point of the layers tends to
the ODE's x(1), and their summed log-determinants sum_k log|det J_phi_k| to the integrated
divergence int_0^1 div u(x(t), t) dt, both at the rate 1/K of Euler's method (the summed
inverse log-dets of eq. (2) tend to minus the integral).
"""

import sys

import matplotlib.pyplot as plt
import numpy as onp

from figures._cli import run_figure
from figures._style import projected
from reference.bridge import planar_layers, planar_ode_forward, planar_velocity
from reference.flows.chain import planar_chain_forward
from reference.ode import integrate
from reference.plot import BLUE, RED, save

PARAMS = {
    "a": onp.array([[1.2, 0.4], [-0.6, 1.0]]),
    "b": onp.array([[0.8, -0.9], [1.1, 0.5]]),
    "c": onp.array([0.3, -0.5]),
}


@projected
def main(out_dir, quick=False):
    rng = onp.random.default_rng(7)
    x0 = rng.standard_normal((12 if quick else 30, 2))
    Ks = 2 ** onp.arange(1, 8 if quick else 12)
    x1, integral = planar_ode_forward(PARAMS, x0, n_steps=200 if quick else 1000, method="dopri5")

    end_err, logdet_err = [], []
    for K in Ks:
        x_K, log_det = planar_chain_forward(planar_layers(PARAMS, int(K)), x0)
        end_err.append(onp.sqrt(onp.mean(onp.sum((x_K - x1) ** 2, axis=1))))
        logdet_err.append(onp.sqrt(onp.mean((log_det - integral) ** 2)))
    end_err, logdet_err = onp.array(end_err), onp.array(logdet_err)

    fig, axes = plt.subplots(1, 2, figsize=(14, 5.8), layout="constrained")
    ax = axes[0]
    path, _ = integrate(lambda x, t: planar_velocity(PARAMS, x, t), x0, 0.0, 1.0, 100, "rk4", return_path=True)
    for i in range(x0.shape[0]):
        ax.plot(path[:, i, 0], path[:, i, 1], color="k", lw=1.0, alpha=0.8, label="ODE trajectory" if i == 0 else None)
    for K, color in ((4, RED), (16, BLUE)):
        _, _, layer_path = planar_chain_forward(planar_layers(PARAMS, K), x0, return_path=True)
        layer_path = onp.asarray(layer_path)
        for i in range(x0.shape[0]):
            ax.plot(layer_path[:, i, 0], layer_path[:, i, 1], "o-", ms=2.5, lw=0.8, color=color, alpha=0.7,
                    label=f"K = {K} planar layers (Euler, h = 1/{K})" if i == 0 else None)
    ax.plot(x0[:, 0], x0[:, 1], "k.", ms=8, label="start x_0 = x(0)")
    ax.set_xlabel("x_1")
    ax.set_ylabel("x_2")
    ax.set_ylim(-2.3, 3.2)  # room for the legend above the points
    ax.set_aspect("equal")
    ax.legend(loc="upper left")
    ax.set_title("planar layers x_k = x_{k-1} + tanh(b_k^T x_{k-1} + c_k) a_k\n"
                 "are Euler steps of dx/dt = tanh(b(t)^T x + c(t)) a(t)")

    ax = axes[1]
    for errs, marker, color, label in ((end_err, "o-", "k", "end point |x_K - x(1)|"),
                                       (logdet_err, "s-", RED, "sum_k log|det J_phi_k| - int_0^1 div u dt")):
        slope = onp.polyfit(onp.log(Ks[-4:]), onp.log(errs[-4:]), 1)[0]
        ax.loglog(Ks, errs, marker, color=color, ms=5, label=f"{label}: slope {slope:.2f}")
    ax.loglog(Ks, 0.4 * logdet_err[-1] * Ks[-1] / Ks, ":", color="0.5", label="a line of slope -1 (1/K)")
    ax.set_xlabel("number of planar layers K")
    ax.set_ylabel("RMS error over the points")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper right")
    ax.set_title("the layers converge to the ODE at Euler's rate 1/K\n"
                 "(reference: Dormand-Prince, 1000 steps, with d/dt [x, L] = [u, div u])")
    fig.suptitle("From planar flows to a continuous normalizing flow (lecture: Continuous Normalizing Flows, eq. (4))")
    return [save(fig, out_dir, "fig_07_planar_to_ode.png")]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

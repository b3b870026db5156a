"""ODE solvers for eq. (4): error against the number of evaluations of u, log-log, with each method's slope.

One problem: the flow of Figure 4, the closed-form marginal velocity from p0 = N(0, I) to
a three-component Gaussian mixture along the conical path (``reference.oracles``), from
t = 0 to 1 for 50 points of p0. The reference solution is Dormand-Prince's fifth-order
solution with 2048 steps (it agrees with 4096 steps to 2e-14). Fixed-step Euler, midpoint
and RK4 against adaptive Dormand-Prince 5(4) over a sweep of rtol. A method of order p
with s stages has error ~ C (s / n_fev)^p: a line of slope -p.

(On a single Gaussian target the explicit midpoint method converges at order 3 at t = 1,
a coincidence of that linear field, which is why the mixture is used here.)
"""

import sys

import matplotlib.pyplot as plt
import numpy as onp

from figures._cli import run_figure
from figures.fig_04_continuity import DATA
from reference.ode import TABLEAUS, integrate, integrate_adaptive
from reference.oracles import GaussianMixtureOracle
from reference.paths import ConicalGaussianPath
from reference.plot import save

STYLE = {"euler": ("o-", "#1f77b4"), "midpoint": ("s-", "#2ca02c"), "rk4": ("^-", "#9467bd"),
         "adaptive": ("D-", "#d62728")}


def fixed_step_evaluations(method, n_steps):
    """Evaluations of u by ``integrate``: s per step, or 1 + (s - 1) per step for a FSAL tableau."""
    tab = TABLEAUS[method]
    return 1 + (tab.stages - 1) * n_steps if tab.fsal else tab.stages * n_steps


def main(out_dir, quick=False):
    oracle = GaussianMixtureOracle(DATA, ConicalGaussianPath())
    x0 = onp.random.default_rng(5).standard_normal((20 if quick else 50, 2))
    exact = integrate(oracle.velocity, x0, 0.0, 1.0, 256 if quick else 2048, "dopri5")

    def error(x):
        return float(onp.max(onp.abs(x - exact)))

    steps = {"euler": 2 ** onp.arange(3, 8 if quick else 11), "midpoint": 2 ** onp.arange(2, 7 if quick else 10),
             "rk4": 2 ** onp.arange(1, 6 if quick else 8)}
    fig, ax = plt.subplots(figsize=(8.5, 6.2), layout="constrained")
    for method, ns in steps.items():
        nfev = onp.array([fixed_step_evaluations(method, int(n)) for n in ns])
        errs = onp.array([error(integrate(oracle.velocity, x0, 0.0, 1.0, int(n), method)) for n in ns])
        keep = errs > 1e-13  # the slope is fitted above rounding
        slope = onp.polyfit(onp.log(nfev[keep][-3:]), onp.log(errs[keep][-3:]), 1)[0]
        marker, color = STYLE[method]
        ax.loglog(nfev, errs, marker, color=color, ms=5,
                  label=f"{method} (order {TABLEAUS[method].order}), fixed steps: slope {slope:.2f}")
    rtols = 10.0 ** -onp.arange(2, 7 if quick else 12)
    results = [integrate_adaptive(oracle.velocity, x0, 0.0, 1.0, rtol=r, atol=1e-3 * r) for r in rtols]
    nfev = onp.array([r.n_fev for r in results])
    errs = onp.array([error(r.x) for r in results])
    keep = errs > 1e-13
    slope = onp.polyfit(onp.log(nfev[keep][-4:]), onp.log(errs[keep][-4:]), 1)[0]
    marker, color = STYLE["adaptive"]
    ax.loglog(nfev, errs, marker, color=color, ms=6,
              label=f"adaptive Dormand-Prince 5(4) (order 5), rtol 1e-2 .. {rtols[-1]:.0e}: slope {slope:.2f}")
    for r, n, e in zip(rtols[::2], nfev[::2], errs[::2]):
        ax.annotate(f"rtol {r:.0e}", (n, e), textcoords="offset points", xytext=(6, 4), fontsize=7, color=color)
    ax.set_xlabel("evaluations of u(x, t) (each on the whole batch)")
    ax.set_ylabel("max error of x(1) against the reference solution")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("Solving eq. (4): error against cost, slope = -order\n"
                 "(Figure 4's flow: p0 = N(0, I) to a Gaussian mixture, conical path, closed-form u)", fontsize=10)
    return [save(fig, out_dir, "fig_05_ode_orders.png")]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

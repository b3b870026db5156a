"""ODE solvers for eq. (4): error against the number of evaluations of u, log-log, with each method's slope.

One problem: the flow of Figure 4, the closed-form marginal velocity from p0 = N(0, I) to
a three-component Gaussian mixture along the conical path (``reference.oracles``), from
t = 0 to 1 for 50 points of p0. The reference solution is Dormand-Prince's fifth-order
solution with 1024 steps (it agrees with 4096 steps to 1.1e-14). Fixed-step Euler, midpoint,
RK4 and Dormand-Prince 5 against adaptive Dormand-Prince 5(4) over a sweep of rtol. A
fixed-step method of order p with s stages has error ~ C (s / n_fev)^p: a line of slope
-p as the steps shrink; before that, the next term of the error (order p + 1) can make
the fitted slope steeper (Dormand-Prince 5 here: local slopes 5.75, 5.6, 5.4, 5.25 from
64 to 512 steps, measured against a 4096-step solution). The adaptive solver's curve is
not a fixed-step method's: along the sweep its error falls like rtol^a and its cost grows
like rtol^-b, so its slope is -a / b; with a step size ~ rtol^(1/5) it tends to -5 as
rtol -> 0, and it is steeper before (here the error falls a little faster than rtol
while the steps are not yet in their asymptotic regime).

(On a single Gaussian target the explicit midpoint method converges at order 3 at t = 1,
a coincidence of that linear field, which is why the mixture is used here.)
"""

import sys

import matplotlib.pyplot as plt
import numpy as onp

from figures._cli import run_figure
from figures._progress import Progress
from figures._style import projected
from figures.fig_04_continuity import DATA
from reference.ode import TABLEAUS, integrate, integrate_adaptive
from reference.oracles import GaussianMixtureOracle
from reference.paths import ConicalGaussianPath
from reference.plot import save

STYLE = {"euler": ("o-", "#1f77b4"), "midpoint": ("s-", "#2ca02c"), "rk4": ("^-", "#9467bd"),
         "dopri5": ("v-", "#8c564b"), "adaptive": ("D-", "#d62728")}
NAMES = {"euler": "Euler", "midpoint": "midpoint", "rk4": "RK4", "dopri5": "Dormand-Prince 5"}


def fixed_step_evaluations(method, n_steps):
    """Evaluations of u by ``integrate``: s per step, or 1 + (s - 1) per step for a FSAL tableau."""
    tab = TABLEAUS[method]
    return 1 + (tab.stages - 1) * n_steps if tab.fsal else tab.stages * n_steps


def fitted_slope(x, y, last):
    """Least-squares slope of log y against log x over the last ``last`` points."""
    return float(onp.polyfit(onp.log(x[-last:]), onp.log(y[-last:]), 1)[0])


@projected
def main(out_dir, quick=False):
    oracle = GaussianMixtureOracle(DATA, ConicalGaussianPath())
    x0 = onp.random.default_rng(5).standard_normal((20 if quick else 50, 2))
    exact = integrate(oracle.velocity, x0, 0.0, 1.0, 128 if quick else 1024, "dopri5")  # to 3e-10 (quick), 1e-14

    def error(x):
        return float(onp.max(onp.abs(x - exact)))

    steps = {"euler": 2 ** onp.arange(3, 8 if quick else 11), "midpoint": 2 ** onp.arange(2, 7 if quick else 10),
             "rk4": 2 ** onp.arange(1, 6 if quick else 8), "dopri5": 2 ** onp.arange(1, 5 if quick else 8)}
    rtols = 10.0 ** -onp.arange(2, 7 if quick else 12)
    solves = [(method, int(n)) for method, ns in steps.items() for n in ns]
    progress = Progress("figure 5", len(solves) + len(rtols), enabled=not quick, unit="ODE solves")
    errors = {}
    for done, (method, n) in enumerate(solves, 1):
        errors[method, n] = error(integrate(oracle.velocity, x0, 0.0, 1.0, n, method))
        progress.update(done)
    results = []
    for r in rtols:
        results.append(integrate_adaptive(oracle.velocity, x0, 0.0, 1.0, rtol=r, atol=1e-3 * r))
        progress.update(len(solves) + len(results))
    progress.close()

    fig, ax = plt.subplots(figsize=(12.5, 7.0), layout="constrained")
    for method, ns in steps.items():
        nfev = onp.array([fixed_step_evaluations(method, int(n)) for n in ns])
        errs = onp.array([errors[method, int(n)] for n in ns])
        keep = errs > 1e-13  # the slope is fitted above rounding
        slope = fitted_slope(nfev[keep], errs[keep], 3)
        marker, color = STYLE[method]
        ax.loglog(nfev, errs, marker, color=color, ms=6,
                  label=f"{NAMES[method]} (order {TABLEAUS[method].order}), fixed steps: slope {slope:.2f}")
    nfev = onp.array([r.n_fev for r in results])
    errs = onp.array([error(r.x) for r in results])
    keep = errs > 1e-13
    last = 4
    slope = fitted_slope(nfev[keep], errs[keep], last)
    err_exponent = fitted_slope(rtols[keep], errs[keep], last)  # error ~ rtol^a
    cost_exponent = -fitted_slope(rtols[keep], nfev[keep], last)  # evaluations ~ rtol^-b
    marker, color = STYLE["adaptive"]
    ax.loglog(nfev, errs, marker, color=color, ms=7,
              label=f"adaptive Dormand-Prince 5(4), rtol 1e-2 .. {rtols[-1]:.0e}: slope {slope:.2f}\n"
                    f"= -(error ~ rtol^{err_exponent:.2f}) / (evaluations ~ rtol^-{cost_exponent:.2f})")
    for r, n, e in zip(rtols[::2], nfev[::2], errs[::2]):
        ax.annotate(f"rtol {r:.0e}", (n, e), textcoords="offset points", xytext=(8, 4), fontsize=11, color=color)
    ax.set_xlabel("evaluations of u(x, t) (each on the whole batch of 50 points)")
    ax.set_ylabel("max error of x(1) against the reference solution")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title("Solving eq. (4): error against cost on log-log axes (Figure 4's flow, closed-form u)\n"
                 "fixed steps, order p: error ~ C evaluations^-p + (higher-order terms), so the slope (fitted over the "
                 "last 3 points)\ntends to -p as the steps shrink, and can be steeper before (Dormand-Prince 5: "
                 "local slopes -5.6, -5.4, -5.3 at 128, 256, 512 steps);\nthe adaptive solver's slope (last "
                 f"{last} tolerances) is how fast its error falls with rtol over how fast its cost grows", fontsize=12)
    return [save(fig, out_dir, "fig_05_ode_orders.png")]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

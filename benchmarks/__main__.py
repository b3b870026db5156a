"""Benchmarks: the project's code against PyTorch and a hand-written NumPy floor, side by side.

    python -m benchmarks [--rounds R] [--only WORKLOAD ...] [--quick] [--contention]

Workloads (the lecture's: velocity MLP [x, t] 3 -> 64 -> 64 -> 64 -> 2 with SiLU, linear
path with sigma = 0, 8 gaussians):

- ``train_step``: one CFM training step, batch 256, Adam 1e-3 (``train.cfm_step``).
- ``sample_euler``, ``sample_rk4``: 10,000 points from t = 0 to 1, 100 steps.
- ``loglik``: exact CNF log-likelihood of 1,000 points, RK4, 100 steps (``cnf.cnf_logpdf``).
- ``marginal``: Monte Carlo marginal velocity, 10^4 points against 10^4 samples z, with
  its peak memory (``marginal.marginal_velocity``).
- ``fresh_process``: the training step in a fresh interpreter against one whose allocator
  has been warmed by a large allocation (the two must agree).

Variants of a workload run alternately, round after round, in this one process; the
table gives medians over rounds, their spread, and ratios to the PyTorch baseline and to
the NumPy floor. PyTorch rows need the ``interop`` extra; without it they are left out
and the table says so. The first line says where the run happened: CPU model, cores,
load, AVX2 and AVX-512, Python, NumPy, which SiLU layers the engines use (numba's compiled
kernels or NumPy's passes), and every BLAS library with its kernel and thread count.

``--contention`` times every round twice, idle and with one CPU-bound process competing
for the cores (classroom machines are shared), and adds the contended median and the
slowdown (contended / idle) of every variant.
"""

import argparse
import contextlib
import datetime
import json
import subprocess
import sys

import numpy as np

from reference.cnf import cnf_logpdf
from reference.distributions import make_dataset
from reference.marginal import marginal_velocity
from reference.engines.mlp import VelocityNetwork
from reference.nn import mlp_flatten, velocity_apply, velocity_init
from reference.ode import integrate
from reference.paths import ConicalGaussianPath, LinearInterpolationPath
from reference.train import cfm_step

from .floor import floor_loglik, floor_sample, floor_train_step_factory
from .harness import Competitor, Result, format_results, machine_description, peak_memory_mb, run_workload

try:
    import torch

    from .torch_baselines import flow_matching_loglik, torch_sample, torch_train_step_factory

    TORCH = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
except ImportError as err:  # the interop extra is not installed
    torch = None
    TORCH = f"PyTorch rows left out: {err} (install the interop extra, see the README)"

HIDDEN = (64, 64, 64)
BASELINE = {"train_step": "torch f32", "sample_euler": "torch f64", "sample_rk4": "torch f64",
            "loglik": "flow_matching f64"}
FLOOR = {w: "numpy floor" for w in ("train_step", "sample_euler", "sample_rk4", "loglik")}


def setup(seed=0):
    rng = np.random.default_rng(seed)
    data = make_dataset("8gaussians", 10_000, rng)
    params = velocity_init(2, HIDDEN, rng)
    theta, sizes = mlp_flatten(params)
    return data, params, theta, sizes


def bench_train_step(rounds, number, competitor=None):
    data, params, theta, sizes = setup()
    path = LinearInterpolationPath()
    variants = {
        "reference (fused, train_cfm default)": cfm_step(data, path, params, 256, 1e-3, np.random.default_rng(1))[0],
        "reference (readable, fused=False)": cfm_step(data, path, params, 256, 1e-3, np.random.default_rng(1),
                                                      fused=False)[0],
        "numpy floor": floor_train_step_factory(theta.copy(), sizes, data, 256, np.random.default_rng(1)),
    }
    if torch is not None:
        variants["torch f32"] = torch_train_step_factory(theta, sizes, data, 256, torch.float32)
        variants["torch f64"] = torch_train_step_factory(theta, sizes, data, 256, torch.float64)
    return run_workload("train_step", variants, rounds, number=number, warmup=20, competitor=competitor)


def bench_sample(method, rounds, n=10_000, n_steps=100, competitor=None):
    _, params, theta, sizes = setup()
    x0 = np.random.default_rng(2).standard_normal((n, 2))
    u_fast = VelocityNetwork(params)
    variants = {
        "reference (VelocityNetwork)": lambda: integrate(u_fast, x0, 0.0, 1.0, n_steps, method),
        "reference (readable velocity_apply)": lambda: integrate(lambda x, t: velocity_apply(params, x, t),
                                                                 x0, 0.0, 1.0, n_steps, method),
        "numpy floor": lambda: floor_sample(theta, sizes, x0, n_steps, method),
    }
    if torch is not None:
        variants["torch f64"] = lambda: torch_sample(theta, sizes, x0, n_steps, method, torch.float64)
        variants["torch f32"] = lambda: torch_sample(theta, sizes, x0, n_steps, method, torch.float32)
    return run_workload(f"sample_{method}", variants, rounds, number=1, warmup=1, competitor=competitor)


def bench_loglik(rounds, n=1000, n_steps=100, competitor=None):
    _, params, theta, sizes = setup()
    x = np.random.default_rng(3).standard_normal((n, 2))
    u_fast = VelocityNetwork(params)
    variants = {
        "reference (VelocityNetwork, forward mode)": lambda: cnf_logpdf(u_fast, x, n_steps, "rk4"),
        "reference (readable, d backward passes)": lambda: cnf_logpdf(lambda y, t: velocity_apply(params, y, t),
                                                                      x, n_steps, "rk4"),
        "numpy floor": lambda: floor_loglik(theta, sizes, x, n_steps),
    }
    if torch is not None:
        variants["flow_matching f64"] = lambda: flow_matching_loglik(theta, sizes, x, n_steps, torch.float64)
    return run_workload("loglik", variants, rounds, number=1, warmup=1, competitor=competitor)


def bench_marginal(rounds, n=10_000, m=10_000, competitor=None):
    rng = np.random.default_rng(4)
    x, z = rng.standard_normal((n, 2)), 2.0 * rng.standard_normal((m, 2))
    path = ConicalGaussianPath()
    t = rng.uniform(0.0, 0.95, n)
    results = run_workload("marginal", {"reference (marginal_velocity)": lambda: marginal_velocity(path, x, t, z)},
                           rounds, number=1, warmup=1, competitor=competitor)
    results[0].peak_mb = peak_memory_mb(lambda: marginal_velocity(path, x, t, z))
    results[0].note = "target: < 1 s and < 500 MB"
    return results


_FRESH_SCRIPT = """
import json, sys, time
import numpy as np
if sys.argv[1] == "warm":
    big = np.ones(50_000_000)  # 400 MB allocated and freed: glibc raises its thresholds
    del big
from benchmarks.__main__ import setup
from reference.paths import LinearInterpolationPath
from reference.train import cfm_step
data, params, _, _ = setup()
step = cfm_step(data, LinearInterpolationPath(), params, 256, 1e-3, np.random.default_rng(1))[0]
times = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    for _ in range(50):
        step()
    times.append((time.perf_counter() - start) / 50)
print(json.dumps(times))
"""


def bench_fresh_process(rounds, competitor=None):
    results = {kind: Result("fresh_process", f"train step, {kind} process") for kind in ("fresh", "warm")}
    for r in range(rounds):
        for kind in ("fresh", "warm") if r % 2 == 0 else ("warm", "fresh"):
            out = subprocess.run([sys.executable, "-c", _FRESH_SCRIPT, kind, "3"], check=True,
                                 capture_output=True, text=True)
            results[kind].times.extend(json.loads(out.stdout)[1:])  # the first block warms the step up
    results["fresh"].note = "must equal the warm process"
    return list(results.values())


WORKLOADS = {
    "train_step": lambda a, c: bench_train_step(a.rounds, number=20 if a.quick else 100, competitor=c),
    "sample_euler": lambda a, c: bench_sample("euler", max(3, a.rounds // 3), n=1000 if a.quick else 10_000,
                                              competitor=c),
    "sample_rk4": lambda a, c: bench_sample("rk4", max(3, a.rounds // 3), n=1000 if a.quick else 10_000,
                                            competitor=c),
    "loglik": lambda a, c: bench_loglik(max(3, a.rounds // 3), n=100 if a.quick else 1000, competitor=c),
    "marginal": lambda a, c: bench_marginal(max(3, a.rounds // 3), n=1000 if a.quick else 10_000,
                                            m=1000 if a.quick else 10_000, competitor=c),
    "fresh_process": lambda a, c: bench_fresh_process(2 if a.quick else 4),  # two processes already: no competitor
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="rounds of alternation (default 9)")
    parser.add_argument("--only", nargs="+", choices=list(WORKLOADS), help="run only these workloads")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check that everything runs")
    parser.add_argument("--contention", action="store_true",
                        help="also time every round with one CPU-bound process competing for the cores")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    results = []
    with contextlib.ExitStack() as stack:
        competitor = stack.enter_context(Competitor()) if args.contention else None
        for name in args.only or list(WORKLOADS):
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results.extend(WORKLOADS[name](args, competitor))
    print(f"{datetime.date.today().isoformat()}; {machine_description()}; {TORCH}\n")
    print(format_results(results, BASELINE, FLOOR))
    return 0


if __name__ == "__main__":
    sys.exit(main())

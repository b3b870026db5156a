"""Claims of the training part: flow matching in practice (steps 4-5), minibatch OT, sample quality."""

import functools
import itertools

import numpy as onp

from figures._models import N_STEPS, QUICK_STEPS, trained_model
from figures.claims import Claim
from reference.distributions import dataset_mixture, make_dataset
from reference.losses import cfm_constant
from reference.metrics import energy_distance, noise_floor, path_length_ratio
from reference.nn import velocity_apply
from reference.ode import integrate
from reference.oracles import GaussianMixtureOracle
from reference.ot import ot_pair, pairing_cost
from reference.paths import LinearInterpolationPath
from reference.train import model_velocity, sample_model, train_cfm

K_SE = 5.0
DATASET = "8gaussians"  # an exact Gaussian mixture: the oracle gives u(x, t), quadrature gives C
LINEAR = LinearInterpolationPath()
ENERGY_V = functools.partial(energy_distance, unbiased=False)


def _steps(quick):
    return QUICK_STEPS if quick else N_STEPS


# ---------------------------------------------------------------- sample quality against the noise floor

FLOOR_FACTOR = {False: 5.0, True: 40.0}
"""Stated factors: E(model, data) <= factor x noise floor, after N_STEPS (full) or QUICK_STEPS (quick) steps."""


@functools.lru_cache(maxsize=None)
def _energy_ratios(quick):
    """E(samples, data) / floor for the trained and the untrained (step-0) field; 1000 samples, RK4 with 20 steps."""
    model = trained_model(DATASET, _steps(quick))
    rng = onp.random.default_rng(40)
    n = 1000
    sampler = functools.partial(make_dataset, DATASET)
    floor = noise_floor(ENERGY_V, sampler, n, rng, n_repeats=8 if quick else 20)

    def ratio(params, repeats):
        values = [ENERGY_V(sample_model(params, n, rng, "rk4", 20), sampler(n, rng)) for _ in range(repeats)]
        return float(onp.mean(values) / floor.mean)

    return ratio(model.params, 1 if quick else 3), ratio(model.checkpoints[0][1], 1), floor


def check_training_reaches_noise_floor(quick):
    trained, _, floor = _energy_ratios(quick)
    return Claim("Flow Matching In Practice, steps 4-5", f"a CFM-trained field samples {DATASET} within a stated factor of the noise floor",
                 "E(samples, data) / E(data, data') (energy distance, V-statistic, n = 1000)", trained, FLOOR_FACTOR[quick],
                 note=f"{_steps(quick)} Adam steps, RK4 20 steps; floor {floor.mean:.2e} +- {floor.se:.1e}")


def check_untrained_field_is_far_from_noise_floor(quick):
    _, untrained, _ = _energy_ratios(quick)
    return Claim("Flow Matching In Practice, steps 4-5", "negative control: the untrained field is far above the same bound",
                 "E(samples of v_theta0, data) / floor", untrained, FLOOR_FACTOR[quick], op=">=")


# ---------------------------------------------------------------- minibatch OT pairing


@functools.lru_cache(maxsize=None)
def _pairing_excess(quick):
    """Relative excess cost over the brute-force minimum: of the OT pairing, and of the independent one."""
    rng = onp.random.default_rng(41)
    n, n_batches = (5, 4) if quick else (7, 20)
    perms = onp.array(list(itertools.permutations(range(n))))
    ot_excess, independent_excess = [], []
    for _ in range(n_batches):
        x0, x1 = rng.standard_normal((n, 2)), make_dataset(DATASET, n, rng)
        cost = onp.sum((x0[None, :, :] - x1[perms]) ** 2, axis=(1, 2))  # every pairing x0_i <-> x1_perm(i)
        best = cost.min()
        ot_excess.append(pairing_cost(*ot_pair(x0, x1)) / best - 1.0)
        independent_excess.append(pairing_cost(x0, x1) / best - 1.0)
    return max(abs(e) for e in ot_excess), min(independent_excess), n, n_batches


def check_ot_pairing_is_optimal(quick):
    excess, _, n, n_batches = _pairing_excess(quick)
    return Claim("Flow Matching In Practice, step 4 (minibatch OT)", "linear_sum_assignment pairs a batch at the minimum total squared cost",
                 f"max |cost / brute-force min - 1| over {n_batches} batches of {n}", excess, 1e-12)


def check_independent_pairing_costs_more(quick):
    _, excess, n, n_batches = _pairing_excess(quick)
    return Claim("Flow Matching In Practice, step 4 (minibatch OT)", "negative control: the independent pairing costs more",
                 f"min (cost / brute-force min - 1) over {n_batches} batches of {n}", excess, 0.01, op=">=")


@functools.lru_cache(maxsize=None)
def _straightness(quick):
    data = make_dataset("moons", 5000, onp.random.default_rng(42))
    x0 = onp.random.default_rng(43).standard_normal((300, 2))
    excess = []
    for ot in (False, True):
        params, _ = train_cfm(data, LINEAR, 200 if quick else 300, batch_size=128, hidden=(32, 32), lr=3e-3,
                              rng=onp.random.default_rng(44), ot_pairing=ot)
        traj, _ = integrate(model_velocity(params), x0, 0.0, 1.0, 20, "rk4", return_path=True)
        chord = onp.linalg.norm(traj[-1] - traj[0], axis=1)
        excess.append(float(onp.mean((path_length_ratio(traj) - 1.0) * chord)))  # length minus chord
    return excess


def check_ot_pairing_straightens_trajectories(quick):
    independent, optimal = _straightness(quick)
    return Claim("Flow Matching In Practice, steps 4-5 (minibatch OT)", "OT pairing makes the learned trajectories straighter",
                 "mean(length - chord) with OT / without (moons, same 300 x0, RK4)", optimal / independent, 0.2,
                 note=f"without OT {independent:.3g}, with OT {optimal:.3g}")


# ---------------------------------------------------------------- Theorem 2 in training


@functools.lru_cache(maxsize=None)
def _losses_along_training(quick):
    model = trained_model(DATASET, _steps(quick))
    mixture = dataset_mixture(DATASET)
    oracle = GaussianMixtureOracle(mixture, LINEAR)
    rng = onp.random.default_rng(45)
    n = 1000 if quick else 4000
    t = rng.uniform(size=n)
    x = (1 - t)[:, None] * rng.standard_normal((n, 2)) + t[:, None] * mixture.sample(n, rng)
    u = oracle.velocity(x, t)

    def l_fm(params):
        return float(onp.mean(onp.sum((velocity_apply(params, x, t) - u) ** 2, axis=1)))

    tail_fm = onp.array([l_fm(p) for p in model.tail])
    return {"C": cfm_constant(oracle, n_t=32, n_x=16), "fm_start": l_fm(model.checkpoints[0][1]),
            "fm_end": l_fm(model.params), "tail_fm": tail_fm, "tail_losses": model.losses[-len(model.tail):]}


def check_cfm_loss_plateaus_at_C(quick):
    r = _losses_along_training(quick)
    # E[minibatch loss at step k] = C + L_FM(theta_k) (Theorem 2; the batch is fresh), so the
    # last steps' losses minus their L_FM average to C within K standard errors
    residual = r["tail_losses"] - r["tail_fm"]
    se = residual.std(ddof=1) / onp.sqrt(residual.size)
    return Claim("Theorem 2", "the CFM training loss plateaus at C + L_FM(theta) (-> C), not at 0",
                 f"|mean(loss_k - L_FM(theta_k)) - C| over the last {residual.size} steps", abs(residual.mean() - r["C"]),
                 K_SE * se, note=f"C = {r['C']:.3f}, mean final loss {r['tail_losses'].mean():.3f}, "
                                 f"final L_FM {r['fm_end']:.3f}; bound = {K_SE:g} SE")


def check_fm_loss_falls(quick):
    r = _losses_along_training(quick)
    bound = 0.5 if quick else 0.1
    return Claim("Theorem 2; eq. (5)", "training drives L_FM (against the exact u, never seen) far below its start",
                 "L_FM(theta_final) / L_FM(theta_0)", r["fm_end"] / r["fm_start"], bound,
                 note=f"{_steps(quick)} steps: L_FM {r['fm_start']:.2f} -> {r['fm_end']:.3f} while C = {r['C']:.2f}")


CHECKS = [
    check_training_reaches_noise_floor,
    check_untrained_field_is_far_from_noise_floor,
    check_ot_pairing_is_optimal,
    check_independent_pairing_costs_more,
    check_ot_pairing_straightens_trajectories,
    check_cfm_loss_plateaus_at_C,
    check_fm_loss_falls,
]

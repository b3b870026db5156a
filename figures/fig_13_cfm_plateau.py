"""Theorem 2: why a CFM training loss plateaus at C while the FM loss goes to zero.

A velocity network is trained on ``8gaussians`` (an exact Gaussian mixture) with the
linear-interpolation path and the CFM loss. At checkpoints along training, both losses
are evaluated on one fixed evaluation set of ``(t, z, x)``: ``L_CFM`` against the
conditional velocity ``x1 - x0``, and ``L_FM`` against the exact marginal velocity
(``oracles.GaussianMixtureOracle``), which training never sees. Theorem 2 says
``L_CFM(theta) = L_FM(theta) + C`` with ``C = E|u_cond|^2 - E|u|^2 > 0``, computed by
quadrature (``losses.cfm_constant``): the CFM loss can only fall to ``C``.
"""

import sys

import matplotlib.pyplot as plt
import numpy as onp

from figures._cli import run_figure
from figures._style import projected
from figures._models import N_STEPS, QUICK_STEPS, trained_model
from reference.distributions import dataset_mixture
from reference.losses import cfm_constant, cfm_loss, fm_loss
from reference.oracles import GaussianMixtureOracle
from reference.paths import LinearInterpolationPath
from reference.plot import BLUE, RED, save
from reference.train import model_velocity

DATASET = "8gaussians"
N_EVAL, QUICK_EVAL = 10000, 400


def loss_curves(model, oracle, path, t, z, x):
    """``(steps, L_CFM, L_FM)`` at the model's checkpoints and at the end, on one evaluation set."""
    snapshots = list(model.checkpoints) + [(len(model.losses), model.params)]
    steps, l_cfm, l_fm = [], [], []
    for step, params in snapshots:
        v = model_velocity(params)
        steps.append(step)
        l_cfm.append(float(cfm_loss(v, path, t, z, x)))
        l_fm.append(float(fm_loss(v, oracle.velocity, t, x)))
    return onp.array(steps), onp.array(l_cfm), onp.array(l_fm)


@projected
def main(out_dir, quick=False):
    n_steps, n_eval = (QUICK_STEPS, QUICK_EVAL) if quick else (N_STEPS, N_EVAL)
    path = LinearInterpolationPath()
    mixture = dataset_mixture(DATASET)
    oracle = GaussianMixtureOracle(mixture, path)
    C = cfm_constant(oracle, n_t=32, n_x=16)

    rng = onp.random.default_rng(13)
    z = (rng.standard_normal((n_eval, 2)), mixture.sample(n_eval, rng))  # z = (x0, x1) ~ p0 x p_data
    t = rng.uniform(0.0, 1.0, n_eval)
    x = path.sample_x(t, z, rng)
    model = trained_model(DATASET, n_steps)
    steps, l_cfm, l_fm = loss_curves(model, oracle, path, t, z, x)
    # L_CFM - L_FM estimates C on the evaluation set with this standard error (|u_cond|^2 - |u|^2 dominates)
    gap = onp.sum(path.velocity(x, t, z) ** 2, axis=1) - onp.sum(oracle.velocity(x, t) ** 2, axis=1)
    se_gap = gap.std(ddof=1) / onp.sqrt(n_eval)
    step_axis = steps + 1  # log axis: step 0 is drawn at 1

    fig, (ax, ax_log) = plt.subplots(1, 2, figsize=(14, 5.2), layout="constrained")
    ax.plot(onp.arange(1, n_steps + 1), model.losses, color="0.75", lw=0.6, label="minibatch CFM loss (training)")
    ax.plot(step_axis, l_cfm, "o-", color=BLUE, ms=3, label="L_CFM(theta) (evaluation set)")
    ax.plot(step_axis, l_fm, "s-", color=RED, ms=3, label="L_FM(theta) against the exact u (oracle)")
    ax.axhline(C, color="k", ls="--", lw=1.2, label=f"C = E|u_cond|^2 - E|u|^2 = {C:.3f}")
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xscale("log")
    ax.set_ylim(-0.5, max(1.15 * l_cfm[0], C + 3))
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    ax.set_title("L_CFM falls to C, not to 0; L_FM falls to 0")
    ax.legend(loc="upper right")

    ax_log.semilogy(step_axis, l_fm, "s-", color=RED, ms=4, label="L_FM(theta)")
    ax_log.semilogy(step_axis, onp.clip(l_cfm - C, 1e-3, None), "o--", color=BLUE, ms=3,
                    label=f"L_CFM(theta) - C (Monte Carlo SE {se_gap:.2f})")
    ax_log.set_xscale("log")
    ax_log.set_xlabel("training step")
    ax_log.set_ylabel("excess loss (log scale)")
    ax_log.set_title(f"L_CFM - C = L_FM: final L_FM = {l_fm[-1]:.3f} ({l_fm[-1] / l_fm[0]:.1%} of its start)")
    ax_log.legend(loc="upper right")
    fig.suptitle(f"Why a CFM training loss plateaus (lecture: Theorem 2, L_CFM = L_FM + C)\n{DATASET}, linear path, "
                 f"{n_steps} Adam steps; losses on {n_eval} fixed evaluation samples")
    return [save(fig, out_dir, "fig_13_cfm_plateau.png")]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

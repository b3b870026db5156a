"""Figure 2: a normalizing flow with K = 4 layers carries an isotropic Gaussian to a cross.

The layers are RealNVP affine couplings (eq. (3)), the halves alternating, fitted to the
cross by maximum likelihood (eq. (1)); planar layers are too weak to make a cross in four
steps. Each panel is the density of an intermediate distribution
p_k = (phi_k o ... o phi_1) # p0, computed by the chain rule of the lecture's
"Normalizing Flows" section with the first k layers; the last panel is the exact
density of the target (a Gaussian mixture).
"""

import sys

import matplotlib.pyplot as plt
import numpy as onp

from figures._cli import run_figure
from reference.change_of_variables import negative_log_likelihood
from reference.distributions import dataset_mixture, make_dataset, standard_normal_logpdf
from reference.flows.chain import realnvp_logpdf
from reference.plot import density_image, save
from reference.train import train_realnvp

K = 4
EXTENT = (-5.0, 5.0, -5.0, 5.0)


def main(out_dir, quick=False):
    n_steps, n_grid = (20, 40) if quick else (700, 160)
    data = make_dataset("cross", 8000, onp.random.default_rng(4))
    params, _ = train_realnvp(data, n_steps, n_layers=K, hidden=(64,), batch_size=256, lr=1e-2,
                              rng=onp.random.default_rng(5))
    target = dataset_mixture("cross")
    test = make_dataset("cross", 4000, onp.random.default_rng(6))
    nll = negative_log_likelihood(lambda x: realnvp_logpdf(params, x), test)
    entropy = negative_log_likelihood(target.logpdf, test)  # Monte Carlo H(p_data)

    fig, axes = plt.subplots(1, K + 2, figsize=(3.1 * (K + 2), 3.6))
    density_image(axes[0], standard_normal_logpdf, EXTENT, n=n_grid, cmap="magma")
    axes[0].set_title("p_0 = N(0, I)", fontsize=10)
    for k in range(1, K + 1):
        # the first k couplings (with their own alternating halves) are phi_k o ... o phi_1
        density_image(axes[k], lambda x, k=k: realnvp_logpdf(params[:k], x), EXTENT, n=n_grid, cmap="magma")
        axes[k].set_title(f"p_{k} = phi_{k} # p_{k - 1}" + (" = T # p_0" if k == K else ""), fontsize=10)
    density_image(axes[-1], target.logpdf, EXTENT, n=n_grid, cmap="magma")
    axes[-1].set_title("target p_data (cross)", fontsize=10)
    for ax in axes:
        ax.set_aspect("equal")
        ax.set_xticks([-4, 0, 4])
        ax.set_yticks([-4, 0, 4])
        ax.tick_params(labelsize=8)
    axes[K].text(0.03, 0.03, f"held-out NLL {nll:.2f}\nH(p_data) {entropy:.2f}", transform=axes[K].transAxes,
                 fontsize=7, color="w", va="bottom")
    fig.suptitle(f"Figure 2: a normalizing flow with K = {K} RealNVP affine couplings, fitted by maximum "
                 "likelihood, transforms an isotropic Gaussian (left) into a cross (right)", fontsize=11)
    fig.tight_layout()
    return [save(fig, out_dir, "fig_02_normalizing_flow.png")]


if __name__ == "__main__":
    run_figure(sys.modules[__name__])

"""The Monte Carlo ELBO of a Gaussian q, reparameterised, with its standard error  [lecture: Variational auto-encoders]"""

import autograd.numpy as np


def elbo(log_joint, mu, log_sigma, n_samples, rng):
    """ELBO = E_q[log p(x, z) - log q(z)] ~ (1/S) sum_s w_s with z_s = mu + sigma eps_s; stderr = std(w) / sqrt(S)  [lecture: Variational auto-encoders]

        w_s = log p(x, z_s) - log q(z_s),
        log q(z_s) = -|eps_s|^2 / 2 - sum_j log sigma_j - d/2 log(2 pi),   eps_s = (z_s - mu) / sigma.
    """
    sigma = np.exp(log_sigma)                                     # (n, d)
    eps = rng.standard_normal((n_samples,) + np.shape(mu))        # (S, n, d)
    z = mu + sigma * eps                                          # a differentiable function of mu and log_sigma
    d = np.shape(mu)[-1]
    log_q = -0.5 * np.sum(eps**2, axis=-1) - np.sum(log_sigma, axis=-1) - 0.5 * d * np.log(2 * np.pi)  # (S, n)
    w = log_joint(z) - log_q                                      # (S, n)
    value = np.mean(w, axis=0)
    stderr = np.std(w, axis=0, ddof=1) / np.sqrt(n_samples)
    return value, stderr

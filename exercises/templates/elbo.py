"""Exercise: the Monte Carlo ELBO of a Gaussian q  [lecture: Variational auto-encoders]

Grade it with:  python -m exercises grade elbo elbo.py
"""

import autograd.numpy as np


def elbo(log_joint, mu, log_sigma, n_samples, rng):
    """ELBO(q; x) = E_{z ~ q}[log p(x, z) - log q(z)], estimated by Monte Carlo, and its standard error  [lecture: Variational auto-encoders]

    The lecture opens on variational auto-encoders: a latent-variable model p(x, z) is
    fitted through an approximate posterior q(z | x), and

        log p(x) = ELBO(q; x) + KL(q(. | x) || p(. | x))  >=  ELBO(q; x).

    Here q is a Gaussian with a diagonal covariance, one per datum x_i:
    q(z | x_i) = N(mu_i, diag(sigma_i^2)), sigma = exp(log_sigma). Estimate its ELBO with
    n_samples = S samples per datum, *reparameterised*:

        eps_s ~ N(0, I) (from rng),   z_s = mu + sigma * eps_s,
        log q(z_s) = -|eps_s|^2 / 2 - sum_j log sigma_j - d/2 log(2 pi)   (closed form),
        w_s = log p(x, z_s) - log q(z_s),
        ELBO ~ (1/S) sum_s w_s,   its standard error = std_s(w_s) / sqrt(S)   (ddof = 1).

    Writing z as a function of mu and log_sigma (not drawing it with rng.normal(mu, sigma))
    makes the estimate differentiable: autograd's gradient of the ELBO with respect to mu
    and log_sigma is then the reparameterised gradient a VAE is trained with. Use
    autograd.numpy (imported as np above) for every operation on mu, log_sigma and z.

    Graded against the probabilistic PCA model, whose posterior and log p(x) are exact:
    the estimate against log p(x) - KL(q || p(. | x)) (the gap is the KL in closed form),
    within 5 of its standard errors (exactly, when q is the exact posterior), the standard
    error against the closed-form spread of w, and the autograd gradient with respect to
    mu and log_sigma against the closed-form gradient of the ELBO.

    Args:
        log_joint: log_joint(z) -> log p(x, z): z of shape (S, n, d) (sample s of datum i
            at z[s, i]), returns shape (S, n); the data x are inside it.
        mu: the means of q, shape (n, d).
        log_sigma: the log standard deviations of q, shape (n, d).
        n_samples: S, samples per datum (>= 2).
        rng: a numpy.random.Generator; draw every random number from it.

    Returns:
        (value, stderr): the estimate and its standard error, each of shape (n,).
    """
    raise NotImplementedError  # TODO: your code here

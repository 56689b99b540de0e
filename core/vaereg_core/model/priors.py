"""KL divergences of the diagonal-Gaussian posterior q(z|x) from the conditional prior p(z|c).

For the Gaussian prior the KL is closed form. For a Gaussian mixture it is
intractable; the paper (eq. 3) uses the variational approximation of Hershey
& Olsen (2007), which for a single-Gaussian q reads

    KL(q || sum_k pi_k p_k)  ~=  -log sum_k pi_k exp(-KL(q || p_k)).

It is exact for K = 1 and for identical components, and for a single
Gaussian q it is an *upper bound* of the true KL: for any weights phi,
log sum_k pi_k p_k(z) >= sum_k phi_k log(pi_k p_k(z) / phi_k) (Jensen), and the
best phi_k ∝ pi_k exp(-KL_k) turns the bound into the expression above. It
is tight when q sits inside one well-separated component.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vaereg_core.model.networks import Prior


def gaussian_kl(mu_q: Tensor, log_var_q: Tensor, mu_p: Tensor, log_var_p: Tensor) -> Tensor:
    """KL(N(mu_q, diag e^log_var_q) || N(mu_p, diag e^log_var_p)), summed over the last axis.

    Examples
    --------
    >>> zero = torch.zeros(3)
    >>> float(gaussian_kl(zero, zero, zero, zero))
    0.0
    """
    return 0.5 * torch.sum(
        log_var_p - log_var_q + (torch.exp(log_var_q) + (mu_q - mu_p) ** 2) * torch.exp(-log_var_p) - 1.0,
        dim=-1,
    )


def mixture_kl(mu_q: Tensor, log_var_q: Tensor, prior: Prior) -> Tensor:
    """Variational approximation of KL(q || mixture) (paper eq. 3), per sample.

    Parameters
    ----------
    mu_q, log_var_q : Tensor (B, D)
        The posterior.
    prior : Prior
        Weights (B, K), means and log variances (B, K, D).

    Returns
    -------
    Tensor (B,)
    """
    kl_k = gaussian_kl(mu_q[:, None], log_var_q[:, None], prior.mu, prior.log_var)
    # logsumexp keeps exp(-KL_k) from underflowing when every component is far from q.
    return -torch.logsumexp(torch.log(prior.pi) - kl_k, dim=-1)


def log_mixture_density(z: Tensor, prior: Prior) -> Tensor:
    """log p(z) under the mixture, for z (B, D) or (S, B, D) samples; shape without D."""
    var = torch.exp(prior.log_var)
    log_k = -0.5 * torch.sum(
        (z.unsqueeze(-2) - prior.mu) ** 2 / var + prior.log_var + math.log(2 * math.pi), dim=-1
    )
    return torch.logsumexp(torch.log(prior.pi) + log_k, dim=-1)


def monte_carlo_kl(mu_q: Tensor, log_var_q: Tensor, prior: Prior, samples: int = 10000, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Monte-Carlo estimate of the true KL(q || mixture) and its standard error, per sample.

    Used to check :func:`mixture_kl`; not needed in training.
    """
    std = torch.exp(0.5 * log_var_q)
    eps = torch.randn((samples, *mu_q.shape), generator=generator, dtype=mu_q.dtype, device=mu_q.device)
    z = mu_q + std * eps
    log_q = -0.5 * torch.sum(eps**2 + log_var_q + math.log(2 * math.pi), dim=-1)
    terms = log_q - log_mixture_density(z, prior)
    return terms.mean(0), terms.std(0) / math.sqrt(samples)


def prior_kl(mu_q: Tensor, log_var_q: Tensor, prior: Prior) -> Tensor:
    """KL term of the loss: closed form for one component, the variational approximation otherwise."""
    if prior.pi.shape[-1] == 1:
        return gaussian_kl(mu_q, log_var_q, prior.mu[:, 0], prior.log_var[:, 0])
    return mixture_kl(mu_q, log_var_q, prior)

"""KL terms: closed-form Gaussian KL and the paper's variational approximation for the mixture (eq. 3)."""

from __future__ import annotations

import math

import pytest
import torch

from model_helpers import block_sockets
from vaereg_core.model.networks import Prior
from vaereg_core.model.priors import gaussian_kl, mixture_kl, monte_carlo_kl, prior_kl


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    block_sockets(monkeypatch)


def random_case(gen: torch.Generator, b: int, k: int, d: int, spread: float = 1.0):
    mu_q = torch.randn(b, d, generator=gen, dtype=torch.float64)
    log_var_q = 0.5 * torch.randn(b, d, generator=gen, dtype=torch.float64)
    pi = torch.softmax(torch.randn(b, k, generator=gen, dtype=torch.float64), -1)
    prior = Prior(pi, spread * torch.randn(b, k, d, generator=gen, dtype=torch.float64), 0.5 * torch.randn(b, k, d, generator=gen, dtype=torch.float64))
    return mu_q, log_var_q, prior


def test_gaussian_kl_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    mu_q, lv_q, mu_p, lv_p = (torch.randn(5, 4, generator=gen, dtype=torch.float64) for _ in range(4))
    q = torch.distributions.Normal(mu_q, torch.exp(0.5 * lv_q))
    p = torch.distributions.Normal(mu_p, torch.exp(0.5 * lv_p))
    expected = torch.distributions.kl_divergence(q, p).sum(-1)
    assert torch.allclose(gaussian_kl(mu_q, lv_q, mu_p, lv_p), expected)


def test_mixture_with_one_component_equals_closed_form():
    gen = torch.Generator().manual_seed(1)
    mu_q, lv_q, prior = random_case(gen, 6, 1, 16)
    closed = gaussian_kl(mu_q, lv_q, prior.mu[:, 0], prior.log_var[:, 0])
    assert torch.allclose(mixture_kl(mu_q, lv_q, prior), closed, rtol=1e-12, atol=1e-12)
    assert torch.equal(prior_kl(mu_q, lv_q, prior), closed)


def test_identical_components_are_exact():
    # A mixture of K copies of one Gaussian is that Gaussian, whatever the weights.
    gen = torch.Generator().manual_seed(2)
    mu_q, lv_q, one = random_case(gen, 4, 1, 8)
    pi = torch.softmax(torch.randn(4, 3, generator=gen, dtype=torch.float64), -1)
    prior = Prior(pi, one.mu.expand(4, 3, 8), one.log_var.expand(4, 3, 8))
    assert torch.allclose(mixture_kl(mu_q, lv_q, prior), gaussian_kl(mu_q, lv_q, one.mu[:, 0], one.log_var[:, 0]))


def jensen_lower_bound(mu_q, log_var_q, prior):
    """KL(q || p) >= -H(q) - log sum_k pi_k ∫ q p_k (Jensen on E_q log p), closed form for Gaussians."""
    var = torch.exp(log_var_q)[:, None] + torch.exp(prior.log_var)
    log_overlap = -0.5 * torch.sum((mu_q[:, None] - prior.mu) ** 2 / var + torch.log(2 * math.pi * var), -1)
    entropy = 0.5 * torch.sum(math.log(2 * math.pi * math.e) + log_var_q, -1)
    return -entropy - torch.logsumexp(torch.log(prior.pi) + log_overlap, -1)


def test_approximation_is_an_upper_bound_of_monte_carlo_on_random_cases():
    gen = torch.Generator().manual_seed(3)
    mu_q, lv_q, prior = random_case(gen, 64, 3, 4)
    approx = mixture_kl(mu_q, lv_q, prior)
    mc, se = monte_carlo_kl(mu_q, lv_q, prior, samples=20000, generator=gen)
    # lower bound <= true KL <= variational approximation (module docstring), within Monte-Carlo error.
    assert torch.all(approx >= mc - 4 * se)
    assert torch.all(mc + 4 * se >= jensen_lower_bound(mu_q, lv_q, prior))


def test_approximation_is_close_for_narrow_posteriors():
    # The regime of a trained VAE: posteriors much narrower than the prior components, 16-d.
    gen = torch.Generator().manual_seed(5)
    mu_q, _, prior = random_case(gen, 64, 3, 16)
    lv_q = -3.0 + 0.3 * torch.randn(64, 16, generator=gen, dtype=torch.float64)
    approx = mixture_kl(mu_q, lv_q, prior)
    mc, se = monte_carlo_kl(mu_q, lv_q, prior, samples=20000, generator=gen)
    assert torch.all(approx >= mc - 4 * se)
    assert float(((approx - mc) / mc).max()) < 0.03


def test_approximation_is_tight_for_well_separated_components():
    gen = torch.Generator().manual_seed(4)
    mu_q, lv_q, prior = random_case(gen, 16, 2, 4)
    # Put q on the first component, the second one far away.
    far = prior.mu.clone()
    far[:, 0] = mu_q + 0.1
    far[:, 1] = mu_q + 30.0
    prior = Prior(prior.pi, far, prior.log_var)
    mc, se = monte_carlo_kl(mu_q, lv_q, prior, samples=20000, generator=gen)
    assert torch.allclose(mixture_kl(mu_q, lv_q, prior), mc, atol=float(4 * se.max()) + 1e-3)


def test_mixture_kl_is_finite_and_differentiable_far_from_every_component():
    mu_q = torch.zeros(1, 16, dtype=torch.float64, requires_grad=True)
    prior = Prior(torch.tensor([[0.5, 0.5]], dtype=torch.float64), torch.full((1, 2, 16), 1e3, dtype=torch.float64), torch.zeros(1, 2, 16, dtype=torch.float64))
    kl = mixture_kl(mu_q, torch.zeros(1, 16, dtype=torch.float64), prior)
    assert math.isfinite(float(kl.detach()))
    kl.sum().backward()
    assert torch.isfinite(mu_q.grad).all()
    assert torch.autograd.gradcheck(lambda m: mixture_kl(m, torch.zeros(1, 16, dtype=torch.float64), Prior(prior.pi, prior.mu * 1e-3, prior.log_var)), (mu_q,))

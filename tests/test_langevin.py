"""Langevin dynamics and EBM-prior learning against closed-form tilted densities.

For a Gaussian target with precision lam, the unadjusted Langevin chain
z' = (1 - s^2 lam / 2) z + s eps keeps the exact mean and has stationary variance
1 / (lam (1 - s^2 lam / 4)): the tests check both the continuous answer (to the
discretization bias, small for small s) and this exact discrete one.
"""

import math

import torch
import torch.nn as nn

import mmebm
from mmebm.ebm import EBMPrior, UnitPrior
from mmebm.langevin import sample_langevin

N_CHAINS, DIM = 20_000, 3


def _gauss_base(z):
    return -0.5 * (z ** 2).sum(-1)  # log N(0, I) up to a constant


def _check_gaussian(z, mean, var, n):
    # mean within 5 standard errors per dim; variance within 5 standard errors (sd ~ var sqrt(2/n))
    assert ((z.mean(0) - mean).abs() < 5 * math.sqrt(var / n)).all(), z.mean(0)
    assert ((z.var(0) - var).abs() < 5 * var * math.sqrt(2 / n)).all(), z.var(0)


def test_quadratic_tilt_gives_shrunk_gaussian():
    torch.manual_seed(0)
    c, s = 1.0, 0.15
    energy = lambda z: 0.5 * c * (z ** 2).sum(-1) - _gauss_base(z)  # p ~ N(0, I / (1 + c))
    z = sample_langevin(energy, torch.randn(N_CHAINS, DIM), n_steps=400, step_size=s)
    lam = 1 + c
    var_ula = 1 / (lam * (1 - s ** 2 * lam / 4))
    _check_gaussian(z, torch.zeros(DIM), var_ula, N_CHAINS)
    assert abs(var_ula - 1 / lam) / (1 / lam) < 0.02  # the continuous answer, to 2%


def test_linear_tilt_gives_shifted_gaussian():
    torch.manual_seed(1)
    a, s = torch.tensor([1.5, -0.5, 0.0]), 0.15
    energy = lambda z: -(z * a).sum(-1) - _gauss_base(z)  # p ~ N(a, I)
    z = sample_langevin(energy, torch.randn(N_CHAINS, DIM), n_steps=400, step_size=s)
    _check_gaussian(z, a, 1 / (1 - s ** 2 / 4), N_CHAINS)


def test_public_api_defaults_and_chain():
    torch.manual_seed(2)
    z0 = torch.randn(5, 2)
    chain = mmebm.sample_langevin(lambda z: 0.5 * (z ** 2).sum(-1), z0, return_chain=True)
    assert chain.shape == (61, 5, 2)  # default 60 steps, start included
    torch.testing.assert_close(chain[0], z0)
    # without noise it is gradient descent: z_{k+1} = (1 - s^2/2) z_k for E = |z|^2/2
    out = mmebm.sample_langevin(lambda z: 0.5 * (z ** 2).sum(-1), z0, n_steps=3, step_size=0.4, noise=False)
    torch.testing.assert_close(out, z0 * (1 - 0.08) ** 3)


def test_no_gradient_to_energy_parameters_and_runs_under_no_grad():
    lin = nn.Linear(3, 1)
    z0 = torch.randn(4, 3)
    with torch.no_grad():
        z = sample_langevin(lambda z: lin(z).squeeze(-1), z0, n_steps=5)
    assert lin.weight.grad is None and not z.requires_grad
    assert not torch.equal(z, z0) and torch.isfinite(z).all()  # the chain moved, under no_grad


def test_same_seed_same_chain():
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        outs.append(sample_langevin(lambda z: (z ** 4).sum(-1), torch.randn(8, 2), n_steps=10))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


class LinearEnergy(nn.Module):
    """f_alpha(z) = -a.z: with a N(0, I) base the prior is N(a, I)."""

    def __init__(self, dim):
        super().__init__()
        self.a = nn.Parameter(torch.zeros(dim))

    def forward(self, z):
        return -(z * self.a).sum(-1)


def test_ebm_prior_learns_mean_from_posterior_samples():
    torch.manual_seed(4)
    mu = torch.tensor([1.0, -0.5, 2.0])
    prior = EBMPrior(LinearEnergy(3), UnitPrior(3, "gaussian"), n_steps=60, step_size=0.4)
    opt = torch.optim.SGD(prior.parameters(), lr=0.5)
    for _ in range(150):
        z_post = mu + torch.randn(256, 3)
        loss, z_neg = prior.ebm_loss(z_post)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # the maximum-likelihood tilt is a = mu; 60 steps at s=0.4 contract the start by 0.92^60 ~ 0.007
    torch.testing.assert_close(prior.f_alpha.a.detach(), mu, atol=0.1, rtol=0)
    # and its Langevin samples reproduce the data distribution
    z = prior.sample(20_000)
    torch.testing.assert_close(z.mean(0), mu, atol=0.1, rtol=0)


def test_ebm_log_prob_is_tilted_base_and_frozen():
    torch.manual_seed(5)
    f = LinearEnergy(3)
    with torch.no_grad():
        f.a.copy_(torch.tensor([0.3, -1.0, 2.0]))
    prior = EBMPrior(f, UnitPrior(3, "gaussian"))
    z = torch.randn(7, 3, requires_grad=True)
    expect = (z * f.a).sum(-1) + torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    lp = prior.log_prob(z)
    torch.testing.assert_close(lp, expect)
    torch.testing.assert_close(prior.energy(z), -expect)
    lp.sum().backward()
    assert f.a.grad is None  # the VAE's view of the prior does not train alpha
    torch.testing.assert_close(z.grad, f.a.detach() - z.detach())


def test_given_noise_is_the_noise_the_chain_draws():
    # eps[k] replaces the k-th randn_like: the same draws give the same chain, bit for bit
    # (the captured CUDA chain reads its noise this way: tests/test_cuda.py compares the two)
    z0, energy = torch.randn(7, 3), lambda z: 0.5 * (z ** 4).sum(-1)
    torch.manual_seed(3)
    eps = torch.stack([torch.randn(7, 3) for _ in range(9)])
    torch.manual_seed(3)
    drawn = sample_langevin(energy, z0, n_steps=9, step_size=0.3)
    given = sample_langevin(energy, z0, n_steps=9, step_size=0.3, eps=eps)
    assert torch.equal(drawn, given)
    assert not torch.equal(given, sample_langevin(energy, z0, n_steps=9, step_size=0.3, eps=eps.flip(0)))


def test_prior_chain_is_eager_on_cpu():
    prior = EBMPrior(nn.Linear(4, 1), UnitPrior(4))
    assert prior.graph and prior.sample(5).shape == (5, 4) and not prior._graphs

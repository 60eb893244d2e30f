"""Levers on the EBM prior with known answers, in 2-D (issue #27, item 4).

The aggregate posterior q is a mixture of three Gaussians and p0 = N(0, I), so the f_alpha that
makes p_alpha = exp(-f_alpha) p0 / Z equal to q is known in closed form:
f*(z) = log p0(z) - log q(z) (+ a constant, which the noise-contrastive fit pins to 0).
"""

import math

import pytest
import torch

from mmebm.ebm import EBMPrior, UnitPrior
from mmebm.langevin import ReplayBuffer
from mmebm.nce import importance_resample, nce_loss
from mmebm.nets import EnergyMLP

MEANS = torch.tensor([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
SD = 0.5


def q_sample(n, generator=None):
    k = torch.randint(len(MEANS), (n,), generator=generator)
    return MEANS[k] + SD * torch.randn(n, 2, generator=generator)


def log_q(z):
    d = -((z[:, None] - MEANS[None]) ** 2).sum(-1) / (2 * SD ** 2) - math.log(2 * math.pi * SD ** 2)
    return torch.logsumexp(d, 1) - math.log(len(MEANS))


P0 = UnitPrior(2)


def f_star(z):
    return P0.log_prob(z) - log_q(z)


def mmd_permutation_p(x, y, n_perm=100, seed=0):
    """p-value of a permutation test of the RBF-kernel MMD (median bandwidth) between samples x, y."""
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z) ** 2
    k = torch.exp(-d2 / d2.median())
    n = len(x)

    def mmd(idx):
        a, b = idx[:n], idx[n:]
        return k[a][:, a].mean() + k[b][:, b].mean() - 2 * k[a][:, b].mean()

    g = torch.Generator().manual_seed(seed)
    observed = mmd(torch.arange(len(z)))
    perms = torch.stack([mmd(torch.randperm(len(z), generator=g)) for _ in range(n_perm)])
    return ((perms >= observed).sum().item() + 1) / (n_perm + 1)


def fit_nce(steps=1500, batch=512, seed=0):
    torch.manual_seed(seed)
    f = EnergyMLP(2, 64)
    opt = torch.optim.Adam(f.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)  # settles: 0.09 median error, not 0.2
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        loss, _ = nce_loss(f, P0, q_sample(batch, g))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return f


@pytest.fixture(scope="module")
def fitted():
    return fit_nce()


def test_closed_form_energy_tilts_p0_into_the_mixture():
    """The reference itself: exp(-f*) p0 is q (the tests below lean on this)."""
    z = torch.randn(100, 2) * 2
    assert torch.allclose(-f_star(z) + P0.log_prob(z), log_q(z), atol=1e-5)


def test_nce_fit_recovers_the_log_density_ratio(fitted):
    """Where q or p0 has mass, the fitted f_alpha equals log p0 - log q, constant included."""
    g = torch.Generator().manual_seed(1)
    z = torch.cat([q_sample(2000, g), torch.randn(2000, 2, generator=g)])
    with torch.no_grad():
        err = (fitted(z) - f_star(z)).abs()
    assert err.median() < 0.15, f"median |f - f*| = {err.median():.3f}"
    assert err.mean() < 0.3, f"mean |f - f*| = {err.mean():.3f}"


def test_importance_resampling_with_the_exact_energy_samples_the_mixture():
    torch.manual_seed(0)
    z, ess = importance_resample(f_star, P0, 1000, n_proposals=50_000)
    assert 1000 < ess < 50_000
    assert mmd_permutation_p(z, q_sample(1000, torch.Generator().manual_seed(2))) > 0.05
    # and the test can tell: p0's own samples are far from the mixture
    assert mmd_permutation_p(torch.randn(1000, 2), q_sample(1000, torch.Generator().manual_seed(2))) < 0.01


def test_importance_resampling_with_the_fitted_energy_samples_the_mixture(fitted):
    torch.manual_seed(0)
    z, _ = importance_resample(fitted, P0, 1000, n_proposals=50_000)
    assert mmd_permutation_p(z, q_sample(1000, torch.Generator().manual_seed(3))) > 0.05


def test_langevin_from_resampled_points_keeps_the_mixture(fitted):
    """The 'sir+langevin' sampler: chains started in the target stay in it (small steps)."""
    torch.manual_seed(0)
    prior = EBMPrior(fitted, P0, n_steps=50, step_size=0.1, sampler="sir+langevin", sir_factor=50)
    z = prior.sample(1000)
    assert mmd_permutation_p(z, q_sample(1000, torch.Generator().manual_seed(4))) > 0.05


FAR = torch.tensor([5.0, 5.0])


def far_energy(z):
    """p_alpha = N(FAR, 0.5^2 I): f = log p0 - log N(FAR, 0.5^2)."""
    log_target = -((z - FAR) ** 2).sum(-1) / (2 * 0.25) - math.log(2 * math.pi * 0.25)
    return P0.log_prob(z) - log_target


@pytest.mark.parametrize("persistent", [True, False])
def test_replay_buffer_lets_short_chains_reach_a_far_mode(persistent):
    """Chains of 5 small steps from p0 stop short of a mode 7 units away; persisted across 100
    calls through the buffer they arrive. Without the buffer, the same loop does not."""
    torch.manual_seed(0)
    prior = EBMPrior(far_energy, P0, n_steps=5, step_size=0.15)
    buffer = ReplayBuffer(size=2000, reinit=0.05)
    for _ in range(100):
        z0 = buffer.starts(256, P0.sample) if persistent else P0.sample(256)
        z = prior.chain(z0)
        buffer.push(z)
    dist = (buffer.z[-256:] - FAR).norm(dim=1).median()
    if persistent:
        assert dist < 1.0, f"median distance to the mode {dist:.2f}"
        assert len(buffer.z) == 2000
    else:
        assert dist > 3.0, f"median distance to the mode {dist:.2f}"


def test_ebm_loss_uses_the_buffer_for_negatives():
    torch.manual_seed(0)
    f = EnergyMLP(2, 16)
    prior = EBMPrior(f, P0, n_steps=2, step_size=0.1, buffer=ReplayBuffer(size=100))
    _, z1 = prior.ebm_loss(torch.randn(64, 2))
    _, z2 = prior.ebm_loss(torch.randn(64, 2))
    assert len(prior.buffer.z) == 100 and torch.equal(prior.buffer.z[-64:], z2)
    assert not torch.equal(z1, z2)


@pytest.mark.parametrize("penalty", [0.0, 0.1])
def test_energy_penalty_keeps_the_mle_update_from_running_away(penalty):
    """Positives at a mode that 5-step chains from p0 never reach: the plain update lowers f there
    and raises it where the chains end, without bound (the run-away of results/ebm_sampling/);
    the penalty on f^2 holds them near 1 / (2 * penalty) = 5 (measured: |f| about 8,000 without
    it, 5.0 with it, seeds 0-2)."""
    torch.manual_seed(0)
    f = EnergyMLP(2, 32)
    prior = EBMPrior(f, P0, n_steps=5, step_size=0.05, penalty=penalty)
    opt = torch.optim.Adam(f.parameters(), lr=1e-2)
    for _ in range(300):
        loss, z_neg = prior.ebm_loss(FAR + 0.3 * torch.randn(128, 2))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        size = max(f(z_neg).abs().mean(), f(FAR + 0.3 * torch.randn(128, 2)).abs().mean()).item()
    if penalty:
        assert size < 1 / penalty, size
        # at the optimum of gap + penalty (a^2 + b^2), a = -b = -1 / (2 penalty): the energy gap sits
        # near -1 / penalty and the penalized loss the trainer logs near half that (ebm_gap, ebm_loss)
        assert -1.2 / penalty < prior.gap.item() < -0.8 / penalty, prior.gap
        assert -0.6 / penalty < loss.item() < -0.4 / penalty, loss
    else:
        assert size > 100, size


def test_samplers_and_fits_are_checked():
    with pytest.raises(ValueError, match="sampler"):
        EBMPrior(EnergyMLP(2, 4), P0, sampler="gibbs")
    with pytest.raises(ValueError, match="fit"):
        EBMPrior(EnergyMLP(2, 4), P0, fit="score")


def test_levers_are_config_values():
    from mmebm.config import load_config
    from mmebm.models import build_model

    cfg = load_config("polymnist_mmvae_ebm", profile="cpu", overrides=[
        "model.ebm_fit=nce", "model.ebm_sampler=sir+langevin", "model.ebm_sir_factor=5", "model.ebm_penalty=0.1",
        "model.ebm_buffer=100"])
    prior = build_model(cfg.model).prior
    assert (prior.fit, prior.sampler, prior.sir_factor, prior.penalty, prior.buffer.size) == ("nce", "sir+langevin", 5, 0.1, 100)
    paper = build_model(load_config("polymnist_mmvae_ebm", profile="cpu").model).prior
    assert (paper.fit, paper.sampler, paper.penalty, paper.buffer) == ("mle", "langevin", 0.0, None)
    with pytest.raises(ValueError, match="sampler"):
        build_model(load_config("polymnist_mmvae_ebm", profile="cpu", overrides=["model.ebm_sampler=gibbs"]).model)

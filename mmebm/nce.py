"""The noise-contrastive prior (Aneja et al. 2021, NCP-VAE): f_alpha fitted as a classifier, and
sampled by importance resampling.

With p_alpha(z) = exp(-f_alpha(z)) p0(z) / Z, the prior that matches the aggregate posterior
q(z) = E_x 1/M sum_m q(z|x_m) has f_alpha(z) = log p0(z) - log q(z) + const. Logistic regression
of posterior samples (label 1) against p0 samples (label 0), with logit -f_alpha(z) and equal
class sizes, has exactly that optimum, constant 0: the Bayes classifier's logit is
log q(z) - log p0(z). No Markov chain is needed to fit it, so it cannot run away the way the
short-run maximum-likelihood update does (results/ebm_sampling/).

Sampling: draw N proposals from p0, weight each by p_alpha / p0 = exp(-f_alpha) (self-normalized),
and resample n of them (sampling importance resampling, SIR). Short Langevin chains started from
the resampled points can then refine them (`EBMPrior(sampler="sir+langevin")`).
"""

import torch
import torch.nn.functional as F


def nce_loss(f_alpha, p0, z_post, z_noise=None):
    """Binary cross-entropy of posterior samples z_post [N, D] (label 1) against as many p0
    samples (label 0, drawn unless z_noise is given), with logit -f_alpha(z). Its minimizer is
    f_alpha = log p0 - log q. Returns (loss, z_noise)."""
    if z_noise is None:
        z_noise = p0.sample(z_post.shape[0])
    logit_pos = -f_alpha(z_post.detach())
    logit_neg = -f_alpha(z_noise.detach())
    return F.softplus(-logit_pos).mean() + F.softplus(logit_neg).mean(), z_noise


@torch.no_grad()
def importance_resample(f_alpha, p0, n, n_proposals=None, chunk=50_000):
    """n draws from p_alpha = exp(-f_alpha) p0 / Z by sampling importance resampling: n_proposals
    (default 20 n) draws from p0, resampled with replacement in proportion to exp(-f_alpha).
    Exact as n_proposals / n -> infinity; returns (z [n, D], effective sample size of the
    proposals' weights, (sum w)^2 / sum w^2)."""
    n_proposals = n_proposals or 20 * n
    z = p0.sample(n_proposals)
    f = torch.cat([f_alpha(z[s:s + chunk]) for s in range(0, n_proposals, chunk)]).float()
    logw = -f - (-f).max()
    w = logw.exp()
    ess = (w.sum() ** 2 / (w ** 2).sum()).item()
    idx = torch.multinomial(w, n, replacement=True)
    return z[idx], ess


@torch.no_grad()
def posterior_pool(model, data, batch_size=500):
    """One posterior sample z ~ q(z | x_m) of every tuple of `data` through every expert m:
    [N, M, Dz]. Drawn uniformly from it, z follows the aggregate posterior
    q(z) = E_x 1/M sum_m q(z | x_m): the samples of a perfect prior (and NCE's positives)."""
    return torch.cat([model.encode(x).z.rsample() for x, _ in data.batches(batch_size, shuffle=False)])


def aggregate_sample(pool, n, generator=None):
    """n draws from the aggregate posterior: a random tuple of the pool through a random expert."""
    i = torch.randint(pool.shape[0], (n,), generator=generator)
    m = torch.randint(pool.shape[1], (n,), generator=generator)
    return pool[i.to(pool.device), m.to(pool.device)]

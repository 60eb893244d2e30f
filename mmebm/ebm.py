"""Priors on the shared latent z: unit Gaussian / Laplace, and the EBM prior

    p_alpha(z) = exp(-f_alpha(z)) p0(z) / Z(alpha).
"""

import torch
import torch.nn as nn
from torch.func import functional_call

from .distributions import family
from .langevin import LangevinGraph, ReplayBuffer, sample_langevin
from .nce import importance_resample, nce_loss
from .nets import EnergyMLP


class UnitPrior(nn.Module):
    """N(0, s^2 I) or Laplace(0, s) on [..., dim], s = `scale` (1: the unit prior); no parameters."""

    def __init__(self, dim, name="gaussian", scale=1.0):
        super().__init__()
        self.dim, self.family = dim, family(name)
        self.register_buffer("_zero", torch.zeros(()), persistent=False)  # follows .to(device)
        self.register_buffer("_scale", torch.tensor(float(scale)), persistent=False)

    def dist(self):
        return self.family(self._zero.expand(self.dim), self._scale.expand(self.dim))

    def log_prob(self, z):
        return self.dist().log_prob(z)

    def sample(self, shape):
        return self.dist().rsample(shape if isinstance(shape, tuple) else (shape,))


class EBMPrior(nn.Module):
    """Exponentially tilted base density p0 with energy f_alpha.

    Sampler (`sampler`): "langevin", the paper's short-run Langevin dynamics started afresh from
    p0; "sir", importance resampling of sir_factor * n draws from p0 (nce.importance_resample);
    "sir+langevin", Langevin chains started from the resampled points. On CUDA the chain runs as
    a captured graph (langevin.LangevinGraph) unless graph=False; on CPU, and for return_chain,
    eagerly. The fit (`fit`): "mle", the paper's update (ebm_loss), optionally with an energy
    penalty and persistent chains (`buffer`, a langevin.ReplayBuffer); "nce", the noise-contrastive
    fit of nce.py."""

    MAX_GRAPHS = 4  # batch shapes whose graphs are kept (training, probes, evaluation chunks)
    SAMPLERS = ("langevin", "sir", "sir+langevin")
    FITS = ("mle", "nce")

    def __init__(self, f_alpha, p0, n_steps=60, step_size=0.4, noise=True, graph=True, sampler="langevin",
                 sir_factor=20, fit="mle", penalty=0.0, buffer=None):
        super().__init__()
        if sampler not in self.SAMPLERS or fit not in self.FITS:
            raise ValueError(f"sampler must be one of {self.SAMPLERS} (got {sampler!r}), fit one of {self.FITS} "
                             f"(got {fit!r})")
        self.f_alpha, self.p0 = f_alpha, p0
        self.n_steps, self.step_size, self.noise = n_steps, step_size, noise
        self.graph, self.sampler, self.sir_factor = graph, sampler, sir_factor
        self.fit, self.penalty, self.buffer = fit, penalty, buffer
        self.last_ess = None  # the effective sample size of the last importance resampling
        self._graphs = {}  # key -> LangevinGraph; not state: rebuilt on demand

    def energy(self, z):
        """f_alpha(z) - log p0(z): minus the unnormalized log density, per sample."""
        return self.f_alpha(z) - self.p0.log_prob(z)

    def log_prob(self, z):
        """-f_alpha(z) + log p0(z), up to -log Z, as the encoders and generators see it:
        alpha is frozen here (gradient flows to z only), so the VAE loss never updates the
        EBM; alpha learns from ebm_loss alone."""
        frozen = {k: v.detach() for k, v in self.f_alpha.named_parameters()}
        return -functional_call(self.f_alpha, frozen, (z,)) + self.p0.log_prob(z)

    def sample(self, n, return_chain=False):
        """n draws of z from p_alpha with `sampler` (the chain's states too with return_chain)."""
        if self.sampler == "langevin":
            return self.chain(self.p0.sample(n), return_chain)
        z, self.last_ess = importance_resample(self.f_alpha, self.p0, n, self.sir_factor * n)
        if self.sampler == "sir":
            return torch.stack([z]) if return_chain else z
        return self.chain(z, return_chain)

    def chain(self, z0, return_chain=False):
        """The Langevin chain of n_steps on energy() from z0 (a captured graph on CUDA)."""
        if self.graph and z0.is_cuda and not return_chain:
            return self._graph_for(z0)(z0)
        return sample_langevin(self.energy, z0, self.n_steps, self.step_size, self.noise, return_chain)

    def _graph_for(self, z0):
        """The captured chain for z0's shape and this module's current storage (a module moved
        to another device, or parameters replaced, gets a new graph), under the same autocast."""
        key = (tuple(z0.shape), z0.dtype, z0.device, torch.is_autocast_enabled(z0.device.type),
               self.n_steps, self.step_size, self.noise,
               tuple(t.data_ptr() for t in (*self.parameters(), *self.buffers())))
        if key not in self._graphs:
            while len(self._graphs) >= self.MAX_GRAPHS:
                self._graphs.pop(next(iter(self._graphs)))  # the oldest
            self._graphs[key] = LangevinGraph(self.energy, z0.shape, self.n_steps, self.step_size, self.noise,
                                              z0.device, z0.dtype)
        return self._graphs[key]

    def ebm_loss(self, z_post, z_neg=None):
        """fit "mle": mean f_alpha(z_posterior) - mean f_alpha(z_langevin), whose alpha-gradient
        is minus the log-likelihood gradient E_q[df/dalpha] - E_p_alpha[df/dalpha] (poster), plus
        `penalty` * mean f_alpha^2 over both sets (Du & Mordatch 2019: keeps the energies from
        running away when the chains miss the posteriors). Negatives: fresh chains from p0, or
        with a replay buffer persistent ones. fit "nce": nce.nce_loss against p0 samples. Both
        sample sets are detached, so only alpha learns from it. Returns (loss, z_neg)."""
        if self.fit == "nce":
            return nce_loss(self.f_alpha, self.p0, z_post, z_neg)
        if z_neg is None and self.buffer is not None:
            z_neg = self.chain(self.buffer.starts(z_post.shape[0], self.p0.sample))
            self.buffer.push(z_neg)
        elif z_neg is None:
            z_neg = self.sample(z_post.shape[0])
        f_pos, f_neg = self.f_alpha(z_post.detach()), self.f_alpha(z_neg.detach())
        loss = f_pos.mean() - f_neg.mean()
        self.gap = loss.detach()  # the energy gap itself, which the penalty bounds near -1 / penalty (trainer: ebm_gap)
        if self.penalty:
            loss = loss + self.penalty * (f_pos.pow(2).mean() + f_neg.pow(2).mean())
        return loss, z_neg


def build_prior(cfg):
    if cfg.prior == "ebm":
        f_alpha = EnergyMLP(cfg.z_dim, cfg.ebm_hidden, cfg.ebm_act)
        return EBMPrior(f_alpha, UnitPrior(cfg.z_dim, cfg.ebm_base, cfg.prior_scale),
                        cfg.langevin_steps, cfg.langevin_step_size, cfg.langevin_noise, cfg.langevin_graph,
                        cfg.ebm_sampler, cfg.ebm_sir_factor, cfg.ebm_fit, cfg.ebm_penalty,
                        ReplayBuffer(cfg.ebm_buffer) if cfg.ebm_buffer else None)
    return UnitPrior(cfg.z_dim, cfg.prior, cfg.prior_scale)

"""MMVAE and MMVAE+ with a Gaussian / Laplace / EBM prior on the shared z: one class.

The model holds the encoders, decoders, the prior on z, MMVAE+'s w with its auxiliary prior,
and generation; the training objective lives in objectives.py (cfg.objective), which
model.loss and model.log_weights call.

Shapes: x holds M modalities, stacked [B, M, *event] where they share a shape (PolyMNIST) or
a tuple of M tensors [B, *event_m] (CUB: image [B, 3, 64, 64] and caption ids [B, 32]);
`modalities(x)` reads either as the sequence of M tensors, the form the objective's decoder
outputs and likelihoods take, while the public outputs (sample, reconstruct, cross_generate,
decode_z) keep the data's form. Posterior samples are indexed [K, B, R, dim] where R is the
expert (the modality r whose posterior q(z|x_r) drew the sample); decoder inputs
[K, B, R, M, dim] and the output of modality d [K, B, R, *event_d] hold, for expert r, the
reconstruction of x_d from expert r's z (self-reconstruction when d == r).
"""

import math
from collections import namedtuple

import torch
import torch.nn as nn

from .config import ModelConfig
from .cub_nets import ModalityDecoders, ModalityEncoders
from .distributions import OneHotCategorical, family, likelihood, posterior_scale
from .ebm import EBMPrior, UnitPrior, build_prior
from .nets import Decoder, Encoder
from .objectives import build_objective, log_q_mix  # noqa: F401 (log_q_mix: re-exported for tests, notebooks)

Posterior = namedtuple("Posterior", "z w")  # unimodal posteriors, batch shape [B, M]; w None for MMVAE


def modalities(x):
    """The M per-modality tensors of data or decoder outputs: a tuple (CUB) as it is, a stacked
    tensor [N, M, ...] (PolyMNIST) unbound along dim 1 (views)."""
    return tuple(x) if isinstance(x, (tuple, list)) else x.unbind(1)


def _float_dtype(x):
    """The model's compute dtype: the data's, unless the first modality holds word ids."""
    t = modalities(x)[0]
    return t.dtype if t.dtype.is_floating_point else torch.get_default_dtype()


class MultimodalVAE(nn.Module):
    """MMVAE (cfg.model="mmvae") or MMVAE+ ("mmvaeplus"); the prior on z is cfg.prior, the
    training objective cfg.objective (objectives.py).

    encoder / decoder default to the networks of cfg.dataset (PolyMNIST: cfg.net); any modules
    with the nets.Encoder / nets.Decoder call signatures fit (tests plug in linear ones).
    """

    def __init__(self, cfg: ModelConfig, encoder=None, decoder=None):
        super().__init__()
        self.cfg = cfg
        M = cfg.n_modalities
        self.w_dim = cfg.w_dim if cfg.has_w else 0
        in_dim = self.w_dim + cfg.z_dim
        # PolyMNIST: one architecture for all modalities, stacked; CUB: one network per modality
        if encoder is None:
            encoder = (Encoder(M, cfg.z_dim, self.w_dim, cfg.net, cfg.channels_last, cfg.conv_width, cfg.conv_leak) if self.stacked
                       else ModalityEncoders(cfg.modalities, cfg.z_dim, self.w_dim, cfg.vocab_size, cfg.net,
                                            cfg.conv_leak, cfg.conv_width))
        if decoder is None:
            decoder = (Decoder(M, in_dim, cfg.net, cfg.channels_last, cfg.conv_width, cfg.conv_leak, cfg.conv_upsample)
                       if self.stacked
                       else ModalityDecoders(cfg.modalities, in_dim, cfg.vocab_size, cfg.net, self.w_dim,
                                            cfg.conv_leak, cfg.conv_width))
        self.enc, self.dec = encoder, decoder
        self.prior = build_prior(cfg)  # p(z); EBM parameters live in prior.f_alpha
        if self.w_dim:
            self.p0_w = UnitPrior(self.w_dim, cfg.posterior, cfg.prior_scale)  # p0(w), in training and at test
            # MMVAE+ auxiliary prior of each modality, used for w~ in cross-reconstruction
            # during training: zero location, learnable scale (raw, as the posterior's)
            self.aux_w_raw = nn.Parameter(torch.zeros(M, self.w_dim))
        self.objective = build_objective(cfg)  # a plain object: no parameters, nothing in the state dict

    # ------------------------------------------------------------------ parameters

    @property
    def has_ebm(self):
        return isinstance(self.prior, EBMPrior)

    def ebm_parameters(self):
        return list(self.prior.f_alpha.parameters()) if self.has_ebm else []

    def vae_parameters(self):
        ebm = {id(p) for p in self.ebm_parameters()}
        return [p for p in self.parameters() if id(p) not in ebm]

    # ------------------------------------------------------------------ networks

    def _dist(self, loc, raw):
        return family(self.cfg.posterior)(loc, posterior_scale(raw, self.cfg.posterior, self.cfg.scale_eps))

    @property
    def stacked(self):
        """True when the modalities share one shape: data and outputs stacked [..., M, *event]."""
        return self.cfg.dataset == "polymnist"

    @property
    def batched(self):
        """All modalities in one network call (cfg.batched), else the reference's loop of one call
        per modality (and expert); CUB's networks are one per modality, always called at once."""
        return self.cfg.batched or not self.stacked

    def encode(self, x):
        """Unimodal posteriors q(z|x_m) (and q(w|x_m)) of every modality, batch shape [B, M]."""
        if self.batched:
            z_loc, z_raw, w_loc, w_raw = self.enc(x)
        else:  # the reference: one encoder call per modality
            outs = [self.enc(x_m, g=m) for m, x_m in enumerate(modalities(x))]
            z_loc, z_raw, w_loc, w_raw = [None if o[0] is None else torch.stack(o, 1) for o in zip(*outs)]
        dt = _float_dtype(x)  # fp32 under autocast
        qw = self._dist(w_loc.to(dt), w_raw.to(dt)) if self.w_dim else None
        return Posterior(self._dist(z_loc.to(dt), z_raw.to(dt)), qw)

    def decode(self, u):
        """u [N, M, dim] -> decoder outputs [N, M, *event] (a tuple of [N, *event_m] for CUB),
        decoder d reading u[:, d]."""
        if self.batched:
            return self.dec(u)
        return torch.stack([self.dec(u[:, d], g=d) for d in range(u.shape[1])], 1)  # stacked nets only

    def decode_experts(self, u):
        """u [K, B, R, M, dim] -> the M decoder outputs [K, B, R, *event_d]. Batched: one call;
        loop: R*M calls of K*B samples each, the structure of the reference implementations."""
        K, B, R, M, D = u.shape
        if self.batched:
            return [o.view(K, B, R, *o.shape[1:]) for o in modalities(self.dec(u.reshape(-1, M, D)))]
        per_expert = [modalities(self.decode(u[:, :, r].reshape(-1, M, D))) for r in range(R)]
        return [torch.stack([o.view(K, B, *o.shape[1:]) for o in outs], 2) for outs in zip(*per_expert)]

    def log_lik(self, x_hat, x):
        """sum_d weight_d * log p(x_d | x_hat_d) -> [K, B, R], for the M decoder outputs x_hat
        [K, B, R, *event_d] and data x. Images: fixed-scale cfg.likelihood, weight
        cfg.image_lik_weight; captions: categorical over the vocabulary per word (padding
        included, as in MMVAE), weight cfg.text_lik_weight."""
        cfg, dt = self.cfg, _float_dtype(x)
        terms = []
        for kind, out, x_d in zip(cfg.modalities, x_hat, modalities(x)):
            out = out.to(dt)  # fp32 under autocast
            if kind == "text":
                lp = cfg.text_lik_weight * OneHotCategorical(out, 1).log_prob(x_d[None, :, None])
            else:
                lik = likelihood(cfg.likelihood, out, cfg.lik_scale, out.dim() - 3)
                lp = cfg.image_lik_weight * lik.log_prob(x_d[None, :, None])
            terms.append(lp)
        return torch.stack(terms, -1).sum(-1)  # one reduction over d: a chain of adds rounds differently

    def aux_w(self):
        """The auxiliary priors of the M modalities' w, batch shape [M]: a learnable scale (cfg.aux_w
        "learned", the reference), or p0(w) itself ("unit": training's cross-reconstructions then
        draw w~ as test-time cross generation does, and a Normal scale cannot shrink towards 0)."""
        if self.cfg.aux_w == "unit":
            p0 = self.p0_w.dist()
            return type(p0)(p0.loc.expand_as(self.aux_w_raw), p0.scale.expand_as(self.aux_w_raw))
        return self._dist(torch.zeros_like(self.aux_w_raw), self.aux_w_raw)

    def join(self, w, z):
        """Decoder input [w, z] (MMVAE+ order), or z alone for MMVAE."""
        return z if w is None else torch.cat([w, z], -1)

    # ------------------------------------------------------------------ objective

    def log_weights(self, x, post=None):
        """The objective's per-sample log importance weights (objectives.MoE.log_weights):
        lw [K, B, R] and the posterior samples."""
        return self.objective.log_weights(self, x, post)

    def loss(self, x):
        """VAE loss (minus cfg.objective's surrogate, per data point) and stats: "objective" (the
        bound, detached), "z" (detached posterior samples [N, Dz] for the EBM update)."""
        return self.objective(self, x)

    def ebm_loss(self, z_post, z_neg=None):
        """EBM loss (see ebm.EBMPrior.ebm_loss) on posterior samples, against z_neg or fresh
        Langevin samples from the prior; returns (loss, z_langevin)."""
        return self.prior.ebm_loss(z_post, z_neg)

    # ------------------------------------------------------------------ generation

    @torch.no_grad()
    def sample(self, n, tilted=True):
        """Joint generation: z ~ p(z) (Langevin for the EBM prior), w ~ p0(w); decoder means
        [n, M, *event] (tuple for CUB). tilted=False draws z from the EBM's base p0 instead of p_alpha."""
        z = self.prior.sample(n) if tilted or not self.has_ebm else self.prior.p0.sample(n)
        return self.decode_z(z)

    @torch.no_grad()
    def decode_z(self, z, w=None):
        """All M modalities decoded from shared latents z [n, Dz] (decoder means [n, M, *event]);
        w [n, M, Dw] from p0(w) unless given. Decodes e.g. the states of a Langevin chain."""
        M = self.cfg.n_modalities
        if self.w_dim and w is None:
            w = self.p0_w.sample((len(z), M))
        return self.decode(self.join(w, z[:, None].expand(-1, M, -1)))

    @torch.no_grad()
    def reconstruct(self, x, mean=False):
        """Each modality from its own posterior sample (z_m, w_m) (or the posterior means)."""
        post = self.encode(x)
        draw = (lambda q: q.mean) if mean else (lambda q: q.rsample())
        return self.decode(self.join(draw(post.w) if self.w_dim else None, draw(post.z)))

    @torch.no_grad()
    def cross_generate(self, x, src, mean=False):
        """Generate all M modalities from the observed subset `src` (an index, a list of
        indices or a bool mask [M]): one z per data point from the subset's joint posterior as
        the objective defines it (objective.subset_sample; MoE: the mixture of src's experts, a
        uniformly chosen expert per data point; MoPoE: their product), w ~ p0(w) (the unit
        prior, as at test time in MMVAE+). Returns decoder means [B, M, *event]."""
        qz = self.encode(x).z
        src = torch.as_tensor(src, device=qz.loc.device).reshape(-1)
        if src.dtype == torch.bool:
            src = src.nonzero().reshape(-1)
        return self.decode_z(self.objective.subset_sample(qz, src, mean))

    @torch.no_grad()
    def cross_generate_all(self, x):
        """`cross_generate(x, src)` for every single source at once, encoding x once: one
        posterior sample z_src per source (objective.single_samples), w ~ p0(w); decoder means
        [M(src), B, M, *event]."""
        z = self.objective.single_samples(self.encode(x).z)            # [B, M(src), Dz]
        return torch.stack([self.decode_z(z[:, src]) for src in range(self.cfg.n_modalities)])


def build_model(cfg: ModelConfig, **kw):
    return MultimodalVAE(cfg, **kw)


def train_step(model, x, opt_vae, opt_ebm=None, loss_fn=None, reduce_grads=None):
    """One training step: VAE update, then (EBM prior) the EBM update on this step's
    posterior samples against fresh Langevin samples. Returns a dict of floats.

    loss_fn replaces model.loss (e.g. compiled or under autocast); reduce_grads(params), if
    given, runs between each backward and optimizer step (the gradient all-reduce of data
    parallel training). A non-finite VAE loss raises FloatingPointError before any update."""
    loss, stats = (loss_fn or model.loss)(x)
    loss_v, objective_v = torch.stack([loss.detach(), stats["objective"].to(loss.dtype)]).tolist()  # one sync
    if not math.isfinite(loss_v):
        raise FloatingPointError(f"non-finite VAE loss {loss_v}")
    opt_vae.zero_grad(set_to_none=True)
    loss.backward()
    if reduce_grads is not None:
        reduce_grads(opt_vae.param_groups[0]["params"])
    opt_vae.step()
    out = {"loss": loss_v, "objective": objective_v}
    if model.has_ebm:
        ebm_loss, _ = model.ebm_loss(stats["z"].float())  # float: the VAE may run under bf16 autocast
        opt_ebm.zero_grad(set_to_none=True)
        ebm_loss.backward()
        if reduce_grads is not None:
            reduce_grads(opt_ebm.param_groups[0]["params"])
        opt_ebm.step()
        out["ebm_loss"] = ebm_loss.item()
        if model.prior.fit == "mle" and model.prior.penalty:  # the loss then holds the penalty too
            out["ebm_gap"] = model.prior.gap.item()
    return out


def make_optimizers(model, lr=1e-3, amsgrad=True):
    """Adam for the VAE (lr 1e-3 with amsgrad: MMVAE+ PolyMNIST run), Adam for the EBM with
    cfg.ebm_lr / cfg.ebm_betas; returns (opt_vae, opt_ebm or None)."""
    cfg = model.cfg
    opt_vae = torch.optim.Adam(model.vae_parameters(), lr=lr, amsgrad=amsgrad)
    opt_ebm = torch.optim.Adam(model.ebm_parameters(), lr=cfg.ebm_lr, betas=cfg.ebm_betas) if model.has_ebm else None
    return opt_vae, opt_ebm

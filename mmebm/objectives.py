"""Training objectives of the multimodal VAE, apart from the model (models.py).

An objective is built from the config (`build_objective(cfg)`, keyed by cfg.objective) and is
called as objective(model, x) -> (loss, stats): loss the scalar to minimize (minus the
surrogate, averaged over the batch), stats["objective"] the bound itself (detached) and
stats["z"] detached posterior samples [N, Dz], the positives of the EBM prior's update. It
reaches the model only through encode, prior, p0_w, aux_w, join, decode_experts and log_lik,
so one model serves every objective. The objective's own settings (cfg.K, cfg.beta,
cfg.dreg) are fixed when it is built.

MoE, the mixture-of-experts bound of MMVAE (Shi et al. 2019) and MMVAE+ (Palumbo et al. 2023):
the joint posterior is the mixture q_mix(z | X) = 1/M sum_m q(z | x_m), and its stratified
K-sample bound draws K samples from every expert r,

    L = 1/M sum_r E log 1/K sum_k exp lw[k, r],   (z_k, w_k) ~ q(z | x_r) q(w | x_r),

lw the log importance weight (MoE.log_weights), its regularizer weighed by cfg.beta (MMVAE+;
1 in MMVAE). K = 1 is the ELBO, K > 1 the IWAE bound. With cfg.dreg the gradient is DReG's
(Tucker et al. 2019): the same bound, lower-variance encoder gradients.
"""

import torch

from .distributions import log_mean_exp


def log_q_mix(q, z):
    """log q_mix(z | X) = log 1/M sum_m q(z | x_m), for q of batch shape [B, M] and z
    [..., B, R, D] (expert r's samples) -> [..., B, R]."""
    components = type(q)(q.loc[:, None], q.scale[:, None])  # batch [B, 1, M]
    return log_mean_exp(components.log_prob(z[..., None, :]), -1)


class MoE:
    """The mixture-of-experts bound (MMVAE / MMVAE+), IWAE over cfg.K samples per expert
    (the ELBO for K = 1), with the DReG gradient if cfg.dreg."""

    def __init__(self, cfg):
        self.K, self.beta, self.dreg = cfg.K, cfg.beta, cfg.dreg

    def log_weights(self, model, x, post=None):
        """Per-sample log importance weights, one per expert:

            lw[k, b, r] = sum_d log p(x_d | z_r, w) + beta * (log p(z_r) + log p0(w_r)
                          - log q_mix(z_r | X) - log q(w_r | x_r)),   (z_r, w_r) ~ q(.|x_r)

        with w = w_r for d == r and w~ ~ aux prior of d otherwise (MMVAE+). With the EBM
        prior, log p(z) = -f_alpha(z) + log p0(z) (frozen alpha, log Z dropped).
        With dreg the posterior parameters in log q are detached (DReG).
        post: the unimodal posteriors (models.Posterior), model.encode(x) unless given.
        Returns lw [K, B, R] and the samples {"z": [K, B, R, Dz], "w": [K, B, R, Dw],
        "w_cross": [K, B, R, M, Dw]} (w's None for MMVAE).
        """
        K, M = self.K, model.cfg.n_modalities
        post = model.encode(x) if post is None else post
        qz, qw = (post.z.detach(), None if post.w is None else post.w.detach()) if self.dreg else post
        z = post.z.rsample((K,))                                        # [K, B, R, Dz]
        reg = model.prior.log_prob(z) - log_q_mix(qz, z)
        w = w_cross = u_w = None
        if model.w_dim:
            w = post.w.rsample((K,))                                    # [K, B, R, Dw]
            reg = reg + model.p0_w.log_prob(w) - qw.log_prob(w)
            w_cross = model.aux_w().rsample((K, z.shape[1], M))         # [K, B, R, M(d), Dw]
            self_rec = torch.eye(M, dtype=torch.bool, device=z.device)[:, :, None]
            u_w = torch.where(self_rec, w[:, :, :, None], w_cross)
        u = model.join(u_w, z[:, :, :, None].expand(-1, -1, -1, M, -1))
        lpx = model.log_lik(model.decode_experts(u), x)                 # M decoder outputs [K, B, R, *event_d]
        return lpx + self.beta * reg, {"z": z, "w": w, "w_cross": w_cross}

    def __call__(self, model, x):
        """VAE loss (minus the objective, per data point) and stats; stats["z"] holds the
        detached posterior samples [K*B*R, Dz] for the EBM update."""
        lw, samples = self.log_weights(model, x)
        z, w = samples["z"], samples["w"]
        if self.dreg:
            # DReG (Tucker et al. 2019) per expert: generator gradient sum_k wt_k dlw_k, encoder
            # gradient through the samples sum_k wt_k^2 dlw_k/dz (the hooks add the second wt)
            wt = torch.softmax(lw, 0).detach()
            for s in (z, w):
                if s is not None and s.requires_grad:
                    s.register_hook(lambda g: g * wt[..., None])
            surrogate = (wt * lw).sum(0)
        else:
            surrogate = log_mean_exp(lw, 0)                             # IWAE over K; the ELBO for K = 1
        loss = -surrogate.mean()
        if self.dreg:
            with torch.no_grad():
                bound = log_mean_exp(lw, 0).mean()
        else:
            bound = -loss.detach()  # the surrogate is the bound itself
        stats = {"objective": bound, "z": z.detach().reshape(-1, z.shape[-1])}
        return loss, stats


# cfg.objective -> objective class (built from the config); config.OBJECTIVES lists the same keys
OBJECTIVES = {"moe": MoE}


def build_objective(cfg):
    if cfg.objective not in OBJECTIVES:
        raise ValueError(f"model.objective must be one of {', '.join(OBJECTIVES)}, got {cfg.objective!r}")
    return OBJECTIVES[cfg.objective](cfg)

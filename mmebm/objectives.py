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

MoPoE, the mixture-of-products-of-experts bound (Sutter, Daunhawer, Vogt, "Generalized
Multimodal ELBO", ICLR 2021): one posterior q_S(z | X_S) per non-empty subset S of the
modalities (2^M - 1 of them, the set P), the product of the subset's Gaussian experts
(`poe`), and the bound averages the subsets' ELBOs,

    L = 1/|P| sum_S ( E_{q_S} log p(X | z) - beta KL(q_S || p(z)) )   (MoPoE.log_weights).

mmJSD (Sutter, Daunhawer, Vogt, NeurIPS 2020): the MoE's reconstruction term with the KL
replaced by a Jensen-Shannon divergence of the M unimodal posteriors and the prior, taken
against their weighted geometric mean (the "dynamic prior", `poe` with weights 1/(M+1)):

    L = E_{q_mix(z|X)} log p(X | z) - beta sum_{k=0..M} 1/(M+1) KL(q_k || q_dyn),  q_0 = p(z).

MVTCAE (Hwang, Kim, Kim, Ahn, NeurIPS 2021): the joint posterior is the product of the M
experts without the prior expert, and the total-correlation objective, with alpha = cfg.tc_alpha,

    L = (M - alpha)/M E_q log p(X | z) - beta ( (1 - alpha) KL(q || p(z))
                                               + alpha/M sum_m KL(q || q(z | x_m)) ).

Every objective also says how generation from an observed subset draws z (`subset_sample`,
`single_samples`; MultimodalVAE.cross_generate and cross_generate_all call them): from the
same joint posterior its bound trains.
"""

import itertools

import torch

from .distributions import Normal, family, log_mean_exp


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

    def subset_sample(self, qz, src, mean=False):
        """z [B, Dz] from the joint posterior of the observed modalities src (indices [n]), the
        mixture 1/n sum_{m in src} q(z | x_m): a uniformly chosen expert's sample per data point
        (mean: that expert's mean). qz: the unimodal posteriors, batch [B, M]."""
        z_all = qz.mean if mean else qz.rsample()                       # [B, M, Dz]
        return pick(z_all, src[torch.randint(len(src), (z_all.shape[0],), device=z_all.device)])

    def single_samples(self, qz):
        """z [B, M, Dz]: one draw from each single modality's posterior q(z | x_m)."""
        return qz.rsample()


def pick(z, index):
    """z[b, index[b]] for z [B, C, D] and index [B] -> [B, D]: one component per data point."""
    return z[torch.arange(len(z), device=z.device), index]


def kl_normal(p, q):
    """KL(p || q) of diagonal Normals in closed form, summed over the last dimension."""
    var_ratio = (p.scale / q.scale) ** 2
    return 0.5 * (var_ratio + ((p.loc - q.loc) / q.scale) ** 2 - 1 - var_ratio.log()).sum(-1)


def _elbo_only(name, cfg, joint):
    """The checks that MoPoE, mmJSD and MVTCAE share: closed-form Gaussian experts, one latent, an ELBO."""
    if family(cfg.posterior) is not Normal:
        raise ValueError(f"model.objective={name} needs posterior: normal (the {joint} of Gaussian experts "
                         f"is closed-form), got posterior: {cfg.posterior}")
    if cfg.has_w:
        raise ValueError(f"model.objective={name} has one shared latent z, no modality-specific w (the authors' "
                         f"PolyMNIST run: style_dim=0); use model: mmvae, got model: {cfg.model}")
    if cfg.K != 1 or cfg.dreg:
        raise ValueError(f"model.objective={name} is an ELBO: it needs K: 1 and dreg: false, got K: {cfg.K}, "
                         f"dreg: {cfg.dreg}")


# ----------------------------------------------------------------------------- MoPoE

def subsets(M):
    """The 2^M - 1 non-empty subsets of M modalities as masks [2^M - 1, M] (bool), by size,
    then in lexicographic order (the authors' powerset order): singletons first, the full set last."""
    return torch.tensor([[m in S for m in range(M)]
                         for n in range(1, M + 1) for S in itertools.combinations(range(M), n)])


def poe(q, masks, prior_expert, prior_scale=1.0):
    """Product of Gaussian experts, per subset: q the unimodal posteriors (Normal, batch [B, M]),
    masks [S, M] (bool) the subsets, prior_expert [S] (bool) whether N(0, prior_scale^2 I) joins
    the product -> the normalised products, Normal of batch [B, S]. Precisions add and the
    location is the precision-weighted mean of the experts' (the prior's is 0):

        1 / var_S = [prior] / s^2 + sum_{m in S} 1 / var_m,   mu_S = var_S sum_{m in S} mu_m / var_m

    Float masks and prior_expert weigh the experts: the normalised prod_m q_m^{a_m} (a weighted
    geometric mean when the weights sum to 1, mmJSD's dynamic prior).
    """
    w = masks.to(q.loc)[:, :, None]                                     # [S, M, 1]
    prec_m = q.scale ** -2                                              # [B, M, D]
    # broadcast-and-sum, not a matmul: autocast would run a matmul in bf16
    prec = (w * prec_m[:, None]).sum(2) + prior_expert.to(q.loc)[:, None] / prior_scale ** 2
    loc = (w * (q.loc * prec_m)[:, None]).sum(2) / prec                 # [B, S, D]
    return Normal(loc, prec.rsqrt())


def _all_modalities(model, z, M):
    """Decoder input [K, B, R, M, dim] that decodes every modality from z [K, B, R, Dz]."""
    return model.join(None, z[:, :, :, None].expand(-1, -1, -1, M, -1))


def _one_sample_loss(self, model, x):
    """VAE loss (minus the objective's one-sample estimate, averaged over the batch) and stats;
    stats["z"] holds the decoded samples [B, Dz], one per data point (the EBM's positives)."""
    lw, samples = self.log_weights(model, x)
    loss = -lw.mean()
    z = samples["z"]
    return loss, {"objective": -loss.detach(), "z": z.detach().reshape(-1, z.shape[-1])}


class MoPoE:
    """The MoPoE bound (Sutter et al. 2021): the ELBO of a mixture of products of experts.

    Joint posterior: the uniform mixture over the non-empty subsets S of the products of experts

        q_S(z | X_S) ∝ N(z; 0, s^2 I)^[S = all] prod_{m in S} q(z | x_m),

    closed-form for Gaussian experts (`poe`), s = cfg.prior_scale (the scale of p(z), of p0 under
    the EBM prior). The prior expert joins the full set's product only, as in the authors' code
    (thomassutter/MoPoE utils/BaseMMVae.py poe_fusion: the zero-mean, zero-logvar expert is
    appended when the subset holds all M modalities): the single-modality subsets are the
    unimodal posteriors themselves (MoE's experts), the full set MVAE's product.

    Bound, per data point (the KL taken per subset and averaged, divergence_static_prior there):

        L = 1/|P| sum_S ( E_{q_S} log p(X | z) - beta KL(q_S || p(z)) ),

    which for beta = 1 is <= ELBO(q_mix) <= log p(X) (the KL is convex: KL(q_mix || p) <= the
    subsets' mean), and equals 1/|P| sum_S (log p(X) - KL(q_S || p(z | X))). The authors take the
    KL in closed form against N(0, I); here it is estimated with one sample z_S ~ q_S per subset,
    KL ≈ log q_S(z_S) - log p(z_S), unbiased for any prior and exact in expectation: with the EBM
    prior, log p(z) = -f_alpha(z) + log p0(z) (log Z dropped) tilts every subset's regularizer. The
    reconstruction term takes one subset per data point, drawn uniformly (the authors split each
    shuffled batch into blocks of floor(B/|P|) rows, one per subset, the rest to the full set:
    utils/utils.py mixture_component_selection), and decodes all M modalities from its z_S.
    No K (an ELBO) and no DReG; one shared z (the authors' PolyMNIST run has no modality-specific
    latents: style_dim=0).
    """

    def __init__(self, cfg):
        _elbo_only("mopoe", cfg, "product")
        self.beta, self.prior_scale = cfg.beta, cfg.prior_scale
        self.masks = subsets(cfg.n_modalities)                          # [|P|, M], the full set last

    def posteriors(self, qz, masks=None):
        """q_S of every subset (masks [S, M], default all |P|), Normal of batch [B, S]."""
        masks = (self.masks if masks is None else masks).to(qz.loc.device)
        return poe(qz, masks, masks.all(1), self.prior_scale)

    def log_q(self, qz, z):
        """log q_mix(z | X) = log 1/|P| sum_S q_S(z | X_S), the joint posterior's density, for z
        [..., B, Dz] -> [..., B] (the bound itself takes the KL per subset)."""
        return log_mean_exp(self.posteriors(qz).log_prob(z[..., None, :]), -1)

    def log_weights(self, model, x, post=None):
        """The bound's one-sample estimate per data point, shaped as MoE's log weights [K=1, B, R=1]:

            lw[b] = log p(X_b | z_{S_b}) + beta/|P| sum_S (log p(z_S) - log q_S(z_S)),
                    z_S ~ q_S(z | X_S) for every S, S_b ~ uniform on P;

        its expectation is the bound L. post: the unimodal posteriors, model.encode(x) unless
        given. Returns lw and the samples {"z": [1, B, 1, Dz] (decoded), "z_subsets": [B, |P|, Dz],
        "subset": [B] (the index of S_b in self.masks)}.
        """
        post = model.encode(x) if post is None else post
        q = self.posteriors(post.z)
        z_S = q.rsample()                                               # [B, |P|, Dz]
        reg = (model.prior.log_prob(z_S) - q.log_prob(z_S)).mean(-1)   # -1/|P| sum_S KL, one sample each
        B, M, device = z_S.shape[0], len(self.masks[0]), z_S.device
        subset = torch.randint(len(self.masks), (B,), device=device)
        z = pick(z_S, subset)[None, :, None]                           # [1, B, 1, Dz]
        lpx = model.log_lik(model.decode_experts(_all_modalities(model, z, M)), x)  # [1, B, 1]
        return lpx + self.beta * reg[None, :, None], {"z": z, "z_subsets": z_S, "subset": subset}

    __call__ = _one_sample_loss

    def subset_sample(self, qz, src, mean=False):
        """z [B, Dz] from the joint posterior of the observed modalities src (indices [n]): their
        product q_S (the prior expert only when src holds all M), one sample (mean: its mean)."""
        mask = torch.zeros(len(self.masks[0]), dtype=torch.bool, device=qz.loc.device)
        mask[src] = True
        q = self.posteriors(qz, mask[None])
        return (q.mean if mean else q.rsample())[:, 0]

    def single_samples(self, qz):
        """z [B, M, Dz]: one draw from each single modality's q_S, S = {m} (q(z | x_m) itself
        for M > 1)."""
        M = len(self.masks[0])
        return self.posteriors(qz, torch.eye(M, dtype=torch.bool)).rsample()


# ----------------------------------------------------------------------------- mmJSD

class MMJSD:
    """The mmJSD objective (Sutter, Daunhawer, Vogt, "Multimodal Generative Learning Utilizing
    Jensen-Shannon-Divergence", NeurIPS 2020), per data point:

        L = E_{q_mix(z | X)} log p(X | z) - beta JS(q_1, ..., q_M, p(z)),
        JS = sum_{k=0..M} a_k KL(q_k || q_dyn),   a_k = 1/(M+1),   q_0 = p(z) = N(0, s^2 I),

    q_mix = 1/M sum_m q(z | x_m) (MoE's joint posterior) and the dynamic prior q_dyn the weighted
    geometric mean prod_k q_k^{a_k}, normalised (`poe` with weights a_k; a Gaussian). The KLs
    are closed-form, as in the authors' code (thomassutter/MoPoE and thomassutter/mmjsd,
    divergence_measures/mm_div.py calc_alphaJSD_modalities, alpha_poe), gradients through
    q_dyn included. The reconstruction decodes all M modalities from one z ~ q_mix per data
    point, a uniformly drawn expert's (the authors split each batch into blocks, one per expert).
    With cfg.mmjsd_prior_decoded the prior is a member of that mixture too, weight 1/(M+1), as in
    the MoPoE repository, whose run the poster quotes (about 1/(M+1) of each batch decoded from
    z ~ N(0, s^2 I)); without, its weight is zero, as in the paper and thomassutter/mmjsd
    (moe_fusion: weights[0] = 0). Cross generation from a subset uses the mixture of its experts,
    as there (eval_metrics/coherence.py: moe_fusion of the subset). The prior must be Gaussian:
    the JS takes p(z) as one of its closed-form members.
    """

    def __init__(self, cfg):
        _elbo_only("mmjsd", cfg, "weighted geometric mean")
        if cfg.prior != "gaussian":
            raise ValueError(f"model.objective=mmjsd needs prior: gaussian (the prior is a member of the closed-form "
                             f"Jensen-Shannon divergence), got prior: {cfg.prior}")
        self.beta, self.prior_scale, self.M = cfg.beta, cfg.prior_scale, cfg.n_modalities
        self.weight = 1.0 / (self.M + 1)                               # a_k, the prior's and every expert's
        self.prior_decoded = cfg.mmjsd_prior_decoded

    def dynamic_prior(self, qz):
        """q_dyn = normalised q_0^{a_0} prod_m q_m^{a_m}, Normal of batch [B, 1]."""
        M = self.M
        weights = torch.full((1, M), self.weight, dtype=qz.loc.dtype, device=qz.loc.device)
        return poe(qz, weights, weights[:, 0], self.prior_scale)

    def js(self, qz):
        """The regularizer sum_{k=0..M} a_k KL(q_k || q_dyn) [B], in closed form."""
        dyn = self.dynamic_prior(qz)                                     # batch [B, 1]
        prior = Normal(torch.zeros_like(dyn.loc), torch.full_like(dyn.scale, self.prior_scale))
        return self.weight * (kl_normal(qz, dyn).sum(-1) + kl_normal(prior, dyn)[:, 0])

    def log_weights(self, model, x, post=None):
        """The objective's one-sample estimate per data point, shaped [K=1, B, R=1]:

            lw[b] = log p(X_b | z_b) - beta JS_b,   z_b ~ q(z | x_{m_b}), m_b ~ uniform on 1..M,

        (with prior_decoded, m_b uniform on 0..M, q_0 = p(z), stored as expert M), its expectation
        L. Returns lw and the samples {"z": [1, B, 1, Dz], "expert": [B]}."""
        post = model.encode(x) if post is None else post
        B = post.z.loc.shape[0]
        expert = torch.randint(self.M + self.prior_decoded, (B,), device=post.z.loc.device)
        z_all = post.z.rsample()                                        # [B, M, Dz]
        if self.prior_decoded:  # the prior's draw as member M
            z_all = torch.cat([z_all, self.prior_scale * torch.randn_like(z_all[:, :1])], 1)
        z = pick(z_all, expert)[None, :, None]                         # [1, B, 1, Dz]
        lpx = model.log_lik(model.decode_experts(_all_modalities(model, z, self.M)), x)
        return lpx - self.beta * self.js(post.z)[None, :, None], {"z": z, "expert": expert}

    __call__ = _one_sample_loss
    subset_sample = MoE.subset_sample
    single_samples = MoE.single_samples


# ----------------------------------------------------------------------------- MVTCAE

class MVTCAE:
    """The MVTCAE objective (Hwang, Kim, Kim, Ahn, "Multi-View Representation Learning via Total
    Correlation Objective", NeurIPS 2021), per data point, with alpha = cfg.tc_alpha:

        L = (M - alpha)/M E_q log p(X | z) - beta ( (1 - alpha) KL(q || p(z))
                                                    + alpha/M sum_m KL(q || q(z | x_m)) ),

    q(z | X) the product of the M Gaussian experts without a prior expert, as in the authors'
    code (gr8joo/MVTCAE run_epochs.py: rec_weight, cvib_weight, vib_weight; BaseMMVae.py
    ivw_fusion). The conditional-VIB terms KL(q || q_m) are closed-form as there; the VIB term
    is the one-sample estimate log q(z) - log p(z) (as MoPoE's here), exact in expectation and
    defined for any prior: with the EBM prior, log p(z) = -f_alpha(z) + log p0(z) (log Z dropped).
    Cross generation from a subset uses the product of its experts (no prior expert either).
    """

    def __init__(self, cfg):
        _elbo_only("mvtcae", cfg, "product")
        self.beta, self.alpha, self.M = cfg.beta, cfg.tc_alpha, cfg.n_modalities

    def joint(self, qz, mask=None):
        """q(z | X_S) = the normalised product of the experts in mask ([M] bool, default all),
        Normal of batch [B, 1]."""
        mask = torch.ones(self.M, dtype=torch.bool) if mask is None else mask
        mask = mask.to(qz.loc.device)[None]
        return poe(qz, mask, torch.zeros(1, dtype=torch.bool, device=mask.device))

    def log_weights(self, model, x, post=None):
        """The objective's estimate per data point, shaped [K=1, B, R=1]:

            lw[b] = (M - alpha)/M log p(X_b | z_b) + beta (1 - alpha) (log p(z_b) - log q(z_b | X_b))
                    - beta alpha/M sum_m KL(q || q_m),   z_b ~ q(z | X_b),

        its expectation L. Returns lw and the samples {"z": [1, B, 1, Dz]}."""
        post = model.encode(x) if post is None else post
        q = self.joint(post.z)                                          # batch [B, 1]
        z_b = q.rsample()                                               # [B, 1, Dz]
        z = z_b[None]                                                   # [1, B, 1, Dz]
        lpx = model.log_lik(model.decode_experts(_all_modalities(model, z, self.M)), x)
        vib = (model.prior.log_prob(z_b) - q.log_prob(z_b))[:, 0]      # -KL(q || p), one sample
        cvib = kl_normal(q, post.z).sum(-1)                             # sum_m KL(q || q_m), closed-form
        reg = (1 - self.alpha) * vib - self.alpha / self.M * cvib
        return (self.M - self.alpha) / self.M * lpx + self.beta * reg[None, :, None], {"z": z}

    __call__ = _one_sample_loss

    def subset_sample(self, qz, src, mean=False):
        """z [B, Dz] from the product of the observed modalities' experts (src: indices [n])."""
        mask = torch.zeros(self.M, dtype=torch.bool, device=qz.loc.device)
        mask[src] = True
        q = self.joint(qz, mask)
        return (q.mean if mean else q.rsample())[:, 0]

    def single_samples(self, qz):
        """z [B, M, Dz]: one draw from each q(z | x_m) (a single expert's product is itself)."""
        return qz.rsample()


# cfg.objective -> objective class (built from the config); config.OBJECTIVES lists the same keys.
# moe: MMVAE (Shi et al. 2019) / MMVAE+ (Palumbo et al. 2023); mopoe: Sutter et al. 2021;
# mmjsd: Sutter et al. 2020; mvtcae: Hwang et al. 2021
OBJECTIVES = {"moe": MoE, "mopoe": MoPoE, "mmjsd": MMJSD, "mvtcae": MVTCAE}


def build_objective(cfg):
    if cfg.objective not in OBJECTIVES:
        raise ValueError(f"model.objective must be one of {', '.join(OBJECTIVES)}, got {cfg.objective!r}")
    return OBJECTIVES[cfg.objective](cfg)

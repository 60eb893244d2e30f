# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · The objectives, derived and checked
#
# This notebook derives the learning rules of the paper (Yuan, Cui, Li, Han, ECCV 2024) one
# step at a time, and after each step runs a small numerical check of the library code that
# implements it against a case with a closed form. It ends with a toy that trains in seconds:
# a two-dimensional latent whose shared information is a ring of eight Gaussians, first the
# EBM prior alone, then a two-modality MMVAE with the EBM prior.
#
# Nothing here is re-implemented: the model, prior, sampler and objectives are imported from
# `mmebm`; the notebook only builds inputs, closed forms to compare against, and figures.
#
# Notation: $X = (x_1, \dots, x_M)$ the $M$ modalities of one data point, $z$ the shared
# latent, $\beta$ the generator parameters, $\alpha$ the EBM parameters, $\phi$ the encoders.
#
# **Writes** `figures/objectives_toy_prior.png`, `figures/objectives_energy.png` and
# `figures/objectives_toy_mmvae.png`. **Took** 104 s on this project's 2-core CPU machine, fresh clone, 2026-12-07 (`results/timings.md`).

# %% tags=["parameters"]
figures_dir = "../figures"
seed = 0
device = "cpu"
n_samples = 20_000  # Langevin chains and Monte Carlo samples in the checks
n_iters = 1200  # training steps of the EBM prior alone (section 7a)
n_iters_vae = 1500  # training steps of the toy MMVAE with the EBM prior (section 7b)
batch_size = 256

# %%
import math

import matplotlib.pyplot as plt
import torch
import torch.distributions as td

from mmebm import ModelConfig, build_model, make_optimizers, toy, train_step
from mmebm.distributions import Normal, likelihood
from mmebm.ebm import EBMPrior, UnitPrior
from mmebm.models import Posterior, log_q_mix
from mmebm.nets import EnergyMLP, GLinear
from mmebm.plots import save

# The tensors here are tiny: one thread is faster than two, and keeps every printed number
# independent of the machine's core count.
torch.set_num_threads(1)
dev = torch.device(device)


def ok(flag):
    return "OK" if flag else "FAILED"


# %% [markdown]
# ## 1. The multimodal latent generative model
#
# One latent $z$ is shared by all $M$ modalities, and given $z$ the modalities are
# independent:
#
# $$p_\theta(X, z) = \prod_{m=1}^M p_{\beta_m}(x_m \mid z)\; p(z),
# \qquad x_1 \perp x_2 \perp \dots \perp x_M \mid z .$$
#
# Each $p_{\beta_m}(x_m \mid z)$ is a generator (decoder) $G_{\beta_m}$ plus noise, e.g.
# $x_m = G_{\beta_m}(z) + \sigma \epsilon$. Everything the modalities have in common must pass
# through $z$: **joint generation** draws $z \sim p(z)$ and decodes every modality from it,
# so the samples are coherent only if $p(z)$ puts its mass where the data's $z$ live. With
# a unimodal $p(z)$ (a Gaussian or Laplace, as in MMVAE and MMVAE+) and data whose shared
# information is multi-modal (ten digits on PolyMNIST), much of the prior's mass falls in the
# holes between the clusters of the aggregated posterior, and those $z$ decode to incoherent
# tuples. That is the problem the paper addresses.
#
# The toy used throughout: $z \in \mathbb R^2$ is drawn from a ring of 8 Gaussians, and each
# of $M = 2$ modalities is a noisy map of $z$ to $\mathbb R^2$, linear for $x_1$, bent by a
# sine warp for $x_2$ (`mmebm.toy`).

# %%
RADIUS, STD, N_MODES, NOISE = 2.5, 0.35, 8, 0.1  # the toy's ring and observation noise
centers = toy.ring_centers(N_MODES, RADIUS)
modalities = toy.ToyModalities(n_modalities=2, x_dim=2, noise=NOISE, seed=0)

torch.manual_seed(seed)
z_data, mode_data = toy.sample_ring(n_samples, N_MODES, RADIUS, STD)
x_data = modalities(z_data)
print("z", tuple(z_data.shape), "X", tuple(x_data.shape), "(samples, modalities, dims)")

# %% [markdown]
# ## 2. The EBM prior: exponential tilting of a Gaussian
#
# The paper replaces $p(z)$ by an energy-based model that *tilts* a base density $p_0$:
#
# $$p_\alpha(z) = \frac{1}{Z(\alpha)} \exp[-f_\alpha(z)]\, p_0(z),
# \qquad Z(\alpha) = \int \exp[-f_\alpha(z)]\, p_0(z)\, dz = \mathbb E_{p_0}\big[e^{-f_\alpha(z)}\big],$$
#
# with $p_0 = \mathcal N(0, I)$ and $f_\alpha$ a small MLP (`nets.EnergyMLP`,
# $\dim z \to 200 \to 200 \to 1$ on PolyMNIST, after Pang et al. 2020). With $f_\alpha = 0$
# it is the usual Gaussian prior; where $f_\alpha$ is low the prior gains mass. $Z(\alpha)$
# is an integral over the latent space, intractable for an MLP energy: the learning rules
# below are built so that it is never computed.
#
# **Check.** A quadratic energy $f(z) = \tfrac c2 |z|^2$ (`toy.QuadraticEnergy`) has
# everything in closed form: $p_\alpha = \mathcal N(0, I/(1+c))$ and
# $Z = (1+c)^{-D/2}$. The Monte Carlo estimate $\mathbb E_{p_0}[e^{-f}]$ should agree.

# %%
torch.manual_seed(seed)
c_tilt, D = 1.0, 2
f_quad = toy.QuadraticEnergy(c_tilt)
p0 = UnitPrior(D, "gaussian")
with torch.no_grad():
    w = torch.exp(-f_quad(p0.sample(n_samples)))
Z_mc, Z_se, Z_exact = w.mean().item(), (w.std() / math.sqrt(n_samples)).item(), (1 + c_tilt) ** (-D / 2)
print(f"Z(alpha) by Monte Carlo {Z_mc:.3f} vs closed form {Z_exact:.3f}: {ok(abs(Z_mc - Z_exact) < 5 * Z_se)}")

# %% [markdown]
# ## 3. Maximum likelihood, and why $\log Z$ drops out
#
# Learning maximizes the log-likelihood of the data, $\theta = (\beta, \alpha)$:
#
# $$L(\theta) = \log p_\theta(X) = \log \int \prod_m p_{\beta_m}(x_m \mid z)\, p_\alpha(z)\, dz .$$
#
# **The gradient identity.** Because $\nabla \log p = \nabla p / p$,
#
# $$\nabla_\theta \log p_\theta(X)
# = \frac{1}{p_\theta(X)} \int \nabla_\theta p_\theta(X, z)\, dz
# = \int \frac{p_\theta(X, z)}{p_\theta(X)} \nabla_\theta \log p_\theta(X, z)\, dz
# = \mathbb E_{p_\theta(z \mid X)}\big[\nabla_\theta \log p_\theta(X, z)\big].$$
#
# The log-likelihood gradient is the complete-data gradient averaged over the posterior.
# With $\log p_\theta(X, z) = \sum_m \log p_{\beta_m}(x_m \mid z) - f_\alpha(z) + \log p_0(z) - \log Z(\alpha)$
# it splits into two parts:
#
# * **Generators** $\beta$: only the likelihood terms depend on $\beta$;
#   $\nabla_\beta L = \mathbb E_{p(z|X)}[\sum_m \nabla_\beta \log p_{\beta_m}(x_m \mid z)]$.
#   Neither $f_\alpha$ nor $\log Z(\alpha)$ appears: $\log Z$ is a constant for $\beta$
#   (and for the encoders $\phi$ below, which only move the $z$ at which things are evaluated).
# * **EBM** $\alpha$: $\nabla_\alpha \log Z(\alpha) = \frac{1}{Z}\int -\nabla_\alpha f_\alpha(z)\, e^{-f_\alpha(z)} p_0(z)\, dz
#   = -\mathbb E_{p_\alpha(z)}[\nabla_\alpha f_\alpha(z)]$, so
#
# $$\nabla_\alpha L = -\,\mathbb E_{p_\theta(z \mid X)}\big[\nabla_\alpha f_\alpha(z)\big]
#                     + \mathbb E_{p_\alpha(z)}\big[\nabla_\alpha f_\alpha(z)\big].$$
#
# The normalizer is replaced by an expectation under the prior, which we can estimate with
# samples (section 4). Learning lowers the energy where the posterior puts $z$ and raises it
# where the prior does; it stops when the two agree, i.e. when the prior matches the
# aggregated posterior.
#
# **Sign conventions.** The poster writes
# $\partial L / \partial \alpha = \mathbb E_q[\partial f_\alpha / \partial \alpha] - \mathbb E_{p_\alpha}[\partial f_\alpha / \partial \alpha]$,
# the opposite sign of the expression above for $p_\alpha \propto e^{-f_\alpha} p_0$ (it is
# the gradient with the sign convention $p_\alpha \propto e^{f_\alpha} p_0$ of Pang et al.,
# or equally the gradient of the quantity to *minimize*). The library minimizes
#
# $$\ell_{\mathrm{EBM}}(\alpha) = \tfrac1N \textstyle\sum_i f_\alpha(z_i^{+}) - \tfrac1N \sum_j f_\alpha(z_j^{-}),
# \qquad z^{+} \sim q(z \mid X) \text{ (posterior)},\ z^{-} \sim p_\alpha \text{ (Langevin)},$$
#
# (`EBMPrior.ebm_loss`, both sample sets detached), whose gradient is the poster's
# expression and minus $\nabla_\alpha L$. In training, $p(z \mid X)$ is replaced by the
# inference model $q_\phi(z \mid X)$ (section 5).
#
# **Checks**, on a linear-Gaussian model where $p(X)$ is Gaussian: $M = 2$ modalities
# $x_m = W_m z + \sigma\epsilon$, prior tilted by $f(z) = \tfrac c2|z|^2$, so
# $p_c(z) = \mathcal N(0, I/(1+c))$, $p(X) = \mathcal N(0, W W^\top/(1+c) + \sigma^2 I)$ and
# $p(z \mid X) = \mathcal N(P^{-1} W^\top X / \sigma^2, P^{-1})$ with $P = (1+c) I + W^\top W / \sigma^2$.
# Autograd through the closed-form $\log p(X)$ gives the exact gradients; the identity
# estimates them from exact posterior samples; the EBM gradient comes from `ebm_loss`.

# %%
g = torch.Generator().manual_seed(seed)
Dz, Dx, sigma, c_lin = 2, 3, 0.5, 1.0
W = torch.randn(2 * Dx, Dz, generator=g, dtype=torch.float64).requires_grad_(True)  # [W_1; W_2]
c_param = torch.tensor(c_lin, dtype=torch.float64, requires_grad=True)


def log_px(W, c_lin, X):
    """Closed form log p(X) of the linear-Gaussian model with the tilted prior."""
    cov = W @ W.T / (1 + c_lin) + sigma ** 2 * torch.eye(2 * Dx, dtype=torch.float64)
    return td.MultivariateNormal(torch.zeros(2 * Dx, dtype=torch.float64), cov).log_prob(X)


def exact_posterior(W, c_lin, X):
    P = (1 + c_lin) * torch.eye(Dz, dtype=torch.float64) + W.T @ W / sigma ** 2
    cov = torch.linalg.inv(P)
    return td.MultivariateNormal(cov @ W.T @ X / sigma ** 2, cov)


with torch.no_grad():  # one data point X = (x_1, x_2) from the model
    X = W @ (torch.randn(Dz, generator=g, dtype=torch.float64) / math.sqrt(1 + c_lin))
    X = X + sigma * torch.randn(2 * Dx, generator=g, dtype=torch.float64)
dW_exact, dc_exact = torch.autograd.grad(log_px(W, c_param, X), (W, c_param))

# %% [markdown]
# The generator gradient by the identity: average $\nabla_W \log p(X \mid z)$ over exact
# posterior samples (the likelihood is `distributions.likelihood`). The prior and $\log Z$
# play no part in it.

# %%
torch.manual_seed(seed)
n_mc = 200_000  # cheap here: two-dimensional z
z_post = exact_posterior(W.detach(), c_lin, X).sample((n_mc,))  # [n, Dz]
log_lik = likelihood("normal", z_post @ W.T, sigma, event_dims=1).log_prob(X).mean()
(dW_mc,) = torch.autograd.grad(log_lik, W)
rel = ((dW_mc - dW_exact).norm() / dW_exact.norm()).item()
print(f"generator gradient: |identity - exact| / |exact| = {rel:.3f}: {ok(rel < 0.02)}")

# %% [markdown]
# The EBM gradient: `EBMPrior.ebm_loss` on posterior samples against samples of the prior
# (exact ones here, to test the estimator alone; Langevin in section 4). Its gradient with
# respect to $c$ should be $-\partial \log p(X) / \partial c$.

# %%
torch.manual_seed(seed)
prior_quad = EBMPrior(toy.QuadraticEnergy(c_lin), UnitPrior(Dz)).double()
z_prior = torch.randn(n_mc, Dz, dtype=torch.float64) / math.sqrt(1 + c_lin)  # exact p_c samples
loss, _ = prior_quad.ebm_loss(z_post, z_prior)
loss.backward()
dc_mc = -prior_quad.f_alpha.c.grad.item()
print(f"EBM gradient dlog p(X)/dc: -d ebm_loss/dc = {dc_mc:.3f} vs exact {dc_exact.item():.3f}: "
      f"{ok(abs(dc_mc - dc_exact.item()) < 0.02 * max(1.0, abs(dc_exact.item())))}")

# %% [markdown]
# ## 4. Sampling the prior: short-run Langevin dynamics
#
# The second expectation needs samples of $p_\alpha(z) \propto e^{-E(z)}$ with the full
# energy $E(z) = f_\alpha(z) - \log p_0(z)$. The Langevin diffusion
# $dz = -\nabla E(z)\, dt + \sqrt 2\, dB_t$ has $p_\alpha$ as its stationary law; its
# Euler discretization with time step $s^2/2$ is
#
# $$z_{k+1} = z_k - \frac{s^2}{2} \nabla_z \big[f_\alpha(z_k) - \log p_0(z_k)\big] + s\, \epsilon_k,
# \qquad \epsilon_k \sim \mathcal N(0, I),\quad z_0 \sim p_0 .$$
#
# The paper follows Pang et al. (2020): **short-run** chains of $K = 60$ steps with
# $s = 0.4$, restarted from $p_0$ at every training iteration (`langevin.sample_langevin`,
# `EBMPrior.sample`). A short chain from $p_0$ is not a converged MCMC sampler; the EBM is
# learned *with* this sampler in the loop, so that it is the sampler's output that is pulled
# towards the posterior samples.
#
# **Check.** For $f(z) = \tfrac c2|z|^2$ the target is $\mathcal N(0, I/(1+c))$. The
# discretized chain is itself Gaussian: with $\lambda = 1 + c$,
# $z_{k+1} = (1 - s^2\lambda/2)\, z_k + s\epsilon_k$, whose mean stays 0 and whose stationary
# variance is $1 / (\lambda (1 - s^2 \lambda / 4))$, not $1/\lambda$: the step size biases the
# sampler, and the chain diverges once $s^2 \lambda / 2 > 2$, i.e. once the energy is sharper
# than precision $4 / s^2$ (25 at $s = 0.4$). Both matter for the toy in section 7.

# %%
c_chain = 2.0
lam = 1 + c_chain
prior_c = EBMPrior(toy.QuadraticEnergy(c_chain), UnitPrior(2))
for s, steps in [(0.4, 60), (0.1, 600)]:
    torch.manual_seed(seed)
    prior_c.step_size, prior_c.n_steps = s, steps
    z = prior_c.sample(n_samples)
    var_ula, var_exact = 1 / (lam * (1 - s ** 2 * lam / 4)), 1 / lam
    se = var_ula * math.sqrt(2 / z.numel())  # standard error of the pooled variance
    mean_ok = (z.mean(0).abs() < 5 * math.sqrt(var_ula / n_samples)).all().item()
    var = z.var(0).mean().item()
    print(f"Langevin s={s}, {steps} steps: mean {z.mean().item():+.3f}, variance {var:.3f} vs "
          f"discrete-chain theory {var_ula:.3f} (continuous theory {var_exact:.3f}): {ok(mean_ok and abs(var - var_ula) < 5 * se)}")

# %% [markdown]
# ## 5. The inference model and the mixture-of-experts bound
#
# The posterior $p_\theta(z \mid X)$ in the gradient identity is intractable. As in MMVAE
# (Shi et al. 2019) the paper uses a mixture of unimodal experts,
#
# $$q_\phi(z \mid X) = \frac1M \sum_{m=1}^M q_{\phi_m}(z \mid x_m),$$
#
# which also serves cross-modal generation: one modality alone gives a posterior. Learning
# maximizes the evidence lower bound under this $q$. Written as an average over experts
# (stratified sampling: one sample from each expert),
#
# $$\mathcal L(X) = \frac1M \sum_{m=1}^M \mathbb E_{z \sim q_{\phi_m}(z \mid x_m)}
# \Big[\underbrace{\textstyle\sum_{n=1}^M \log p_{\beta_n}(x_n \mid z)}_{\text{self + cross reconstruction}}
# + \underbrace{\log p_\alpha(z) - \log q_\phi(z \mid X)}_{\text{regularization by the EBM prior}}\Big]
# = \mathbb E_{q_\phi(z|X)}\Big[\log \frac{p_\theta(X, z)}{q_\phi(z \mid X)}\Big]
# = \log p_\theta(X) - \mathrm{KL}\big(q_\phi(z \mid X) \,\|\, p_\theta(z \mid X)\big) .$$
#
# So $\mathcal L \le \log p(X)$, with equality iff the mixture is the exact posterior, and
# maximizing it over $\phi$ pulls $q$ towards $p(z \mid X)$: over $(\beta, \alpha, \phi)$ it is
# $\min \mathrm{KL}(p_{\rm data}(X) q_\phi(z|X) \,\|\, p_\beta(X|z) p_\alpha(z))$, the poster's
# "final objective". Note the denominator is the *mixture* density, evaluated at each
# expert's sample:
#
# $$\log q_\phi(z \mid X) = \log \frac1M \sum_m q_{\phi_m}(z \mid x_m)
# = \operatorname{logsumexp}_m \log q_{\phi_m}(z \mid x_m) - \log M \qquad (\texttt{models.log\_q\_mix}).$$
#
# **Check 1**: `log_q_mix` against a brute-force sum of `torch.distributions` densities.

# %%
g = torch.Generator().manual_seed(seed)
B, M, Dq, K = 4, 3, 2, 5
q = Normal(torch.randn(B, M, Dq, generator=g, dtype=torch.float64),
           torch.rand(B, M, Dq, generator=g, dtype=torch.float64) + 0.3)
z = torch.randn(K, B, M, Dq, generator=g, dtype=torch.float64)  # z[k, b, r]: expert r's samples
brute = torch.zeros(K, B, M, dtype=torch.float64)
for k in range(K):
    for b in range(B):
        for r in range(M):
            dens = sum(td.Normal(q.loc[b, m], q.scale[b, m]).log_prob(z[k, b, r]).sum().exp() for m in range(M))
            brute[k, b, r] = torch.log(dens / M)
err = (log_q_mix(q, z) - brute).abs().max().item()
print(f"log_q_mix vs brute force: max |difference| < 1e-10: {ok(err < 1e-10)}")

# %% [markdown]
# **Check 2**: the bound on the linear-Gaussian model of section 3 (here with the untilted
# $p_0$ prior, $c = 0$), through `MultimodalVAE.log_weights`, which returns the bracket above
# for each expert's sample. The decoders are the linear maps $W_m$ (`nets.GLinear` with its
# weights set); the posteriors are handed in directly:
#
# * experts = the exact unimodal posteriors $p(z \mid x_m)$: each is a good guess from one
#   modality, but their mixture is not $p(z \mid X)$, so $\mathcal L < \log p(X)$;
# * every expert = the exact joint posterior $p(z \mid X)$: then
#   $\log p(X, z) - \log q(z|X) = \log p(X)$ for *every* sample, and the bound is tight.

# %%
cfg_lg = ModelConfig(model="mmvae", prior="gaussian", n_modalities=2, z_dim=Dz, posterior="normal",
                     likelihood="normal", lik_scale=sigma, beta=1.0, K=n_samples, scale_eps=0.0)
decoder = GLinear(2, Dz, Dx).double()
with torch.no_grad():
    decoder.weight.copy_(W.detach().view(2, Dx, Dz).transpose(1, 2))  # [M, Dz, Dx]
    decoder.bias.zero_()
model_lg = build_model(cfg_lg, encoder=toy.MLPEncoder(2, Dx, Dz), decoder=decoder).double()
x_lg = X.view(1, 2, Dx)  # [B=1, M, Dx]
log_px0 = log_px(W.detach(), 0.0, X).item()

uni = []  # p(z | x_m) for each modality alone: precision I + W_m^T W_m / sigma^2
for m in range(2):
    Wm = W.detach()[m * Dx:(m + 1) * Dx]
    cov = torch.linalg.inv(torch.eye(Dz, dtype=torch.float64) + Wm.T @ Wm / sigma ** 2)
    uni.append((cov @ Wm.T @ X[m * Dx:(m + 1) * Dx] / sigma ** 2, cov.diagonal().sqrt()))
joint = exact_posterior(W.detach(), 0.0, X)

torch.manual_seed(seed)
q_uni = Normal(torch.stack([u[0] for u in uni])[None], torch.stack([u[1] for u in uni])[None])
lw, _ = model_lg.log_weights(x_lg, post=Posterior(q_uni, None))  # [K, B=1, R=2]
elbo, se = lw.mean().item(), (lw.std() / math.sqrt(lw.numel())).item()
print(f"MoE ELBO with unimodal experts {elbo:.3f} <= log p(X) {log_px0:.3f} "
      f"(gap {log_px0 - elbo:.3f}, s.e. {se:.3f}): {ok(elbo + 5 * se < log_px0)}")

# %% [markdown]
# The joint posterior is not diagonal in general, while the library's posteriors are; for the
# tight case we rotate $z$ so that it is: with $P = V \Lambda V^\top$ and $z' = V^\top z$, the
# decoders become $W_m V$ and the posterior of $z'$ is diagonal. (The prior $\mathcal N(0, I)$
# is rotation invariant.)

# %%
P = torch.eye(Dz, dtype=torch.float64) + W.detach().T @ W.detach() / sigma ** 2
evals, V = torch.linalg.eigh(P)
with torch.no_grad():
    decoder.weight.copy_((W.detach() @ V).view(2, Dx, Dz).transpose(1, 2))
loc = V.T @ joint.mean
q_joint = Normal(loc.expand(1, 2, Dz), evals.rsqrt().expand(1, 2, Dz))  # both experts = p(z|X)
torch.manual_seed(seed)
lw, _ = model_lg.log_weights(x_lg, post=Posterior(q_joint, None))
err = (lw - log_px0).abs().max().item()
print(f"MoE ELBO with exact posterior experts: every sample = log p(X) {log_px0:.3f}: {ok(err < 1e-8)}")

# %% [markdown]
# ## 6. The base and the generalized version
#
# **Base version** (MMVAE + EBM prior): the bound of section 5 with one shared $z$ and the
# tilted prior. With $\log p_\alpha(z) = -f_\alpha(z) + \log p_0(z) - \log Z(\alpha)$, for the
# generators and encoders $\log Z(\alpha)$ is a constant and is dropped; the EBM enters their
# loss only through $-f_\alpha(z)$ at the reparameterized posterior sample $z = \mu_\phi + \sigma_\phi \epsilon$,
# whose gradient flows to $\phi$ through $z$. The EBM is *not* trained on this surrogate:
# without $\log Z$ its gradient in $\alpha$ would just lower $f_\alpha$ everywhere. With
# $\log Z(\alpha)$ kept, the bound's gradient in $\alpha$ is exactly the maximum-likelihood
# gradient of section 3, with $q_\phi(z \mid X)$ in place of $p(z \mid X)$, and that is
# the update the EBM follows, its second expectation estimated by Langevin samples. Each training step (`models.train_step`) is therefore
#
# 1. VAE step on $-\mathcal L$ with $\alpha$ frozen (`EBMPrior.log_prob`);
# 2. EBM step on $\ell_{\rm EBM} = \overline{f_\alpha(z^+)} - \overline{f_\alpha(z^-)}$,
#    $z^+$ this step's posterior samples, $z^-$ fresh short-run Langevin samples from $p_0$.
#
# **Generalized version** (MMVAE+ + EBM prior): each modality also has its own latent
# $w_m$ with a fixed prior $p_0(w)$,
# $p_\theta(X, z, W) = \prod_m p_{\beta_m}(x_m \mid z, w_m)\, p_\alpha(z)\, \prod_m p_0(w_m)$,
# and expert $m$'s posterior is $q(z \mid x_m)\, q(w_m \mid x_m)$. The objective for expert
# $r$, with $(z_r, w_r) \sim q(\cdot \mid x_r)$, is MMVAE+'s with $\log p(z)$ replaced by
# the tilted prior:
#
# $$\sum_{d=1}^M \log p_{\beta_d}(x_d \mid z_r, \tilde w_d)
# + \beta_{\rm KL}\big[-f_\alpha(z_r) + \log p_0(z_r) + \log p_0(w_r) - \log q_{\rm mix}(z_r \mid X) - \log q(w_r \mid x_r)\big],$$
#
# where $\tilde w_d = w_r$ for self-reconstruction ($d = r$) and, for cross-reconstruction
# $r \to d$, $\tilde w_d$ is drawn from a learnable auxiliary prior of modality $d$ (the
# modality-specific information of $x_d$ cannot come from $x_r$). Test-time cross generation
# draws $w$ from $p_0(w)$ instead; with Normal posteriors nothing holds the learned scale near
# $p_0$'s, and over a long run it shrank to 0.07, until the decoders could no longer read a
# $w \sim p_0(w)$: the `cpu` and `long` profiles draw $\tilde w_d$ from $p_0(w)$ itself
# (`model.aux_w: unit`; `results/long/`, sections 9-10). $\beta_{\rm KL}$ is
# MMVAE+'s weight on the regularizer (2.5 on PolyMNIST; 1 for the base version). The EBM
# step is the same as in the base version: only $z$ is tilted, $w$ keeps $p_0(w)$.
#
# **Check**: on the toy data, an MMVAE+ with the EBM prior and small MLP networks
# (`toy.MLPEncoder` / `toy.MLPDecoder`); the library's `log_weights` against the formula
# above, assembled term by term with one decoder call per (expert, target) pair; then the
# two gradient paths: the VAE loss gives $f_\alpha$ no gradient, the EBM loss gives the
# networks none.

# %%
torch.manual_seed(seed)
Dw = 2
cfg_plus = ModelConfig(model="mmvaeplus", prior="ebm", n_modalities=2, z_dim=2, w_dim=Dw, posterior="normal",
                       likelihood="normal", lik_scale=NOISE, beta=2.5, ebm_hidden=32)
plus = build_model(cfg_plus, encoder=toy.MLPEncoder(2, 2, 2, w_dim=Dw, hidden=16),
                   decoder=toy.MLPDecoder(2, Dw + 2, 2, hidden=16))
xb = x_data[:8]
lw, samples = plus.log_weights(xb)  # [K=1, B, R]
post = plus.encode(xb)
z_r, w_r, w_cross = samples["z"][0], samples["w"][0], samples["w_cross"][0]  # [B, R, D], [B, R, M, D]
by_hand = torch.zeros_like(lw[0])
for r in range(2):
    for d in range(2):
        w_in = w_r[:, r] if d == r else w_cross[:, r, d]
        mean = plus.dec(torch.cat([w_in, z_r[:, r]], -1), g=d)
        by_hand[:, r] += likelihood("normal", mean, NOISE, event_dims=1).log_prob(xb[:, d])
    q_w_r = Normal(post.w.loc[:, r], post.w.scale[:, r])
    by_hand[:, r] += cfg_plus.beta * (-plus.prior.f_alpha(z_r[:, r]) + plus.prior.p0.log_prob(z_r[:, r])
                                      + plus.p0_w.log_prob(w_r[:, r])
                                      - log_q_mix(post.z, z_r[:, None, r])[:, 0]
                                      - q_w_r.log_prob(w_r[:, r]))
err = (lw[0] - by_hand).abs().max().item()
print(f"generalized objective, library vs term by term: max |difference| < 1e-4: {ok(err < 1e-4)}")

loss, stats = plus.loss(xb)
loss.backward()
ebm_untouched = all(p.grad is None for p in plus.ebm_parameters())
plus.zero_grad(set_to_none=True)
ebm_loss, _ = plus.ebm_loss(stats["z"])
ebm_loss.backward()
vae_untouched = all(p.grad is None for p in plus.vae_parameters())
print(f"VAE loss leaves f_alpha without gradient: {ok(ebm_untouched)}; "
      f"EBM loss leaves the networks without gradient: {ok(vae_untouched)}")

# %% [markdown]
# ## 7. A toy that trains in seconds
#
# ### 7a. The EBM prior alone
#
# First the EBM on its own: the "posterior samples" $z^+$ are samples of the ring itself,
# so the EBM learns $p_\alpha \approx p_{\rm ring}$ by the gradient of section 3. The energy
# is `nets.EnergyMLP` (width 64 here, LeakyReLU(0.2) as in Pang et al.), trained with Adam
# (lr $10^{-3}$, betas (0.5, 0.999)), 60 Langevin steps from $p_0$.
#
# Toy choice, stated: Langevin step size $s = 0.2$, not the paper's 0.4. The ring's modes
# have precision $1/0.35^2 \approx 8$, and the learned energy is at times sharper still
# during training; with $s = 0.4$ the chain's stability limit $4/s^2 = 25$ (section 4) was
# crossed in our trials and the chains diverged, while $s = 0.2$ (limit 100) trained stably.
# In the paper's 32-dimensional latent the aggregated posterior is much smoother.

# %%
torch.manual_seed(seed)
ring_prior = EBMPrior(EnergyMLP(2, hidden=64, act="leakyrelu"), UnitPrior(2), n_steps=60, step_size=0.2).to(dev)
opt = torch.optim.Adam(ring_prior.f_alpha.parameters(), lr=1e-3, betas=(0.5, 0.999))
history = []
for it in range(n_iters):
    z_pos, _ = toy.sample_ring(batch_size, N_MODES, RADIUS, STD)
    loss, _ = ring_prior.ebm_loss(z_pos.to(dev))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    history.append(loss.item())
print(f"{n_iters} steps; EBM loss over the last 100: {sum(history[-100:]) / len(history[-100:]):.3f}")

# %% [markdown]
# How good is it? For samples of each distribution: the fraction within $2\,\sigma$ of a
# mode center (for the ring itself $1 - e^{-2} \approx 0.86$), and how many of the 8 modes
# get at least a quarter of their fair share. And the density itself: $p_\alpha$ normalized
# numerically on a grid (possible in 2-D only), and $\mathrm{KL}(p_{\rm ring} \,\|\, p)$ for
# $p = p_0$ and $p = p_\alpha$. Note the learned *density* $e^{-E}/Z$ and the *short-run
# sampler's* output need not agree: the EBM is trained through the sampler.

# %%
torch.manual_seed(seed)
z_p0 = ring_prior.p0.sample(n_samples)
z_ebm = ring_prior.sample(n_samples).cpu()


def mode_stats(z):
    idx, dist = toy.nearest_mode(z, centers)
    near = dist < 2 * STD
    counts = torch.bincount(idx[near], minlength=N_MODES)
    return near.float().mean().item(), int((counts > 0.25 * len(z) / N_MODES).sum())


lim, n_grid = 4.5, 181
axis = torch.linspace(-lim, lim, n_grid)
grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1)  # [n_grid, n_grid, 2]
cell = (axis[1] - axis[0]).item() ** 2
with torch.no_grad():
    energy = ring_prior.energy(grid.reshape(-1, 2).to(dev)).cpu().reshape(n_grid, n_grid)
    tilt = ring_prior.f_alpha(grid.reshape(-1, 2).to(dev)).cpu().reshape(n_grid, n_grid)
log_true = toy.ring_log_prob(grid, N_MODES, RADIUS, STD)


def grid_kl(log_p_unnorm):
    """KL(p_ring || p) on the grid, p normalized numerically."""
    log_p = log_p_unnorm - torch.logsumexp(log_p_unnorm.flatten(), 0) - math.log(cell)
    return (log_true.exp() * (log_true - log_p)).sum().item() * cell


kl_p0, kl_ebm = grid_kl(ring_prior.p0.log_prob(grid)), grid_kl(-energy)
for name, z in [("ring data", z_data), ("p0 = N(0, I)", z_p0), ("p_alpha (Langevin)", z_ebm)]:
    near, covered = mode_stats(z)
    print(f"{name:>18}: within 2 std of a mode {near:.3f}, modes covered {covered} of {N_MODES}")
print(f"KL(p_ring || p0) {kl_p0:.3f}, KL(p_ring || p_alpha) {kl_ebm:.3f}: {ok(kl_ebm < kl_p0)}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 4.2), sharex=True, sharey=True)
n_show = min(2000, n_samples)
panels = [(z_data, "data: ring of 8 Gaussians", "tab:blue"),
          (z_p0, r"base $p_0 = \mathcal{N}(0, I)$", "tab:gray"),
          (z_ebm, r"learned $p_\alpha$ (short-run Langevin)", "tab:red")]
for ax, (z, title, color) in zip(axes, panels):
    ax.scatter(z[:n_show, 0], z[:n_show, 1], s=3, alpha=0.4, color=color)
    ax.scatter(centers[:, 0], centers[:, 1], marker="x", color="k", s=30, label="mode centers")
    ax.set_title(title)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("$z_1$")
axes[0].set_ylabel("$z_2$")
axes[0].legend(loc="lower left", fontsize=8)
fig.suptitle(f"EBM prior on a 2-D latent: {n_show} of {n_samples} samples shown each, {n_iters} training steps")
fig.tight_layout()
save(fig, f"{figures_dir}/objectives_toy_prior.png")

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharex=True, sharey=True)
true_energy = -log_true
panels = [(true_energy - true_energy.min(), r"true energy $-\log p_{\rm ring}(z)$"),
          (tilt - tilt.min(), r"learned tilt $f_\alpha(z)$"),
          (energy - energy.min(), r"learned energy $f_\alpha(z) - \log p_0(z)$")]
for ax, (e, title) in zip(axes, panels):
    levels = torch.linspace(0, min(float(e.max()), 12.0), 25).tolist()
    cs = ax.contourf(axis, axis, e.clamp(max=levels[-1]), levels=levels, cmap="viridis")
    ax.scatter(centers[:, 0], centers[:, 1], marker="x", color="w", s=30)
    ax.set_title(title)
    ax.set_aspect("equal")
    ax.set_xlabel("$z_1$")
    fig.colorbar(cs, ax=ax, shrink=0.8, label="energy (min shifted to 0)")
axes[0].set_ylabel("$z_2$")
fig.suptitle("Energy landscapes (low = high density); white crosses: mode centers")
fig.tight_layout()
save(fig, f"{figures_dir}/objectives_energy.png")

# %% [markdown]
# ### 7b. A two-modality MMVAE with the EBM prior
#
# Now the whole model of section 6 (base version): two modalities $x_1, x_2 \in \mathbb R^2$
# of the ring latent (`toy.ToyModalities`: $x_1$ a linear map of $z$, $x_2$ a bent one, noise
# 0.1), Gaussian experts, Gaussian likelihood with the true noise scale, MLP encoders and
# decoders (`toy.MLPEncoder` / `toy.MLPDecoder`, width 64), trained with `models.train_step`:
# a VAE step, then an EBM step on that step's posterior samples. The model does not see the
# ring's $z$: it must find a latent layout, and the EBM learns the prior on it.
#
# Toy choices, stated: EBM lr $2 \cdot 10^{-4}$ (Pang et al. use $2 \cdot 10^{-5}$, too slow
# for a few seconds of training) and Langevin $s = 0.3$. In our trials the joint training
# diverged with EBM lr $10^{-3}$, and drifted with $10^{-4}$ at $s = 0.2$: the posterior
# chased the falling energy to where 60 short steps from $p_0$ do not reach (the total
# Langevin time is $60 s^2/2$: 1.2 at $s = 0.2$, 2.7 at $s = 0.3$), $f_\alpha$ kept falling
# there, and $\ell_{\rm EBM}$ ran away. With these settings three seeds trained stably.
#
# Joint generation draws $z$ from the prior and decodes both modalities. The toy analogue
# of **joint coherence**: a generated pair is coherent when each $x_m$ lies within
# $2\sigma$ of the image $G_m(\text{center}_k)$ of a mode, and it is the same mode $k$ for both.
# We compare $z \sim p_\alpha$ (Langevin) with $z \sim p_0$ through the same decoders: the
# base density the EBM tilts. This is not a trained MMVAE baseline (that model would lay its
# latent out for its own Gaussian prior); it shows what the tilt adds on this model's latent.

# %%
torch.manual_seed(seed)
cfg_toy = ModelConfig(model="mmvae", prior="ebm", n_modalities=2, z_dim=2, posterior="normal",
                      likelihood="normal", lik_scale=NOISE, beta=1.0, ebm_hidden=64, ebm_act="leakyrelu",
                      langevin_steps=60, langevin_step_size=0.3, ebm_lr=2e-4, ebm_betas=(0.5, 0.999))
vae = build_model(cfg_toy, encoder=toy.MLPEncoder(2, 2, 2, hidden=64), decoder=toy.MLPDecoder(2, 2, 2, hidden=64)).to(dev)
opt_vae, opt_ebm = make_optimizers(vae, lr=1e-3)
for it in range(n_iters_vae):
    z_true, _ = toy.sample_ring(batch_size, N_MODES, RADIUS, STD)
    out = train_step(vae, modalities(z_true).to(dev), opt_vae, opt_ebm)
print(f"{n_iters_vae} steps; last step: objective (log Z dropped) {out['objective']:.3f}, "
      f"EBM loss {out['ebm_loss']:.3f}")


# %%
def coherence(x):
    mode, dist = modalities.classify(x, centers)
    return ((dist < 2 * STD).all(1) & (mode[:, 0] == mode[:, 1])).float().mean().item()


torch.manual_seed(seed)
with torch.no_grad():
    x_ebm = vae.sample(n_samples).cpu()  # z ~ p_alpha by Langevin, both modalities decoded
    z0 = vae.prior.p0.sample(n_samples)
    x_p0 = vae.decode(z0[:, None].expand(-1, 2, -1)).cpu()
    z_post = vae.encode(x_data[:n_samples].to(dev)).z.rsample()[:, 0].cpu()  # expert 1's z
coh = {"data": coherence(x_data), "p0": coherence(x_p0), "p_alpha": coherence(x_ebm)}
print(f"joint coherence: data {coh['data']:.3f}, z ~ p0 {coh['p0']:.3f}, z ~ p_alpha {coh['p_alpha']:.3f}: "
      f"{ok(coh['p_alpha'] > coh['p0'])}")

# %%
fig, axes = plt.subplots(2, 4, figsize=(15, 7.4))
mode_x1 = {}
for name, x in [("data", x_data), ("p0", x_p0), ("p_alpha", x_ebm)]:
    mode_x1[name] = modalities.classify(x, centers)[0][:, 0]  # colour by x_1's nearest mode
with torch.no_grad():
    z_lat = vae.prior.sample(n_show).cpu()
ax = axes[0, 0]
ax.scatter(z_post[:n_show, 0], z_post[:n_show, 1], s=3, alpha=0.4, c=mode_data[:n_show], cmap="tab10",
           vmin=0, vmax=9)
ax.set_title("latent: posterior samples\n(colour: true mode)")
ax = axes[1, 0]
ax.scatter(z0[:n_show, 0], z0[:n_show, 1], s=3, alpha=0.3, color="tab:gray", label=r"$p_0$")
ax.scatter(z_lat[:, 0], z_lat[:, 1], s=3, alpha=0.4, color="tab:red", label=r"$p_\alpha$")
ax.set_title(r"latent: prior samples, $p_0$ vs $p_\alpha$")
ax.legend(loc="lower left", fontsize=8, markerscale=3)
for a in axes[:, 0]:
    a.set_xlabel("$z_1$")
    a.set_ylabel("$z_2$")
    a.set_aspect("equal", adjustable="datalim")
columns = [("data", x_data, "data"), ("p0", x_p0, r"joint generation, $z \sim p_0$"),
           ("p_alpha", x_ebm, r"joint generation, $z \sim p_\alpha$")]
for j, (name, x, title) in enumerate(columns, start=1):
    for m in range(2):
        ax = axes[m, j]
        ax.scatter(x[:n_show, m, 0], x[:n_show, m, 1], s=3, alpha=0.4, c=mode_x1[name][:n_show], cmap="tab10",
                   vmin=0, vmax=9)
        ax.set_title(f"{title}: $x_{m + 1}$" + (f"\ncoherence {coh[name]:.2f}" if m == 0 else ""))
        ax.set_xlabel(f"$x_{{{m + 1},1}}$")
        ax.set_ylabel(f"$x_{{{m + 1},2}}$")
        ax.set_aspect("equal", adjustable="datalim")
fig.suptitle("Toy MMVAE with EBM prior: colour = mode of $x_1$, so a coherent pair has the same colour "
             "at the matching cluster of $x_2$")
fig.tight_layout()
save(fig, f"{figures_dir}/objectives_toy_mmvae.png")

# %% [markdown]
# ## Summary
#
# * $p(X, z) = \prod_m p(x_m \mid z)\, p_\alpha(z)$ with $p_\alpha \propto e^{-f_\alpha} p_0$.
# * The gradient of $\log p(X)$ is a posterior expectation of the complete-data gradient;
#   $\log Z(\alpha)$ does not reach the generators or encoders, and for the EBM it becomes
#   a prior expectation: minimize $\overline{f_\alpha(z^{\rm post})} - \overline{f_\alpha(z^{\rm Langevin})}$.
# * Prior samples come from 60-step Langevin chains from $p_0$, a biased short-run sampler
#   that the EBM is trained through; its step size must respect the energy's sharpness.
# * Generators and encoders maximize the mixture-of-experts bound, averaged over the $M$
#   experts with $\log q_{\rm mix}$ in the denominator; the generalized version adds $w_m$ with
#   fixed $p_0(w)$ and MMVAE+'s auxiliary priors for cross-reconstruction.

import math

import pytest
import torch
import torch.distributions as td
import torch.nn as nn

from mmebm.config import PRESETS, ModelConfig, preset
from mmebm.distributions import Laplace
from mmebm.ebm import UnitPrior
from mmebm.models import build_model, log_q_mix, make_optimizers, train_step

M = 5


def _x(B=2, seed=0):
    return torch.rand(B, M, 3, 28, 28, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- q_mix

def test_log_q_mix_is_log_mean_exp_over_components():
    g = torch.Generator().manual_seed(0)
    B, Mq, D, K = 3, 4, 5, 2
    loc = torch.randn(B, Mq, D, generator=g, dtype=torch.float64)
    scale = torch.rand(B, Mq, D, generator=g, dtype=torch.float64) + 0.2
    z = torch.randn(K, B, Mq, D, generator=g, dtype=torch.float64)
    got = log_q_mix(Laplace(loc, scale), z)
    assert got.shape == (K, B, Mq)
    for k in range(K):
        for b in range(B):
            for r in range(Mq):
                dens = [td.Laplace(loc[b, m], scale[b, m]).log_prob(z[k, b, r]).sum().exp() for m in range(Mq)]
                assert math.isclose(got[k, b, r].item(), math.log(sum(dens) / Mq), rel_tol=1e-10)


# ----------------------------------------------------------------------------- the MoE objective, brute force

def test_mmvaeplus_log_weights_match_brute_force():
    torch.manual_seed(0)
    cfg = preset("mmvaeplus", net="conv", K=2)
    model = build_model(cfg)
    x = _x(2)
    lw, s = model.log_weights(x)
    assert lw.shape == (2, 2, M)
    post = model.encode(x)
    unit = td.Laplace(0.0, 1.0)
    with torch.no_grad():
        for k in range(2):
            for b in range(2):
                for r in range(M):
                    z, w = s["z"][k, b, r], s["w"][k, b, r]
                    lpx = 0.0
                    for d in range(M):
                        wd = w if d == r else s["w_cross"][k, b, r, d]
                        mean = model.dec(torch.cat([wd, z])[None], g=d)[0]
                        lpx += td.Laplace(mean, 0.75).log_prob(x[b, d]).sum()
                    lqz = torch.logsumexp(torch.stack(
                        [td.Laplace(post.z.loc[b, m], post.z.scale[b, m]).log_prob(z).sum() for m in range(M)]), 0) - math.log(M)
                    lqw = td.Laplace(post.w.loc[b, r], post.w.scale[b, r]).log_prob(w).sum()
                    reg = unit.log_prob(z).sum() + unit.log_prob(w).sum() - lqz - lqw
                    expect = lpx + cfg.beta * reg
                    torch.testing.assert_close(lw[k, b, r], expect, rtol=1e-5, atol=1e-2)
    # the cross-reconstruction w~ come from the auxiliary priors: they reach its scale parameter
    loss, _ = model.loss(x)
    loss.backward()
    assert model.aux_w_raw.grad is not None and model.aux_w_raw.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- linear-Gaussian model

class LinearEncoder(nn.Module):
    """q(z|x) = N(A (x - b) + shift, diag(softplus(raw))), one modality."""

    def __init__(self, A, b, shift, raw):
        super().__init__()
        self.A, self.b, self.shift, self.raw = A, b, shift, raw

    def forward(self, x, g=None):
        loc = (x - self.b) @ self.A.T + self.shift
        return loc, self.raw.expand(loc.shape), None, None


class LinearDecoder(nn.Module):
    """p(x|z) = N(W z + b, sigma^2 I)."""

    def __init__(self, W, b):
        super().__init__()
        self.W, self.b = W, b

    def forward(self, u, g=None):
        return u @ self.W.T + self.b


def _linear_gaussian(K, perturb):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I): p(x) = N(b, WW^T + s^2 I). W has orthogonal
    columns, so the exact posterior is diagonal: N(S W^T (x - b) / s^2, S), S = (I + W^T W / s^2)^-1."""
    g = torch.Generator().manual_seed(0)
    Dx, Dz, sig = 6, 3, 0.7
    Q, _ = torch.linalg.qr(torch.randn(Dx, Dz, generator=g, dtype=torch.float64))
    W = Q * torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
    b = torch.randn(Dx, generator=g, dtype=torch.float64)
    S = 1 / (1 + (W ** 2).sum(0) / sig ** 2)
    A = S[:, None] * W.T / sig ** 2
    shift = torch.tensor([0.5, -0.3, 0.2], dtype=torch.float64) if perturb else torch.zeros(Dz, dtype=torch.float64)
    std = S.sqrt() * (torch.tensor([1.5, 0.6, 1.0], dtype=torch.float64) if perturb else 1)
    raw = torch.log(torch.expm1(std))  # softplus^-1
    cfg = ModelConfig(model="mmvae", prior="gaussian", posterior="normal", likelihood="normal", lik_scale=sig,
                      beta=1.0, K=K, n_modalities=1, z_dim=Dz, scale_eps=0.0)
    model = build_model(cfg, encoder=LinearEncoder(A, b, shift, raw), decoder=LinearDecoder(W, b)).double()
    x = torch.randn(4, 1, Dx, generator=g, dtype=torch.float64) * 2
    log_px = td.MultivariateNormal(b, W @ W.T + sig ** 2 * torch.eye(Dx, dtype=torch.float64)).log_prob(x[:, 0])
    q = td.Normal((x[:, 0] - b) @ A.T + shift, std)
    exact = td.Normal((x[:, 0] - b) @ A.T, S.sqrt())
    kl = td.kl_divergence(q, exact).sum(-1)
    return model, x, log_px, kl


def test_elbo_equals_log_px_with_exact_posterior():
    torch.manual_seed(0)
    model, x, log_px, kl = _linear_gaussian(K=5, perturb=False)
    assert torch.allclose(kl, torch.zeros_like(kl))
    lw, _ = model.log_weights(x)  # [K, B, 1]: every sample's weight is p(x) exactly
    torch.testing.assert_close(lw[..., 0], log_px.expand(5, -1), rtol=0, atol=1e-9)
    loss, _ = model.loss(x)
    torch.testing.assert_close(loss, -log_px.mean(), rtol=0, atol=1e-9)


def test_elbo_below_log_px_by_the_kl_and_iwae_in_between():
    torch.manual_seed(0)
    n = 20_000
    model, x, log_px, kl = _linear_gaussian(K=n, perturb=True)
    lw, _ = model.log_weights(x)
    lw = lw[..., 0]
    elbo, se = lw.mean(0), lw.std(0) / math.sqrt(n)
    assert (kl > 0.3).all()  # the gap is far above the Monte Carlo error
    assert ((elbo - (log_px - kl)).abs() < 5 * se).all()  # ELBO = log p(x) - KL(q || p(z|x))
    assert (elbo < log_px - 0.25).all()
    # IWAE with K = 50, averaged over 400 independent groups: ELBO < E[IWAE_50] <= log p(x)
    iwae = torch.logsumexp(lw.view(400, 50, -1), 1) - math.log(50)
    iwae, se = iwae.mean(0), iwae.std(0) / math.sqrt(400)
    assert (iwae > elbo + 0.1).all() and (iwae < log_px + 5 * se).all()


# ----------------------------------------------------------------------------- batched == loop

def _max_rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


@pytest.mark.parametrize("name, net, channels_last", [
    ("mmvaeplus_ebm", "resnet", True), ("mmvae", "resnet", False), ("mmvaeplus", "conv", True), ("mmvae_ebm", "conv", False),
])
def test_batched_equals_loop(name, net, channels_last):
    torch.manual_seed(0)
    batched = build_model(preset(name, net=net, batched=True, channels_last=channels_last))
    # the grouped kernels (the CUDA default; on CPU the batched nets otherwise run copy by copy)
    batched.enc.grouped_kernels = batched.dec.grouped_kernels = True
    loop = build_model(preset(name, net=net, batched=False))
    loop.load_state_dict(batched.state_dict())
    x = _x(2)
    out = {}
    for tag, m in (("b", batched), ("l", loop)):
        torch.manual_seed(1)
        loss, stats = m.loss(x)
        loss.backward()
        torch.manual_seed(2)
        out[tag] = loss.detach(), stats["z"], {k: p.grad for k, p in m.named_parameters()}, m.cross_generate(x, [1, 3])
    (lb, zb, gb, cb), (ll, zl, gl, cl) = out["b"], out["l"]
    torch.testing.assert_close(lb, ll, rtol=1e-5, atol=0)
    torch.testing.assert_close(zb, zl, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cb, cl, rtol=1e-4, atol=1e-5)
    for k in gl:
        if gl[k] is None:
            assert gb[k] is None, k
            continue
        # float32 sums over many pixels, and the Laplace likelihood's gradient sign(x - mean) flips
        # where a pixel sits within rounding of its mean: up to a few 1e-3 seen; a wrong slice gives O(1)
        assert _max_rel(gb[k], gl[k]) < 1e-2, k


def test_same_seed_same_numbers():
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model(preset("mmvaeplus_ebm", net="conv"))
        opt = make_optimizers(model)
        losses.append([train_step(model, _x(2), *opt) for _ in range(2)])
    assert losses[0] == losses[1]


# ----------------------------------------------------------------------------- EBM prior in the model

def test_vae_and_ebm_losses_do_not_leak_gradients():
    torch.manual_seed(0)
    model = build_model(preset("mmvaeplus_ebm", net="conv"))
    ebm, vae = model.ebm_parameters(), model.vae_parameters()
    assert len(ebm) == 6 and len(ebm) + len(vae) == len(list(model.parameters()))
    assert not {id(p) for p in ebm} & {id(p) for p in vae}
    loss, stats = model.loss(_x(2))
    loss.backward()
    assert all(p.grad is None for p in ebm)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in vae)
    model.zero_grad(set_to_none=True)
    ebm_loss, z_neg = model.ebm_loss(stats["z"])
    assert z_neg.shape == stats["z"].shape == (2 * M, 32)
    ebm_loss.backward()
    assert all(p.grad is None for p in vae)
    assert all(p.grad is not None for p in ebm)
    assert all(p.grad.abs().sum() > 0 for p in ebm[:-1])  # the last bias cancels between the two means
    assert ebm[-1].grad.abs().item() == 0


def test_vae_objective_sees_minus_beta_f_alpha():
    torch.manual_seed(0)
    model = build_model(preset("mmvae_ebm", net="conv", beta=1.7))
    x = _x(2)
    torch.manual_seed(1)
    lw_ebm, s = model.log_weights(x)
    f_alpha = model.prior.f_alpha
    model.prior = model.prior.p0  # the untilted base N(0, I), same samples under the same seed
    torch.manual_seed(1)
    lw_base, _ = model.log_weights(x)
    torch.testing.assert_close(lw_ebm - lw_base, -1.7 * f_alpha(s["z"]), rtol=1e-4, atol=1e-3)


class Tilt(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = nn.Parameter(a)

    def forward(self, z):
        return -(z * self.a).sum(-1)


def test_model_samples_the_ebm_prior_by_langevin():
    torch.manual_seed(0)
    model = build_model(preset("mmvae_ebm", net="conv", z_dim=4))
    a = torch.tensor([2.0, 0.0, -1.0, 0.5])
    model.prior.f_alpha = Tilt(a)  # p_alpha = N(a, I)
    z = model.prior.sample(4000)
    torch.testing.assert_close(z.mean(0), a, atol=0.12, rtol=0)
    assert model.sample(3).shape == (3, M, 3, 28, 28)


# ----------------------------------------------------------------------------- DReG

def test_dreg_keeps_decoder_gradient_and_changes_encoder_gradient():
    x = _x(2).double()
    grads = {}
    for dreg in (False, True):
        torch.manual_seed(0)
        model = build_model(preset("mmvae", net="conv", K=3, dreg=dreg)).double()
        torch.manual_seed(1)
        loss, stats = model.loss(x)
        loss.backward()
        grads[dreg] = loss.detach(), stats["objective"], dict(model.named_parameters())
    (l0, o0, p0), (l1, o1, p1) = grads[False], grads[True]
    torch.testing.assert_close(o0, o1)  # same IWAE bound value
    for k in p0:  # decoder: sum_k wt_k dlw_k/dtheta for both estimators
        if k.startswith("dec."):
            assert _max_rel(p1[k].grad, p0[k].grad) < 1e-9, k
    enc = [k for k in p0 if k.startswith("enc.")]
    assert max(_max_rel(p1[k].grad, p0[k].grad) for k in enc) > 1e-2


# ----------------------------------------------------------------------------- all four models

@pytest.mark.parametrize("name", PRESETS)
def test_four_models_shapes_and_finite_losses(name):
    torch.manual_seed(0)
    cfg = preset(name, net="conv", langevin_steps=5)
    model = build_model(cfg)
    x = _x(3)
    opt_vae, opt_ebm = make_optimizers(model)
    assert (opt_ebm is not None) == (cfg.prior == "ebm") == model.has_ebm
    before = [p.detach().clone() for p in model.ebm_parameters()]
    out = train_step(model, x, opt_vae, opt_ebm)
    assert all(math.isfinite(v) for v in out.values())
    if model.has_ebm:
        assert any(not torch.equal(a, p) for a, p in zip(before, model.ebm_parameters()))
    model.eval()
    assert model.sample(4).shape == (4, M, 3, 28, 28)
    assert model.reconstruct(x).shape == (3, M, 3, 28, 28)
    for src in (2, [0, 4], torch.tensor([True, False, True, True, False])):
        assert model.cross_generate(x, src).shape == (3, M, 3, 28, 28)
    assert model.encode(x).z.loc.shape == (3, M, 32)
    assert (model.encode(x).w is None) == (cfg.model == "mmvae")


def test_cross_generate_reads_only_the_sources():
    torch.manual_seed(0)
    model = build_model(preset("mmvaeplus", net="conv"))
    x, y = _x(3, seed=0), _x(3, seed=1)
    y[:, 2] = x[:, 2]
    torch.manual_seed(5)
    a = model.cross_generate(x, 2)
    torch.manual_seed(5)
    b = model.cross_generate(y, 2)
    torch.manual_seed(5)
    c = model.cross_generate(y, 3)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_unit_prior_matches_torch():
    z = torch.randn(5, 3)
    torch.testing.assert_close(UnitPrior(3, "laplace").log_prob(z), td.Laplace(0.0, 1.0).log_prob(z).sum(-1))
    torch.testing.assert_close(UnitPrior(3, "gaussian").log_prob(z), td.Normal(0.0, 1.0).log_prob(z).sum(-1))
    ln2 = math.log(2.0)  # the MMVAE+ CUB run's prior scale, softplus(0)
    torch.testing.assert_close(UnitPrior(3, "gaussian", ln2).log_prob(z), td.Normal(0.0, ln2).log_prob(z).sum(-1))
    torch.manual_seed(0)
    assert UnitPrior(2, "laplace", ln2).sample(20000).abs().mean().item() == pytest.approx(ln2, rel=0.03)  # E|z| = b


def test_prior_scale_reaches_p_z_p0_and_p0_w():
    for prior in ("gaussian", "ebm"):
        model = build_model(preset("mmvaeplus", net="conv", prior=prior, posterior="normal", prior_scale=0.5, z_dim=4,
                                   w_dim=3))
        p_z = model.prior.p0 if prior == "ebm" else model.prior
        assert p_z.dist().scale.tolist() == [0.5] * 4 and model.p0_w.dist().scale.tolist() == [0.5] * 3
    with pytest.raises(ValueError, match="prior_scale"):
        preset("mmvae", prior_scale=0.0)


def test_aux_w_unit_is_p0_w_and_learned_follows_its_parameter():
    """aux_w "unit" draws the cross-reconstructions' w~ from p0(w), the prior of test-time cross
    generation, and nothing trains it; "learned" (the reference) maps its raw parameter as the
    posterior's scale (Normal: softplus, so ln 2 at 0) and the loss reaches it."""
    torch.manual_seed(0)
    for posterior, learned0 in (("normal", math.log(2.0)), ("laplace", 1.0)):
        kw = dict(net="conv", posterior=posterior, prior_scale=0.5, z_dim=4, w_dim=3)
        unit, learned = build_model(preset("mmvaeplus", aux_w="unit", **kw)), build_model(preset("mmvaeplus", **kw))
        a = unit.aux_w()
        assert type(a) is type(unit.p0_w.dist()) and a.loc.shape == a.scale.shape == (M, 3)
        assert a.loc.abs().max() == 0 and a.scale.tolist() == [[0.5] * 3] * M
        torch.testing.assert_close(learned.aux_w().scale, torch.full((M, 3), learned0))
        unit.loss(_x())[0].backward()
        assert unit.aux_w_raw.grad is None
    with pytest.raises(ValueError, match="aux_w"):
        preset("mmvaeplus", aux_w="fixed")


@pytest.mark.parametrize("name", ["mmvae", "mmvaeplus"])
def test_cross_generate_all_reads_each_source_alone(name, monkeypatch):
    """cross_generate_all(x)[src] is a generation from x_src only (the same draws whatever the
    other modalities hold), and it is cross_generate(x, src) once the noise is switched off."""
    torch.manual_seed(0)
    model = build_model(preset(name, net="conv")).eval()
    x, y = _x(3, seed=0), _x(3, seed=1)
    y[:, 2] = x[:, 2]
    torch.manual_seed(5)
    a = model.cross_generate_all(x)
    torch.manual_seed(5)
    b = model.cross_generate_all(y)
    assert a.shape == (M, 3, M, 3, 28, 28)
    torch.testing.assert_close(a[2], b[2])
    assert not torch.allclose(a[3], b[3])
    # noise off: posterior samples are their means, w ~ p0(w) is 0; then both paths must agree
    monkeypatch.setattr(Laplace, "rsample", lambda self, shape=(): self.loc.expand(*shape, *self.loc.shape))
    monkeypatch.setattr(UnitPrior, "sample", lambda self, shape: torch.zeros(*shape, self.dim))
    all_src = model.cross_generate_all(x)
    for src in range(M):
        torch.testing.assert_close(all_src[src], model.cross_generate(x, src, mean=True))

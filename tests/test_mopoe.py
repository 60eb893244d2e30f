"""MoPoE (Sutter et al. 2021): the product of Gaussian experts against its closed form and a grid,
the subset mixture against brute force, the bound on a linear-Gaussian model where log p(X) is
known, its errors, and training / generation on the real model class."""

import itertools
import math

import pytest
import torch
import torch.distributions as td
import torch.nn as nn

from mmebm.config import ModelConfig, preset
from mmebm.distributions import Normal
from mmebm.models import build_model, make_optimizers, train_step
from mmebm.objectives import MoPoE, build_objective, poe, subsets


def _normal(loc, scale):
    return Normal(torch.tensor(loc, dtype=torch.float64), torch.tensor(scale, dtype=torch.float64))


# ----------------------------------------------------------------------------- product of experts

def test_poe_by_hand():
    """N(1, 1) x N(3, 1) = N(2, 1/2); with the prior expert N(0, 1): precision 3, mean 4/3; with
    N(0, 2^2): precision 2.25, mean 4/2.25."""
    q = _normal([[[1.0], [3.0]]], [[[1.0], [1.0]]])                   # batch [B=1, M=2], D=1
    both = torch.tensor([[True, True]] * 3)
    out = poe(q, both, torch.tensor([False, True, False]))
    torch.testing.assert_close(out.loc[0, :, 0], torch.tensor([2.0, 4 / 3, 2.0], dtype=torch.float64))
    torch.testing.assert_close(out.scale[0, :, 0], torch.tensor([0.5, 1 / 3, 0.5], dtype=torch.float64).sqrt())
    out = poe(q, both[:1], torch.tensor([True]), prior_scale=2.0)
    torch.testing.assert_close(out.loc[0, 0, 0], torch.tensor(4 / 2.25, dtype=torch.float64))
    torch.testing.assert_close(out.scale[0, 0, 0], torch.tensor(1 / 1.5, dtype=torch.float64))


def _grid_log_density(log_f, lo=-25.0, hi=25.0, n=200_001):
    """A 1-D unnormalised log density, normalised on a grid: (grid, log density, mean, variance)."""
    z = torch.linspace(lo, hi, n, dtype=torch.float64)
    lf = log_f(z)
    dz = z[1] - z[0]
    log_p = lf - (torch.logsumexp(lf, 0) + dz.log())
    p = log_p.exp() * dz
    mean = (p * z).sum()
    return z, log_p, mean, (p * (z - mean) ** 2).sum()


def test_poe_matches_the_normalised_product_on_a_grid():
    g = torch.Generator().manual_seed(0)
    M, D = 3, 4
    loc = torch.randn(1, M, D, generator=g, dtype=torch.float64) * 2
    scale = torch.rand(1, M, D, generator=g, dtype=torch.float64) * 1.5 + 0.3
    for prior in (False, True):
        out = poe(Normal(loc, scale), torch.ones(1, M, dtype=torch.bool), torch.tensor([prior]), prior_scale=1.7)
        for d in range(D):
            def log_f(z):
                lf = sum(td.Normal(loc[0, m, d], scale[0, m, d]).log_prob(z) for m in range(M))
                return lf + (td.Normal(0.0, 1.7).log_prob(z) if prior else 0)
            z, log_p, mean, var = _grid_log_density(log_f)
            torch.testing.assert_close(out.loc[0, 0, d], mean, rtol=0, atol=1e-8)
            torch.testing.assert_close(out.scale[0, 0, d] ** 2, var, rtol=1e-7, atol=0)
            near = (z - mean).abs() < 4 * var.sqrt()
            ours = Normal(out.loc[0, 0, d], out.scale[0, 0, d], event_dims=0).log_prob(z[near])
            torch.testing.assert_close(ours, log_p[near], rtol=0, atol=1e-7)


# ----------------------------------------------------------------------------- subsets and the mixture

def _cfg(M=3, **kw):
    base = dict(model="mmvae", posterior="normal", n_modalities=M, objective="mopoe")
    return ModelConfig(**{**base, **kw})


def test_subsets_are_the_powerset_without_the_empty_set():
    masks = subsets(3)
    got = [tuple(torch.nonzero(m).reshape(-1).tolist()) for m in masks]
    assert got == [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
    assert subsets(5).shape == (31, 5) and len(set(map(tuple, subsets(5).tolist()))) == 31


def test_subset_mixture_matches_brute_force():
    """log q_mix(z | X) = log 1/7 sum_S q_S(z | X_S) for M = 3, every q_S the product of its
    experts' densities (the prior N(0, s^2 I) joining the full set only), normalised on a grid."""
    g = torch.Generator().manual_seed(1)
    B, M, D, K, s = 2, 3, 2, 3, 1.3
    loc = torch.randn(B, M, D, generator=g, dtype=torch.float64)
    scale = torch.rand(B, M, D, generator=g, dtype=torch.float64) + 0.4
    z = torch.randn(K, B, D, generator=g, dtype=torch.float64) * 1.5
    obj = MoPoE(_cfg(M, prior_scale=s))
    got = obj.log_q(Normal(loc, scale), z)
    assert got.shape == (K, B)
    grid = torch.linspace(-25, 25, 100_001, dtype=torch.float64)
    dz = grid[1] - grid[0]
    for b in range(B):
        log_q_S = []  # [7][K]
        for n in range(1, M + 1):
            for S in itertools.combinations(range(M), n):
                lq = torch.zeros(K, dtype=torch.float64)
                for d in range(D):
                    experts = [td.Normal(loc[b, m, d], scale[b, m, d]) for m in S]
                    experts += [td.Normal(0.0, s)] if n == M else []
                    log_f = lambda t: sum(e.log_prob(t) for e in experts)  # noqa: E731
                    lq += log_f(z[:, b, d]) - (torch.logsumexp(log_f(grid), 0) + dz.log())
                log_q_S.append(lq)
        expect = torch.logsumexp(torch.stack(log_q_S), 0) - math.log(7)
        torch.testing.assert_close(got[:, b], expect, rtol=0, atol=1e-8)


# ----------------------------------------------------------------------------- linear-Gaussian model

class LinearExperts(nn.Module):
    """Expert m: N(A_m (x_m - b_m), diag(softplus(raw_m))^2), M modalities at once."""

    def __init__(self, A, b, raw):
        super().__init__()
        self.A, self.b, self.raw = A, b, raw

    def forward(self, x, g=None):
        loc = torch.einsum("bmx,mzx->bmz", x - self.b, self.A)
        return loc, self.raw.expand(loc.shape), None, None


class LinearDecoders(nn.Module):
    """p(x_m | z) = N(W_m z + b_m, sigma^2 I)."""

    def __init__(self, W, b):
        super().__init__()
        self.W, self.b = W, b

    def forward(self, u, g=None):
        return torch.einsum("nmz,mxz->nmx", u, self.W) + self.b


def linear_gaussian_matrices():
    """The linear-Gaussian model's numbers: (generator, M = 3, Dx = 5, Dz = 2, noise s = 0.6,
    c [M, Dz], W [M, Dx, Dz] with orthogonal columns of lengths c_m, b [M, Dx]); the generator
    continues to draw the data."""
    g = torch.Generator().manual_seed(0)
    M, Dx, Dz, sig = 3, 5, 2, 0.6
    c = torch.tensor([[2.0, 0.7], [1.2, 1.5], [0.5, 1.0]], dtype=torch.float64)
    Q = [torch.linalg.qr(torch.randn(Dx, Dz, generator=g, dtype=torch.float64))[0] for _ in range(M)]
    W = torch.stack(Q) * c[:, None]                                     # [M, Dx, Dz]
    return g, M, Dx, Dz, sig, c, W, torch.randn(M, Dx, generator=g, dtype=torch.float64)


def _linear_gaussian():
    """p(z) = N(0, I), p(x_m | z) = N(W_m z + b_m, s^2 I), m = 1..3, W_m with orthogonal columns
    (W_m^T W_m = diag(c_m^2)). Expert m is the likelihood factor p(x_m | z) as a density in z,
    N(diag(c_m^-2) W_m^T (x_m - b_m), diag(s^2 / c_m^2)), so the prior times the product of all
    three is the exact posterior p(z | X), and a strict subset's product (no prior expert) is
    p(z | X_S) under a flat prior. Returns the model, X [B, 3, Dx] drawn from p(X), log p(X) and
    every subset's q_S as (mean, covariance) from the matrices (7 entries, in subsets(3) order;
    the last, the full set's, is p(z | X))."""
    g, M, Dx, Dz, sig, c, W, b = linear_gaussian_matrices()
    A = W.transpose(1, 2) / c[:, :, None] ** 2                          # [M, Dz, Dx]
    raw = torch.log(torch.expm1(sig / c))                               # softplus^-1 of the experts' std
    cfg = _cfg(M, prior="gaussian", likelihood="normal", lik_scale=sig, beta=1.0, z_dim=Dz, scale_eps=0.0)
    model = build_model(cfg, encoder=LinearExperts(A, b, raw), decoder=LinearDecoders(W, b)).double()
    B = 3
    z = torch.randn(B, Dz, generator=g, dtype=torch.float64)            # X ~ p(X): modalities that agree
    x = torch.einsum("mxz,bz->bmx", W, z) + b + sig * torch.randn(B, M, Dx, generator=g, dtype=torch.float64)
    W_all, b_all, x_all = W.reshape(M * Dx, Dz), b.reshape(-1), x.reshape(B, -1)
    cov_x = W_all @ W_all.T + sig ** 2 * torch.eye(M * Dx, dtype=torch.float64)
    log_px = td.MultivariateNormal(b_all, cov_x).log_prob(x_all)
    q_S = []
    for S in subsets(M):
        prec = sum(W[m].T @ W[m] for m in range(M) if S[m]) / sig ** 2
        prec = prec + torch.eye(Dz, dtype=torch.float64) * bool(S.all())
        cov = torch.linalg.inv(prec)
        eta = sum((x[:, m] - b[m]) @ W[m] for m in range(M) if S[m]) / sig ** 2  # [B, Dz]
        q_S.append((eta @ cov, cov))
    return model, x, log_px, q_S


def test_the_full_sets_product_is_the_exact_posterior():
    """Every q_S is the closed form; the full set's is p(z | X), so its ELBO's integrand
    log p(X | z) + log p(z) - log q_full(z) is log p(X) for every z."""
    torch.manual_seed(0)
    model, x, log_px, q_S = _linear_gaussian()
    obj = model.objective
    q = obj.posteriors(model.encode(x).z)                               # batch [B, 7]
    for i, (mean, cov) in enumerate(q_S):
        torch.testing.assert_close(q.loc[:, i], mean, rtol=0, atol=1e-12)
        torch.testing.assert_close(torch.diag_embed(q.scale[:, i] ** 2), cov.expand(len(x), -1, -1), rtol=0, atol=1e-12)
    full = Normal(q.loc[:, -1], q.scale[:, -1])
    z = full.rsample((50,))                                             # [50, B, Dz]
    u = z[:, :, None, None].expand(-1, -1, -1, 3, -1)                   # [K, B, R=1, M, Dz]
    lpx = model.log_lik(model.decode_experts(u), x)[..., 0]
    lw = lpx + model.prior.log_prob(z) - full.log_prob(z)
    torch.testing.assert_close(lw, log_px.expand(50, -1), rtol=0, atol=1e-9)


def test_bound_is_the_mean_of_the_subsets_elbos_below_log_px():
    """E[lw] = 1/7 sum_S (log p(X) - KL(q_S || p(z | X))) < log p(X): the full set's term is
    exact, the strict subsets (without the prior expert) lose their KL."""
    torch.manual_seed(0)
    model, x, log_px, q_S = _linear_gaussian()
    mean, cov = q_S[-1]
    exact = td.MultivariateNormal(mean, cov)
    kl = torch.stack([td.kl_divergence(td.MultivariateNormal(m, c), exact) for m, c in q_S])  # [7, B]
    assert kl[-1].abs().max() < 1e-10 and (kl[:-1] > 0.05).all()
    expect = (log_px - kl).mean(0)
    n = 20_000
    lw, samples = model.log_weights(x.repeat(n, 1, 1))                  # [1, n*B, 1]
    lw = lw.reshape(n, len(x))
    est, se = lw.mean(0), lw.std(0) / math.sqrt(n)
    assert ((est - expect).abs() < 5 * se).all()
    assert (expect < log_px - 2).all() and (est < log_px - 2).all()
    # one subset per data point, drawn uniformly
    counts = torch.bincount(samples["subset"], minlength=7).double()
    assert ((counts / counts.sum() - 1 / 7).abs() < 0.01).all()


# ----------------------------------------------------------------------------- errors

def test_unsupported_setups_are_clear_errors():
    with pytest.raises(ValueError, match="model.objective=mopoe needs posterior: normal"):
        build_objective(_cfg(posterior="laplace"))
    with pytest.raises(ValueError, match="model.objective=mopoe needs posterior: normal"):
        build_model(preset("mmvae", net="conv", z_dim=8, objective="mopoe"))  # the preset's Laplace posteriors
    with pytest.raises(ValueError, match="no modality-specific w.*use model: mmvae"):
        build_objective(_cfg(model="mmvaeplus"))
    for kw in (dict(K=3), dict(dreg=True)):
        with pytest.raises(ValueError, match="model.objective=mopoe is an ELBO: it needs K: 1 and dreg: false"):
            build_objective(_cfg(**kw))
    assert isinstance(build_objective(_cfg(posterior="gaussian")), MoPoE)  # the alias of normal


# ----------------------------------------------------------------------------- the real model class

M, B = 5, 3


def _x(seed=0):
    return torch.rand(B, M, 3, 28, 28, generator=torch.Generator().manual_seed(seed))


def _model(name="mmvae", **kw):
    torch.manual_seed(0)
    return build_model(preset(name, net="conv", z_dim=8, posterior="normal", objective="mopoe", **kw))


@pytest.mark.parametrize("name", ["mmvae", "mmvae_ebm"])
def test_training_step_runs_and_moves_the_parameters(name):
    model, x = _model(name), _x()
    assert isinstance(model.objective, MoPoE) and len(model.objective.masks) == 31
    torch.manual_seed(1)
    loss, stats = model.loss(x)
    assert loss.shape == () and loss.requires_grad and torch.isfinite(loss)
    assert torch.equal(stats["objective"], -loss.detach()) and not stats["objective"].requires_grad
    assert stats["z"].shape == (B, 8) and not stats["z"].requires_grad
    vae, ebm = model.vae_parameters(), model.ebm_parameters()
    before = [p.detach().clone() for p in vae + ebm]
    out = train_step(model, x, *make_optimizers(model))
    assert math.isfinite(out["loss"]) and ("ebm_loss" in out) == (name == "mmvae_ebm")
    moved = [not torch.equal(a, p) for a, p in zip(before, vae + ebm)]
    assert all(moved[:len(vae)])  # every encoder / decoder tensor gets a gradient
    assert not ebm or any(moved[len(vae):])  # the EBM update ran


def ebm_shift(model, x):
    """lw under the model's EBM prior minus lw under its base p0 (the same draws: same seed), the
    samples, and f_alpha."""
    torch.manual_seed(1)
    lw_ebm, samples = model.log_weights(x)
    f_alpha = model.prior.f_alpha
    model.prior = model.prior.p0
    torch.manual_seed(1)
    lw_base, _ = model.log_weights(x)
    return lw_ebm - lw_base, samples, f_alpha


def test_the_regularizer_sees_the_ebm_prior():
    """With the EBM prior, lw moves by -beta * 1/|P| sum_S f_alpha(z_S): every subset's KL is
    tilted (same draws under the same seed)."""
    shift, s, f_alpha = ebm_shift(_model("mmvae_ebm", beta=1.7), _x())
    tilt = -1.7 * f_alpha(s["z_subsets"]).mean(-1)                      # [B], over the 31 subsets
    torch.testing.assert_close(shift, tilt[None, :, None], rtol=1e-4, atol=1e-3)


def test_cross_generation_draws_from_the_subsets_product():
    """cross_generate(x, src, mean=True) decodes the product of src's experts (the prior expert
    only for all M); cross_generate_all decodes one sample per single modality."""
    model, x = _model(), _x()
    qz = model.encode(x).z
    prec = qz.scale ** -2
    for src in ([1, 3], list(range(M)), 2):
        idx = torch.tensor(src).reshape(-1)
        p = prec[:, idx].sum(1) + (len(idx) == M)
        mean = (qz.loc[:, idx] * prec[:, idx]).sum(1) / p
        torch.testing.assert_close(model.cross_generate(x, src, mean=True), model.decode_z(mean), rtol=1e-5, atol=1e-5)
    mask = torch.tensor([False, True, False, True, False])
    torch.testing.assert_close(model.cross_generate(x, mask, mean=True), model.cross_generate(x, [1, 3], mean=True))
    torch.manual_seed(3)
    gen = model.cross_generate(x, [0, 4])
    assert gen.shape == (B, M, 3, 28, 28) and torch.isfinite(gen).all()
    torch.manual_seed(3)
    all_ = model.cross_generate_all(x)
    assert all_.shape == (M, B, M, 3, 28, 28)
    # a single modality's product is its own posterior: the same draws as sampling q(z | x_m)
    torch.manual_seed(3)
    z = qz.rsample()
    expect = torch.stack([model.decode_z(z[:, m]) for m in range(M)])
    torch.testing.assert_close(all_, expect, rtol=1e-5, atol=1e-5)


def test_polymnist_mopoe_config():
    """The authors' PolyMNIST settings in the paper profile; the cpu profile trains a step."""
    from mmebm.config import load_config

    paper = load_config("polymnist_mopoe", "paper")
    m, t = paper.model, paper.train
    assert (m.objective, m.model, m.posterior, m.prior, m.z_dim, m.beta) == ("mopoe", "mmvae", "normal", "gaussian", 512, 2.5)
    assert (m.likelihood, m.lik_scale, m.net, m.conv_upsample) == ("laplace", 0.75, "conv", "mopoe")
    assert (t.epochs, t.batch_size, t.lr, t.amsgrad) == (300, 256, 5e-4, False)
    cpu = load_config("polymnist_mopoe", "cpu")
    assert (cpu.model.objective, cpu.model.z_dim, cpu.model.likelihood) == ("mopoe", 32, "normal")  # the cpu recipe
    assert cpu.model.conv_upsample == "k4"  # the decoder of the shipped cpu runs
    torch.manual_seed(0)
    model = build_model(cpu.model)
    out = train_step(model, torch.rand(4, 5, 3, 28, 28), *make_optimizers(model))
    assert all(math.isfinite(v) for v in out.values())

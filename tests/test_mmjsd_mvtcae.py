"""mmJSD (Sutter et al. 2020) and MVTCAE (Hwang et al. 2021): the weighted product of experts and
the Jensen-Shannon divergence against grids, each objective's expectation on a linear-Gaussian
model against its closed form (MVTCAE's exactly log p(X) where its product is the posterior),
their errors, and training / generation on the real model class."""

import math

import pytest
import torch
import torch.distributions as td

from mmebm.config import ModelConfig, load_config, preset
from mmebm.distributions import Normal
from mmebm.models import build_model, make_optimizers, train_step
from mmebm.objectives import MMJSD, MVTCAE, build_objective, kl_normal, poe
from test_mopoe import LinearDecoders, LinearExperts, _grid_log_density, ebm_shift, linear_gaussian_matrices


def _normals(seed, B, M, D):
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(B, M, D, generator=g, dtype=torch.float64) * 1.5
    scale = torch.rand(B, M, D, generator=g, dtype=torch.float64) + 0.3
    return Normal(loc, scale)


# ----------------------------------------------------------------------------- closed forms against grids

def test_weighted_poe_is_the_normalised_weighted_geometric_mean():
    q = _normals(0, 1, 3, 2)
    a = torch.tensor([[0.1, 0.3, 0.2]], dtype=torch.float64)
    out = poe(q, a, torch.tensor([0.4], dtype=torch.float64), prior_scale=1.7)
    for d in range(2):
        def log_f(z):
            lf = sum(a[0, m] * td.Normal(q.loc[0, m, d], q.scale[0, m, d]).log_prob(z) for m in range(3))
            return lf + 0.4 * td.Normal(0.0, 1.7).log_prob(z)
        _, _, mean, var = _grid_log_density(log_f)
        torch.testing.assert_close(out.loc[0, 0, d], mean, rtol=0, atol=1e-8)
        torch.testing.assert_close(out.scale[0, 0, d] ** 2, var, rtol=1e-7, atol=0)


def test_kl_normal_matches_torch():
    p, q = _normals(1, 4, 3, 5), _normals(2, 4, 3, 5)
    expect = td.kl_divergence(td.Normal(p.loc, p.scale), td.Normal(q.loc, q.scale)).sum(-1)
    torch.testing.assert_close(kl_normal(p, q), expect)


def _cfg(objective, M=3, **kw):
    return ModelConfig(**{**dict(model="mmvae", posterior="normal", prior="gaussian", n_modalities=M,
                                 objective=objective), **kw})


def test_js_matches_a_grid_and_vanishes_when_the_members_agree():
    """JS = sum_k 1/(M+1) KL(q_k || q_dyn), q_dyn the normalised prod_k q_k^{1/(M+1)}, q_0 = N(0, s^2):
    every density and KL integrated on a grid, dimension by dimension (all factorise)."""
    M, D, s = 3, 2, 1.3
    q = _normals(3, 2, M, D)
    obj = MMJSD(_cfg("mmjsd", M, prior_scale=s))
    got = obj.js(q)
    for b in range(2):
        expect = 0.0
        for d in range(D):
            members = [td.Normal(0.0, s)] + [td.Normal(q.loc[b, m, d], q.scale[b, m, d]) for m in range(M)]
            z, log_dyn, _, _ = _grid_log_density(lambda t: sum(e.log_prob(t) for e in members) / (M + 1))
            dz = z[1] - z[0]
            for e in members:
                lp = e.log_prob(z)
                expect = expect + (lp.exp() * (lp - log_dyn)).sum() * dz / (M + 1)
        torch.testing.assert_close(got[b], expect, rtol=1e-6, atol=1e-9)
    same = Normal(torch.zeros(2, M, D, dtype=torch.float64), torch.full((2, M, D), s, dtype=torch.float64))
    assert obj.js(same).abs().max() < 1e-12 and (got > 0.1).all()


# ----------------------------------------------------------------------------- linear-Gaussian model

def _linear_gaussian(objective, prior_share=0.0, **kw):
    """p(z) = N(0, I), p(x_m | z) = N(W_m z + b_m, s^2 I), m = 1..3, W_m with orthogonal columns
    (W_m^T W_m = diag(c_m^2)). Expert m is the density in z of p(x_m | z) N(0, I)^prior_share,
    normalised: precision diag(c_m^2 / s^2 + prior_share), mean its inverse times W_m^T (x_m - b_m)
    / s^2. With prior_share = 1/3 the product of the three is the exact posterior p(z | X).
    Returns the model, X [B, 3, Dx] drawn from p(X), log p(X) and a helper giving
    E_{N(mean, cov)} log p(X | z) in closed form."""
    g, M, Dx, Dz, sig, c, W, b = linear_gaussian_matrices()
    prec = c ** 2 / sig ** 2 + prior_share                              # [M, Dz], diagonal
    A = W.transpose(1, 2) / sig ** 2 / prec[:, :, None]                 # [M, Dz, Dx]
    raw = torch.log(torch.expm1(prec.rsqrt()))
    cfg = _cfg(objective, M, likelihood="normal", lik_scale=sig, z_dim=Dz, scale_eps=0.0, **kw)
    model = build_model(cfg, encoder=LinearExperts(A, b, raw), decoder=LinearDecoders(W, b)).double()
    B = 3
    z = torch.randn(B, Dz, generator=g, dtype=torch.float64)
    x = torch.einsum("mxz,bz->bmx", W, z) + b + sig * torch.randn(B, M, Dx, generator=g, dtype=torch.float64)
    cov_x = W.reshape(-1, Dz) @ W.reshape(-1, Dz).T + sig ** 2 * torch.eye(M * Dx, dtype=torch.float64)
    log_px = td.MultivariateNormal(b.reshape(-1), cov_x).log_prob(x.reshape(B, -1))

    def expected_log_lik(mean, cov):
        """E_{z ~ N(mean [B, Dz], cov [B, Dz, Dz])} log p(X | z) = log p(X | mean) - tr(W^T W cov) / (2 s^2)."""
        fit = td.Normal(torch.einsum("mxz,bz->bmx", W, mean) + b, sig).log_prob(x).sum((1, 2))
        return fit - torch.einsum("mxz,mxy,bzy->b", W, W, cov) / (2 * sig ** 2)

    return model, x, log_px, expected_log_lik


def _mvn(q, i=None):
    """A diagonal Normal (batch [B, ...]) as td.MultivariateNormal, member i of dim 1 if given."""
    loc, scale = (q.loc, q.scale) if i is None else (q.loc[:, i], q.scale[:, i])
    return td.MultivariateNormal(loc, torch.diag_embed(scale ** 2))


def _monte_carlo(model, x, n=20_000):
    torch.manual_seed(0)
    lw, samples = model.log_weights(x.repeat(n, 1, 1))                  # [1, n*B, 1]
    lw = lw.reshape(n, len(x))
    return lw.mean(0), lw.std(0) / math.sqrt(n), samples


def test_mvtcae_with_alpha_0_is_the_elbo_of_its_product_exact_here():
    """alpha = 0, beta = 1: the ELBO of the product of experts; with experts that each carry a third
    of the prior, that product is p(z | X) and every sample's lw is log p(X) itself."""
    model, x, log_px, _ = _linear_gaussian("mvtcae", prior_share=1 / 3, tc_alpha=0.0, beta=1.0)
    torch.manual_seed(0)
    lw, _ = model.log_weights(x.repeat(50, 1, 1))
    torch.testing.assert_close(lw.reshape(50, len(x)), log_px.expand(50, -1), rtol=0, atol=1e-9)


def test_mvtcae_expectation_matches_its_closed_form():
    """E[lw] = (M - alpha)/M E_q log p(X | z) - beta ((1 - alpha) KL(q || p) + alpha/M sum_m KL(q || q_m)),
    q the product of the experts (no prior expert), every KL from torch.distributions."""
    alpha, beta = 5 / 6, 2.5
    model, x, _, expected_log_lik = _linear_gaussian("mvtcae", tc_alpha=alpha, beta=beta)
    qz = model.encode(x).z
    prec = (qz.scale ** -2).sum(1)
    q = td.MultivariateNormal((qz.loc * qz.scale ** -2).sum(1) / prec, torch.diag_embed(1 / prec))
    prior = td.MultivariateNormal(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    cvib = sum(td.kl_divergence(q, _mvn(qz, m)) for m in range(3))
    expect = ((3 - alpha) / 3 * expected_log_lik(q.mean, q.covariance_matrix)
              - beta * ((1 - alpha) * td.kl_divergence(q, prior) + alpha / 3 * cvib))
    est, se, _ = _monte_carlo(model, x)
    assert ((est - expect).abs() < 5 * se).all(), (est, expect, se)


def test_mmjsd_expectation_matches_its_closed_form():
    """E[lw] = 1/M sum_m E_{q_m} log p(X | z) - beta JS, the reconstruction from the unimodal
    mixture in closed form per expert, each expert drawn for about 1/M of the data points."""
    beta = 2.5
    model, x, _, expected_log_lik = _linear_gaussian("mmjsd", beta=beta)
    qz = model.encode(x).z
    rec = sum(expected_log_lik(qz.loc[:, m], torch.diag_embed(qz.scale[:, m] ** 2)) for m in range(3)) / 3
    expect = rec - beta * model.objective.js(qz)
    est, se, samples = _monte_carlo(model, x)
    assert ((est - expect).abs() < 5 * se).all(), (est, expect, se)
    counts = torch.bincount(samples["expert"], minlength=3).double()
    assert ((counts / counts.sum() - 1 / 3).abs() < 0.01).all()


# ----------------------------------------------------------------------------- errors

def test_unsupported_setups_are_clear_errors():
    for name in ("mmjsd", "mvtcae"):
        with pytest.raises(ValueError, match=f"model.objective={name} needs posterior: normal"):
            build_objective(_cfg(name, posterior="laplace"))
        with pytest.raises(ValueError, match="no modality-specific w.*use model: mmvae"):
            build_objective(_cfg(name, model="mmvaeplus"))
        with pytest.raises(ValueError, match=f"model.objective={name} is an ELBO"):
            build_objective(_cfg(name, K=4))
    for prior in ("laplace", "ebm"):
        with pytest.raises(ValueError, match="model.objective=mmjsd needs prior: gaussian"):
            build_objective(_cfg("mmjsd", prior=prior))
    assert isinstance(build_objective(_cfg("mvtcae", prior="ebm")), MVTCAE)


# ----------------------------------------------------------------------------- the real model class

M, B = 5, 3


def _x(seed=0):
    return torch.rand(B, M, 3, 28, 28, generator=torch.Generator().manual_seed(seed))


def _model(objective, name="mmvae", **kw):
    torch.manual_seed(0)
    return build_model(preset(name, net="conv", z_dim=8, posterior="normal", objective=objective,
                              **({"prior": "gaussian"} if name == "mmvae" else {}), **kw))


@pytest.mark.parametrize("objective,name", [("mmjsd", "mmvae"), ("mvtcae", "mmvae"), ("mvtcae", "mmvae_ebm")])
def test_training_step_runs_and_moves_the_parameters(objective, name):
    model, x = _model(objective, name), _x()
    torch.manual_seed(1)
    loss, stats = model.loss(x)
    assert loss.shape == () and loss.requires_grad and torch.isfinite(loss)
    assert torch.equal(stats["objective"], -loss.detach()) and stats["z"].shape == (B, 8)
    vae, ebm = model.vae_parameters(), model.ebm_parameters()
    before = [p.detach().clone() for p in vae + ebm]
    out = train_step(model, x, *make_optimizers(model))
    assert math.isfinite(out["loss"]) and ("ebm_loss" in out) == (name == "mmvae_ebm")
    moved = [not torch.equal(a, p) for a, p in zip(before, vae + ebm)]
    assert all(moved[:len(vae)]) and (not ebm or any(moved[len(vae):]))


def test_mvtcae_regularizer_sees_the_ebm_prior():
    """With the EBM prior, lw moves by -beta (1 - alpha) f_alpha(z) (same draws, same seed)."""
    shift, s, f_alpha = ebm_shift(_model("mvtcae", "mmvae_ebm", beta=1.7, tc_alpha=0.4), _x())
    tilt = -1.7 * 0.6 * f_alpha(s["z"][0, :, 0])
    torch.testing.assert_close(shift, tilt[None, :, None], rtol=1e-4, atol=1e-3)


def test_cross_generation_uses_each_methods_joint_posterior():
    """MVTCAE: the product of src's experts without the prior expert, even for all M; mmJSD: the
    mixture of src's experts (one expert's mean per data point with mean=True)."""
    model, x = _model("mvtcae"), _x()
    qz = model.encode(x).z
    prec = qz.scale ** -2
    for src in ([1, 3], list(range(M))):
        idx = torch.tensor(src)
        mean = (qz.loc[:, idx] * prec[:, idx]).sum(1) / prec[:, idx].sum(1)
        torch.testing.assert_close(model.cross_generate(x, src, mean=True), model.decode_z(mean), rtol=1e-5, atol=1e-5)
    model, x = _model("mmjsd"), _x()
    qz = model.encode(x).z
    torch.manual_seed(2)
    got = model.cross_generate(x, [1, 3], mean=True)
    options = torch.stack([model.decode_z(qz.loc[:, m]) for m in (1, 3)])  # [2, B, ...]
    diff = (got[None] - options).flatten(2).abs().amax(-1)               # [2, B]
    assert (diff.min(0).values < 1e-5).all()                            # each data point decodes one of the two


@pytest.mark.parametrize("name,objective", [("polymnist_mmjsd", "mmjsd"), ("polymnist_mvtcae", "mvtcae")])
def test_polymnist_configs(name, objective):
    """The authors' PolyMNIST settings in the paper profile; the cpu profile trains a step."""
    paper = load_config(name, "paper")
    m, t = paper.model, paper.train
    assert (m.objective, m.model, m.posterior, m.prior, m.z_dim, m.beta) == (objective, "mmvae", "normal", "gaussian", 512, 2.5)
    assert (m.likelihood, m.lik_scale, m.net, t.epochs, t.batch_size, t.amsgrad) == ("laplace", 0.75, "conv", 300, 256, False)
    assert m.conv_upsample == "mopoe"  # the reference's decoder (thomassutter/MoPoE)
    assert objective != "mmjsd" or (m.mmjsd_prior_decoded and not load_config(name, "cpu").model.mmjsd_prior_decoded)
    assert t.lr == {"mmjsd": 5e-4, "mvtcae": 1e-3}[objective]
    assert objective != "mvtcae" or m.tc_alpha == 5 / 6
    cpu = load_config(name, "cpu")
    assert (cpu.model.objective, cpu.model.z_dim, cpu.model.likelihood, cpu.model.conv_upsample) == (
        objective, 32, "normal", "k4")
    torch.manual_seed(0)
    model = build_model(cpu.model)
    out = train_step(model, torch.rand(4, 5, 3, 28, 28), *make_optimizers(model))
    assert all(math.isfinite(v) for v in out.values())


def test_mmjsd_with_the_prior_decoded_matches_its_closed_form():
    """mmjsd_prior_decoded (thomassutter/MoPoE's variant): the reconstruction's mixture holds the
    prior too, E[lw] = 1/(M+1) (sum_m E_{q_m} log p(X | z) + E_{p(z)} log p(X | z)) - beta JS."""
    beta = 2.5
    model, x, _, expected_log_lik = _linear_gaussian("mmjsd", beta=beta, mmjsd_prior_decoded=True)
    qz = model.encode(x).z
    B, D = qz.loc.shape[0], qz.loc.shape[-1]
    from_prior = expected_log_lik(torch.zeros(B, D, dtype=torch.float64), torch.eye(D, dtype=torch.float64).expand(B, D, D))
    rec = (sum(expected_log_lik(qz.loc[:, m], torch.diag_embed(qz.scale[:, m] ** 2)) for m in range(3)) + from_prior) / 4
    expect = rec - beta * model.objective.js(qz)
    est, se, samples = _monte_carlo(model, x)
    assert ((est - expect).abs() < 5 * se).all(), (est, expect, se)
    counts = torch.bincount(samples["expert"], minlength=4).double()
    assert ((counts / counts.sum() - 1 / 4).abs() < 0.01).all()

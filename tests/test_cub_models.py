"""CUB models: image and caption networks, the weighted likelihoods, caption decoding and chains,
configs, and training on the real captions and (partial) images."""

import math

import pytest
import torch
import torch.distributions as td

from mmebm.captions import caption_chain, text_index, to_text, word_ids
from mmebm.config import ConfigError, ModelConfig, load_config
from mmebm.cub_nets import ModalityDecoders, ModalityEncoders
from mmebm.data import Vocab
from mmebm.distributions import OneHotCategorical
from mmebm.evaluate import evaluate
from mmebm.models import build_model, make_optimizers, train_step
from mmebm.train import load_checkpoint, load_run, train

V = 40  # a small vocabulary for the synthetic tests


def cub_cfg(dataset="cub", prior="gaussian", **kw):
    M = 2 if dataset == "cub" else 1
    model = "mmvaeplus" if dataset == "cub" else "mmvae"
    base = dict(dataset=dataset, n_modalities=M, model=model, prior=prior, vocab_size=V, z_dim=6, w_dim=3, net="conv",
                posterior="normal", lik_scale=0.01, image_lik_weight=32 / (3 * 64 * 64), text_lik_weight=5.0,
                beta=1.0, langevin_steps=4)
    return ModelConfig(**{**base, **kw})


def batch(dataset="cub", B=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randint(0, V, (B, 32), generator=g)
    return (torch.rand(B, 3, 64, 64, generator=g), s) if dataset == "cub" else (s,)


@pytest.mark.parametrize("dataset", ["cub", "cub_captions"])
@pytest.mark.parametrize("prior", ["gaussian", "ebm"])
def test_shapes_and_finite_training_step(dataset, prior):
    torch.manual_seed(0)
    model = build_model(cub_cfg(dataset, prior, K=2, dreg=True))
    x = batch(dataset)
    opt_vae, opt_ebm = make_optimizers(model)
    before = [p.detach().clone() for p in model.vae_parameters()]
    out = train_step(model, x, opt_vae, opt_ebm)
    assert all(math.isfinite(v) for v in out.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.vae_parameters()))
    shapes = [(3, 64, 64), (32, V)] if dataset == "cub" else [(32, V)]
    assert [tuple(o.shape) for o in model.sample(5)] == [(5, *s) for s in shapes]
    assert [tuple(o.shape) for o in model.cross_generate(x, 0)] == [(3, *s) for s in shapes]
    assert [tuple(o.shape) for o in model.reconstruct(x)] == [(3, *s) for s in shapes]


@pytest.mark.parametrize("dataset", ["cub", "cub_captions"])
def test_conv_leak_reaches_the_cub_networks(dataset):
    """model.conv_leak builds the CUB conv nets with LeakyReLU (the cpu profile: 0.2); the default keeps ReLU."""
    def acts(model):
        return {type(m) for m in model.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU))}
    assert acts(build_model(cub_cfg(dataset))) == {torch.nn.ReLU}
    leaky = build_model(cub_cfg(dataset, conv_leak=0.2))
    assert acts(leaky) == {torch.nn.LeakyReLU}
    assert {m.negative_slope for m in leaky.modules() if isinstance(m, torch.nn.LeakyReLU)} == {0.2}


@pytest.mark.parametrize("dataset", ["cub", "cub_captions"])
def test_conv_width_reaches_the_cub_networks(dataset):
    """model.conv_width builds the CUB conv nets at that first-layer width (32 by default)."""
    def first_widths(model):
        return {m.out_channels for m in model.enc.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels in (1, 3)}
    assert first_widths(build_model(cub_cfg(dataset))) == {32}
    assert first_widths(build_model(cub_cfg(dataset, conv_width=16))) == {16}


def test_paper_networks_train_and_sample():
    """net=resnet: the MMVAE+ CUB networks (tests/test_cub_nets.py) inside the model, batch norm included."""
    torch.manual_seed(0)
    model = build_model(cub_cfg("cub", "ebm", net="resnet", z_dim=8, w_dim=4))
    assert model.dec.nets[1].w_dim == 4  # the caption decoder splits u = [w, z]
    out = train_step(model, batch(B=4), *make_optimizers(model))
    assert all(math.isfinite(v) for v in out.values())
    model.eval()  # batch norm's running statistics: one latent decodes alone
    assert [tuple(o.shape) for o in model.sample(1)] == [(1, 3, 64, 64), (1, 32, V)]


def test_batched_equals_loop():
    torch.manual_seed(0)
    model = build_model(cub_cfg("cub", "ebm"))
    x = batch()
    torch.manual_seed(1)
    lw_batched, _ = model.log_weights(x)
    model.cfg.batched = False
    torch.manual_seed(1)
    lw_loop, _ = model.log_weights(x)
    assert torch.allclose(lw_batched, lw_loop, rtol=1e-5, atol=1e-3)


def test_likelihood_is_the_weighted_sum_of_image_laplace_and_caption_categorical():
    torch.manual_seed(0)
    cfg = cub_cfg("cub")
    model = build_model(cfg)
    img, s = batch(B=2)
    K, R = 2, 2
    x_hat = (torch.rand(K, 2, R, 3, 64, 64), torch.randn(K, 2, R, 32, V))
    got = model.log_lik(x_hat, (img, s))
    image = td.Laplace(x_hat[0], cfg.lik_scale).log_prob(img[None, :, None]).sum((-3, -2, -1))
    text = td.Categorical(logits=x_hat[1]).log_prob(s[None, :, None].expand(K, 2, R, 32)).sum(-1)
    want = 32 / (3 * 64 * 64) * image + 5.0 * text
    assert got.shape == (K, 2, R)
    assert torch.allclose(got, want, rtol=1e-5)


def test_categorical_ids_equal_one_hot():
    logits = torch.randn(4, 32, V)
    ids = torch.randint(0, V, (4, 32))
    q = OneHotCategorical(logits, 1)
    assert torch.allclose(q.log_prob(ids), q.log_prob(torch.nn.functional.one_hot(ids, V).float()), atol=1e-5)


def test_nets_per_modality_match_the_whole():
    torch.manual_seed(0)
    enc, dec = ModalityEncoders(["image64", "text"], 6, 3, V), ModalityDecoders(["image64", "text"], 9, V)
    x = batch()
    whole = enc(x)
    for m in range(2):
        part = enc(x[m], g=m)
        for a, b in zip(whole, part):
            assert torch.equal(a[:, m], b)
    u = torch.randn(3, 2, 9)
    for d, out in enumerate(dec(u)):
        assert torch.equal(out, dec(u[:, d], g=d))
    with pytest.raises(ValueError, match="vocab_size"):
        ModalityDecoders(["text"], 9, 0)


def test_word_ids_greedy_and_sampled():
    logits = torch.tensor([[[0.0, 2.0, 1.0]] * 4])  # [1, 4, 3]
    assert word_ids(logits).tolist() == [[1, 1, 1, 1]]
    # a very low temperature samples the argmax; temperature 1 follows softmax(logits)
    assert word_ids(logits, sample=True, temperature=1e-3).tolist() == [[1, 1, 1, 1]]
    g = torch.Generator().manual_seed(0)
    many = word_ids(logits.expand(5000, 4, 3), sample=True, generator=g)
    freq = torch.bincount(many.flatten(), minlength=3) / many.numel()
    assert torch.allclose(freq, torch.softmax(logits[0, 0], -1), atol=0.01)  # 20,000 draws: std < 0.004


def test_to_text_stops_at_eos():
    vocab = Vocab(["<exc>", "<pad>", "<eos>", "a", "bird"])
    logits = torch.full((1, 5, 5), -9.0)
    for pos, word in enumerate([3, 4, 2, 4, 1]):
        logits[0, pos, word] = 9.0
    assert to_text(logits, vocab) == ["a bird"]


def test_caption_chain_starts_at_p0_and_keeps_w():
    torch.manual_seed(0)
    vocab = Vocab(["<exc>", "<pad>", "<eos>"] + [f"w{i}" for i in range(V - 3)])
    ebm = build_model(cub_cfg("cub", "ebm", langevin_steps=10)).eval()
    chain = caption_chain(ebm, vocab, n_chains=3, steps=[0, 5, 99], seed=7)
    assert list(chain) == [0, 5, 10] and all(len(c) == 3 for c in chain.values())
    # step 0 decodes z_0 ~ p0: the same z as the Gaussian-prior model draws with the same seed
    gauss = build_model(cub_cfg("cub", "gaussian")).eval()
    gauss.load_state_dict({k: v for k, v in ebm.state_dict().items() if not k.startswith("prior.")})
    assert caption_chain(gauss, vocab, 3, [0, 5], seed=7) == {0: chain[0]}
    assert text_index(ebm) == 1
    with pytest.raises(ValueError, match="no caption"):
        text_index(build_model(ModelConfig(net="conv", z_dim=4, w_dim=2)))


def test_cub_configs():
    for name in ("cub_mmvaeplus", "cub_mmvaeplus_ebm", "cub_captions", "cub_captions_ebm"):
        paper, cpu = load_config(name, "paper"), load_config(name, "cpu")
        assert paper.model.dataset.startswith("cub") and paper.model.posterior == "normal"
        # the MMVAE+ CUB run as its code computes it: K 10 IWAE (its --obj dreg), priors' scale ln 2
        assert (paper.model.K, paper.model.dreg, paper.model.beta) == (10, False, 1.0)
        assert paper.model.prior_scale == pytest.approx(math.log(2.0)) == cpu.model.prior_scale
        assert (paper.model.net, cpu.model.net) == ("resnet", "conv")  # MMVAE+'s CUB networks; ours on cpu
        assert (paper.train.batch_size, paper.train.epochs) == (32, 50)
        assert (cpu.model.K, cpu.model.dreg) == (1, False)  # the experiment's own cpu adjustments
        assert paper.model.prior == ("ebm" if name.endswith("ebm") else "gaussian")
    ebm = load_config("cub_mmvaeplus_ebm", "paper")  # inherits everything else from cub_mmvaeplus
    assert (ebm.model.z_dim, ebm.model.w_dim, ebm.model.lik_scale, ebm.model.text_lik_weight) == (48, 16, 0.01, 5.0)
    assert ebm.model.image_lik_weight == pytest.approx(32 / (3 * 64 * 64))
    with pytest.raises(ConfigError, match="n_modalities=2"):
        load_config("cub_mmvaeplus", "cpu", ["model.n_modalities=5"])
    with pytest.raises(ConfigError, match="dataset"):
        load_config("cub_mmvaeplus", "cpu", ["model.dataset=cubb"])


TINY = ["model.z_dim=6", "model.w_dim=3", "model.langevin_steps=3", "train.batch_size=16", "train.epochs=1",
        "train.log_every=1", "train.device=cpu"]


def tiny(data_root, tmp_path, name, *more):
    return load_config(name, "cpu", [f"data.root={data_root}", f"data.cache_dir={tmp_path / 'cache'}", *TINY,
                                     *more])


def test_trains_on_the_real_captions_and_resumes(data_root, tmp_path):
    cfg = tiny(data_root, tmp_path, "cub_captions_ebm", "data.limit=96", "train.max_steps=4")
    assert train(cfg, tmp_path / "run") == 4
    model, saved = load_run(tmp_path / "run")
    assert saved.model.vocab_size == 1699  # taken from the data (the reference's is 1590: see README)
    more = tiny(data_root, tmp_path, "cub_captions_ebm", "data.limit=96", "train.max_steps=6")
    assert train(more, tmp_path / "run", resume=True) == 6
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 6
    bad = tiny(data_root, tmp_path, "cub_captions_ebm", "data.limit=96", "model.vocab_size=1590")
    with pytest.raises(ConfigError, match="1699 words"):
        train(bad, tmp_path / "bad")


def test_trains_on_the_image_caption_pairs(data_root, tmp_path):
    cfg = tiny(data_root, tmp_path, "cub_mmvaeplus_ebm", "data.limit=32", "train.max_steps=2")
    assert train(cfg, tmp_path / "run") == 2
    model, _ = load_run(tmp_path / "run")
    image, logits = model.sample(2)
    assert image.shape == (2, 3, 64, 64) and logits.shape == (2, 32, 1699)
    with pytest.raises(ValueError, match="PolyMNIST only"):  # coherence needs digit labels
        evaluate(tmp_path / "run", tmp_path / "no-classifiers", device="cpu")

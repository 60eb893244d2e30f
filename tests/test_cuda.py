"""What only makes sense on a GPU (marker `cuda`): the captured Langevin chain against the eager
one, the grouped kernels against the copy-by-copy path, a bf16 step, and a paper-profile run that
resumes. Skipped, with the reason, where CUDA is absent (CI has no GPU); `pytest -m cuda` runs
them alone on a GPU machine."""

import pytest
import torch

from mmebm.config import load_config, preset
from mmebm.ebm import EBMPrior, UnitPrior
from mmebm.langevin import LangevinGraph, sample_langevin
from mmebm.models import build_model, make_optimizers, train_step
from mmebm.nets import Decoder, Encoder, EnergyMLP
from mmebm.train import load_checkpoint, train

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run `pytest -m cuda` on a GPU machine)")]
CUDA = torch.device("cuda")


def _prior(z_dim=32, graph=True):
    torch.manual_seed(0)
    return EBMPrior(EnergyMLP(z_dim), UnitPrior(z_dim), graph=graph).to(CUDA)


def test_captured_chain_equals_eager_chain_and_follows_parameter_updates():
    prior = _prior()
    n, d = 128, 32
    z0, eps = torch.randn(n, d, device=CUDA), torch.randn(prior.n_steps, n, d, device=CUDA)
    graph = LangevinGraph(prior.energy, (n, d), prior.n_steps, prior.step_size, True, CUDA)
    eager = sample_langevin(prior.energy, z0, prior.n_steps, prior.step_size, eps=eps)
    torch.testing.assert_close(graph(z0, eps), eager, rtol=1e-4, atol=1e-4)
    # an in-place optimizer step on f_alpha: the next replay reads the new weights
    opt = torch.optim.Adam(prior.f_alpha.parameters(), lr=1e-2)
    prior.f_alpha(torch.randn(n, d, device=CUDA)).mean().backward()
    opt.step()
    moved = sample_langevin(prior.energy, z0, prior.n_steps, prior.step_size, eps=eps)
    assert (moved - eager).abs().max() > 1e-3, "the update changed the chain"
    torch.testing.assert_close(graph(z0, eps), moved, rtol=1e-4, atol=1e-4)


def test_prior_samples_through_a_graph_per_shape_on_cuda():
    prior = _prior()
    z = prior.sample(64)
    assert z.shape == (64, 32) and torch.isfinite(z).all() and len(prior._graphs) == 1
    prior.sample(64)
    assert len(prior._graphs) == 1  # replayed, not captured again
    for n in (8, 16, 24, 32, 40):
        prior.sample(n)
    assert len(prior._graphs) == EBMPrior.MAX_GRAPHS
    # same law as the eager chain: compare moments over many chains
    torch.manual_seed(1)
    a = prior.sample(20_000)
    prior.graph = False
    b = prior.sample(20_000)
    assert (a.mean(0) - b.mean(0)).abs().max() < 0.06 and (a.std(0) - b.std(0)).abs().max() < 0.06


@pytest.mark.parametrize("tf32", [False, True])
@pytest.mark.parametrize("net", ["conv", "resnet"])
def test_grouped_kernels_equal_copy_by_copy(net, tf32, monkeypatch):
    """The grouped kernels (the CUDA default) against forward(x_m, g=m), in fp32 and under
    cuDNN's TF32 convolutions (its default), each to its own rounding: errors relative to the
    largest entry (a wrong weight slice gives O(1))."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", tf32)
    torch.manual_seed(0)
    M, N, w = 5, 16, 4
    enc, dec = Encoder(M, 8, w, net).to(CUDA), Decoder(M, 8 + w, net).to(CUDA)
    x, u = torch.rand(N, M, 3, 28, 28, device=CUDA), torch.randn(N, M, 8 + w, device=CUDA)
    assert enc.use_grouped_kernels(x)
    grouped = [*enc(x), dec(u)]
    loop = [torch.stack(o, 1) for o in zip(*[enc(x[:, m], g=m) for m in range(M)])]
    loop.append(torch.stack([dec(u[:, m], g=m) for m in range(M)], 1))
    errors = [((a - b).abs().max() / b.abs().max()).item() for a, b in zip(grouped, loop)]
    print(f"grouped vs copy by copy, {net}, TF32 {tf32}: relative errors {['%.1e' % e for e in errors]}")
    assert max(errors) <= (1e-2 if tf32 else 1e-4), errors


def test_bf16_step_stays_finite():
    torch.manual_seed(0)
    model = build_model(preset("mmvaeplus_ebm", net="conv")).to(CUDA)
    opt_vae, opt_ebm = make_optimizers(model)

    def bf16_loss(x):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return model.loss(x)

    x = torch.rand(64, 5, 3, 28, 28, device=CUDA)
    for _ in range(3):
        values = train_step(model, x, opt_vae, opt_ebm, bf16_loss)
    assert all(torch.isfinite(torch.tensor(v)) for v in values.values()), values
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_paper_profile_resumes_as_exactly_as_the_gpu_repeats_itself(polymnist_dir, tmp_path):
    """Paper profile (ResNets, EBM prior, captured chain), 4 steps straight twice and 2 + 2 resumed.
    A resumed run must differ from the straight one by no more than two straight runs differ
    from each other (cuDNN may pick non-deterministic kernels; then neither is bit-exact)."""
    def cfg(steps):
        return load_config("polymnist_mmvaeplus_ebm", "paper", [f"data.root={polymnist_dir}", "data.limit=1024",
                                                                f"train.max_steps={steps}", "train.device=cuda"])
    for run in ("a", "b"):
        train(cfg(4), tmp_path / run, progress=False)
    train(cfg(2), tmp_path / "r", progress=False)
    train(cfg(4), tmp_path / "r", resume=True, progress=False)
    a, b, r = (load_checkpoint(tmp_path / run / "checkpoint.pt")["model"] for run in ("a", "b", "r"))
    repeat = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    resumed = max((a[k].float() - r[k].float()).abs().max().item() for k in a)
    print(f"paper profile on {torch.cuda.get_device_name()}: straight vs straight max |diff| {repeat:.3g}, "
          f"straight vs resumed {resumed:.3g}")
    assert resumed <= max(10 * repeat, 0.0), (resumed, repeat)


def test_evaluation_and_refit_run_on_cuda(polymnist_dir, tmp_path):
    """The prior hole's columns and the refit with the model on the GPU (the train split stays on
    the CPU for the aggregate posterior's draws)."""
    from mmebm.classifiers import Classifiers
    from mmebm.evaluate import evaluate
    from mmebm.refit import RefitConfig, refit_run

    cfg = load_config("polymnist_mmvae_ebm", "cpu", [f"data.root={polymnist_dir}", "model.net=conv", "model.z_dim=8",
                                                     "model.langevin_steps=5", "data.limit=128", "data.test_limit=100",
                                                     "train.batch_size=32", "train.max_steps=2", "train.eval_every=0",
                                                     "train.device=cuda"])
    train(cfg, tmp_path / "run", progress=False)
    Classifiers(5).save(tmp_path / "classifiers")
    out = refit_run(tmp_path / "run", cfg=RefitConfig(steps=3, n_train=64, batch_size=8), device="cuda")
    m = evaluate(out, tmp_path / "classifiers", n_joint=40, device="cuda", progress=False)
    assert set(m["judges"]["classifiers"]["joint"]) == {"prior", "p0", "aggregate"}

"""The 2-D toys of notebooks/01_objectives.py."""

import math

import torch

from mmebm import ModelConfig, build_model, make_optimizers, toy, train_step
from mmebm.ebm import EBMPrior, UnitPrior


def test_ring_samples_and_density():
    g = torch.Generator().manual_seed(0)
    centers = toy.ring_centers(8, 2.5)
    assert centers.shape == (8, 2)
    torch.testing.assert_close(centers.norm(dim=-1), torch.full((8,), 2.5))
    z, mode = toy.sample_ring(4000, 8, 2.5, 0.3, generator=g)
    assert z.shape == (4000, 2) and mode.shape == (4000,)
    idx, dist = toy.nearest_mode(z, centers)
    assert (idx == mode).float().mean() > 0.99  # modes 5 std apart
    assert abs((dist < 0.6).float().mean().item() - (1 - math.exp(-2))) < 0.03  # within 2 std
    # the log density integrates to one on a grid
    axis = torch.linspace(-5, 5, 401, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1)
    mass = toy.ring_log_prob(grid, 8, 2.5, 0.3).exp().sum().item() * (axis[1] - axis[0]).item() ** 2
    assert abs(mass - 1) < 1e-3


def test_modalities_are_fixed_maps_plus_noise_and_classify_modes():
    mods = toy.ToyModalities(n_modalities=2, x_dim=2, noise=0.1, seed=0)
    again = toy.ToyModalities(n_modalities=2, x_dim=2, noise=0.1, seed=0)
    torch.testing.assert_close(mods.A, again.A)
    z = torch.randn(500, 2, generator=torch.Generator().manual_seed(1))
    clean = mods.mean(z)
    assert clean.shape == (500, 2, 2)
    torch.testing.assert_close(clean[:, 0], z @ mods.A[0].T)  # modality 0 is linear
    x = mods(z, generator=torch.Generator().manual_seed(2))
    assert abs((x - clean).std().item() - 0.1) < 0.01
    centers = toy.ring_centers(8, 2.5)
    mode, dist = mods.classify(mods.mean(centers), centers)
    assert (mode == torch.arange(8)[:, None]).all() and (dist < 1e-5).all()


def test_quadratic_energy_tilts_to_shrunk_gaussian():
    f = toy.QuadraticEnergy(2.0)
    z = torch.randn(7, 3)
    torch.testing.assert_close(f(z), (z ** 2).sum(-1))
    prior = EBMPrior(f, UnitPrior(3))
    # energy f - log p0 = (1 + c)/2 |z|^2 + const
    e = prior.energy(z) - prior.energy(torch.zeros(1, 3))
    torch.testing.assert_close(e, 1.5 * (z ** 2).sum(-1))


def test_mlp_networks_batched_path_matches_per_modality_path():
    torch.manual_seed(0)
    enc = toy.MLPEncoder(3, 4, 2, w_dim=5, hidden=8)
    dec = toy.MLPDecoder(3, 7, 4, hidden=8)
    x = torch.randn(6, 3, 4)
    outs = enc(x)
    assert [o.shape for o in outs] == [(6, 3, 2), (6, 3, 2), (6, 3, 5), (6, 3, 5)]
    for m in range(3):
        for full, one in zip(outs, enc(x[:, m], g=m)):
            torch.testing.assert_close(full[:, m], one)
    u = torch.randn(6, 3, 7)
    y = dec(u)
    assert y.shape == (6, 3, 4)
    for m in range(3):
        torch.testing.assert_close(y[:, m], dec(u[:, m], g=m))
    assert toy.MLPEncoder(3, 4, 2)(x)[2] is None


def test_toy_networks_train_inside_multimodal_vae():
    torch.manual_seed(0)
    mods = toy.ToyModalities(2, 2, noise=0.1)
    for model_name, w_dim in [("mmvae", 0), ("mmvaeplus", 2)]:
        cfg = ModelConfig(model=model_name, prior="ebm", n_modalities=2, z_dim=2, w_dim=max(w_dim, 1),
                          posterior="normal", likelihood="normal", lik_scale=0.1, beta=1.0, ebm_hidden=16,
                          langevin_steps=5, langevin_step_size=0.2)
        model = build_model(cfg, encoder=toy.MLPEncoder(2, 2, 2, w_dim=w_dim, hidden=16),
                            decoder=toy.MLPDecoder(2, w_dim + 2, 2, hidden=16))
        opt_vae, opt_ebm = make_optimizers(model, lr=1e-3)
        for _ in range(3):
            out = train_step(model, mods(toy.sample_ring(32)[0]), opt_vae, opt_ebm)
        assert all(math.isfinite(v) for v in out.values())
        assert model.sample(5).shape == (5, 2, 2)

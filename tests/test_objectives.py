"""Objectives apart from the model: the registry and its errors, model.loss / model.log_weights as
thin calls of the objective, the (loss, stats) contract, an objective's own settings."""

import pytest
import torch

from mmebm import config, models, objectives
from mmebm.config import ConfigError, ModelConfig, load_config, preset
from mmebm.distributions import log_mean_exp
from mmebm.models import build_model, make_optimizers, train_step
from mmebm.objectives import MoE, build_objective

M, B = 5, 2


def _x(seed=0):
    return torch.rand(B, M, 3, 28, 28, generator=torch.Generator().manual_seed(seed))


def _model(name, **kw):
    torch.manual_seed(0)
    return build_model(preset(name, net="conv", z_dim=8, w_dim=4, **kw))


def test_unknown_objective_is_a_clear_error():
    with pytest.raises(ValueError, match=r"model.objective must be one of moe, mopoe, mmjsd, mvtcae, got 'unknown'"):
        ModelConfig(objective="unknown")
    with pytest.raises(ConfigError, match="model.objective must be one of"):  # the YAML / override path
        load_config("polymnist_mmvae", overrides=["model.objective=nope"])
    cfg = ModelConfig()
    cfg.objective = "nope"  # set past the config's check
    with pytest.raises(ValueError, match="model.objective must be one of moe, mopoe, mmjsd, mvtcae, got 'nope'"):
        build_objective(cfg)


def test_registry_matches_the_config_choices():
    assert tuple(objectives.OBJECTIVES) == config.OBJECTIVES
    assert ModelConfig().objective == "moe" and isinstance(build_objective(ModelConfig()), MoE)
    assert models.log_q_mix is objectives.log_q_mix  # re-exported where tests and notebooks import it


@pytest.mark.parametrize("name, kw", [("mmvae", dict(K=1)), ("mmvaeplus_ebm", dict(K=3, dreg=True))])
def test_model_loss_and_log_weights_call_the_objective(name, kw):
    """The objective on its own gives model.loss's numbers and gradients exactly (same draws)."""
    model, x = _model(name, **kw), _x()
    out = []
    for loss_fn in (model.loss, lambda x: MoE(model.cfg)(model, x)):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        loss, stats = loss_fn(x)
        loss.backward()
        out.append((loss.detach(), stats["objective"], stats["z"], [p.grad for p in model.vae_parameters()]))
    (l0, o0, z0, g0), (l1, o1, z1, g1) = out
    assert torch.equal(l0, l1) and torch.equal(o0, o1) and torch.equal(z0, z1)
    assert all(torch.equal(a, b) for a, b in zip(g0, g1))
    lws = []
    for fn in (model.log_weights, lambda x: model.objective.log_weights(model, x)):
        torch.manual_seed(2)
        lws.append(fn(x)[0])
    assert torch.equal(*lws)


@pytest.mark.parametrize("kw", [dict(K=1), dict(K=3), dict(K=3, dreg=True)])
def test_stats_contract(kw):
    """stats["objective"]: the bound (the IWAE mean over experts and data, whatever the
    gradient estimator), detached; stats["z"]: detached posterior samples [K*B*M, Dz]."""
    model, x = _model("mmvaeplus", **kw), _x()
    torch.manual_seed(1)
    loss, stats = model.loss(x)
    torch.manual_seed(1)
    lw, _ = model.log_weights(x)
    assert loss.shape == () and loss.requires_grad
    assert stats["objective"].shape == () and not stats["objective"].requires_grad
    assert stats["z"].shape == (kw["K"] * B * M, 8) and not stats["z"].requires_grad
    torch.testing.assert_close(stats["objective"], log_mean_exp(lw, 0).mean().detach(), rtol=1e-6, atol=0)
    if not kw.get("dreg"):
        assert torch.equal(stats["objective"], -loss.detach())  # the surrogate is the bound


def test_the_objectives_settings_are_its_own():
    """One model, another objective: K, beta and dreg belong to the objective, not the networks;
    the objective adds nothing to the state dict (checkpoints are unchanged)."""
    model, x = _model("mmvaeplus", K=1), _x()
    assert not any("objective" in k for k in model.state_dict())
    lw1, _ = model.log_weights(x)
    other = MoE(model.cfg.replace(K=3, dreg=True))
    lw3, s = other.log_weights(model, x)
    assert lw1.shape == (1, B, M) and lw3.shape == (3, B, M) and s["w_cross"].shape == (3, B, M, M, 4)
    assert other(model, x)[1]["z"].shape == (3 * B * M, 8)
    assert model.objective.K == 1 and model.cfg.K == 1


def test_train_step_needs_only_the_contract():
    """Any callable (model, x) -> (loss, stats) with stats "objective" and "z" trains the model,
    EBM prior included: the shape later objectives (MoPoE, mmJSD, MVTCAE) will take."""
    model, x = _model("mmvae_ebm"), _x()
    calls = []

    def halved(model, x):
        calls.append(1)
        loss, stats = MoE(model.cfg)(model, x)
        return loss / 2, {"objective": stats["objective"], "z": stats["z"]}

    model.objective = halved
    vae, ebm = model.vae_parameters(), model.ebm_parameters()
    before = [p.detach().clone() for p in vae + ebm]
    out = train_step(model, x, *make_optimizers(model))
    assert calls == [1] and set(out) == {"loss", "objective", "ebm_loss"}
    assert out["loss"] == pytest.approx(-out["objective"] / 2, rel=1e-6)
    moved = [not torch.equal(a, p) for a, p in zip(before, vae + ebm)]
    assert any(moved[:len(vae)]) and any(moved[len(vae):])  # both updates ran


def test_train_step_logs_the_energy_gap_beside_the_penalized_loss():
    """With a penalty the EBM loss holds it too; the step also logs the gap mean f(z_q) - mean f(z_neg)
    alone, so that runs with different penalties compare (results/long/README.md, section 6)."""
    model, x = _model("mmvae_ebm"), _x()
    assert "ebm_gap" not in train_step(model, x, *make_optimizers(model))  # no penalty: the loss is the gap
    model.prior.penalty = 0.5
    out = train_step(model, x, *make_optimizers(model))
    assert set(out) == {"loss", "objective", "ebm_loss", "ebm_gap"}
    assert out["ebm_loss"] > out["ebm_gap"]  # + penalty * (mean f_pos^2 + mean f_neg^2) > 0

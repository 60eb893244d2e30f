"""What `make reproduce` does on a machine, tested without a GPU: which profile it picks, that it
evaluates shipped or existing runs and trains only when asked, and the training plan it prints."""

import json

import pytest
import torch

from mmebm import runs
from mmebm.config import load_config


def _ship(weights, name):
    (weights / name).mkdir(parents=True)
    (weights / name / "manifest.json").write_text(json.dumps({"steps": 1}))


def test_default_profile_is_gpu_only_with_cuda_and_gpu_weights(tmp_path, monkeypatch):
    _ship(tmp_path, "polymnist_mmvae-cpu-s0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runs.default_profile(tmp_path) == "cpu"  # CUDA, but no gpu weights to evaluate
    _ship(tmp_path, "polymnist_mmvae-gpu-s0")
    assert runs.default_profile(tmp_path) == "gpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runs.default_profile(tmp_path) == "cpu"


def test_the_repository_ships_gpu_weights_for_the_four_poster_models():
    weights = runs.Path(runs.__file__).resolve().parents[1] / "weights"
    for name in ("polymnist_mmvae", "polymnist_mmvae_ebm", "polymnist_mmvaeplus", "polymnist_mmvaeplus_ebm"):
        assert runs.shipped_seeds(weights, name, "gpu") == [0, 1, 2], name


def test_a_run_neither_shipped_nor_here_is_an_error_that_says_how_to_train(tmp_path):
    with pytest.raises(runs.MissingWeights, match=r"make reproduce PROFILE=paper TRAIN=1"):
        runs.ensure_run("polymnist_mmvae", "paper", tmp_path / "runs" / "polymnist_mmvae-paper-s0", tmp_path / "weights")
    assert not (tmp_path / "runs").exists(), "nothing was trained"


def test_training_plan_multiplies_measured_step_time_by_steps_and_seeds(polymnist_dir, capsys):
    measured = []

    def fake_step_seconds(cfg):
        measured.append(cfg.name)
        return 0.5 if cfg.model.prior == "ebm" else 0.25

    seeds = {"polymnist_mmvae": [0, 1, 2], "polymnist_mmvae_ebm": [0]}
    here = [f"data.root={polymnist_dir}"]  # the run length needs the data's size
    total = runs.training_plan(list(seeds), "cpu", seeds, here, measure=fake_step_seconds)
    steps = load_config("polymnist_mmvae", "cpu").train.max_steps  # 3,000
    assert total == pytest.approx(0.25 * steps * 3 + 0.5 * steps)
    assert measured == ["polymnist_mmvae", "polymnist_mmvae_ebm"]  # once per config, not per seed
    out = capsys.readouterr().out
    assert "0.250 s/step x 3,000 steps x 3 seed(s)" in out and f"{total / 60:,.1f} min" in out


def test_step_seconds_times_a_real_step(polymnist_dir):
    cfg = load_config("polymnist_mmvae_ebm", "cpu", [f"data.root={polymnist_dir}", "model.z_dim=8",
                                                     "model.langevin_steps=3", "train.batch_size=8", "train.device=cpu"])
    before = torch.get_rng_state()
    assert 0 < runs.step_seconds(cfg) < 60
    assert torch.equal(before, torch.get_rng_state()), "measuring leaves the random stream alone"


def test_a_baseline_the_profile_does_not_ship_is_left_out_but_a_poster_model_is_not(tmp_path, capsys):
    """The gpu profile ships the four poster models only: without TRAIN=1, MoPoE is left out with
    a note; a missing poster model stays, so that ensure_run stops on it with how to train it."""
    weights, runs_dir = tmp_path / "weights", tmp_path / "runs"
    _ship(weights, "polymnist_mmvae-gpu-s0")
    names = ["polymnist_mmvae", "polymnist_mmvaeplus", "polymnist_mopoe", "polymnist_mvtcae"]
    (runs_dir / "polymnist_mvtcae-gpu-s0").mkdir(parents=True)
    (runs_dir / "polymnist_mvtcae-gpu-s0" / "checkpoint.pt").write_bytes(b"")  # trained here earlier
    kept = runs.without_missing(names, "gpu", [0], runs_dir, weights, required=["polymnist_mmvae", "polymnist_mmvaeplus"])
    assert kept == ["polymnist_mmvae", "polymnist_mmvaeplus", "polymnist_mvtcae"]
    assert "polymnist_mopoe: the 'gpu' profile ships no weights" in capsys.readouterr().out

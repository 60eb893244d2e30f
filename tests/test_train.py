"""The trainer: exact resume, atomic checkpoints, non-finite losses, config errors, 2-process gloo."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmebm.config import ConfigError, load_config
from mmebm.train import NonFiniteLoss, load_checkpoint, train

REPO = Path(__file__).resolve().parents[1]
TINY = ["model.net=conv", "model.z_dim=8", "model.w_dim=4", "model.langevin_steps=5", "data.limit=128",
        "train.batch_size=32", "train.epochs=10", "train.checkpoint_every=1000", "train.log_every=1", "train.device=cpu",
        "train.eval_every=0"]


def tiny(polymnist_dir, name="polymnist_mmvaeplus_ebm", *more):
    return load_config(name, "cpu", [f"data.root={polymnist_dir}", *TINY, *more])


def test_resume_is_bit_exact(polymnist_dir, tmp_path):
    # 4 batches per epoch: 6 steps, then 6 more from the checkpoint, cross an epoch boundary; under
    # a warmed-up cosine schedule, whose lr at each step follows from the step and the run's length.
    sched = ["train.lr_schedule=cosine", "train.warmup_steps=3", "train.epochs=3"]  # 12 steps
    train(tiny(polymnist_dir, "polymnist_mmvaeplus_ebm", *sched), tmp_path / "straight")
    train(tiny(polymnist_dir, "polymnist_mmvaeplus_ebm", *sched, "train.time_budget_s=0"), tmp_path / "resumed")
    half = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert half["step"] == 1  # stopped by its time budget after one step
    with pytest.raises(ConfigError, match="time_budget_s"):  # another length would be another schedule
        train(tiny(polymnist_dir, "polymnist_mmvaeplus_ebm", *sched, "train.max_steps=6"), tmp_path / "resumed",
              resume=True)
    train(tiny(polymnist_dir, "polymnist_mmvaeplus_ebm", *sched), tmp_path / "resumed", resume=True)
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert a["step"] == b["step"] == 12
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert any(not torch.equal(half["model"][k], b["model"][k]) for k in b["model"]), "the last 6 steps trained"
    # The log continues where it stopped: one row per step and name, no duplicates.
    rows = list(csv.DictReader(open(tmp_path / "resumed" / "metrics.csv")))
    losses = [int(r["step"]) for r in rows if r["name"] == "loss"]
    assert losses == list(range(1, 13))
    lrs = [float(r["value"]) for r in rows if r["name"] == "lr"]
    assert lrs[:3] == pytest.approx([1e-3, 2e-3, 3e-3], rel=1e-4) and lrs[-1] < 1e-4  # ramp, then cosine


def test_lr_schedules_have_their_known_values():
    from mmebm.config import TrainConfig
    from mmebm.train import lr_factor

    cos = TrainConfig(lr_schedule="cosine", warmup_steps=10)
    assert [lr_factor(cos, s, 110) for s in (0, 4, 9, 10)] == pytest.approx([0.1, 0.5, 1.0, 1.0])
    assert lr_factor(cos, 60, 110) == pytest.approx(0.5)  # halfway through the decay: cos(pi / 2)
    assert lr_factor(cos, 109, 110) < 1e-3
    # continued weights (--warm-start): the ramp and the decay start where the fresh optimizer did
    assert lr_factor(cos, 3000, 3110, fresh_at=3000) == pytest.approx(0.1)
    assert lr_factor(cos, 3060, 3110, fresh_at=3000) == pytest.approx(0.5)
    late = TrainConfig(lr_schedule="cosine", lr_decay_from=0.5)  # constant for half the run, then the cosine
    assert [lr_factor(late, s, 100) for s in (0, 50, 75)] == pytest.approx([1.0, 1.0, 0.5])
    step = TrainConfig(lr_schedule="step", lr_milestones=(0.5, 0.75), lr_gamma=0.1)
    assert [lr_factor(step, s, 100) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx([1, 1, .1, .1, .01, .01])
    assert lr_factor(TrainConfig(), 123, 200) == 1.0  # the paper's constant lr
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")
    with pytest.raises(ValueError, match="lr_decay_from"):
        TrainConfig(lr_decay_from=1.0)
    with pytest.raises(ValueError, match="lr_milestones"):
        TrainConfig(lr_milestones=(0.5, 1.5))


def test_log_spaced_probes():
    from mmebm.config import TrainConfig
    from mmebm.train import probe_steps

    assert sorted(probe_steps(TrainConfig(eval_every=250, eval_spacing="log"), 3000)) == \
        [250, 354, 500, 707, 1000, 1414, 2000, 2828]
    assert sorted(probe_steps(TrainConfig(eval_every=250), 1000)) == [250, 500, 750, 1000]
    assert probe_steps(TrainConfig(eval_every=0), 1000) == set()


def test_resume_refuses_another_config(polymnist_dir, tmp_path):
    train(tiny(polymnist_dir, "polymnist_mmvae", "train.max_steps=1"), tmp_path)
    with pytest.raises(ConfigError, match="config differs"):
        train(tiny(polymnist_dir, "polymnist_mmvae", "train.max_steps=2", "model.beta=3.0"), tmp_path, resume=True)


def test_checkpoint_loads_with_weights_only(polymnist_dir, tmp_path):
    train(tiny(polymnist_dir, "polymnist_mmvae", "train.max_steps=1"), tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["config"]["model"]["model"] == "mmvae" and state["step"] == 1
    assert not list(tmp_path.glob("*.tmp")), "no temporary file is left behind"


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(polymnist_dir, tmp_path):
    cfg = tiny(polymnist_dir, "polymnist_mmvae", "train.max_steps=50", "train.lr=1e30", "train.checkpoint_every=1")
    with pytest.raises(NonFiniteLoss, match=r"at step \d+.*last good checkpoint is .*checkpoint.pt \(step \d+\)"):
        train(cfg, tmp_path)
    state = load_checkpoint(tmp_path / "checkpoint.pt")  # still loads: nothing was damaged
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


@pytest.mark.parametrize("bad,key", [("train.epoch=3", "train.epoch"), ("train.epochs=many", "train.epochs"),
                                     ("model.prior=ebm model.bta=1", "model.bta")])
def test_config_errors_name_the_key(bad, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config("polymnist_mmvae", "cpu", bad.split())


def test_unknown_config_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="polymnist_mmvaeplus_ebm"):
        load_config("polymnist_mmvae_plus")


def test_every_config_and_profile_loads():
    for name in ("polymnist_mmvae", "polymnist_mmvae_ebm", "polymnist_mmvaeplus", "polymnist_mmvaeplus_ebm"):
        for profile in ("cpu", "paper"):
            cfg = load_config(name, profile)
            assert cfg.name == name and (cfg.model.prior == "ebm") == name.endswith("_ebm")
    assert load_config("polymnist_mmvaeplus", "paper").train.epochs == 250


def test_gpu_profile_is_the_cpu_recipe_batched_and_polymnist_at_the_papers_batch():
    """`base: cpu` applies the cpu profile and each experiment's cpu section first; the gpu
    profile then changes only what its file names, and PolyMNIST's MMVAE+ models keep the learned
    prior of w~ that their shipped gpu runs trained with (the cpu recipe took `unit` after them)."""
    from mmebm.config import to_dict

    for name in ("polymnist_mmvae", "polymnist_mmvaeplus_ebm", "polymnist_mopoe", "cub_mmvaeplus_ebm"):
        cpu, gpu = to_dict(load_config(name, "cpu")), to_dict(load_config(name, "gpu"))
        changed = {(part, k) for part in cpu if isinstance(cpu[part], dict) for k in cpu[part] if cpu[part][k] != gpu[part][k]}
        polymnist = name.startswith("polymnist")
        mmvaeplus = name == "polymnist_mmvaeplus_ebm"  # the one PolyMNIST MMVAE+ model in this list
        assert (cpu["model"]["aux_w"], gpu["model"]["aux_w"]) == (("unit", "learned") if mmvaeplus else ("learned", "learned")), name
        assert changed <= {("model", "batched"), *[("model", "aux_w")] * mmvaeplus, *[("train", "batch_size")] * polymnist}, (name, changed)
        assert gpu["model"]["batched"] and gpu["train"]["batch_size"] == (128 if polymnist else cpu["train"]["batch_size"])


def test_a_profile_that_is_its_own_base_is_an_error(tmp_path, monkeypatch):
    import mmebm.config as config

    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "loop.yaml").write_text("base: loop\n")
    monkeypatch.setattr(config, "CONFIG_DIR", tmp_path)
    with pytest.raises(ConfigError, match="its own base"):
        config._profile_layers("loop", {})


def test_paper_profile_stays_the_papers():
    """The cpu recipe lives in profile sections; the paper profile keeps the MMVAE+ settings."""
    for name in ("polymnist_mmvae", "polymnist_mmvae_ebm", "polymnist_mmvaeplus", "polymnist_mmvaeplus_ebm"):
        cfg = load_config(name, "paper")
        m, t = cfg.model, cfg.train
        assert (m.likelihood, m.lik_scale, m.posterior, m.net) == ("laplace", 0.75, "laplace", "resnet")
        assert (t.lr, t.amsgrad, t.batch_size, t.epochs, t.max_steps, cfg.data.limit) == (1e-3, True, 128, 250, None, None)
        assert m.prior == ("ebm" if name.endswith("_ebm") else "laplace")
    # in the cpu recipe, each EBM model and its twin differ only by the prior: N(0, I) against
    # the tilting of N(0, I) (and train alike)
    for base in ("polymnist_mmvae", "polymnist_mmvaeplus"):
        plain, ebm = load_config(base, "cpu"), load_config(base + "_ebm", "cpu")
        assert plain.model.prior == "gaussian" and ebm.model.prior == "ebm" and ebm.model.ebm_base == "gaussian"
        assert plain.model.replace(prior="ebm") == ebm.model and plain.train == ebm.train and plain.data == ebm.data


def test_two_process_gloo(polymnist_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
           "-m", "mmebm.train", "polymnist_mmvae_ebm", "--profile", "cpu", "--out", str(tmp_path),
           f"data.root={polymnist_dir}", *TINY, "train.max_steps=3"]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3
    rows = {r["name"]: float(r["value"]) for r in csv.DictReader(open(tmp_path / "metrics.csv"))}
    assert rows["rank_param_spread"] == 0.0, "the two ranks hold different parameters"
    assert r.stdout.count("trained polymnist_mmvae_ebm") == 1, "only rank 0 reports"


def test_resume_accepts_a_checkpoint_from_before_a_config_key_existed(polymnist_dir, tmp_path):
    from mmebm.train import save_checkpoint

    train(tiny(polymnist_dir, "polymnist_mmvae", "train.max_steps=2"), tmp_path / "run")
    path = tmp_path / "run" / "checkpoint.pt"
    state = load_checkpoint(path)
    del state["config"]["model"]["text_lik_weight"]  # as written by an older mmebm
    save_checkpoint(path, state)
    assert train(tiny(polymnist_dir, "polymnist_mmvae", "train.max_steps=3"), tmp_path / "run", resume=True) == 3
    with pytest.raises(ConfigError, match="differs"):  # a real difference still stops it
        train(tiny(polymnist_dir, "polymnist_mmvae", "train.max_steps=4", "model.beta=2.0"), tmp_path / "run",
              resume=True)


def test_coherence_during_training_logs_and_changes_nothing(polymnist_dir, tmp_path):
    """train.eval_every writes eval rows at step 0, every k steps and at the end, and the probe's
    own RNG leaves the training bit-identical to a run without it."""
    from mmebm.classifiers import Classifiers

    Classifiers(5).save(tmp_path / "clf")  # untrained judges are enough to exercise the loop
    base = ["train.max_steps=5", "train.eval_test=64", "train.eval_joint=50", f"train.eval_classifiers={tmp_path / 'clf'}"]
    train(tiny(polymnist_dir, "polymnist_mmvae_ebm", *base), tmp_path / "plain")
    train(tiny(polymnist_dir, "polymnist_mmvae_ebm", *base, "train.eval_every=2", "train.snapshots=true"),
          tmp_path / "probed")
    a = load_checkpoint(tmp_path / "plain" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "probed" / "checkpoint.pt")["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = [r for r in csv.DictReader(open(tmp_path / "probed" / "metrics.csv")) if r["split"] == "eval"]
    assert sorted({int(r["step"]) for r in rows}) == [0, 2, 4, 5]
    names = {r["name"] for r in rows}
    assert names == {"cross_coherence", "joint_coherence", "joint_top_digit", "self_reconstruction"}
    assert all(0 <= float(r["value"]) <= 1 for r in rows)
    # the parameters behind every probe, for judges that come later
    snaps = sorted((tmp_path / "probed" / "snapshots").glob("step_*.pt"))
    assert [load_checkpoint(p)["step"] for p in snaps] == [0, 2, 4, 5]
    last = load_checkpoint(snaps[-1])["model"]
    assert all(torch.equal(last[k], b[k]) for k in b)


def test_coherence_during_training_needs_classifiers(polymnist_dir, tmp_path):
    with pytest.raises(ConfigError, match="eval_every.*needs the classifiers"):
        train(tiny(polymnist_dir, "polymnist_mmvae", "train.max_steps=1", "train.eval_every=1",
                   f"train.eval_classifiers={tmp_path / 'none'}"), tmp_path / "run")


def test_long_profile_is_the_cpu_recipe_longer():
    """`long` (issue #36) keeps every value of the cpu recipe and changes the run's length, its lr
    schedule and its probes only, for the EBM models the EBM's penalty (the paper's update ran
    away in the first long run: results/long/README.md, section 4)."""
    from mmebm.config import to_dict

    for name in ("polymnist_mmvae", "polymnist_mmvae_ebm", "polymnist_mmvaeplus", "polymnist_mmvaeplus_ebm", "polymnist_mopoe"):
        cpu, long = to_dict(load_config(name, "cpu")), to_dict(load_config(name, "long"))
        penalty = long["model"].pop("ebm_penalty"), cpu["model"].pop("ebm_penalty")
        assert penalty == ((0.03, 0.0) if name.endswith("_ebm") else (0.0, 0.0)), name
        assert cpu["model"] == long["model"] and cpu["data"] == long["data"]
        changed = {k for k in cpu["train"] if cpu["train"][k] != long["train"][k]}
        assert changed == {"epochs", "max_steps", "lr_schedule", "lr_decay_from", "eval_spacing", "snapshots"}, name
        assert long["train"]["epochs"] == 20 and long["train"]["max_steps"] is None

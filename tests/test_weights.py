"""Shipped weights: fp16 export with a manifest, the hash check, evaluation-only install."""

import json

import pytest
import torch

from mmebm.config import ConfigError, load_config
from mmebm.runs import MissingWeights, ensure_experiments, ensure_seeded_runs, install_shipped, run_dir, shipped_seeds
from mmebm.train import load_checkpoint, load_run, train
from mmebm.weights import ShippedWeightsError, check, export, load_shipped

TINY = ["model.net=conv", "model.z_dim=8", "model.w_dim=4", "model.langevin_steps=5", "data.limit=128",
        "train.batch_size=32", "train.max_steps=3", "train.eval_every=0", "train.device=cpu"]


@pytest.fixture(scope="module")
def trained(polymnist_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    cfg = load_config("polymnist_mmvaeplus_ebm", "cpu", [f"data.root={polymnist_dir}", *TINY])
    train(cfg, root / "run", progress=False)
    return root / "run"


def test_export_is_fp16_with_a_manifest_and_loads_back_close(trained, tmp_path):
    manifest = export(trained, tmp_path / "shipped", machine={"processor": "test", "sgemm_gflops": 1.0})
    state = torch.load(tmp_path / "shipped" / "model.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    assert manifest["steps"] == 3 and manifest["config"]["name"] == "polymnist_mmvaeplus_ebm"
    assert json.loads((tmp_path / "shipped" / "manifest.json").read_text()) == json.loads(json.dumps(manifest))
    assert len(manifest["sha256"]) == 64 and manifest["train_wall_s"] >= 0
    original, _ = load_run(trained)
    shipped, cfg, _ = load_shipped(tmp_path / "shipped")
    torch.manual_seed(0)
    z = torch.randn(4, cfg.model.z_dim)
    w = torch.randn(4, 5, cfg.model.w_dim)
    # fp16 keeps about 3 significant digits of every weight
    torch.testing.assert_close(shipped.decode_z(z, w), original.decode_z(z, w), rtol=2e-2, atol=2e-2)
    for k, v in shipped.state_dict().items():
        assert v.dtype == original.state_dict()[k].dtype


def test_a_damaged_file_is_refused(trained, tmp_path):
    export(trained, tmp_path / "shipped", machine={"processor": "test"})
    check(tmp_path / "shipped")
    path = tmp_path / "shipped" / "model.pt"
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ShippedWeightsError, match="sha256"):
        load_shipped(tmp_path / "shipped")
    with pytest.raises(ShippedWeightsError, match="manifest"):
        check(tmp_path)


def test_installed_weights_evaluate_but_do_not_resume(trained, polymnist_dir, tmp_path):
    from mmebm.classifiers import Classifiers
    from mmebm.runs import ensure_evaluated

    export(trained, tmp_path / "weights" / "polymnist_mmvaeplus_ebm-cpu-s0", machine={"processor": "test"})
    (tmp_path / "weights" / "polymnist_mmvaeplus_ebm-cpu-sx").mkdir()  # not a seed: ignored
    assert shipped_seeds(tmp_path / "weights", "polymnist_mmvaeplus_ebm", "cpu") == [0]
    assert shipped_seeds(tmp_path / "weights", "polymnist_mmvaeplus", "cpu") == []
    here = [f"data.root={polymnist_dir}", "data.test_limit=100", *TINY]
    runs = ensure_seeded_runs(["polymnist_mmvaeplus_ebm"], "cpu", [0], tmp_path / "runs", tmp_path / "weights", here)
    model, d, source = runs["polymnist_mmvaeplus_ebm", 0]
    assert source == "shipped"
    assert d.name == run_dir(tmp_path / "runs", "polymnist_mmvaeplus_ebm", "cpu", 0).name + "-shipped"
    state = load_checkpoint(d / "checkpoint.pt")
    assert state["step"] == 3 and state["shipped"]["sha256"] and "opt_vae" not in state
    assert state["config"]["data"]["test_limit"] == 100  # where the data is and how much to evaluate: from here
    assert (d / "metrics.csv").read_text() == (trained / "metrics.csv").read_text()
    stamp = (d / "checkpoint.pt").stat().st_mtime_ns
    here_data = load_config("polymnist_mmvaeplus_ebm", "cpu", here).data
    install_shipped(tmp_path / "weights" / "polymnist_mmvaeplus_ebm-cpu-s0", d, here_data)
    assert (d / "checkpoint.pt").stat().st_mtime_ns == stamp, "the same weights are not written again"
    Classifiers(5).save(tmp_path / "clf")
    metrics = ensure_evaluated(d, tmp_path / "clf", n_joint=50, device="cpu")
    assert metrics["step"] == 3 and metrics["n_test"] == 100 and 0 <= metrics["cross_coherence"] <= 1
    # the coherent samples' digits count exactly the coherent samples
    assert sum(metrics["joint_coherent_digit_histogram"]) == round(metrics["joint_coherence"] * 50)
    judges = Classifiers(5)  # other classifiers: the cached metrics.json is stale
    judges.test_accuracy = [0.5] * 5
    judges.save(tmp_path / "clf")
    assert ensure_evaluated(d, tmp_path / "clf", n_joint=50, device="cpu")["classifier_accuracy"] == [0.5] * 5
    check_shipped_evaluation(runs, d, tmp_path)
    check_shipped_refit_evaluation(runs, tmp_path)
    cfg = load_config("polymnist_mmvaeplus_ebm", "cpu", [f"data.root={polymnist_dir}", *TINY, "train.max_steps=4"])
    with pytest.raises(ConfigError, match="shipped weights"):
        train(cfg, d, resume=True)
    with pytest.raises(FileExistsError, match="trained here"):  # a run trained here is never overwritten
        install_shipped(tmp_path / "weights" / "polymnist_mmvaeplus_ebm-cpu-s0", trained)
    # without shipped weights for a seed, that run is an error that says how to train it, unless
    # training is asked for (weights_dir None; seeds given per config); then it is there to evaluate
    seed1 = ({"polymnist_mmvaeplus_ebm": [1]}, tmp_path / "runs")
    with pytest.raises(MissingWeights, match="TRAIN=1"):
        ensure_seeded_runs(["polymnist_mmvaeplus_ebm"], "cpu", *seed1, tmp_path / "weights", [f"data.root={polymnist_dir}", *TINY])
    ensure_seeded_runs(["polymnist_mmvaeplus_ebm"], "cpu", *seed1, None, [f"data.root={polymnist_dir}", *TINY])
    runs = ensure_seeded_runs(["polymnist_mmvaeplus_ebm"], "cpu", *seed1, tmp_path / "weights",
                              [f"data.root={polymnist_dir}", *TINY])
    assert runs["polymnist_mmvaeplus_ebm", 1][2] == "trained here"
    assert load_checkpoint(runs["polymnist_mmvaeplus_ebm", 1][1] / "checkpoint.pt")["config"]["train"]["seed"] == 1


def test_unseeded_runs_take_shipped_weights_where_present(trained, polymnist_dir, tmp_path):
    """04_cub's path: one run per config, named <config>-<profile> under weights/ and runs/."""
    export(trained, tmp_path / "weights" / "polymnist_mmvaeplus_ebm-cpu", machine={"processor": "test"})
    here = [f"data.root={polymnist_dir}", *TINY]
    both = (["polymnist_mmvaeplus_ebm", "polymnist_mmvaeplus"], "cpu", tmp_path / "runs", here)
    with pytest.raises(MissingWeights, match="polymnist_mmvaeplus-cpu"):  # not shipped, not trained: not trained now
        ensure_experiments(*both, tmp_path / "weights")
    ensure_experiments(["polymnist_mmvaeplus"], "cpu", tmp_path / "runs", here)  # no weights_dir: trains
    models, dirs, sources = ensure_experiments(*both, tmp_path / "weights")
    assert sources == {"polymnist_mmvaeplus_ebm": "shipped", "polymnist_mmvaeplus": "trained here"}
    assert dirs["polymnist_mmvaeplus_ebm"].name == "polymnist_mmvaeplus_ebm-cpu-shipped"
    assert "shipped" in load_checkpoint(dirs["polymnist_mmvaeplus_ebm"] / "checkpoint.pt")
    assert load_checkpoint(dirs["polymnist_mmvaeplus"] / "checkpoint.pt")["step"] == 3
    _, _, sources = ensure_experiments(["polymnist_mmvaeplus_ebm"], "cpu", tmp_path / "runs", here)  # no weights_dir
    assert sources == {"polymnist_mmvaeplus_ebm": "trained here"}


def test_committed_weights_match_their_manifests_and_the_configs():
    """Every shipped run in weights/ passes its hash check, and its config is what the cpu
    profile gives today (so `make reproduce TRAIN=1` retrains the same thing), up to run control."""
    from pathlib import Path

    from mmebm.config import from_dict, to_dict
    from mmebm.train import _comparable, run_length

    root = Path(__file__).resolve().parents[1] / "weights"
    shipped = sorted(d.parent for d in root.glob("*/manifest.json"))
    if not shipped:
        pytest.skip("no shipped weights in this checkout")
    for d in shipped:
        manifest = check(d)
        name, profile, *seed = d.name.split("-")  # <config>-<profile>[-s<seed>] (CUB: one run, seed 0)
        cfg = load_config(name, profile, [f"train.seed={seed[0][1:] if seed else 0}"])
        if cfg.model.dataset != "polymnist":  # CUB: the trainer takes vocab_size from the captions (set_vocab_size)
            assert cfg.model.vocab_size == 0 and manifest["config"]["model"]["vocab_size"] > 0, f"{d}: vocabulary size"
            cfg.model.vocab_size = manifest["config"]["model"]["vocab_size"]
        ignore = {"root", "test_limit"}  # where the data lived, how much was probed: replaced on install
        # through from_dict, as --resume does: a key added since the export gets its default
        saved = _comparable(json.loads(json.dumps(to_dict(from_dict(manifest["config"])))))
        now = _comparable(json.loads(json.dumps(to_dict(cfg))))
        for part in ("model", "train"):
            assert saved[part] == now[part], f"{d}: {part} differs from configs/ + profile {profile}"
        assert {k: v for k, v in saved["data"].items() if k not in ignore} == \
            {k: v for k, v in now["data"].items() if k not in ignore}
        # max_steps, or for a length in epochs (the long profile) its full batches of the 60,000 training tuples
        total = cfg.train.max_steps if cfg.train.max_steps is not None else \
            run_length(cfg.train, 60_000 // cfg.train.batch_size)
        if manifest["config"]["train"].get("time_budget_s") is None:
            assert manifest["steps"] == total, f"{d}: shipped at step {manifest['steps']}"
        else:  # stopped by its time budget (the gpu runs, results/gpu_h200): the manifest says where
            assert 0 < manifest["steps"] <= total, f"{d}: shipped at step {manifest['steps']}"


def test_warm_start_continues_shipped_weights_with_their_history(trained, polymnist_dir, tmp_path):
    """A longer run from shipped weights: it starts at their step and parameters (fp16 -> fp32),
    keeps their learning curves, refuses another config, and its manifest lists the segment
    before it, whose training time counts in the total."""
    export(trained, tmp_path / "shipped", machine={"processor": "earlier", "sgemm_gflops": 1.0})
    first = json.loads((tmp_path / "shipped" / "manifest.json").read_text())
    start, _, _ = load_shipped(tmp_path / "shipped")
    more = [f"data.root={polymnist_dir}", *TINY, "train.max_steps=5"]
    cfg = load_config("polymnist_mmvaeplus_ebm", "cpu", more)
    cont = tmp_path / "cont"
    with pytest.raises(ConfigError, match="model config differs"):
        train(load_config("polymnist_mmvaeplus_ebm", "cpu", more + ["model.beta=1.0"]), cont, progress=False,
              warm_start=tmp_path / "shipped")
    with pytest.raises(ConfigError, match="resume"):
        train(cfg, cont, resume=True, progress=False, warm_start=tmp_path / "shipped")
    with pytest.raises(ConfigError, match="train config differs"):  # the lr is part of the recipe
        train(load_config("polymnist_mmvaeplus_ebm", "cpu", more + ["train.lr=0.0"]), tmp_path / "other",
              progress=False, warm_start=tmp_path / "shipped")
    assert train(cfg, cont, progress=False, warm_start=tmp_path / "shipped") == 5
    state = load_checkpoint(cont / "checkpoint.pt")
    assert state["step"] == 5 and state["history"][0]["steps"] == 3
    assert state["history"][0]["sha256"] == first["sha256"] and state["train_wall_s"] > 0
    steps = [int(line.split(",")[0]) for line in (cont / "metrics.csv").read_text().splitlines()[1:]]
    assert steps[0] <= 3 and max(steps) == 5  # the shipped curves, then the new steps
    moved = load_run(cont)[0].state_dict()
    assert any(not torch.equal(moved[k], v) for k, v in start.state_dict().items() if v.is_floating_point())
    with pytest.raises(ConfigError, match="exists"):
        train(cfg, cont, progress=False, warm_start=tmp_path / "shipped")
    with open(cont / "metrics.csv", "a") as f:  # a row logged after the checkpoint, by a run stopped from outside
        f.write("6,train,loss,1.0\n")
    manifest = export(cont, tmp_path / "longer", machine={"processor": "test", "sgemm_gflops": 1.0})
    assert "\n6,train" not in (tmp_path / "longer" / "metrics.csv").read_text()
    assert manifest["steps"] == 5 and manifest["history"][0]["machine"]["processor"] == "earlier"
    assert manifest["train_wall_s"] == pytest.approx(first["train_wall_s"] + state["train_wall_s"], abs=0.1)
    # resuming the continued run keeps its history
    assert train(load_config("polymnist_mmvaeplus_ebm", "cpu", more[:-1] + ["train.max_steps=6"]), cont,
                 resume=True, progress=False) == 6
    assert load_checkpoint(cont / "checkpoint.pt")["history"] == state["history"]


def test_warmup_ramps_the_lr_from_where_the_optimizer_starts(trained, polymnist_dir, tmp_path):
    """train.warmup_steps: a linear lr ramp over the first steps of a fresh optimizer, here the
    Adam of a warm start at step 3 (allowed: the shipped run had no warm-up), for the VAE and the
    EBM alike, and a resumed run goes on along the same ramp."""
    export(trained, tmp_path / "shipped", machine={"processor": "test"})
    more = [f"data.root={polymnist_dir}", *TINY, "train.warmup_steps=4", "train.log_every=1"]
    cfg = load_config("polymnist_mmvaeplus_ebm", "cpu", more + ["train.max_steps=5"])
    cont = tmp_path / "cont"
    assert train(cfg, cont, progress=False, warm_start=tmp_path / "shipped") == 5
    ebm_group = load_checkpoint(cont / "checkpoint.pt")["opt_ebm"]["param_groups"][0]
    assert ebm_group["lr"] == pytest.approx(cfg.model.ebm_lr * 2 / 4)
    train(load_config("polymnist_mmvaeplus_ebm", "cpu", more + ["train.max_steps=8"]), cont, resume=True, progress=False)
    rows = [line.split(",") for line in (cont / "metrics.csv").read_text().splitlines()[1:]]
    lr = {int(step): float(value) for step, split, name, value in rows if name == "lr"}
    assert lr == pytest.approx({4: cfg.train.lr / 4, 5: cfg.train.lr / 2, 6: cfg.train.lr * 3 / 4,
                                7: cfg.train.lr, 8: cfg.train.lr})


def check_shipped_evaluation(runs, d, tmp_path):
    """An evaluation shipped beside the weights is reused for the same weights and judges only."""
    from mmebm.classifiers import Classifiers
    from mmebm.evaluate import SHIPPED_FILE, ship
    from mmebm.runs import ensure_all_evaluated

    shipped = tmp_path / "weights" / "polymnist_mmvaeplus_ebm-cpu-s0"
    with pytest.raises(ValueError, match="not a current evaluation"):
        ship(d, _other_weights(shipped, tmp_path))
    ship(d, shipped)
    here = json.loads((d / "metrics.json").read_text())
    (d / "metrics.json").unlink()
    moved = json.loads((shipped / SHIPPED_FILE).read_text())  # shipped from another machine's judge folders
    for b in moved["judges"].values():
        b["folder"] = "/elsewhere/" + b["folder"].rsplit("/", 1)[-1]
    (shipped / SHIPPED_FILE).write_text(json.dumps(moved))
    lines = []

    def evaluate(**kw):
        return ensure_all_evaluated(runs, tmp_path / "clf", 50, "cpu", weights_dir=tmp_path / "weights",
                                    log=lambda line, **_: lines.append(line), **kw)

    m = evaluate()["polymnist_mmvaeplus_ebm", 0]
    assert m["evaluated"] == "shipped" and "shipped evaluation" in lines[-1]
    assert {k: v for k, v in m.items() if k not in ("run", "evaluated")} == {
        k: v for k, v in here.items() if k not in ("run", "evaluated")}  # the judges' folders are this machine's
    assert "evaluated before" in (evaluate(), lines[-1])[1]
    m = evaluate(reevaluate=True)["polymnist_mmvaeplus_ebm", 0]  # asked to: evaluated here, same numbers
    assert m["evaluated"] == "here" and "evaluated here" in lines[-1] and m["judges"] == here["judges"]
    (d / "metrics.json").unlink()
    torch.manual_seed(1)  # other judges (evaluate seeds the RNG: Classifiers(5) alone would draw the same weights)
    Classifiers(5).save(tmp_path / "clf")  # the shipped evaluation does not apply
    assert evaluate()["polymnist_mmvaeplus_ebm", 0]["evaluated"] == "here"
    assert (shipped / SHIPPED_FILE).is_file()


def check_shipped_refit_evaluation(runs, tmp_path):
    """The refit of shipped weights (made where the tables are made) is keyed by the weights and the
    refitted f_alpha: its shipped evaluation is reused for the same refit only."""
    from mmebm.evaluate import REFIT_DIR, SHIPPED_FILE, ship
    from mmebm.refit import RefitConfig
    from mmebm.runs import ensure_all_evaluated, ensure_refitted_runs

    shipped = tmp_path / "weights" / "polymnist_mmvaeplus_ebm-cpu-s0"
    sha = json.loads((shipped / "manifest.json").read_text())["sha256"]

    def evaluate(refitted):
        return next(iter(ensure_all_evaluated(refitted, tmp_path / "clf", 50, "cpu", weights_dir=tmp_path / "weights",
                                              log=lambda *a, **k: None).values()))

    refitted = ensure_refitted_runs(runs, tmp_path / "runs", RefitConfig(steps=2, n_train=64), "cpu")
    r = next(iter(refitted.values()))[1]
    assert r.name.endswith("-shipped-refit")
    here = evaluate(refitted)
    assert here["evaluated"] == "here" and here["weights_sha256"] not in (None, sha)
    ship(r, shipped)
    assert (shipped / REFIT_DIR / SHIPPED_FILE).is_file() and (shipped / SHIPPED_FILE).is_file()
    (r / "metrics.json").unlink()
    again = evaluate(refitted)
    assert again["evaluated"] == "shipped" and again["judges"] == here["judges"]
    other = ensure_refitted_runs(runs, tmp_path / "runs", RefitConfig(steps=3, n_train=64), "cpu")  # another refit
    assert evaluate(other)["evaluated"] == "here"


def _other_weights(shipped, tmp_path):
    """A copy of the shipped weights' folder with another sha256 in its manifest."""
    other = tmp_path / "weights_other"
    other.mkdir(exist_ok=True)
    manifest = json.loads((shipped / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "sha256": "0" * 64}))
    return other

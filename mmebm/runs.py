"""Run folders for the notebooks and `make reproduce`: train, evaluate, or load what is already there.

A finished run is never retrained and an interrupted one resumes, so the figures can be
regenerated from saved runs alone.
"""

import json
import shutil
import time
from pathlib import Path

import torch

from . import classifiers as clf
from .config import from_dict, load_config, to_dict
from .evaluate import evaluate
from .train import load_checkpoint, load_run, save_checkpoint, train
from .weights import load_shipped


def ensure_classifiers(polymnist_dir, out_dir, epochs=clf.TrainConfig.epochs, limit=None, shipped=None):
    """The coherence classifiers in `out_dir`: copied from `shipped` (a folder written by
    Classifiers.save, e.g. weights/classifiers) if it holds them, else trained, unless already there."""
    out_dir = Path(out_dir)
    if not (out_dir / clf.INFO_FILE).is_file() and shipped is not None and (Path(shipped) / clf.INFO_FILE).is_file():
        shutil.copytree(shipped, out_dir, dirs_exist_ok=True)
    if not (out_dir / clf.INFO_FILE).is_file():
        argv = ["--data", str(polymnist_dir), "--out", str(out_dir), "--epochs", str(epochs)]
        threads = torch.get_num_threads()  # the CLI picks its own thread count; keep ours
        try:
            clf.main(argv + (["--limit", str(limit)] if limit else []))
        finally:
            torch.set_num_threads(threads)
    return clf.Classifiers.load(out_dir)


def ensure_trained(config, profile, run_dir, overrides=()):
    """Train `config` under `profile` into `run_dir`, resuming (or doing nothing) if a checkpoint is there.
    Returns (model in eval mode, config)."""
    cfg = load_config(config, profile, overrides)
    resume = (Path(run_dir) / "checkpoint.pt").is_file()
    t0 = time.perf_counter()
    step = train(cfg, run_dir, resume=resume, progress=False)
    print(f"{config}: step {step} in {run_dir} ({'resumed or loaded' if resume else 'trained'}, "
          f"{time.perf_counter() - t0:.0f} s)")
    return load_run(run_dir)


def run_dir(runs_dir, config, profile, seed=None):
    """Where `config` trained under `profile` lives: RUNS_DIR/<config>-<profile>, with -s<seed>
    appended for the seeded PolyMNIST runs (the same name under weights/ for shipped ones)."""
    return Path(runs_dir) / (f"{config}-{profile}" + ("" if seed is None else f"-s{seed}"))


def ensure_experiments(configs, profile, runs_dir, overrides=(), weights_dir=None):
    """`ensure_run` for each config (one run each, no seed in its name); returns
    ({config: model}, {config: run folder}, {config: "shipped" | "trained here"})."""
    runs = {name: ensure_run(name, profile, run_dir(runs_dir, name, profile), weights_dir, overrides) for name in configs}
    return ({name: r[0] for name, r in runs.items()}, {name: r[1] for name, r in runs.items()},
            {name: r[2] for name, r in runs.items()})


def ensure_run(config, profile, run_folder, weights_dir=None, overrides=()):
    """Shipped weights from WEIGHTS_DIR/<run_folder's name> where they exist (unless weights_dir
    is None), installed into <run_folder>-shipped with this machine's data settings; else
    `ensure_trained` into run_folder. Returns (model, run folder, "shipped" | "trained here")."""
    d = Path(run_folder)
    shipped = None if weights_dir is None else Path(weights_dir) / d.name
    if shipped is not None and (shipped / "manifest.json").is_file():
        d = d.with_name(d.name + "-shipped")
        here = load_config(config, profile, overrides).data
        print(f"{d.name}: shipped weights {shipped}")
        return install_shipped(shipped, d, here), d, "shipped"
    if weights_dir is not None:
        print(f"{d.name}: no shipped weights at {shipped}; training here")
    return ensure_trained(config, profile, d, overrides)[0], d, "trained here"


def install_shipped(weights_dir, run_dir, data=None):
    """Put shipped weights (mmebm.weights) into RUN_DIR as an evaluation-only checkpoint (no
    optimizer state: `train` refuses to resume it) with the run's learning curves; returns the
    model in eval mode. `data` (a DataConfig) replaces the manifest's data section: where the
    data is on this machine and how much of the test split to evaluate on are not the weights'.
    Does nothing but load if RUN_DIR already holds these weights; refuses to overwrite a run
    that was trained here."""
    model, _, manifest = load_shipped(weights_dir)
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoint.pt"
    config = from_dict(manifest["config"])
    if data is not None:
        config.data = data
    if ckpt.is_file():
        old = load_checkpoint(ckpt)
        if "shipped" not in old:
            raise FileExistsError(f"{run_dir} holds a run trained here; install shipped weights elsewhere")
        if old["shipped"]["sha256"] == manifest["sha256"] and to_dict(from_dict(old["config"])) == to_dict(config):
            return model
    run_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(ckpt, {"model": model.state_dict(), "step": manifest["steps"], "config": to_dict(config),
                           "shipped": manifest})
    (run_dir / "metrics.csv").write_bytes((Path(weights_dir) / "metrics.csv").read_bytes())
    return model


INDEX_FILE = "polymnist_runs.json"


def shipped_seeds(weights_dir, config, profile):
    """The seeds of `config` under `profile` that WEIGHTS_DIR ships weights for, sorted."""
    suffixes = (m.parent.name.rsplit("-s", 1)[1] for m in Path(weights_dir).glob(f"{config}-{profile}-s*/manifest.json"))
    return sorted(int(s) for s in suffixes if s.isdigit())


def ensure_seeded_runs(configs, profile, seeds, runs_dir, weights_dir=None, overrides=()):
    """The runs of `configs` x `seeds` (a list for every config, or {config: list}): shipped
    weights from WEIGHTS_DIR/<config>-<profile>-s<seed> where they exist (unless weights_dir is
    None), installed into RUNS_DIR/<that name>-shipped, else trained (or resumed) with
    train.seed=seed into RUNS_DIR/<config>-<profile>-s<seed>. Writes RUNS_DIR/polymnist_runs.json,
    the list the results notebook reads. Returns {(config, seed): (model, run folder, "shipped" | "trained here")}."""
    out = {}
    for name in configs:
        for seed in (seeds[name] if isinstance(seeds, dict) else seeds):
            out[name, seed] = ensure_run(name, profile, run_dir(runs_dir, name, profile, seed), weights_dir,
                                         [*overrides, f"train.seed={seed}"])
    index = [{"config": name, "seed": seed, "run": str(d), "weights": source}
             for (name, seed), (_, d, source) in out.items()]
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    (Path(runs_dir) / INDEX_FILE).write_text(json.dumps({"profile": profile, "runs": index}, indent=2) + "\n")
    return out


def ensure_evaluated(run_dir, classifiers_dir, n_joint=10_000, device="auto"):
    """RUN_DIR/metrics.json, computed if missing, older than the checkpoint, or for another n_joint
    or other classifiers (told apart by their test accuracies)."""
    path = Path(run_dir) / "metrics.json"
    if path.is_file():
        metrics = json.loads(path.read_text())
        same_step = metrics.get("step") == load_checkpoint(Path(run_dir) / "checkpoint.pt")["step"]
        judges = json.loads((Path(classifiers_dir) / clf.INFO_FILE).read_text()).get("test_accuracy")
        if same_step and metrics.get("n_joint") == n_joint and metrics.get("classifier_accuracy") == judges:
            return metrics
    return evaluate(run_dir, classifiers_dir, n_joint, device, progress=False)


def coherence_table(metrics):
    """A plain-text table of joint / cross coherence (and joint with z ~ p0) per run."""
    lines = [f"{'model':<26}{'joint':>8}{'cross':>8}{'joint, z~p0':>13}"]
    for name, m in metrics.items():
        p0 = f"{m['joint_coherence_p0']:.3f}" if "joint_coherence_p0" in m else "-"
        lines.append(f"{name:<26}{m['joint_coherence']:>8.3f}{m['cross_coherence']:>8.3f}{p0:>13}")
    return "\n".join(lines)

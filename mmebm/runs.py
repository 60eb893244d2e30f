"""Run folders for the notebooks and `make reproduce`: train, evaluate, or load what is already there.

A finished run is never retrained and an interrupted one resumes, so the figures can be
regenerated from saved runs alone.
"""

import json
import time
from pathlib import Path

import torch

from . import classifiers as clf
from .evaluate import evaluate
from .experiment import load_config
from .train import load_checkpoint, load_run, train


def ensure_classifiers(polymnist_dir, out_dir, epochs=clf.TrainConfig.epochs, limit=None):
    """The coherence classifiers in `out_dir`, trained first if missing."""
    if not (Path(out_dir) / clf.INFO_FILE).is_file():
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


def run_dir(runs_dir, config, profile):
    """Where `config` trained under `profile` lives: RUNS_DIR/<config>-<profile>."""
    return Path(runs_dir) / f"{config}-{profile}"


def ensure_experiments(configs, profile, runs_dir, overrides=()):
    """`ensure_trained` for each config; returns ({config: model}, {config: run folder})."""
    dirs = {name: run_dir(runs_dir, name, profile) for name in configs}
    return {name: ensure_trained(name, profile, d, overrides)[0] for name, d in dirs.items()}, dirs


def ensure_evaluated(run_dir, classifiers_dir, n_joint=10_000, device="auto"):
    """RUN_DIR/metrics.json, computed if missing, older than the checkpoint, or for another n_joint."""
    path = Path(run_dir) / "metrics.json"
    if path.is_file():
        metrics = json.loads(path.read_text())
        same_step = metrics.get("step") == load_checkpoint(Path(run_dir) / "checkpoint.pt")["step"]
        if same_step and metrics.get("n_joint") == n_joint:
            return metrics
    return evaluate(run_dir, classifiers_dir, n_joint, device, progress=False)


def coherence_table(metrics):
    """A plain-text table of joint / cross coherence (and joint with z ~ p0) per run."""
    lines = [f"{'model':<26}{'joint':>8}{'cross':>8}{'joint, z~p0':>13}"]
    for name, m in metrics.items():
        p0 = f"{m['joint_coherence_p0']:.3f}" if "joint_coherence_p0" in m else "-"
        lines.append(f"{name:<26}{m['joint_coherence']:>8.3f}{m['cross_coherence']:>8.3f}{p0:>13}")
    return "\n".join(lines)

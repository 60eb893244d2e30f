"""Shipped weights: trained models kept in the repository, so a CPU reader sees learned models.

    python -m mmebm.weights export RUN_DIR weights/NAME   # fp16, evaluation only, with a manifest
    python -m mmebm.weights check weights/                # verify every file against its manifest

A shipped run is a folder with `model.pt` (the model's state dict in fp16; no optimizer state,
so it cannot resume training), `metrics.csv` (the run's learning curves) and `manifest.json`:
the config, the commit that trained it, steps, training wall time, the machine (processor,
threads, torch, and its sgemm GFLOP/s so a reader can scale the time) and the sha256 of
`model.pt`. `load_shipped` checks that hash before it loads, then casts back to fp32.
"""

import argparse
import csv
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from .config import from_dict
from .models import build_model

MODEL_FILE, MANIFEST_FILE, CURVES_FILE = "model.pt", "manifest.json", "metrics.csv"


def sgemm_gflops(n=2048, repeats=5):
    """Best-of-`repeats` float32 n x n matmul throughput of this process, in GFLOP/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def processor_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info():
    """What a training time or a bit-exactness claim depends on."""
    info = {"processor": processor_name(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "sgemm_gflops": round(sgemm_gflops(), 1)}
    if torch.cuda.is_available():  # a GPU run: the card and its CUDA
        info |= {"gpu": torch.cuda.get_device_name(), "cuda": torch.version.cuda}
    return info


def git_commit(repo=Path(__file__).resolve().parents[1]):
    """HEAD (+uncommitted if tracked files differ), or $MMEBM_COMMIT where the code is a copy
    without its git history (a GPU machine that got the working tree only)."""
    if os.environ.get("MMEBM_COMMIT"):
        return os.environ["MMEBM_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def train_wall_seconds(metrics_csv):
    """Training wall time of a run, summed over resumed sessions (coherence probes excluded)."""
    rows = list(csv.DictReader(open(metrics_csv)))
    return sum(float(r["value"]) for r in rows if r["name"] == "wall_s") - sum(
        float(r["value"]) for r in rows if r["name"] == "eval_s")


def run_wall_seconds(state, run_dir):
    """Training time of a run up to its checkpoint, earlier warm-start segments included: the
    checkpoint's own count where it has one (it survives a run stopped from outside), else metrics.csv."""
    if "train_wall_s" not in state:
        return train_wall_seconds(Path(run_dir) / CURVES_FILE)
    return state["train_wall_s"] + sum(h["train_wall_s"] for h in state.get("history", []))


def export(run_dir, out_dir, machine=None, train_wall_s=None, note=None):
    """Write RUN_DIR's model as a shipped run into OUT_DIR; returns the manifest. `machine`:
    the machine that trained it (default: this one, measured now); `train_wall_s`: the training
    time when metrics.csv lacks it (a run stopped from outside); `note`: how it was trained."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    half = {k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (MODEL_FILE + ".tmp")
    torch.save(half, tmp)
    os.replace(tmp, out_dir / MODEL_FILE)
    # the curves up to the checkpoint: a run stopped from outside may have logged a few steps past it
    lines = (run_dir / CURVES_FILE).read_text().splitlines(keepends=True)
    (out_dir / CURVES_FILE).write_text(lines[0] + "".join(r for r in lines[1:] if int(r.split(",", 1)[0]) <= state["step"]))
    manifest = {
        "config": state["config"],
        "commit": git_commit(),
        "steps": state["step"],
        "train_wall_s": round(train_wall_s if train_wall_s is not None else run_wall_seconds(state, run_dir), 1),
        "machine": machine or machine_info(),
        "exported": time.strftime("%Y-%m-%d"),
        "sha256": sha256(out_dir / MODEL_FILE),
    }
    if state.get("history"):  # warm-started from shipped weights: the segments before this one
        manifest["history"] = state["history"]
    if note:
        manifest["note"] = note
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


class ShippedWeightsError(RuntimeError):
    pass


def read_manifest(folder):
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise ShippedWeightsError(f"no {MANIFEST_FILE} in {folder}: export a run with "
                                  f"`python -m mmebm.weights export RUN_DIR {folder}`")
    return json.loads(path.read_text())


def check(folder):
    """The manifest of a shipped run, after checking model.pt against its sha256."""
    manifest = read_manifest(folder)
    path = Path(folder) / MODEL_FILE
    if not path.is_file():
        raise ShippedWeightsError(f"{path} is missing (a git-lfs pointer or a partial checkout?)")
    if sha256(path) != manifest["sha256"]:
        raise ShippedWeightsError(f"{path} does not match the sha256 in its manifest: the file is damaged or "
                                  "was replaced; check it out again, or retrain (make reproduce TRAIN=1)")
    return manifest


def load_shipped(folder, device="cpu"):
    """(model in eval mode, fp32, experiment config, manifest) of a shipped run."""
    manifest = check(folder)
    cfg = from_dict(manifest["config"])
    model = build_model(cfg.model)
    state = torch.load(Path(folder) / MODEL_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.to(device).eval(), cfg, manifest


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mmebm.weights", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="RUN_DIR -> fp16 evaluation-only weights with a manifest")
    e.add_argument("run_dir")
    e.add_argument("out_dir")
    e.add_argument("--train-wall-s", type=float, help="training time, if the run's metrics.csv lacks it")
    e.add_argument("--note", help="how the run was trained (threads, what else ran beside it)")
    c = sub.add_parser("check", help="verify shipped runs against their manifests")
    c.add_argument("root", help="a shipped run, or a folder of them")
    args = p.parse_args(argv)
    if args.cmd == "export":
        m = export(args.run_dir, args.out_dir, train_wall_s=args.train_wall_s, note=args.note)
        print(f"{args.out_dir}: step {m['steps']}, {m['train_wall_s']:.0f} s of training, sha256 {m['sha256'][:12]}")
        return 0
    root = Path(args.root)
    folders = [root] if (root / MANIFEST_FILE).is_file() else sorted(d.parent for d in root.glob(f"*/{MANIFEST_FILE}"))
    if not folders:
        print(f"error: no shipped run (no {MANIFEST_FILE}) in {root}", file=sys.stderr)
        return 2
    try:
        for d in folders:
            m = check(d)
            print(f"ok  {d}  step {m['steps']}  {m['machine']['processor']}")
    except ShippedWeightsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Evaluation: python -m mmebm.evaluate RUN_DIR [--classifiers DIR] [--n-joint 10000]

Writes RUN_DIR/metrics.json: joint and cross coherence as in MMVAE+ (SPEC.md section 4), the 5x5
cross-coherence matrix, the digits of the joint samples, the classifiers' test accuracies, and the config evaluated. For the EBM
prior, also the joint coherence of samples from the untilted base p0, to show what tilting does.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from .classifiers import Classifiers
from .coherence import joint_agreement, model_cross_coherence, model_joint_coherence
from .config import to_dict
from .data import PolyMNIST
from .train import load_checkpoint, model_from_state, resolve_device


class _FromP0:
    """The model with z drawn from the EBM's base density p0 instead of p_alpha."""

    def __init__(self, model):
        self.model = model

    def sample(self, n):
        return self.model.sample(n, tilted=False)


def evaluate(run_dir, classifiers_dir="runs/classifiers", n_joint=10_000, device="auto", seed=0,
             progress=True):
    """Coherence of the model in `run_dir`; returns the metrics dict and writes metrics.json."""
    device = resolve_device(device)
    t0 = time.perf_counter()
    state = load_checkpoint(Path(run_dir) / "checkpoint.pt", device)
    model, cfg = model_from_state(state, device)
    if cfg.model.dataset != "polymnist":
        raise ValueError(f"{run_dir} is a {cfg.model.dataset} run: coherence needs digit labels, so it is "
                         "PolyMNIST only; notebooks/04_cub.py shows what we measure on CUB")
    classifiers = Classifiers.load(classifiers_dir, cfg.model.n_modalities, device)
    test = PolyMNIST.load(cfg.data.root, "test", device, cfg.data.test_limit)
    torch.manual_seed(seed)  # posterior samples, w ~ p0(w) and Langevin noise: same seed, same numbers
    cross = model_cross_coherence(model, test, classifiers, progress=progress)
    joint, pred = model_joint_coherence(model, classifiers, n_joint, progress=progress)
    metrics = {
        "run": str(run_dir),
        "step": state["step"],
        "joint_coherence": joint,
        "cross_coherence": cross.mean,
        "cross_coherence_per_target": cross.per_target.tolist(),
        "cross_coherence_matrix": cross.matrix.tolist(),  # [source][target]; diagonal: self-reconstruction
        "joint_digit_histogram": torch.bincount(pred[:, 0], minlength=10).tolist(),
        # the digits of the coherent samples alone: blurry samples that every classifier reads as
        # the same digit count as coherent, so a share near 1 for one digit flags a degenerate joint
        "joint_coherent_digit_histogram": torch.bincount(pred[joint_agreement(pred), 0], minlength=10).tolist(),
        "n_joint": n_joint,
        "n_test": len(test),
        "classifier_accuracy": classifiers.test_accuracy,
        "seed": seed,
        "config": to_dict(cfg),
    }
    if model.has_ebm:
        metrics["joint_coherence_p0"], _ = model_joint_coherence(_FromP0(model), classifiers, n_joint,
                                                                 progress=progress)
    metrics["eval_s"] = time.perf_counter() - t0
    path = Path(run_dir) / "metrics.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    tmp.replace(path)
    return metrics


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mmebm.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--classifiers", default="runs/classifiers", help="trained by python -m mmebm.classifiers")
    p.add_argument("--n-joint", type=int, default=10_000, help="prior samples for joint coherence")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        m = evaluate(args.run_dir, args.classifiers, args.n_joint, args.device, args.seed)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    line = f"joint coherence {m['joint_coherence']:.3f}, cross coherence {m['cross_coherence']:.3f}"
    if "joint_coherence_p0" in m:
        line += f", joint coherence with z ~ p0 {m['joint_coherence_p0']:.3f}"
    print(f"{line}  ->  {Path(args.run_dir) / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Evaluate shipped runs and ship the evaluations beside their weights (weights/<run>/evaluation.json).

    python results/eval_speed/ship_evaluations.py [--runs-dir DIR] [RUN ...]

Each run (default: every weights/polymnist_*: the cpu profile's seed 0 first, then its other
seeds, then the other profiles) is installed from its weights as 02_models installs it, evaluated
with the judge sets 02_models uses (mmebm.runs.JUDGE_SETS), and its evaluation copied to
weights/<run>/evaluation.json. The cpu profile's EBM runs are also refitted as 02_models refits
them (mmebm.refit), and the refit's evaluation goes to weights/<run>/refit/evaluation.json, keyed
by the weights and the refitted f_alpha (a machine whose refit comes out otherwise evaluates it
again). A run whose shipped evaluations already match is skipped, so the script resumes where it
stopped. `make reproduce` reuses them while the weights and the judges match (mmebm.evaluate.matches)."""

import argparse
import json
import time
from pathlib import Path

from mmebm.config import load_config
from mmebm.evaluate import REFIT_DIR, SHIPPED_FILE, matches, ship
from mmebm.refit import RefitConfig, ensure_refit
from mmebm.runs import JUDGE_SETS, ensure_evaluated, install_shipped

ROOT = Path(__file__).resolve().parents[2]


def order(name):
    config, profile, seed = name.rsplit("-", 2)
    return (profile != "cpu", seed, config)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="*")
    p.add_argument("--runs-dir", default=str(Path.home() / "mmebm_state" / "evals"))
    p.add_argument("--data", default=str(ROOT / "data/polymnist"))
    a = p.parse_args()
    weights = ROOT / "weights"
    judges = [weights / j for j in JUDGE_SETS]
    names = a.runs or sorted((d.name for d in weights.glob("polymnist_*-s*") if (d / "manifest.json").is_file()),
                             key=order)
    for name in names:
        config, profile, seed = name.rsplit("-", 2)
        manifest = json.loads((weights / name / "manifest.json").read_text())
        shipped = weights / name / SHIPPED_FILE
        refits = profile == "cpu" and "_ebm" in config  # 02_models refits this profile's EBM runs
        current = shipped.is_file() and matches(json.loads(shipped.read_text()), manifest["steps"], manifest["sha256"],
                                                judges, 10_000, None)
        if current and (not refits or (weights / name / REFIT_DIR / SHIPPED_FILE).is_file()):
            print(f"{name}: shipped evaluation current", flush=True)
            continue
        here = load_config(config, profile, [f"data.root={a.data}", f"train.seed={seed[1:]}"]).data
        d = Path(a.runs_dir) / f"{name}-shipped"
        install_shipped(weights / name, d, here)
        if not current:
            t = time.perf_counter()
            m = ensure_evaluated(d, judges[0], 10_000, "cpu", judges[1:])
            ship(d, weights / name)
            print(f"{name}: evaluated in {time.perf_counter() - t:.0f} s, cross {m['cross_coherence']:.4f}, "
                  f"joint {m['joint_coherence']:.4f} -> {shipped}", flush=True)
        if refits:
            t = time.perf_counter()
            r = ensure_refit(d, RefitConfig(), "cpu")
            m = ensure_evaluated(r, judges[0], 10_000, "cpu", judges[1:])
            ship(r, weights / name)
            print(f"{name}, refitted: {time.perf_counter() - t:.0f} s, joint {m['joint_coherence']:.4f} -> "
                  f"{weights / name / REFIT_DIR / SHIPPED_FILE}", flush=True)


if __name__ == "__main__":
    main()

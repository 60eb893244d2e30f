"""Learning curves judged again: every snapshot of a run (train.snapshots) scored by every judge
set on the same test tuples, so schedules compare under the judges that passed the shifts
(results/judges/). From the repository root:

    python results/long/curves.py RUN_DIR [RUN_DIR ...] --out results/long/NAME [--test 1000]

Writes NAME.csv (run, step, judges, cross coherence and its per-target values) and NAME.png.
"""

import argparse
import csv
import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from mmebm.classifiers import Classifiers
from mmebm.coherence import model_cross_coherences
from mmebm.data import PolyMNIST
from mmebm.train import load_checkpoint, model_from_state

JUDGES = {"main": "weights/judges", "protocol": "weights/classifiers_protocol", "blur_robust": "weights/classifiers"}


def judge_run(run_dir, data, judges, done=()):
    """Rows for every snapshot of run_dir not in `done` ({(run, step)})."""
    rows = []
    for path in sorted(Path(run_dir, "snapshots").glob("step_*.pt")):
        state = load_checkpoint(path)
        if (Path(run_dir).name, state["step"]) in done:
            continue
        model, _ = model_from_state(state)
        torch.manual_seed(0)
        for name, cc in model_cross_coherences(model, data, judges, progress=False).items():
            rows.append({"run": Path(run_dir).name, "step": state["step"], "judges": name, "cross": round(cc.mean, 4),
                         **{f"m{t}": round(v, 4) for t, v in enumerate(cc.per_target.tolist())}})
        print(rows[-1]["run"], state["step"], {r["judges"]: r["cross"] for r in rows[-len(judges):]}, flush=True)
    return rows


def plot(rows, out):
    judges = list(dict.fromkeys(r["judges"] for r in rows))
    fig, axes = plt.subplots(1, len(judges), figsize=(4.5 * len(judges), 3.5), sharey=True, squeeze=False)
    for ax, j in zip(axes[0], judges):
        for run in dict.fromkeys(r["run"] for r in rows):
            pts = sorted((r["step"], r["cross"]) for r in rows if r["run"] == run and r["judges"] == j and r["step"] > 0)
            ax.plot(*zip(*pts), marker="o", ms=3, label=run)
        ax.set_xscale("log")
        ax.set_title(f"cross coherence, {j} judges")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(Path(out).with_suffix(".png"), dpi=120)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--test", type=int, default=1000, help="evenly spaced test tuples")
    p.add_argument("--data", default="data/polymnist")
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 1)))
    judges = {n: Classifiers.load(f) for n, f in JUDGES.items() if Path(f).is_dir()}
    data = PolyMNIST.load(args.data, "test", limit=args.test)
    out = Path(args.out).with_suffix(".csv")
    rows = list(csv.DictReader(open(out))) if out.is_file() else []  # judged before: kept, not redone
    for r in rows:
        r["step"], r["cross"] = int(r["step"]), float(r["cross"])
    done = {(r["run"], r["step"]) for r in rows}
    for run in args.runs:
        rows += judge_run(run, data, judges, done)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, rows[0].keys())
        w.writeheader()
        w.writerows(rows)
    plot(rows, out)


if __name__ == "__main__":
    sys.exit(main())

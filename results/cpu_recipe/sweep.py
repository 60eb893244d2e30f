"""The cpu-recipe sweep of issue #10: which settings make the PolyMNIST models learn digits in minutes.

    python results/cpu_recipe/sweep.py ROUND [--jobs 2] [--runs /tmp/sweep]

Each setting of a round trains with `python -m mmebm.train ... --profile cpu` plus its overrides,
on one CPU thread per run (`--jobs` runs side by side on the 2 cores), under a wall-time budget,
with coherence every `train.eval_every` steps (classifiers in runs/classifiers). The table of a
round (best and last cross coherence, joint coherence, steps, minutes) is printed and written to
results/cpu_recipe/ROUND.md; the learning curves stay in each run's metrics.csv.
"""

import argparse
import csv
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMMON = ["data.limit=null", "train.epochs=100", "train.eval_every=150", "train.log_every=50",
          "train.checkpoint_every=100000", "train.device=cpu"]

# round -> {setting name: (config, [overrides])}
NORMAL = ["model.posterior=normal", "model.prior=gaussian", "model.likelihood=normal", "model.lik_scale=0.1"]
ROUNDS = {
    "r2": {
        "mmvaeplus_N0.1_lr3e-3": ("polymnist_mmvaeplus", [*NORMAL, "train.lr=3e-3", "train.amsgrad=false"]),
        "mmvae_N0.1_lr3e-3": ("polymnist_mmvae", [*NORMAL, "train.lr=3e-3", "train.amsgrad=false"]),
    },
    "r1": {
        "mmvaeplus_normal0.1": ("polymnist_mmvaeplus", ["model.likelihood=normal", "model.lik_scale=0.1"]),
        "mmvaeplus_normal0.1_beta0.5_lr2e-3": ("polymnist_mmvaeplus", [
            "model.likelihood=normal", "model.lik_scale=0.1", "model.beta=0.5", "train.lr=2e-3"]),
        "mmvaeplus_laplace0.1": ("polymnist_mmvaeplus", ["model.lik_scale=0.1"]),
        "mmvae_normal0.1_lr2e-3": ("polymnist_mmvae", ["model.likelihood=normal", "model.lik_scale=0.1",
                                                       "train.lr=2e-3"]),
    },
}


def run(name, config, overrides, runs, budget):
    out = runs / name
    cmd = [sys.executable, "-m", "mmebm.train", config, "--profile", "cpu", "--out", str(out),
           *COMMON, f"train.time_budget_s={budget}", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t = time.time()
    with open(runs / f"{name}.log", "w") as log:
        subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    return name, time.time() - t, " ".join(cmd[2:])


def summarize(out):
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    ev = {}
    for r in rows:
        if r["split"] == "eval":
            ev.setdefault(int(r["step"]), {})[r["name"]] = float(r["value"])
    end = {r["name"]: float(r["value"]) for r in rows if r["name"] in ("wall_s", "eval_s")}
    steps = sorted(ev)
    curve = " ".join(f"{ev[s]['cross_coherence']:.2f}" for s in steps)
    last = ev[steps[-1]]
    return steps[-1], last, max(e["cross_coherence"] for e in ev.values()), curve, end


def main():
    p = argparse.ArgumentParser()
    p.add_argument("round", choices=sorted(ROUNDS))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--runs", default="/tmp/sweep")
    p.add_argument("--budget", type=float, default=360, help="training seconds per setting (one thread)")
    args = p.parse_args()
    runs = Path(args.runs) / args.round
    runs.mkdir(parents=True, exist_ok=True)
    settings = ROUNDS[args.round]
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda kv: run(kv[0], *kv[1], runs, args.budget), settings.items()))
    lines = [f"# Sweep {args.round} ({time.strftime('%Y-%m-%d')}, {args.jobs} runs side by side, one thread each, "
             f"{args.budget:.0f} s budget)", "",
             "| setting | command (after `python -m mmebm.train`) | steps | cross (last) | cross (best) | joint | "
             "self-rec | top digit | wall min | cross every 150 steps |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, secs, cmd in done:
        try:
            step, last, best, curve, end = summarize(runs / name)
        except (FileNotFoundError, IndexError, KeyError) as e:
            lines.append(f"| {name} | `{cmd}` | failed: {e} (see {runs / name}.log) |")
            continue
        lines.append(f"| {name} | `{cmd}` | {step} | {last['cross_coherence']:.3f} | {best:.3f} | "
                     f"{last['joint_coherence']:.3f} | {last['self_reconstruction']:.3f} | {last['joint_top_digit']:.2f} | "
                     f"{secs / 60:.1f} | {curve} |")
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / f"{args.round}.md").write_text(text)


if __name__ == "__main__":
    main()

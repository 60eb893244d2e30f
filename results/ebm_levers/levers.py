"""Which lever closes the prior hole? f_alpha refitted on shipped EBM runs with the VAE frozen (issue #27).

For each run: encode N_TRAIN training tuples once (one posterior sample per expert: the pool of
the aggregate posterior), then fit a copy of the run's f_alpha with each lever and draw N samples
of z from it. Every row decodes its z into the five modalities (w ~ p0 for MMVAE+) and scores
them with each set of judges: joint coherence, its 95 % Wilson interval, the commonest digit's
share among coherent samples, and the share of the hole closed, (row - p0) / (aggregate - p0).

    python results/ebm_levers/levers.py weights/polymnist_mmvae_ebm-cpu-s0 [...] --device cpu
"""

import argparse
import copy
import json
import time

import torch

from mmebm.classifiers import Classifiers
from mmebm.coherence import joint_agreement, predict
from mmebm.data.dataset import PolyMNIST
from mmebm.langevin import ReplayBuffer
from mmebm.nce import aggregate_sample, posterior_pool
from mmebm.report import wilson_interval
from mmebm.weights import load_shipped

ap = argparse.ArgumentParser()
ap.add_argument("runs", nargs="+")
ap.add_argument("--judges", nargs="+", default=["weights/classifiers_protocol", "weights/classifiers"])
ap.add_argument("--data", default="data/polymnist")
ap.add_argument("--n", type=int, default=2000, help="samples per row")
ap.add_argument("--n-train", type=int, default=20_000)
ap.add_argument("--mle-steps", type=int, default=1000)
ap.add_argument("--nce-steps", type=int, default=2000)
# a lever is "+"-joined tokens: mle (the training's update, at the run's EBM lr and chains), penalty
# (0.1 * mean f^2), buffer (persistent chains, 10,000 states, 5 % fresh), lr10 (10x the EBM lr), long
# (200-step chains, in fitting and sampling); nce (the noise-contrastive fit, Adam 1e-3, batch 256 x M)
# sampled by sir (20 proposals per sample; sir100: 100), sir+langevin or langevin (the run's chains)
ap.add_argument("--levers", nargs="+", default=["shipped", "mle", "mle+penalty", "mle+penalty+buffer", "mle+penalty+lr10",
                                                "mle+penalty+long", "nce+sir", "nce+sir100", "nce+sir+langevin",
                                                "nce+langevin"])
ap.add_argument("--device", default="cpu")
ap.add_argument("--out", default=None, help="json of every row")
args = ap.parse_args()
dev = torch.device(args.device)
judges = {j.rstrip("/").split("/")[-1]: Classifiers.load(j, device=dev) for j in args.judges}
train = PolyMNIST.load(args.data, "train", dev, limit=args.n_train)
rows = []


def fit(prior, pool, lever, steps, lr, batch=64):
    """Adam on f_alpha alone, positives from the pool; returns seconds."""
    opt = torch.optim.Adam(prior.f_alpha.parameters(), lr=lr, betas=(0.5, 0.999))
    t0 = time.perf_counter()
    for _ in range(steps):
        z_pos = aggregate_sample(pool, batch * pool.shape[1])
        loss, _ = prior.ebm_loss(z_pos)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if not torch.isfinite(loss):
        print(f"  {lever}: loss {loss.item()}")
    return time.perf_counter() - t0


def score(run, lever, model, z, seconds=0.0):
    with torch.no_grad():
        x = torch.cat([model.decode_z(zb) for zb in z.split(500)])
    row = {"run": run, "lever": lever, "seconds": round(seconds, 1), "n": len(z)}
    for name, clf in judges.items():
        pred = predict(clf, x)
        ok = joint_agreement(pred)
        k = int(ok.sum())
        top = torch.bincount(pred[ok, 0], minlength=11).max().item() / max(k, 1)
        row[name] = {"joint": k / len(z), "interval": wilson_interval(k, len(z)), "top_digit_share": top,
                     "modality0_answers": torch.bincount(pred[:, 0], minlength=11).tolist()}  # [10]: "no digit"
    rows.append(row)
    return row


def line(row, ref):
    out = f"  {row['lever']:<22}"
    for name in judges:
        j = row[name]
        p0, agg = ref["p0"][name]["joint"], ref["aggregate"][name]["joint"]
        closed = (j["joint"] - p0) / (agg - p0) if agg > p0 else float("nan")
        row[name]["hole_closed"] = closed
        out += f" | {name}: {j['joint']:.3f} [{j['interval'][0]:.3f}, {j['interval'][1]:.3f}] top {j['top_digit_share']:.2f} closed {closed:+.2f}"
    print(out + f" | {row['seconds']:.0f} s", flush=True)


for run in args.runs:
    torch.manual_seed(0)
    model, cfg, _ = load_shipped(run, dev)
    model.requires_grad_(False)
    shipped = model.prior
    shipped.f_alpha.requires_grad_(True)
    t0 = time.perf_counter()
    pool = posterior_pool(model, train)
    print(f"{run}: {cfg.model.model}, pool {tuple(pool.shape)} in {time.perf_counter() - t0:.0f} s", flush=True)
    ref = {"p0": score(run, "p0", model, shipped.p0.sample(args.n)),
           "aggregate": score(run, "aggregate", model, aggregate_sample(pool, args.n))}
    for r in ref.values():
        line(r, ref)
    for lever in args.levers:
        torch.manual_seed(1)
        prior = copy.deepcopy(shipped)
        seconds, tokens = 0.0, set(lever.split("+"))
        if "long" in tokens:
            prior.n_steps = 200
        if "mle" in tokens and args.mle_steps:
            prior.penalty = 0.1 if "penalty" in tokens else 0.0
            prior.buffer = ReplayBuffer(10_000) if "buffer" in tokens else None
            seconds = fit(prior, pool, lever, args.mle_steps, cfg.model.ebm_lr * (10 if "lr10" in tokens else 1))
        elif "nce" in tokens:
            prior.fit = "nce"
            seconds = fit(prior, pool, lever, args.nce_steps, 1e-3, batch=256)
            prior.sir_factor = 100 if "sir100" in tokens else 20
            prior.sampler = ("sir+langevin" if {"sir", "langevin"} <= tokens else
                             "sir" if tokens & {"sir", "sir100"} else "langevin")
        t1 = time.perf_counter()
        z = torch.cat([prior.sample(500) for _ in range(args.n // 500)])
        row = score(run, lever, model, z, seconds + time.perf_counter() - t1)
        line(row, ref)
        if args.out:  # after every row, so a run stopped by a time limit keeps what it measured
            with open(args.out, "w") as f:
                json.dump(rows, f, indent=1)

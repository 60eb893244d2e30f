"""Where one evaluation's time goes (issue #35).

    python results/eval_speed/profile_eval.py [RUN] [--n N] [--judges SET ...] [--batch B] [--bf16]

Installs a shipped run into /tmp and runs mmebm.evaluate.evaluate on N test tuples and N joint
samples per source, with coherence.predict wrapped to time the judging per judge set; the rest is
generation (cross decoding, Langevin, aggregate-posterior draws). Every part scales linearly in N
(evaluate uses N = 10,000). --batch: tuples per judge call; --bf16: judge under bf16 autocast."""

import argparse
import time
from collections import defaultdict
from pathlib import Path

import torch

from mmebm import coherence, evaluate as ev
from mmebm.config import DataConfig
from mmebm.runs import install_shipped

ROOT = Path(__file__).resolve().parents[2]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("run", nargs="?", default="polymnist_mmvae_ebm-cpu-s0")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--data", default=str(ROOT / "data/polymnist"))
    p.add_argument("--judges", nargs="*", default=["judges", "classifiers_protocol"])
    p.add_argument("--batch", type=int, default=None, help="tuples per judge call (default: predict's)")
    p.add_argument("--bf16", action="store_true")
    a = p.parse_args()
    shipped = ROOT / "weights" / a.run
    data = DataConfig(root=a.data, test_limit=a.n)
    run = Path("/tmp/profile_eval") / a.run
    install_shipped(shipped, run, data)

    spent, predict = defaultdict(float), coherence.predict
    names = {}

    def timed_predict(classifiers, x, batch_size=None):
        t = time.perf_counter()
        kw = {} if (batch_size or a.batch) is None else {"batch_size": batch_size or a.batch}
        ctx = torch.autocast("cpu", torch.bfloat16) if a.bf16 else torch.no_grad()
        with ctx:
            out = predict(classifiers, x, **kw)
        spent[names.get(id(classifiers), "?")] += time.perf_counter() - t
        return out

    load = ev.Classifiers.load

    def named_load(folder, *args, **kw):
        c = load(folder, *args, **kw)
        names[id(c)] = Path(folder).name
        return c

    coherence.predict, ev.Classifiers.load = timed_predict, named_load
    judges = [ROOT / "weights" / j for j in a.judges]
    t = time.perf_counter()
    m = ev.evaluate(run, judges[0], n_joint=a.n, progress=False, judges=judges[1:])
    total = time.perf_counter() - t
    judging = sum(spent.values())
    print(f"{a.run}: N = {a.n}, {torch.get_num_threads()} thread(s), batch {a.batch or 'default'}, "
          f"{'bf16' if a.bf16 else 'fp32'} judges")
    print(f"  total {total:.1f} s; generation and the rest {total - judging:.1f} s; judging {judging:.1f} s: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in spent.items()))
    print("  " + "; ".join(f"{k}: cross {b['cross_coherence']:.4f} joint {b['joint']['prior']['coherence']:.4f}"
                           for k, b in m["judges"].items()))


if __name__ == "__main__":
    main()

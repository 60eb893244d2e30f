"""The main judges against their check on the long runs' snapshots (results/long): does their
per-target gap close as the generations sharpen? From the repository root:

    python results/judges/agree_snapshots.py 4000 8000 [--long ~/mmebm_state/long] [--runs RUN ...]

Prints, per run and step, every judge set's per-target cross coherence on 1,000 evenly spaced
test tuples and the check minus the main judges.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402  (the judge sets, as in report.py)

from mmebm.coherence import model_cross_coherences  # noqa: E402
from mmebm.data import PolyMNIST  # noqa: E402
from mmebm.train import load_checkpoint, model_from_state  # noqa: E402

RUNS = ("polymnist_mmvae-long-s0", "polymnist_mmvae_ebm-long-s0")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("steps", type=int, nargs="+")
    p.add_argument("--long", default=str(Path.home() / "mmebm_state" / "long"), help="the long runs' folders")
    p.add_argument("--runs", nargs="+", default=RUNS, help="which of them")
    args = p.parse_args()
    torch.set_num_threads(1)
    sets = report.judges()
    data = PolyMNIST.load("data/polymnist", "test", limit=1000)
    for run in args.runs:
        for step in args.steps:
            t = time.time()
            model, _ = model_from_state(load_checkpoint(Path(args.long) / run / "snapshots" / f"step_{step:07d}.pt"))
            torch.manual_seed(0)
            cc = {n: c.per_target.tolist() for n, c in model_cross_coherences(model, data, sets, progress=False).items()}
            print(run, step, {n: [round(v, 3) for v in c] for n, c in cc.items()}, "check - main",
                  [round(a - b, 3) for a, b in zip(cc["check"], cc["main"])], f"{time.time() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()

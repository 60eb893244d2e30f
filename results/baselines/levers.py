"""Issue #33: one lever at a time on a baseline at the cpu budget, read by the main judges. From
the repository root, after training the runs (commands in README.md beside this file):

    python results/baselines/levers.py weights/polymnist_mvtcae-cpu-s0 ~/mmebm_state/search/polymnist_mvtcae-*-s0

For each run (a shipped weights folder or a run folder with checkpoint.pt): cross coherence on
1,000 evenly spaced test tuples by the main judges (weights/judges), each source's row of the
cross-coherence matrix (off the diagonal: how well that modality's encoder carries the digit to the
others), and the target issue #33 sets: every source row above 0.3.
"""

import sys
from pathlib import Path

import torch

from mmebm.classifiers import Classifiers
from mmebm.coherence import model_cross_coherence
from mmebm.data import PolyMNIST
from mmebm.report import source_rows
from mmebm.train import load_checkpoint, model_from_state
from mmebm.weights import load_shipped


def load(folder):
    folder = Path(folder).expanduser()
    if (folder / "checkpoint.pt").is_file():
        state = load_checkpoint(folder / "checkpoint.pt")
        return model_from_state(state)[0], state["step"]
    model, _, manifest = load_shipped(folder)
    return model, manifest["steps"]


def main(folders):
    torch.set_num_threads(1)
    judges = Classifiers.load("weights/judges")
    data = PolyMNIST.load("data/polymnist", "test", limit=1000)
    print("| run | step | cross coherence | source rows m0 / m1 / m2 / m3 / m4 | rows above 0.3 |")
    print("|---|---|---|---|---|")
    for folder in folders:
        model, step = load(folder)
        model.eval()
        torch.manual_seed(0)
        c = model_cross_coherence(model, data, judges, progress=False)
        M = len(c.matrix)
        rows = source_rows(c.matrix.tolist())
        print(f"| {Path(folder).name} | {step} | {c.mean:.3f} | {' / '.join(f'{r:.2f}' for r in rows)} | "
              f"{sum(r > 0.3 for r in rows)} of {M} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

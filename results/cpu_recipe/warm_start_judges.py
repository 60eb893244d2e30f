"""Score the shipped 4,000-step MMVAE+ pair (weights/ before the warm start) with the probe judges
that scored the warm-started steps (runs/classifiers_mmvaeplus, retrained in the session of
2026-12-02), using the trainer's own probe: where the learning curves join at step 4,000.
Run from the repo root (weights/ holds the 4,000-step runs). An argument names other judges:
`weights/classifiers` (the shipped ones), which scored the probes of section 11.
"""
import sys

import torch
from mmebm.classifiers import Classifiers
from mmebm.coherence import CoherenceProbe
from mmebm.data import PolyMNIST
from mmebm.weights import load_shipped
torch.set_num_threads(1)
clf = Classifiers.load(sys.argv[1] if len(sys.argv) > 1 else "runs/classifiers_mmvaeplus", 5, "cpu")
for s in range(3):
    for m in ("polymnist_mmvaeplus", "polymnist_mmvaeplus_ebm"):
        model, cfg, _ = load_shipped(f"weights/{m}-cpu-s{s}")
        probe = CoherenceProbe(clf, PolyMNIST.load("data/polymnist", "test", "cpu", cfg.train.eval_test), cfg.train.eval_joint, seed=s)
        v = probe(model)
        print(m, s, {k: round(float(x), 4) for k, x in v.items()}, flush=True)

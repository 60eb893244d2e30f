"""One point of the CUB cpu-recipe sweep: train an experiment under the cpu profile with extra
overrides, then measure what issue #11 asks of it: greedy word accuracy of reconstructed test
captions (z, w from the caption's posterior) and the yardsticks of captions at z ~ p(z)
(mmebm.captions.caption_measures), with the training wall time.

    MMEBM_DATA=../shared/data OMP_NUM_THREADS=1 python results/cub_recipe/sweep.py cub_captions base
    MMEBM_DATA=../shared/data OMP_NUM_THREADS=1 python results/cub_recipe/sweep.py cub_captions e6 train.epochs=6

Appends one JSON line per run to results/cub_recipe/sweep.jsonl; runs live in runs/cub_sweep/.
"""

import json
import platform
import sys
import time
from pathlib import Path

import torch

from mmebm.captions import BigramScore, caption_measures, word_accuracy, word_ids
from mmebm.data import CUBCaptions, CUBImageCaptions, data_root
from mmebm.runs import ensure_trained

config, tag, *overrides = sys.argv[1:]
out = Path("runs/cub_sweep") / f"{config}-{tag}"
t0 = time.perf_counter()
model, cfg = ensure_trained(config, "cpu", out, ["train.device=cpu", *overrides])
minutes = (time.perf_counter() - t0) / 60
root = data_root()
train_text = CUBCaptions.load(root, "train", cache_dir="data/cub")
if cfg.model.dataset == "cub":
    pairs = CUBImageCaptions.load(root, "test", cache_dir="data/cub")
    idx = torch.linspace(0, len(pairs) - 1, 1000).round().long()
    x = pairs[idx]
else:
    test = CUBCaptions.load(root, "test", cache_dir="data/cub")
    x = (test.captions[torch.linspace(0, len(test) - 1, 1000).round().long()],)
torch.manual_seed(0)
acc = word_accuracy(model, x)
t = cfg.model.modalities.index("text")
torch.manual_seed(1)
samples = word_ids(model.sample(500)[t])  # z ~ p(z): Langevin for the EBM prior
m = caption_measures(samples, BigramScore(train_text.captions, len(train_text.vocab)))
row = dict(config=config, tag=tag, overrides=overrides, word_accuracy=round(acc, 4), train_minutes=round(minutes, 1),
           steps=int((out / "metrics.csv").read_text().strip().splitlines()[-1].split(",")[0]),
           machine=platform.processor() or platform.machine(),
           **{k: round(v.value, 4) for k, v in m.items()},
           examples=train_text.vocab.decode(samples[:3]))
print(json.dumps(row))
with open("results/cub_recipe/sweep.jsonl", "a") as f:
    f.write(json.dumps(row) + "\n")

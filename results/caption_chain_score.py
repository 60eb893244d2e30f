"""Bigram score (mean per-word log-probability under a bigram model of the training captions, see
mmebm.captions.BigramScore) of captions decoded from CUB runs: for an EBM-prior run at z_0 ~ p0 and
at the end of the Langevin chain (z ~ p_alpha), for a Gaussian-prior run at z ~ p0.

    MMEBM_DATA=../shared/data python results/caption_chain_score.py runs/cub_mmvaeplus-cpu runs/cub_mmvaeplus_ebm-cpu
"""

import argparse

import torch

from mmebm.captions import BigramScore, caption_chain
from mmebm.data import CUBCaptions, data_root
from mmebm.data.cub_text import EOS, PAD
from mmebm.train import load_run

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("runs", nargs="+")
p.add_argument("--chains", type=int, default=500)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--cache-dir", default="data/cub")
args = p.parse_args()

train_text = CUBCaptions.load(data_root(), "train", cache_dir=args.cache_dir)
score = BigramScore(train_text.captions, len(train_text.vocab))
for run in args.runs:
    model, cfg = load_run(run)
    ids = caption_chain(model, train_text.vocab, args.chains, [0, 10**9], seed=args.seed, as_ids=True)
    def describe(v):  # score, mean caption length in words, distinct captions, share of the commonest
        words = ((v != PAD) & (v != EOS)).sum(1).float().mean().item()
        distinct, counts = torch.unique(v, dim=0, return_counts=True)
        return (f"{score(v).mean().item():.3f} (mean {words:.1f} words, {len(distinct)} distinct, "
                f"commonest {counts.max().item()}/{len(v)})")

    cells = ", ".join(f"step {k}: {describe(v)}" for k, v in ids.items())
    print(f"{run} (prior {cfg.model.prior}, ebm_lr {cfg.model.ebm_lr}, step-size {cfg.model.langevin_step_size}): {cells}")

"""Issue #11's measures along one CUB image-caption run, from copies of its checkpoint.pt taken as
training rewrote it (every train.checkpoint_every steps; nothing in training depends on the total
number of steps, so the copy at step S is what an S-step run of the same seed gives):
greedy word accuracy of 1,000 reconstructed test captions (z, w from the caption's posterior),
the yardsticks of 500 captions decoded at z ~ p0 and, for an EBM prior, at z ~ p_alpha (60
Langevin steps), and colour coherence on 1,000 evenly spaced test pairs (mmebm.colours).

    MMEBM_DATA=../shared/data python results/cub_recipe/checkpoints.py runs/NAME/snaps/*.pt >> results/cub_recipe/checkpoints.jsonl
"""

import json
import sys

import torch

from mmebm.captions import BigramScore, caption_chain, caption_measures, word_accuracy
from mmebm.colours import cross_colour_coherence
from mmebm.data import CUBCaptions, CUBImageCaptions, data_root
from mmebm.train import load_checkpoint, model_from_state

root = data_root()
train_text = CUBCaptions.load(root, "train", cache_dir="data/cub")
score = BigramScore(train_text.captions, len(train_text.vocab))
pairs = CUBImageCaptions.load(root, "test", cache_dir="data/cub")
x = pairs[torch.linspace(0, len(pairs) - 1, 1000).round().long()]
for path in sys.argv[1:]:
    state = load_checkpoint(path)
    model, cfg = model_from_state(state)
    torch.manual_seed(0)
    row = {"run": cfg.name, "step": state["step"], "conv_width": cfg.model.conv_width, "word_acc": word_accuracy(model, x)}
    steps = [0, 60] if model.has_ebm else [0]
    chain = caption_chain(model, train_text.vocab, 500, steps, seed=1, as_ids=True)
    for k, ids in chain.items():
        m = caption_measures(ids, score)
        row["p0" if k == 0 else "p_alpha"] = {n: round(m[n].value, 4) for n in ("bigram", "distinct-2", "repeated", "ended")}
    colour = cross_colour_coherence(model, pairs, 1000, seed=0)
    row["colour_gain"] = {d: [round(v, 4) for v in colour[d]["gain"]] for d in colour}
    print(json.dumps(row), flush=True)

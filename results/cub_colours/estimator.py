"""Colour coherence of the shipped CUB runs under the exact chance of mmebm/colours.py (the mean
over all other images' references instead of one random partner), with intervals clustered by
image, on 1,000 evenly spaced test items (as 04_cub measured before) and on all of them.

    MMEBM_DATA=../shared/data python results/cub_colours/estimator.py > results/cub_colours/estimator.txt
"""
import time

from mmebm.colours import cross_colour_coherence, real_colour_coherence, table_cell
from mmebm.data import CUBImageCaptions, data_root
from mmebm.runs import ensure_experiments

root = data_root()
pairs = CUBImageCaptions.load(root, "test", cache_dir="data/cub")
experiments = ["cub_mmvaeplus", "cub_mmvaeplus_ebm"]
models, _, _ = ensure_experiments(experiments, "cpu", "runs", [f"data.root={root}", "data.cache_dir=data/cub"], "weights")
print(f"\n{len(pairs)} test captions of {len(pairs.images)} images\n")
cols = ["image -> caption", "caption -> image"]
print("| n | who | " + " | ".join(f"{c}: share / chance / gain (95 % interval)" for c in cols) + " |\n|---|---|---|---|")
for n in (1000, None):
    t0 = time.time()
    rows = {"real test pairs": real_colour_coherence(pairs, n)}
    rows.update({name: cross_colour_coherence(m, pairs, n, seed=0) for name, m in models.items()})
    for who, r in rows.items():
        print(f"| {n or 'all'} | {who} | " + " | ".join(table_cell(r[c]) for c in cols) + " |")
    print(f"(n={n or 'all'}: {time.time() - t0:.0f} s)")

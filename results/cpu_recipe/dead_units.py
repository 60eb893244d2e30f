"""Dead units in the conv encoders (section 11): for each branch (z or w) of each modality, how
many of the 64 (MMVAE: 32) units of the last hidden layer are positive on at least one of 1,000
test tuples. A unit that is never positive passes no signal and gets no gradient again (ReLU);
a branch with none alive gives the same posterior for every input. Also: how far the posterior
means move across the test tuples (their sd over tuples, mean over units), z branch only.

    python results/cpu_recipe/dead_units.py weights/polymnist_mmvaeplus-cpu-s0 runs/RUN ...

Arguments: shipped weights folders (manifest.json) or run folders (checkpoint.pt).
"""
import sys
from pathlib import Path

import torch

from mmebm.data import PolyMNIST
from mmebm.train import load_run
from mmebm.weights import load_shipped

torch.set_num_threads(1)
x = PolyMNIST.load("data/polymnist", "test", "cpu", 1000)[:][0]
for folder in sys.argv[1:]:
    model = load_shipped(folder)[0] if (Path(folder) / "manifest.json").is_file() else load_run(folder)[0]
    model.eval()
    enc, M = model.enc, model.enc.M
    with torch.no_grad():
        alive = [(enc.body(x[:, g % M], g).amax(0) > 0).sum().item() for g in range(enc.n_branch * M)]
        z_spread = model.encode(x).z.loc.std(0).mean(-1)  # [M]
    branches = " ".join(f"{'zw'[g // M]}{g % M}:{a}" for g, a in enumerate(alive))
    print(f"{Path(folder).name}: units alive {branches} | z means' sd over tuples "
          + " ".join(f"{v:.2f}" for v in z_spread.tolist()), flush=True)

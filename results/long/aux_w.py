"""Why MMVAE+'s long run lost cross coherence (results/long/README.md, section 9): for snapshots of
an MMVAE+ run, the scale of the auxiliary prior of w~ (what training's cross-reconstructions draw w
from) and the cross coherence (main judges, 500 evenly spaced test tuples, every source into every
other target) with the target's w drawn four ways: from p0(w) (test-time cross generation, the
protocol), w = 0 (p0's mean), another test tuple's posterior sample (a w that belongs to some
image), and the target's own posterior sample. From the repository root:

    python results/long/aux_w.py RUN_DIR STEP [STEP ...] >> results/long/aux_w.txt
    python results/long/aux_w.py weights/polymnist_mmvaeplus-cpu-s0 >> results/long/aux_w.txt   # a shipped run
"""

import sys
from pathlib import Path

import torch

from mmebm.classifiers import Classifiers
from mmebm.coherence import predict
from mmebm.data import PolyMNIST
from mmebm.train import load_checkpoint, model_from_state
from mmebm.weights import load_shipped

data = PolyMNIST.load("data/polymnist", "test")
x, y = data[torch.linspace(0, len(data) - 1, 500).round().long()]
x, y = (x.float() / 255 if x.dtype == torch.uint8 else x), torch.as_tensor(y)
judges = Classifiers.load("weights/judges")
run = Path(sys.argv[1])
for step in list(map(int, sys.argv[2:])) or [None]:
    model = load_shipped(run)[0] if step is None else \
        model_from_state(load_checkpoint(run / "snapshots" / f"step_{step:07d}.pt"))[0]
    M = model.cfg.n_modalities
    torch.manual_seed(0)
    with torch.no_grad():
        aux = model.aux_w().scale
        post = model.encode(x)
        z, w_post = post.z.rsample(), post.w.rsample()  # [B, M, D]
        other = torch.randperm(len(y))
        draws = {"w ~ p0(w)": lambda: model.p0_w.sample((len(y), M)), "w = 0": lambda: torch.zeros_like(w_post),
                 "another tuple's w": lambda: w_post[other], "own w": lambda: w_post}
        out = []
        for name, draw in draws.items():
            per_target = torch.zeros(M)
            for src in range(M):
                gen = model.decode(model.join(draw(), z[:, src, None].expand(-1, M, -1))).clamp(0, 1)
                per_target += (predict(judges, gen) == y[:, None]).float().mean(0) * (torch.arange(M) != src)
            per_target /= M - 1
            out.append(f"{name} {per_target.mean():.3f} ({' / '.join(f'{v:.2f}' for v in per_target.tolist())})")
    print(f"{run.name}" + (f" step {step}" if step else "") + f": aux scale mean {aux.mean():.3f} (min {aux.min():.3f}, max {aux.max():.3f}); "
          "cross coherence, per target m0-m4, with " + "; ".join(out), flush=True)

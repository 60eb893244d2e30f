"""Would judges that abstain when unsure agree better on fog? (issue #37, section 6 of README.md)

Cross-generates 1,000 evenly spaced test tuples with one shipped run (every source into every
target) and counts a judge's answer as the source digit only when its softmax confidence is at
least tau; below tau it abstains, which counts as wrong, as "no digit" does. Prints, per tau, the
per-target cross coherence of the main and check sets, their gap, and what the same rule costs on
the clean test images. From the repository root:

    python results/judges/abstain.py polymnist_mmvae-cpu-s0 > results/judges/abstain.txt
"""

import sys

import torch

from mmebm.classifiers import Classifiers
from mmebm.data import PolyMNIST
from mmebm.weights import load_shipped

run = sys.argv[1] if len(sys.argv) > 1 else "polymnist_mmvae-cpu-s0"
data = PolyMNIST.load("data/polymnist", "test", limit=1000)
sets = {"main": Classifiers.load("weights/judges"), "check": Classifiers.load("weights/judges_check")}
model, _, _ = load_shipped(f"weights/{run}")
torch.manual_seed(0)
x, y = data.images.float() / 255, data.labels
with torch.no_grad():
    gen = model.cross_generate_all(x).clamp(0, 1)  # [M(src), N, M(tgt), ...]
    M = gen.shape[0]
    probs = {n: torch.stack([c(gen[s]).softmax(-1) for s in range(M)]) for n, c in sets.items()}  # [S, N, T, C]
    clean = {n: c(x).softmax(-1) for n, c in sets.items()}
off = ~torch.eye(M, dtype=torch.bool)  # [S, T]: the source differs from the target


def fmt(v):
    return "/".join(f"{a:.3f}" for a in v.tolist())


print(f"{run}, 1,000 test tuples; per target m0/m1/m2/m3/m4")
for tau in (0.0, 0.5, 0.7, 0.8, 0.9, 0.95):
    cc, acc = {}, {}
    for n, p in probs.items():
        conf, ans = p.max(-1)
        ok = (ans == y[None, :, None]) & (conf >= tau)
        cc[n] = torch.stack([ok[:, :, t][off[:, t]].float().mean() for t in range(M)])
        c_conf, c_ans = clean[n].max(-1)
        acc[n] = ((c_ans == y[:, None]) & (c_conf >= tau)).float().mean(0)
    print(f"tau {tau}: cross main {fmt(cc['main'])}, check {fmt(cc['check'])}, check - main {fmt(cc['check'] - cc['main'])}"
          f" | clean accuracy main {fmt(acc['main'])}, check {fmt(acc['check'])}", flush=True)

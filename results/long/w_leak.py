"""Where MMVAE+ keeps the digit over a long run: in the shared z or in the modality-specific w?
(results/long/README.md, section 9). For every snapshot of each run: a nearest-centroid digit probe
(mmebm.experts.digit_probe; chance about 0.1) on the posterior means of z and of w, per modality,
and the mean KL(q(w | x_m) || p0(w)), on 1,000 evenly spaced test tuples. From the repository root:

    python results/long/w_leak.py ~/mmebm_state/long/polymnist_mmvaeplus-long-s0 [RUN_DIR ...]
"""

import sys
from pathlib import Path

import torch

from mmebm.data import PolyMNIST
from mmebm.experts import digit_probe
from mmebm.objectives import kl_normal
from mmebm.train import load_checkpoint, model_from_state

data = PolyMNIST.load("data/polymnist", "test")
index = torch.linspace(0, len(data) - 1, 1000).round().long()
x, y = data[index]
x = x.float() / 255 if x.dtype == torch.uint8 else x
y = torch.as_tensor(y)


def fmt(v):
    return " / ".join(f"{a:.2f}" for a in v)


print("| run | step | z probe m0-m4 | w probe m0-m4 | KL(q(w) ‖ p0(w)), mean over m |")
print("|---|---|---|---|---|")
for run_dir in sys.argv[1:]:
    for path in sorted(Path(run_dir, "snapshots").glob("step_*.pt")):
        state = load_checkpoint(path)
        if state["step"] < 500:
            continue
        model, _ = model_from_state(state)
        with torch.no_grad():
            post = model.encode(x)
            kl_w = kl_normal(post.w, model.p0_w.dist()).mean()
        print(f"| {Path(run_dir).name} | {state['step']} | {fmt(digit_probe(post.z.loc, y))} | "
              f"{fmt(digit_probe(post.w.loc, y))} | {kl_w:.1f} |", flush=True)

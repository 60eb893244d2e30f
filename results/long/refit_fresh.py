"""The long base-EBM run's VAE at a snapshot, its prior refitted from a fresh f_alpha (penalty 0.1), vs MMVAE-style p0.

    python results/long/refit_fresh.py 8000 300    # the snapshot's step, refit steps (LONG_RUN=folder)
"""
from pathlib import Path
import os, sys, time, torch
ROOT = Path(__file__).resolve().parents[2]  # run from the repository root: data/polymnist is read from there
sys.path.insert(0, str(ROOT))
from mmebm.classifiers import Classifiers
from mmebm.coherence import joint_coherence
from mmebm.data import PolyMNIST
from mmebm.nce import posterior_pool
from mmebm.refit import RefitConfig, refit_prior
from mmebm.train import load_checkpoint, model_from_state
torch.set_num_threads(1)
judges = {n: Classifiers.load(ROOT / "weights" / f) for n, f in (("main", "judges"), ("blur_robust", "classifiers"))}
# the first long run of the base EBM model (no penalty; results/long/README.md, section 4)
L = Path(os.environ.get("LONG_RUN", Path.home() / "mmebm_state/long/polymnist_mmvae_ebm-long-s0-nopenalty")) / "snapshots"
step, steps = int(sys.argv[1]), int(sys.argv[2])
model, cfg = model_from_state(load_checkpoint(L / f"step_{step:07d}.pt"))
t = time.time()
def joint(tag):
    torch.manual_seed(0)
    with torch.no_grad():
        x = model.sample(1000).clamp(0, 1)
        x0 = model.sample(1000, tilted=False).clamp(0, 1)
    print(f"step {step} {tag}: joint z~prior " + ", ".join(f"{n} {joint_coherence(x, c):.3f}" for n, c in judges.items())
          + "; z~p0 " + ", ".join(f"{n} {joint_coherence(x0, c):.3f}" for n, c in judges.items()) + f" ({time.time()-t:.0f} s)", flush=True)
for mod in model.prior.f_alpha.modules():
    if hasattr(mod, "reset_parameters"):
        mod.reset_parameters()
model.requires_grad_(False); model.prior.f_alpha.requires_grad_(True)
torch.manual_seed(0)
train = PolyMNIST.load_cached(str(ROOT / "data/polymnist"), "train", 10_000)
pool = posterior_pool(model, train)
torch.manual_seed(1)
loss = refit_prior(model.prior, pool, RefitConfig(steps=steps), cfg.model.ebm_lr)
model.requires_grad_(False)
joint(f"fresh f_alpha refitted {steps} steps (loss {loss:.2f})")

"""Joint coherence of the long base-EBM run's prior at its snapshots, before and after a refit (mmebm.refit).

    python results/long/refit_long.py 8000 5657    # steps of ~/mmebm_state/long/<run>/snapshots (LONG_RUN=folder)
"""
from pathlib import Path
import os, sys, time, torch
ROOT = Path(__file__).resolve().parents[2]  # run from the repository root: data/polymnist is read from there
sys.path.insert(0, str(ROOT))
from mmebm.classifiers import Classifiers
from mmebm.coherence import joint_coherence
from mmebm.refit import refit_run
from mmebm.train import load_checkpoint, model_from_state, save_checkpoint
torch.set_num_threads(1)
judges = {n: Classifiers.load(ROOT / "weights" / f) for n, f in (("main", "judges"), ("blur_robust", "classifiers"))}
# the first long run of the base EBM model (no penalty; results/long/README.md, section 4)
L = Path(os.environ.get("LONG_RUN", Path.home() / "mmebm_state/long/polymnist_mmvae_ebm-long-s0-nopenalty")) / "snapshots"
out = Path.home() / "mmebm_state/diag/refit"
for step in map(int, sys.argv[1:]):
    d = out / f"ebm-{step}"
    d.mkdir(parents=True, exist_ok=True)
    state = load_checkpoint(L / f"step_{step:07d}.pt")
    state["config"]["data"]["root"] = str(ROOT / "data/polymnist")
    save_checkpoint(d / "checkpoint.pt", state)
    t = time.time()
    r = refit_run(d, device="cpu")
    for name, run in (("paper's prior", d), ("refitted", r)):
        model, _ = model_from_state(load_checkpoint(run / "checkpoint.pt"))
        torch.manual_seed(0)
        with torch.no_grad():
            x = model.sample(1000).clamp(0, 1)
            chain = model.prior.sample(200, return_chain=True)
            f_end = model.prior.f_alpha(chain[-1]).mean().item(); f_start = model.prior.f_alpha(chain[0]).mean().item()
        print(f"step {step} {name}: joint " + ", ".join(f"{n} {joint_coherence(x, c):.3f}" for n, c in judges.items())
              + f"; mean f_alpha at z0 {f_start:.1f}, at z_K {f_end:.1f}; |z_K| {chain[-1].norm(dim=-1).mean():.1f} ({time.time()-t:.0f} s)", flush=True)

"""Is the EBM prior short of training? Train f_alpha further on a shipped run with the VAE frozen.

Evaluation-side experiment, not the paper's joint training: the encoders and decoders of a shipped
EBM run stay as they are, and only f_alpha keeps learning with the training's own EBM update
(ebm.EBMPrior.ebm_loss): positives are posterior samples z ~ q(z | x_m) of training tuples, every
modality's expert (64 tuples x 5 experts per step, as in training), negatives fresh 60-step
Langevin chains from p0; Adam with the run's betas, at its ebm_lr times each --lr-mult. Every
--every steps: joint coherence of 2,000 samples of p_alpha (the run's chains), with the mean
f_alpha of the samples and of the posterior means of test tuples. The first rows are the ceiling
(posterior means of test tuples through the decoders) and p0.

    OMP_NUM_THREADS=1 python results/ebm_sampling/posthoc.py weights/polymnist_mmvae_ebm-cpu-s2 [--steps 4000] [--lr-mult 1 10]
"""

import argparse
import copy
import time

import torch

from mmebm.classifiers import Classifiers
from mmebm.coherence import joint_agreement, predict
from mmebm.data.dataset import PolyMNIST
from mmebm.weights import load_shipped

ap = argparse.ArgumentParser()
ap.add_argument("run")
ap.add_argument("--classifiers", default="weights/classifiers")
ap.add_argument("--steps", type=int, default=4000)
ap.add_argument("--every", type=int, default=1000)
ap.add_argument("--lr-mult", type=float, nargs="+", default=[1.0, 10.0])
ap.add_argument("--n-train", type=int, default=20_000, help="training tuples whose posteriors are the positives")
args = ap.parse_args()

N = 2000
model, cfg, _ = load_shipped(args.run)
clf = Classifiers.load(args.classifiers)
torch.manual_seed(0)
with torch.no_grad():
    train = PolyMNIST.load("data/polymnist", "train", limit=args.n_train)
    q = [model.encode(train[torch.arange(i, min(i + 500, len(train)))][0]).z for i in range(0, len(train), 500)]
    loc, scale = torch.cat([d.loc for d in q]), torch.cat([d.scale for d in q])  # [n, M, Dz]
    x_test, _ = PolyMNIST.load("data/polymnist", "test", limit=N)[torch.arange(N)]
    z_test = model.encode(x_test).z.mean[:, 0]  # posterior means of modality 0
dist = type(model.encode(x_test[:1]).z)


def report(name, prior, z):
    with torch.no_grad():
        pred = torch.cat([predict(clf, model.decode_z(zb)) for zb in z.split(500)])
        f_z, f_post = prior.f_alpha(z).mean().item(), prior.f_alpha(z_test).mean().item()
    coherent = joint_agreement(pred)
    print(f"{name:<40} joint {coherent.double().mean().item():.3f}  mean f_alpha: samples {f_z:7.2f}, "
          f"posterior means {f_post:7.2f}  |z| {z.norm(dim=1).mean().item():5.2f}  "
          f"coherent digits {torch.bincount(pred[coherent, 0], minlength=10).tolist()}", flush=True)


print(f"{args.run}: {cfg.model.model}, ebm_lr {cfg.model.ebm_lr}, betas {cfg.model.ebm_betas}, "
      f"Langevin {model.prior.n_steps} x {model.prior.step_size}; positives from {len(loc)} training tuples")
report("posterior means (modality 0), the ceiling", model.prior, z_test)
report("p0 = N(0, I)", model.prior, model.prior.p0.sample(N))
for mult in args.lr_mult:
    prior = copy.deepcopy(model.prior).float()
    opt = torch.optim.Adam(prior.f_alpha.parameters(), lr=cfg.model.ebm_lr * mult, betas=cfg.model.ebm_betas)
    torch.manual_seed(1)
    report(f"lr x{mult:g}, step 0 (as shipped)", prior, prior.sample(N))
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        idx = torch.randint(len(loc), (cfg.train.batch_size,))
        z_pos = dist(loc[idx], scale[idx]).rsample().reshape(-1, loc.shape[-1])  # every expert's sample
        loss, _ = prior.ebm_loss(z_pos)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % args.every == 0:
            report(f"lr x{mult:g}, step {step} ({time.perf_counter() - t0:.0f} s, loss {loss.item():.2f})",
                   prior, prior.sample(N))

"""Does the PolyMNIST model learn digits at CPU budgets? A probe behind the README's note on the cpu profile.

Trains MMVAE (conv nets, per-modality loop) on the first M PolyMNIST modalities (or M copies of
modality 0 with --duplicate) of 20,000 training tuples at batch 64, and every 200 steps prints the
digit accuracy of self-reconstructions (posterior means) and of the cross generations from
modality 0, scored by the trained coherence classifiers on 500 test tuples.

    python results/learning_probe.py --likelihood normal --scale 0.1 --posterior normal --steps 2000 --M 2
"""

import argparse
import time

import torch

from mmebm import classifiers as clf
from mmebm.config import ModelConfig
from mmebm.data import PolyMNIST
from mmebm.models import build_model, make_optimizers, train_step

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--likelihood", default="laplace")
p.add_argument("--scale", type=float, default=0.75)
p.add_argument("--posterior", default="laplace", help="family of the posteriors and the prior")
p.add_argument("--steps", type=int, default=1400)
p.add_argument("--M", type=int, default=5)
p.add_argument("--duplicate", action="store_true", help="M copies of modality 0 instead of modalities 0..M-1")
p.add_argument("--data", default="data/polymnist")
p.add_argument("--classifiers", default="runs/classifiers")
args = p.parse_args()

torch.manual_seed(0)
M = args.M
cols = [0] * M if args.duplicate else list(range(M))
cfg = ModelConfig(model="mmvae", n_modalities=M, net="conv", prior=args.posterior, posterior=args.posterior,
                  likelihood=args.likelihood, lik_scale=args.scale, beta=1.0, batched=False)
model = build_model(cfg)
opt, _ = make_optimizers(model)
train = PolyMNIST.load(args.data, "train", limit=20000)
x_test, y_test = PolyMNIST.load(args.data, "test", limit=500)[torch.arange(500)]
x_test = x_test[:, cols]
judge = clf.Classifiers.load(args.classifiers).eval()


def accuracy(images, m):  # modality m's classifier on images of modality cols[m]
    return round((judge.nets[cols[m]](images).argmax(-1) == y_test).float().mean().item(), 2)


t0, step, g = time.time(), 0, torch.Generator().manual_seed(0)
while step < args.steps:
    for x, _ in train.batches(64, generator=g, drop_last=True):
        out = train_step(model, x[:, cols], opt)
        step += 1
        if step % 200 == 0 or step == args.steps:
            with torch.no_grad():
                rec = model.reconstruct(x_test, mean=True)
                cross = model.cross_generate(x_test, 0, mean=True)
            print(f"step {step}: loss {out['loss']:.0f}, self-reconstruction accuracy "
                  f"{[accuracy(rec[:, m], m) for m in range(M)]}, cross from m0 "
                  f"{[accuracy(cross[:, m], m) for m in range(1, M)]}, {time.time() - t0:.0f} s", flush=True)
        if step >= args.steps:
            break

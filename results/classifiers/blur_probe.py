"""Do the judges read blurred digits? (results/classifiers/README.md, section 3)

Part 1: each classifier folder's accuracy on 2,000 random test tuples, blurred with a Gaussian
of sigma 0 to 2 pixels (a blurred real digit keeps its label), and the share it reads as "1".
Part 2 (with --run): the run's generations of modality 3 from modality 2 (2,000 test tuples),
read by the classifier of every modality: a judge that fails only on generations, not on the
digits, reads them worse than the judges of other modalities do.

    python results/classifiers/blur_probe.py weights/classifiers runs/classifiers_blur \
        --run runs/polymnist_mmvaeplus-cpu-s0-shipped
"""

import argparse

import torch

from mmebm.classifiers import Classifiers, blur
from mmebm.coherence import predict
from mmebm.data import PolyMNIST
from mmebm.train import load_run

p = argparse.ArgumentParser()
p.add_argument("classifiers", nargs="+", help="classifier folders")
p.add_argument("--run", help="a trained run folder (part 2)")
p.add_argument("--data", default="data/polymnist")
args = p.parse_args()

torch.manual_seed(0)
test = PolyMNIST.load(args.data, "test")
x, y = test[torch.randperm(len(test))[:2000]]


def share(pred, digit):
    return [f"{(pred[:, m] == digit).float().mean().item():.3f}" for m in range(pred.shape[1])]


judges = {folder: Classifiers.load(folder) for folder in args.classifiers}
print("part 1: real test digits, blurred; per modality")
for folder, clf in judges.items():
    for sigma in (0, 0.7, 1.0, 1.5, 2.0):
        pred = predict(clf, blur(x, sigma))
        print(f"{folder:<28} sigma {sigma:<4} accuracy {share(pred, y)}  read as 1 {share(pred, 1)}")

if args.run:
    print(f"\npart 2: {args.run}, modality 3 generated from modality 2, read by each modality's classifier")
    model, _ = load_run(args.run)
    torch.manual_seed(0)
    with torch.no_grad():
        gen = torch.cat([model.cross_generate(x[s : s + 500], 2) for s in range(0, len(x), 500)])[:, 3]
    for folder, clf in judges.items():
        preds = predict(clf, gen[:, None].expand(-1, 5, -1, -1, -1).contiguous())  # column m: classifier of m
        for m, pred in enumerate(preds.T):
            hist = torch.bincount(pred, minlength=10).tolist()
            print(f"{folder:<28} classifier of m{m}: accuracy {(pred == y).float().mean().item():.3f}, digits {hist}")

"""Which classifier recipe reaches >= 0.98 test accuracy on the hardest modalities (issue #10 item 5)?

Trains the classifier of one modality alone (a fifth of the cost of all five) with
mmebm.classifiers.train and prints its test accuracy and wall time:

    OMP_NUM_THREADS=1 python results/classifiers/probe.py MODALITY ARCH EPOCHS [BATCH LR NO_DROPOUT_EPOCHS [bf16]]
"""

import sys
import time

import torch

from mmebm import classifiers as clf
from mmebm.data.dataset import PolyMNIST

m, arch, epochs = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
opts = dict(zip(("batch_size", "lr", "no_dropout_epochs", "bf16"),
                (t(a) for t, a in zip((int, float, int, lambda a: a == "bf16"), sys.argv[4:]))))
cfg = clf.TrainConfig(arch=arch, epochs=epochs, progress=False, **opts)
torch.set_num_threads(1)
one = lambda d: PolyMNIST(d.images[:, [m]], d.labels)  # noqa: E731 (modality m alone)
train, test = (one(PolyMNIST.load("data/polymnist", s)) for s in ("train", "test"))
t0 = time.time()
model = clf.train(train, test, cfg)
print(f"modality {m} {cfg}: test accuracy {model.test_accuracy[0]:.4f} in {time.time() - t0:.0f} s", flush=True)

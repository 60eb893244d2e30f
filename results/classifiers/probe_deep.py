"""A deeper classifier for one modality: 3x3 convs with batch norm (VGG-like, 4 convs), Adam with
one-cycle lr, EPOCHS epochs. Prints test accuracy and wall time.

    OMP_NUM_THREADS=1 python results/classifiers/probe_deep.py MODALITY EPOCHS [WIDTH] [THREADS] [lean]
"""

import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmebm.data.dataset import PolyMNIST

m, epochs = int(sys.argv[1]), int(sys.argv[2])
w = int(sys.argv[3]) if len(sys.argv) > 3 else 16
torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
torch.manual_seed(0)
g = torch.Generator().manual_seed(0)
one = lambda d: PolyMNIST(d.images[:, [m]], d.labels)  # noqa: E731
train, test = (one(PolyMNIST.load("data/polymnist", s)) for s in ("train", "test"))


def block(i, o):
    return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]


lean = len(sys.argv) > 5 and sys.argv[5] == "lean"  # one conv at 28x28 instead of two
net = nn.Sequential(*block(3, w), *([] if lean else block(w, w)), nn.MaxPool2d(2), *block(w, 2 * w), *block(2 * w, 2 * w), nn.MaxPool2d(2),
                    nn.Flatten(), nn.Dropout(0.3), nn.Linear(2 * w * 49, 10)).to(memory_format=torch.channels_last)
bs = 128
steps = epochs * -(-len(train) // bs)
opt = torch.optim.Adam(net.parameters(), lr=3e-3)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
t0 = time.time()
net.train()
for _ in range(epochs):
    for x, y in train.batches(bs, generator=g):
        loss = F.cross_entropy(net((x[:, 0] - 0.5) * 4), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
net.eval()
with torch.no_grad():
    correct = sum((net((x[:, 0] - 0.5) * 4).argmax(1) == y).sum().item() for x, y in test.batches(1000, shuffle=False))
print(f"deep{' lean' if lean else ''} modality {m} width {w} epochs {epochs}: test accuracy {correct / len(test):.4f} in {time.time() - t0:.0f} s",
      flush=True)

"""Does the EBM prior's joint coherence at this budget suffer from too-short sampling chains?

Evaluation only, on a shipped run (for the Gaussian twins, only the first two rows): joint coherence of 2,000 samples drawn with Langevin chains
of several lengths and step sizes (training used 60 steps of size 0.4), next to samples from the
base p0 and from the aggregate posterior (posterior means of test tuples pushed through the
decoders: what a perfect prior over the posterior clusters would give). Also prints the mean
energy f_alpha of each sample set, against that of the posterior means.

    OMP_NUM_THREADS=1 python results/ebm_sampling/probe.py weights/polymnist_mmvae_ebm-cpu-s0 [CLASSIFIERS_DIR]
"""

import sys

import torch

from mmebm.classifiers import Classifiers
from mmebm.coherence import joint_agreement, predict
from mmebm.data.dataset import PolyMNIST
from mmebm.langevin import sample_langevin
from mmebm.weights import load_shipped

N = 2000
model, cfg, _ = load_shipped(sys.argv[1])
clf = Classifiers.load(sys.argv[2] if len(sys.argv) > 2 else "weights/classifiers")
prior = model.prior
test = PolyMNIST.load("data/polymnist", "test", limit=N)


def report(name, z):
    with torch.no_grad():
        pred = torch.cat([predict(clf, model.decode_z(zb)) for zb in z.split(500)])
        f = prior.f_alpha(z).mean().item() if model.has_ebm else float("nan")
    coherent = joint_agreement(pred)
    digits = torch.bincount(pred[coherent, 0], minlength=10)
    print(f"{name:<34} joint {coherent.double().mean().item():.3f}  mean f_alpha {f:7.2f}  "
          f"|z| {z.norm(dim=1).mean().item():5.2f}  coherent digits {digits.tolist()}", flush=True)


torch.manual_seed(0)
with torch.no_grad():
    x, _ = test[torch.arange(N)]
    z_post = model.encode(x).z.mean[:, 0]  # q(z | x_0): batch shape [N, M], modality 0
report("posterior means (modality 0)", z_post)
report("p0 = N(0, I)", (prior.p0 if model.has_ebm else prior).sample(N))
for steps, size in [(60, 0.4), (200, 0.4), (1000, 0.4), (60, 0.1), (200, 0.1), (1000, 0.1), (60, 0.8)] * model.has_ebm:
    torch.manual_seed(0)
    z = sample_langevin(prior.energy, prior.p0.sample(N), steps, size, noise=True)
    report(f"Langevin {steps} steps, size {size}", z)

"""The cheap probe behind the cpu recipe: a VAE on PolyMNIST modality 0 alone.

    python results/cpu_recipe/single_modality_probe.py SETTING [SETTING ...]   (from the repo root)

A one-modality MMVAE (one encoder, one decoder: a tenth of a five-modality step) trained with
batch 64 on random training tuples; every 200 steps, the digit accuracy of its
self-reconstructions of 500 test tuples (posterior samples), judged by the modality-0
classifier of runs/classifiers. If a model cannot learn the digit from its own modality, the
multimodal objective cannot learn it across modalities either, so this ranks the levers of
the likelihood, posterior and optimizer in under a minute each (one CPU thread).
Prints one line per setting: name, seconds, step:accuracy ..., last loss.
"""

import sys
import time

import torch

from mmebm.classifiers import Classifiers
from mmebm.coherence import predict
from mmebm.config import ModelConfig
from mmebm.data import PolyMNIST
from mmebm.models import build_model, make_optimizers, train_step

NORMAL_POST = dict(posterior="normal", prior="gaussian")
N01 = dict(NORMAL_POST, likelihood="normal", lik_scale=0.1)
# name -> (ModelConfig keywords, steps, batch size, lr, amsgrad)
SETTINGS = {
    "lap_lap0.75": ({}, 1400, 64, 1e-3, True),  # the paper's: Laplace posteriors, Laplace likelihood 0.75
    "Npost_lap0.75": (NORMAL_POST, 1400, 64, 1e-3, True),
    "lappost_N0.1": (dict(likelihood="normal", lik_scale=0.1), 1400, 64, 1e-3, True),
    "N_lap0.1": (dict(NORMAL_POST, lik_scale=0.1), 1400, 64, 1e-3, True),
    "N_N0.1": (N01, 1400, 64, 1e-3, True),
    "N_N0.3": (dict(N01, lik_scale=0.3), 1400, 64, 1e-3, True),
    "N_N0.03": (dict(N01, lik_scale=0.03), 1400, 64, 1e-3, True),
    "N_N0.1_beta0.1": (dict(N01, beta=0.1), 1400, 64, 1e-3, True),
    "N_N0.1_beta0": (dict(N01, beta=0.0), 1400, 64, 1e-3, True),
    "N_N0.1_bs32": (N01, 2800, 32, 1e-3, True),
    "N_N0.1_noams": (N01, 1400, 64, 1e-3, False),
    "N_N0.1_lr3e-3": (N01, 1400, 64, 3e-3, True),
    "N_N0.1_lr3e-3_noams": (N01, 1400, 64, 3e-3, False),
    "N_N0.1_z64": (dict(N01, z_dim=64), 1400, 64, 1e-3, True),
    "N_N0.1_z64_lr3e-3_noams": (dict(N01, z_dim=64), 1400, 64, 3e-3, False),
    "N_N0.1_width16_lr3e-3_noams": (dict(N01, conv_width=16), 1400, 64, 3e-3, False),
}


def probe(name, data, test, classifiers):
    kw, steps, batch, lr, amsgrad = SETTINGS[name]
    torch.manual_seed(0)
    model = build_model(ModelConfig(model="mmvae", n_modalities=1, net="conv", batched=False, **kw))
    opt, _ = make_optimizers(model, lr, amsgrad)
    x_test, y_test = test[:]
    g = torch.Generator().manual_seed(0)
    t0, curve = time.time(), []
    for step in range(1, steps + 1):
        x, _ = data[torch.randint(len(data), (batch,), generator=g)]
        loss = train_step(model, x[:, :1], opt)["loss"]
        if step % 200 == 0:
            with torch.no_grad():
                rec = model.eval().reconstruct(x_test[:, :1])
            model.train()
            pred = predict(classifiers, rec.expand(-1, 5, -1, -1, -1).contiguous())[:, 0]  # classifier m0
            curve.append(f"{step}:{(pred == y_test).float().mean():.2f}")
    print(name, f"{time.time() - t0:.0f}s", " ".join(curve), f"loss {loss:.0f}", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    data = PolyMNIST.load("data/polymnist", "train")
    test = PolyMNIST.load("data/polymnist", "test", limit=500)
    classifiers = Classifiers.load("runs/classifiers")
    for name in sys.argv[1:] or SETTINGS:
        probe(name, data, test, classifiers)

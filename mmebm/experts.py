"""How much each unimodal expert q(z | x_m) counts in the product of experts, and how much of
the digit it knows: the diagnostics that tell a product dominated by one confident expert
(MoPoE, MVTCAE) from one in which only one expert carries the digit (results/experts/).

    python -m mmebm.experts weights/polymnist_mvtcae-cpu-s0 [...] --data data/polymnist

For each modality m, over test tuples: the expert's mean posterior scale, its mean share of the
precision of the product of all M experts (1/M each when they count alike; near 1 for an expert
that decides the product alone), KL(q_all || q_m), the term MVTCAE's conditional VIB pulls
each expert along with, and how much of the digit the expert's posterior mean carries (a
nearest-centroid probe; chance 0.1): the encoder side of a row of the cross-coherence matrix.
"""

import argparse

import torch

from .distributions import Normal
from .objectives import kl_normal, poe


@torch.no_grad()
def expert_stats(qz):
    """{"scale", "precision_share", "kl_joint_to_expert"}: each a list of M means over the batch
    (scale and share also over the latent dimensions; the KL summed over them) for the unimodal
    posteriors qz (Normal, batch [B, M, Dz]: the product of Gaussian experts is closed-form)."""
    M = qz.loc.shape[1]
    prec = qz.scale ** -2                                              # [B, M, D]
    share = prec / prec.sum(1, keepdim=True)
    joint = poe(qz, torch.ones(1, M, dtype=torch.bool), torch.zeros(1, dtype=torch.bool))  # batch [B, 1]
    kl = kl_normal(joint, qz)                                          # [B, M]: KL(q_all || q_m)
    return {"scale": qz.scale.mean((0, 2)).tolist(), "precision_share": share.mean((0, 2)).tolist(),
            "kl_joint_to_expert": kl.mean(0).tolist()}


def digit_probe(loc, labels, seed=0):
    """How much of the digit each expert's posterior mean carries: loc [N, M, D], labels [N] ->
    per modality, the accuracy of a nearest-centroid classifier fitted on a random half of the
    tuples (one centroid per digit; seeded) and scored on the other half. Chance is about 0.1."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    fit, score = order[: len(order) // 2], order[len(order) // 2:]
    if set(labels[fit].tolist()) != set(range(10)):
        raise ValueError("digit_probe fits one centroid per digit: give it tuples of every digit (a few of each)")
    out = []
    for m in range(loc.shape[1]):
        centroids = torch.stack([loc[fit, m][labels[fit] == d].mean(0) for d in range(10)])
        guess = torch.cdist(loc[score, m], centroids).argmin(1)
        out.append((guess == labels[score]).float().mean().item())
    return out


@torch.no_grad()
def model_expert_stats(model, data, n=1000, batch_size=250):
    """expert_stats of a model's unimodal posteriors of z over n evenly spaced test tuples
    (data: a PolyMNIST split, encoded batch_size tuples at a time), and each expert's digit_probe."""
    index = torch.linspace(0, len(data) - 1, min(n, len(data))).round().long()
    locs, scales, labels = [], [], []
    for i in range(0, len(index), batch_size):
        x, y = data[index[i:i + batch_size]]
        qz = model.encode(x.float() / 255 if x.dtype == torch.uint8 else x).z
        if not isinstance(qz, Normal):
            raise ValueError(f"expert_stats needs Gaussian experts, the model's are {type(qz).__name__}")
        locs.append(qz.loc)
        scales.append(qz.scale)
        labels.append(torch.as_tensor(y))
    loc = torch.cat(locs)
    return expert_stats(Normal(loc, torch.cat(scales))) | {"digit_probe": digit_probe(loc, torch.cat(labels))}


def main(argv=None):
    from .data import PolyMNIST
    from .weights import load_shipped

    p = argparse.ArgumentParser(prog="python -m mmebm.experts", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="shipped run folders (weights/<run>)")
    p.add_argument("--data", default="data/polymnist")
    p.add_argument("-n", type=int, default=1000, help="test tuples")
    args = p.parse_args(argv)
    data = PolyMNIST.load(args.data, "test")
    print("| run | statistic | " + " | ".join(f"m{m}" for m in range(data.n_modalities)) + " |")
    print("|---|---|" + "---|" * data.n_modalities)
    for run in args.runs:
        model, _, _ = load_shipped(run)
        for key, values in model_expert_stats(model, data, args.n).items():
            print(f"| {run.rstrip('/').split('/')[-1]} | {key} | " + " | ".join(f"{v:.3g}" for v in values) + " |",
                  flush=True)


if __name__ == "__main__":
    main()

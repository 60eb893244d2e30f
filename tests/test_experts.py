"""The expert diagnostic (mmebm.experts) against closed forms."""

import math

import pytest
import torch

from mmebm.distributions import Laplace, Normal
from mmebm.experts import expert_stats, model_expert_stats


def test_precision_shares_and_kl_of_two_experts():
    # expert 0: N(0, 1), expert 1: N(1, 0.1^2) in every dimension: the product is N(100/101, 1/101)
    qz = Normal(torch.tensor([[[0.0, 0.0], [1.0, 1.0]]]), torch.tensor([[[1.0, 1.0], [0.1, 0.1]]]))
    s = expert_stats(qz)
    assert s["scale"] == pytest.approx([1.0, 0.1])
    assert s["precision_share"] == pytest.approx([1 / 101, 100 / 101])
    mu, var = 100 / 101, 1 / 101

    def kl(b, s2):  # KL(N(mu, var) || N(b, s2^2)) per dimension
        return math.log(s2 / math.sqrt(var)) + (var + (mu - b) ** 2) / (2 * s2**2) - 0.5

    assert s["kl_joint_to_expert"] == pytest.approx([2 * kl(0.0, 1.0), 2 * kl(1.0, 0.1)], rel=1e-5)


def test_equal_experts_share_alike():
    qz = Normal(torch.randn(8, 5, 3), torch.full((8, 5, 3), 0.5))
    assert expert_stats(qz)["precision_share"] == pytest.approx([0.2] * 5)


class _Model:
    def __init__(self, dist):
        self.dist = dist

    def encode(self, x):
        B = len(x)
        post = type("Post", (), {})()
        post.z = self.dist(torch.zeros(B, 2, 3), torch.ones(B, 2, 3))
        return post


class _Data:
    def __len__(self):
        return 200

    def __getitem__(self, i):
        return torch.zeros(len(i), 2, 3, 4, 4, dtype=torch.uint8), torch.as_tensor(i) % 10


def test_model_expert_stats_averages_batches_and_needs_gaussian_experts():
    s = model_expert_stats(_Model(Normal), _Data(), n=200, batch_size=30)
    assert s["precision_share"] == pytest.approx([0.5, 0.5]) and s["kl_joint_to_expert"][0] > 0
    with pytest.raises(ValueError, match="Gaussian experts"):
        model_expert_stats(_Model(Laplace), _Data())


def test_digit_probe_finds_the_expert_that_carries_the_digit():
    from mmebm.experts import digit_probe

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(400) % 10
    loc = torch.randn(400, 2, 4, generator=g)  # expert 1: noise alone
    loc[:, 0, 0] += 10 * labels  # expert 0: the digit along one axis, far apart
    probe = digit_probe(loc, labels)
    assert probe[0] == 1.0 and probe[1] < 0.25
    order = labels.argsort()  # ordered by digit, as a split may be: the probe still fits every digit
    assert digit_probe(loc[order], labels[order])[0] == 1.0
    with pytest.raises(ValueError, match="tuples of every digit"):
        digit_probe(loc[:10], labels[:10] // 2)

"""Caption measures against captions whose variety and form are known, and their leave-one-out
shortcuts against brute force."""

import math
import statistics
from types import SimpleNamespace

import pytest
import torch

from mmebm.captions import (caption_measures, caption_words, cluster_interval, distinct_n, jackknife,
                            mean_interval, repeated_share, word_accuracy)
from mmebm.data.cub_text import EOS, PAD


def ids_of(*captions, L=8):
    """Word-id rows: each caption's words, then <eos> (unless it fills L), then padding."""
    rows = []
    for c in captions:
        row = list(c) + ([EOS] if len(c) < L else [])
        rows.append(row + [PAD] * (L - len(row)))
    return torch.tensor(rows)


def test_caption_words_stop_at_eos_and_drop_padding():
    ids = torch.tensor([[5, 6, EOS, 7, PAD], [5, PAD, 6, 7, 8]])
    assert caption_words(ids) == [(5, 6), (5, 6, 7, 8)]


def test_distinct_n_by_hand():
    value, _ = distinct_n([(1, 2, 3), (1, 2, 4)], 1)
    assert value == 4 / 6  # words 1 2 3 1 2 4
    value, _ = distinct_n([(1, 2, 3), (1, 2, 4)], 2)
    assert value == 3 / 4  # (1 2) (2 3) (1 2) (2 4)


@pytest.mark.parametrize("seed", [0, 1])
def test_leave_one_out_shortcuts_match_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    # few words and short captions, so that n-grams and whole captions repeat
    captions = [tuple(torch.randint(3, 7, (int(n),), generator=g).tolist())
                for n in torch.randint(1, 4, (40,), generator=g)]
    for n in (1, 2):
        _, loo = distinct_n(captions, n)
        assert loo == pytest.approx([distinct_n(captions[:i] + captions[i + 1:], n)[0] for i in range(len(captions))])
    value, loo = repeated_share(captions)
    assert 0 < value < 1
    assert loo == pytest.approx([repeated_share(captions[:i] + captions[i + 1:])[0] for i in range(len(captions))])


def test_jackknife_of_a_mean_is_the_standard_error():
    x = [0.3, 1.2, -0.7, 2.0, 0.1, 0.9]
    n, mean = len(x), statistics.fmean(x)
    loo = [(sum(x) - v) / (n - 1) for v in x]
    est = jackknife(mean, loo)
    half = 1.959963984540054 * statistics.stdev(x) / math.sqrt(n)
    assert (est.lo, est.hi) == pytest.approx((mean - half, mean + half))


def test_cluster_interval_counts_groups_not_copies():
    x = torch.tensor([0.3, 1.2, -0.7, 2.0, 0.1, 0.9], dtype=torch.float64)
    G = len(x)
    single = cluster_interval(x, torch.arange(G))  # one item per group: the usual standard error
    assert tuple(single) == pytest.approx(tuple(mean_interval(x)))
    # ten identical copies of each value carry no more information than the values once
    copies = cluster_interval(x.repeat_interleave(10), torch.arange(G).repeat_interleave(10))
    assert (copies.lo, copies.hi) == pytest.approx((single.lo, single.hi))
    assert mean_interval(x.repeat_interleave(10)).hi - mean_interval(x.repeat_interleave(10)).lo < 0.4 * (single.hi - single.lo)
    with pytest.raises(ValueError, match="two groups"):
        cluster_interval(x, torch.zeros(G))


def test_measures_of_one_caption_repeated_and_of_all_distinct():
    same = caption_measures(ids_of(*[(4, 5, 6)] * 10))
    assert same["repeated"] == (1.0, 1.0, 1.0)
    assert same["distinct-1"].value == 3 / 30 and same["distinct-2"].value == 2 / 20
    assert same["length"] == (3.0, 3.0, 3.0)
    distinct = caption_measures(ids_of(*[(10 + 3 * i, 11 + 3 * i, 12 + 3 * i) for i in range(10)]))
    assert distinct["repeated"].value == 0.0 and distinct["distinct-1"].value == distinct["distinct-2"].value == 1.0


def test_ended_share_counts_captions_with_an_eos():
    m = caption_measures(ids_of((4, 5), (4, 5, 6, 7, 8, 9, 10, 11), (6,), (7, 8, 9, 10, 11, 12, 13, 14)))
    assert m["ended"].value == 0.5 and m["ended"].lo < 0.5 < m["ended"].hi
    assert m["length"].value == (2 + 8 + 1 + 8) / 4


def test_bigram_measure_is_the_scores_mean():
    ids = ids_of((4, 5), (6,))
    m = caption_measures(ids, score=lambda v: torch.tensor([-2.0, -4.0]))
    assert m["bigram"].value == -3.0 and m["bigram"].lo < -3.0 < m["bigram"].hi


def test_word_accuracy_counts_words_and_eos_not_padding():
    truth = ids_of((4, 5, 6), (7,), L=6)  # 4 + 2 non-padding positions
    recon = truth.clone()
    recon[0, 1] = 9   # one word wrong
    recon[1, 4] = 9   # a padding position wrong: not counted
    logits = torch.nn.functional.one_hot(recon, 12).float()
    model = SimpleNamespace(cfg=SimpleNamespace(modalities=["text"]), reconstruct=lambda x: (logits[:len(x[0])],))
    assert word_accuracy(model, (truth,)) == 5 / 6

"""Captions from the caption decoder: word ids from logits (greedy or sampled), and captions
decoded along the Langevin chain from z_0 ~ p0 to z_K ~ p_alpha (the poster's CUB figure).

The decoder is not autoregressive (MMVAE's CUB sentence decoder): it gives logits for all 32
positions at once, so greedy decoding is an argmax per position and sampling draws each word
independently given z.
"""

import math
from collections import Counter, namedtuple

import torch

from .data.cub_text import EOS, PAD
from .report import Z95, wilson_interval


def word_ids(logits, sample=False, temperature=1.0, generator=None):
    """Logits [..., L, V] -> word ids [..., L]: argmax, or a draw from softmax(logits / temperature)."""
    if not sample:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, -1)
    flat = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
    return flat.view(probs.shape[:-1])


def to_text(logits, vocab, sample=False, temperature=1.0, generator=None):
    """Logits [N, L, V] -> N caption strings (up to the first <eos>)."""
    return vocab.decode(word_ids(logits, sample, temperature, generator).cpu())


def text_index(model):
    """Position of the caption among the model's modalities."""
    kinds = model.cfg.modalities
    if "text" not in kinds:
        raise ValueError(f"model has no caption modality (its modalities are {kinds})")
    return kinds.index("text")


@torch.no_grad()
def caption_chain(model, vocab, n_chains, steps, seed=0, sample=False, as_ids=False):
    """Captions decoded along short-run Langevin chains started at z_0 ~ p0.

    For an EBM-prior model, returns {k: [captions of the n_chains at step k]} for each k in
    `steps` (k is clipped to the chain length; the last state is the sample from p_alpha). For a
    Gaussian-prior model (no chain: its prior is p0) returns {0: captions at z ~ p0}. The
    modality-specific w (MMVAE+) is drawn once from p0(w) and kept along the chain, so only z
    moves. as_ids=True gives the word ids [n_chains, 32] instead of strings. Seeds the global
    RNG with `seed` (p0 draws and Langevin noise), so models compared with one seed share z_0."""
    torch.manual_seed(seed)
    t = text_index(model)
    if model.has_ebm:
        chain = model.prior.sample(n_chains, return_chain=True)  # [K + 1, n, dim z]
        steps = sorted({min(k, len(chain) - 1) for k in steps})
    else:
        chain, steps = model.prior.sample(n_chains)[None], [0]
    M = model.cfg.n_modalities
    w = model.p0_w.sample((n_chains, M)) if model.w_dim else None
    g = torch.Generator(chain.device).manual_seed(seed)  # word sampling, on the logits' device
    out = {}
    for k in steps:
        ids = word_ids(model.decode_z(chain[k], w)[t], sample, generator=g).cpu()
        out[k] = ids if as_ids else vocab.decode(ids)
    return out


class BigramScore:
    """How much a caption reads like the training captions: the mean per-word log-probability
    under a bigram model of the training captions (add-one smoothing; <bos> before the first
    word, words up to and including <eos>). A yardstick for the caption figures, not a metric
    of the paper: random or out-of-place words score low, but a frequent generic pattern scores
    well (results/cub_ebm_lr.md), so read the captions too."""

    def __init__(self, captions, vocab_size):
        ids = torch.as_tensor(captions)
        bos = vocab_size  # an extra row for the start of a caption
        counts = torch.ones(vocab_size + 1, vocab_size, dtype=torch.float64)  # add-one smoothing
        prev, cur, keep = self._pairs(ids, bos)
        counts.index_put_((prev[keep], cur[keep]), torch.ones(int(keep.sum()), dtype=torch.float64), accumulate=True)
        self.log_p = (counts / counts.sum(1, keepdim=True)).log()
        self.bos = bos

    @staticmethod
    def _pairs(ids, bos):
        from .data.cub_text import EOS

        prev = torch.cat([torch.full_like(ids[:, :1], bos), ids[:, :-1]], 1)
        # a word counts up to and including the first <eos>
        after_eos = torch.cumsum((ids == EOS).long(), 1) - (ids == EOS).long() > 0
        return prev, ids, ~after_eos

    def __call__(self, ids):
        """Mean per-word log-probability of each caption ids [N, L] -> [N]."""
        ids = torch.as_tensor(ids).cpu()
        prev, cur, keep = self._pairs(ids, self.bos)
        lp = self.log_p[prev, cur] * keep
        return (lp.sum(1) / keep.sum(1)).float()


# ---------------------------------------------------------------- measures repetition cannot fool

Estimate = namedtuple("Estimate", "value lo hi")  # a measure with its 95 % interval


def caption_words(ids):
    """Word ids [N, L] -> N tuples of the words before the first <eos> (padding dropped)."""
    out = []
    for row in torch.as_tensor(ids).tolist():
        words = []
        for i in row:
            if i == EOS:
                break
            if i != PAD:
                words.append(i)
        out.append(tuple(words))
    return out


def _ngrams(words, n):
    return Counter(zip(*(words[i:] for i in range(n))))


def distinct_n(captions, n):
    """Share of distinct n-grams among all n-grams of the captions (tuples of words), and the
    same with each caption left out in turn (for the jackknife)."""
    grams = [_ngrams(c, n) for c in captions]
    total = Counter()
    for g in grams:
        total.update(g)
    D, T = len(total), sum(total.values())
    # leaving caption i out removes the n-grams only it holds, and its n-grams from the count
    loo = [(D - sum(total[k] == v for k, v in g.items())) / max(T - sum(g.values()), 1) for g in grams]
    return D / max(T, 1), loo


def repeated_share(captions):
    """Share of captions that occur more than once among the captions, and leave-one-out values."""
    n, count = len(captions), Counter(captions)
    R = sum(count[c] > 1 for c in captions)
    # dropping one of a pair leaves its twin unique; dropping one of three or more leaves a repeat
    loo = [(R - (2 if count[c] == 2 else 1 if count[c] > 2 else 0)) / max(n - 1, 1) for c in captions]
    return R / n, loo


def jackknife(value, loo):
    """95 % interval of a statistic from its leave-one-out values (normal approximation)."""
    n = len(loo)
    mean = sum(loo) / n
    se = math.sqrt((n - 1) / n * sum((v - mean) ** 2 for v in loo))
    return Estimate(value, value - Z95 * se, value + Z95 * se)


def mean_interval(values):
    """Mean of per-caption values with its 95 % interval (normal approximation)."""
    v = torch.as_tensor(values, dtype=torch.float64)
    se = v.std().item() / math.sqrt(len(v)) if len(v) > 1 else 0.0
    return Estimate(v.mean().item(), v.mean().item() - Z95 * se, v.mean().item() + Z95 * se)


def cluster_interval(values, groups):
    """Mean of per-item values with a 95 % interval that allows for items of one group (the 10
    captions of one image) being alike: the cluster-robust standard error of the mean, sums of
    deviations taken per group. With one item per group it is mean_interval's."""
    v = torch.as_tensor(values, dtype=torch.float64)
    _, g = torch.unique(torch.as_tensor(groups), return_inverse=True)
    G, mean = int(g.max()) + 1, v.mean().item()
    if G < 2:
        raise ValueError("an interval over groups needs items of at least two groups")
    sums = torch.zeros(G, dtype=torch.float64).index_add_(0, g, v - mean)
    se = math.sqrt(G / (G - 1) * (sums ** 2).sum().item()) / len(v)
    return Estimate(mean, mean - Z95 * se, mean + Z95 * se)


def caption_measures(ids, score=None):
    """Measures of N captions' variety and form, each an Estimate with a 95 % interval over the
    captions (chains): distinct-1 / distinct-2 (share of distinct 1- and 2-grams; jackknife),
    `repeated` (share of captions that occur more than once; jackknife), `length` (mean words
    before <eos>), `ended` (share with an <eos> before the maximum length; Wilson) and, given a
    BigramScore, `bigram` (mean per-word log-probability). A generic pattern repeated scores
    well on the bigram yardstick but shows in distinct-n and `repeated`."""
    ids = torch.as_tensor(ids).cpu()
    captions = caption_words(ids)
    ended = int((ids == EOS).any(1).sum())
    out = {
        "distinct-1": jackknife(*distinct_n(captions, 1)),
        "distinct-2": jackknife(*distinct_n(captions, 2)),
        "repeated": jackknife(*repeated_share(captions)),
        "length": mean_interval([len(c) for c in captions]),
        "ended": Estimate(ended / len(ids), *wilson_interval(ended, len(ids))),
    }
    if score is not None:
        out["bigram"] = mean_interval(score(ids))
    return out


@torch.no_grad()
def word_accuracy(model, x, batch_size=500):
    """Share of the non-padding positions (words and <eos>) of the captions in x that greedy
    decoding of their own reconstruction gets right: z (and w) drawn from the caption's own
    posterior, as `model.reconstruct` does. x: the model's input (a tuple with the caption ids)."""
    t = text_index(model)
    right = total = 0
    for i in range(0, len(x[t]), batch_size):
        part = tuple(m[i:i + batch_size] for m in x)
        ids = word_ids(model.reconstruct(part)[t]).cpu()
        truth = part[t].cpu()
        keep = truth != PAD
        right += int(((ids == truth) & keep).sum())
        total += int(keep.sum())
    return right / total

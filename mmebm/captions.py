"""Captions from the caption decoder: word ids from logits (greedy or sampled), and captions
decoded along the Langevin chain from z_0 ~ p0 to z_K ~ p_alpha (the poster's CUB figure).

The decoder is not autoregressive (MMVAE's CUB sentence decoder): it gives logits for all 32
positions at once, so greedy decoding is an argmax per position and sampling draws each word
independently given z.
"""

import torch


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

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
def caption_chain(model, vocab, n_chains, steps, seed=0, sample=False):
    """Captions decoded along short-run Langevin chains started at z_0 ~ p0.

    For an EBM-prior model, returns {k: [captions of the n_chains at step k]} for each k in
    `steps` (k is clipped to the chain length; the last state is the sample from p_alpha). For a
    Gaussian-prior model (no chain: its prior is p0) returns {0: captions at z ~ p0}. The
    modality-specific w (MMVAE+) is drawn once from p0(w) and kept along the chain, so only z
    moves."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    t = text_index(model)
    if model.has_ebm:
        chain = model.prior.sample(n_chains, return_chain=True)  # [K + 1, n, dim z]
        steps = sorted({min(k, len(chain) - 1) for k in steps})
    else:
        chain, steps = model.prior.sample(n_chains)[None], [0]
    M = model.cfg.n_modalities
    w = model.p0_w.sample((n_chains, M)) if model.w_dim else None
    out = {}
    for k in steps:
        logits = model.decode_z(chain[k], w)[t]
        out[k] = to_text(logits, vocab, sample, generator=g)
    return out

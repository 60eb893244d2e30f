"""Colour coherence of CUB cross generation: does a caption generated from an image name the
bird's colours, and does an image generated from a caption show the colours it names?

CUB has no class labels per caption that a judge could read, but colour words are frequent
(97 % of the test captions name one) and can be checked on both sides:

- words: a caption's colours are the colour words it holds (`PALETTE`, synonyms folded in:
  gray -> grey, tan -> brown, ...);
- pixels: an image's colours are the `top` most common colours of the pixels of its centre
  crop (where CUB birds sit), each pixel named by its nearest `PALETTE` prototype in RGB.

A generation is a hit when it shares a colour with its reference. Chance is the share expected
against the reference of a random other image (computed exactly, as the mean over all of them):
a model that ignores its input scores the same on both, whatever colours it favours. On real
test pairs (an image against its own captions) the centre crop of 16 x 16 pixels with the top 2
colours separated own from other best of the variants measured, or was within the interval of
the best (results/cub_colours/probe.txt).
"""

import torch

from .captions import caption_words, cluster_interval, text_index, word_ids

# RGB prototypes in [0, 1] of the colour words of the CUB captions
PALETTE = {
    "black": (0.05, 0.05, 0.05), "white": (0.95, 0.95, 0.95), "grey": (0.5, 0.5, 0.5),
    "brown": (0.45, 0.3, 0.15), "red": (0.8, 0.1, 0.1), "yellow": (0.9, 0.8, 0.1),
    "blue": (0.15, 0.3, 0.8), "orange": (0.95, 0.5, 0.1), "green": (0.2, 0.55, 0.2),
    "purple": (0.5, 0.2, 0.6), "pink": (0.95, 0.6, 0.7),
}
SYNONYMS = {"gray": "grey", "golden": "yellow", "gold": "yellow", "crimson": "red", "maroon": "red",
            "tan": "brown", "beige": "brown", "buff": "brown", "cream": "white", "olive": "green",
            "rust": "orange", "teal": "blue"}
CROP, TOP = 16, 2  # the image side: centre crop (pixels) and number of dominant colours


def caption_colours(ids, vocab):
    """Word ids [N, L] -> N frozensets of the colours (PALETTE names) the captions name."""
    colour_of = {vocab.index[w]: SYNONYMS.get(w, w) for w in (*PALETTE, *SYNONYMS) if w in vocab.index}
    return [frozenset(colour_of[i] for i in words if i in colour_of) for words in caption_words(ids)]


def image_colours(images, crop=CROP, top=TOP):
    """Images [N, 3, H, W] in [0, 1] -> N frozensets: the `top` most common colours among the
    pixels of the centre crop x crop, each pixel named by its nearest PALETTE prototype (fewer
    where fewer colours occur)."""
    images = torch.as_tensor(images).float().clamp(0, 1)
    H, W = images.shape[-2:]
    top_, left = (H - crop) // 2, (W - crop) // 2
    pixels = images[:, :, top_:top_ + crop, left:left + crop].flatten(2).transpose(1, 2)  # [N, P, 3]
    protos = torch.tensor(list(PALETTE.values()), device=pixels.device)
    nearest = torch.cdist(pixels, protos.expand(len(pixels), -1, -1)).argmin(-1)          # [N, P]
    counts = torch.nn.functional.one_hot(nearest, len(PALETTE)).sum(1)                    # [N, C]
    names, (n, idx) = list(PALETTE), counts.topk(top, 1)
    return [frozenset(names[c] for c, k in zip(row, nrow) if k > 0) for row, nrow in zip(idx.tolist(), n.tolist())]


def colour_masks(colour_sets):
    """Sets of PALETTE names -> int64 bit masks (bit c: the c-th PALETTE colour), so that two sets
    share a colour exactly when their masks' AND is not 0."""
    bit = {name: 1 << c for c, name in enumerate(PALETTE)}
    return torch.tensor([sum(bit[c] for c in colours) for colours in colour_sets], dtype=torch.long)


def colour_coherence(named, reference, groups, chunk=1024):
    """Hits of generations against their own reference, and the hits expected against the
    reference of a random other image.

    named[i]: the colours generation i shows; reference[i]: the colours of its source (the
    captions of its image, or its source caption); groups[i]: its image. Returns {"share",
    "chance", "gain"}: the share of hits; chance, the share of hits against the reference of an
    item of another image drawn at random, computed exactly as the mean over all such items
    (no draw: a single random partner per item only adds noise); and their paired difference.
    Each is an Estimate whose 95 % interval is clustered by image (`cluster_interval`)."""
    if not len(named) == len(reference) == len(groups):
        raise ValueError(f"named, reference and groups differ in length: {len(named)}, {len(reference)}, {len(groups)}")
    groups = torch.as_tensor(groups)
    if len(torch.unique(groups)) < 2:
        raise ValueError("chance needs items of at least two images")
    a, r = colour_masks(named), colour_masks(reference)
    own = ((a & r) != 0).double()
    chance = torch.empty(len(a), dtype=torch.float64)
    for i in range(0, len(a), chunk):  # [chunk, N] at a time: all captions of the CUB test split fit
        other = groups[i:i + chunk, None] != groups[None]
        hits = ((a[i:i + chunk, None] & r[None]) != 0) & other
        chance[i:i + chunk] = hits.sum(1).double() / other.sum(1)
    return {k: cluster_interval(v, groups) for k, v in (("share", own), ("chance", chance), ("gain", own - chance))}


def table_cell(r):
    """One direction of colour_coherence's result as a table cell: share / chance / gain (interval)."""
    return (f"{r['share'].value:.3f} / {r['chance'].value:.3f} / {r['gain'].value:+.3f} "
            f"({r['gain'].lo:+.3f}, {r['gain'].hi:+.3f})")


def image_references(pairs, named=None, leave_own_out=False):
    """For each caption of a CUBImageCaptions set, the colours named in any caption of its image
    (with leave_own_out, in any of its image's other captions: a real caption's reference that
    does not hold the caption itself). named: caption_colours of pairs.captions, if at hand."""
    named = caption_colours(pairs.captions.cpu(), pairs.vocab) if named is None else named
    image_index = pairs.image_index.cpu()
    has = torch.tensor([[c in colours for c in PALETTE] for colours in named], dtype=torch.long)  # [N, C]
    count = torch.zeros(len(pairs.images), len(PALETTE), dtype=torch.long).index_add_(0, image_index, has)
    shown = (count[image_index] - (has if leave_own_out else 0)) > 0
    names = list(PALETTE)
    return [frozenset(names[c] for c in row.nonzero().flatten().tolist()) for row in shown]


@torch.no_grad()
def cross_colour_coherence(model, pairs, n=None, seed=0, batch_size=250):
    """Colour coherence of a CUB image-caption model's cross generation on n evenly spaced pairs
    of a test set (n None: all of them): {"image -> caption": the caption generated from each
    pair's image (greedy words) against the colours named in any caption of that image,
    "caption -> image": the image generated from each pair's caption against the colours the
    caption names}, each as colour_coherence returns it. Generation draws z from the source's
    posterior and w from p0(w) (`model.cross_generate`), seeded; an image of several pairs gets
    a caption of its own draw for each."""
    t = text_index(model)
    device = next(model.parameters()).device
    idx = _spaced(len(pairs), n)
    groups = pairs.image_index[idx].cpu()

    def generate(src):
        torch.manual_seed(seed)
        outs = []
        for i in range(0, len(idx), batch_size):
            x = tuple(m.to(device) for m in pairs[idx[i:i + batch_size]])
            outs.append(model.cross_generate(x, src)[1 - src].cpu())
        return torch.cat(outs)

    refs = image_references(pairs)
    to_caption = colour_coherence(caption_colours(word_ids(generate(1 - t)), pairs.vocab),
                                  [refs[i] for i in idx.tolist()], groups)
    to_image = colour_coherence(image_colours(generate(t)), caption_colours(pairs.captions[idx].cpu(), pairs.vocab),
                                groups)
    return {"image -> caption": to_caption, "caption -> image": to_image}


def _spaced(n, k):
    """k evenly spaced indices of range(n) (all of them for k None)."""
    return torch.arange(n) if k is None or k >= n else torch.linspace(0, n - 1, k).round().long()


def real_colour_coherence(pairs, n=None):
    """The same measures on n evenly spaced real test pairs, the ceilings of cross_colour_coherence:
    "image -> caption": the pair's caption against the colours of its image's other captions;
    "caption -> image": the pair's own image against the colours its caption names."""
    named = caption_colours(pairs.captions.cpu(), pairs.vocab)
    idx = _spaced(len(pairs), n)
    groups = pairs.image_index[idx].cpu()
    others = image_references(pairs, named, leave_own_out=True)
    to_caption = colour_coherence([named[i] for i in idx.tolist()], [others[i] for i in idx.tolist()], groups)
    real = pairs.images[groups].cpu().float() / 255
    to_image = colour_coherence(image_colours(real), [named[i] for i in idx.tolist()], groups)
    return {"image -> caption": to_caption, "caption -> image": to_image}

"""Known-answer shifts for the judges (issue #37): PolyMNIST images whose digit is known exactly,
changed the way our generations differ from real images.

A PolyMNIST image is a background crop inverted where its MNIST digit is > 128 (data.polymnist,
`composite`). So from an image and its digit's mask the crop comes back exactly,

    bg = where(mask, 1 - x, x),        x = bg + c * mask * (1 - 2 bg)   (c = 1: the recipe),

and the same digit can be composed again on a smoothed or flat background, with less contrast
(c < 1), or blurred. Generated images are soft: decoders draw smooth backgrounds and blurred
digits (`measure_softness` says how soft). A judge that reads the digit, and not how real the
background looks, keeps its answer under these shifts; without a digit it says "no digit"
(judges with that class).
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .coherence import NO_DIGIT, predict
from .data.mnist import DataError, load_mnist
from .data.polymnist import THRESHOLD, load_polymnist


def digit_masks(arrays, mnist_images):
    """bool [N, M, 28, 28]: where each image's MNIST digit is > 128 (arrays: PolyMNISTArrays with
    mnist_index, mnist_images: the split's MNIST images uint8 [n, 28, 28])."""
    if arrays.mnist_index is None:
        raise ValueError("these PolyMNIST arrays carry no mnist_index: rebuild them with `python -m mmebm.data polymnist`")
    return torch.from_numpy(mnist_images[arrays.mnist_index] > THRESHOLD)


def load_split_with_masks(polymnist_dir, mnist_dir, split, limit=None):
    """(images uint8 [N, M, 3, 28, 28], labels [N], masks bool [N, M, 28, 28]) of a built split,
    `limit` evenly spaced tuples, the same ones as PolyMNIST.load(..., limit)."""
    arrays = load_polymnist(polymnist_dir, split)
    mnist_images, mnist_labels = load_mnist(mnist_dir, split)
    if arrays.mnist_index is None or arrays.mnist_index.max() >= len(mnist_labels) or \
            (mnist_labels[arrays.mnist_index] != arrays.labels[:, None]).any():
        raise DataError(f"the MNIST {split} files in {mnist_dir} are not the ones {polymnist_dir} was built from "
                        "(their labels differ): point at the MNIST folder of the build")
    keep = np.arange(len(arrays))
    if limit is not None and limit < len(keep):
        keep = torch.linspace(0, len(keep) - 1, limit).round().long().numpy()  # as PolyMNIST.load
    masks = digit_masks(arrays, mnist_images)[keep]
    return torch.from_numpy(arrays.images[keep]), torch.from_numpy(arrays.labels[keep].astype(np.int64)), masks


def background(x, mask):
    """The background crop of images x [..., 3, H, W] in [0, 1] with digit masks [..., H, W]."""
    m = mask.unsqueeze(-3)
    return torch.where(m, 1 - x, x)


def compose(bg, mask, contrast=1.0):
    """The digit of `mask` on background `bg`: contrast 1 inverts it there (the recipe); c < 1
    moves the digit's pixels only part of the way. contrast: a number or a tensor [...] per image."""
    c = torch.as_tensor(contrast, dtype=bg.dtype, device=bg.device)
    c = c.reshape(c.shape + (1,) * 3) if c.ndim else c
    return bg + c * mask.unsqueeze(-3).to(bg.dtype) * (1 - 2 * bg)


def gaussian_blur(x, sigma):
    """Gaussian blur of images [..., C, H, W] with standard deviation `sigma` pixels; the kernel
    spans 3 sigma either side and the border is reflected, so a blurred crop has no dark rim.
    (classifiers.blur, a fixed 7x7 torchvision kernel, truncates sigmas above about 1; it stays as
    it is so that the judges' blur augmentation trains as before.)"""
    if sigma <= 0:
        return x
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-t**2 / (2 * sigma**2))
    k = k / k.sum()
    shape = x.shape
    y = x.reshape(-1, 1, *shape[-2:])
    pad = min(r, shape[-1] - 1)
    k = k[r - pad:r + pad + 1]
    y = F.pad(y, (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(F.conv2d(y, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    return y.reshape(shape)


def flatten(bg):
    """Each image's mean colour everywhere: [..., 3, H, W]."""
    return bg.mean((-2, -1), keepdim=True).expand_as(bg)


@dataclass(frozen=True)
class ShiftParams:
    """How far each shift goes. digit_sigma and contrast are what `measure_softness` found in the
    shipped models' generations (results/judges/README.md); bg_sigma smooths a crop until its
    texture is gone, as in the generations' backgrounds."""
    bg_sigma: float = 3.0
    digit_sigma: float = 1.0
    contrast: float = 0.5
    fog_crops: int = 16  # the background crops a "fog" image averages over


def fog(x, mask, k=ShiftParams.fog_crops):
    """Each image's digit composed on k background crops of its own modality (those of the other
    tuples in the batch x [B, M, 3, H, W], B > k) and averaged: the expected image when the crop is
    unknown, which is what a decoder whose latent does not fix the crop should draw. Our models'
    modalities 0 and 4 look so: a mid-grey field and a faint digit."""
    return on_other_crops(background(x, mask), mask, k)


def on_other_crops(bg, mask, k=ShiftParams.fog_crops):
    """fog from the background crops bg [B, M, 3, H, W]: each digit of `mask` on the crops of the
    k tuples before it, averaged."""
    if len(bg) <= k:
        raise ValueError(f"fog averages over k={k} other tuples' crops: pass more than {k} tuples")
    return sum(compose(bg.roll(j, 0), mask) for j in range(1, k + 1)) / k


def shifted(x, mask, name, p=ShiftParams(), digit=True):
    """Images x [..., 3, 28, 28] (float, [0, 1]) with digit masks, under shift `name` (SHIFTS);
    digit=False: the same image without its digit (the shifted background alone)."""
    bg = background(x, mask)
    mask = mask if digit else torch.zeros_like(mask)

    def smooth():  # only the shifts that use it pay for the blur
        return gaussian_blur(bg, p.bg_sigma)

    return {
        "clean": lambda: compose(bg, mask),
        "smooth_bg": lambda: compose(smooth(), mask),
        "flat_bg": lambda: compose(flatten(bg), mask),
        "blurred_digit": lambda: gaussian_blur(compose(smooth(), mask), p.digit_sigma),
        "low_contrast": lambda: compose(bg, mask, p.contrast),
        "soft": lambda: gaussian_blur(compose(smooth(), mask, p.contrast), p.digit_sigma),
        "fog": lambda: gaussian_blur(on_other_crops(bg, mask, p.fog_crops), p.digit_sigma),
    }[name]()


SHIFTS = ("clean", "smooth_bg", "flat_bg", "blurred_digit", "low_contrast", "soft", "fog")
EMPTY = ("smooth_bg", "flat_bg", "fog")  # also scored without their digit, where the right answer is "no digit"
MIN_INK = 0.1  # a digit whose pixels differ from the background by less (mean over the digit) is not shown


def ink(with_digit, without, mask):
    """How far a digit stands out [...]: over its pixels, the mean of the largest colour change."""
    diff = (with_digit - without).abs().amax(-3)
    return (diff * mask).sum((-2, -1)) / mask.sum((-2, -1)).clamp_min(1)


@torch.no_grad()
def score_shifts(judges, images, labels, masks, p=ShiftParams(), batch_size=1000):
    """Every judge set of `judges` ({name: Classifiers}) on every shift -> rows {judges, shift,
    modality, n, accuracy, no_digit}. With a digit: accuracy against it, over the images where
    the digit is shown (ink >= MIN_INK: on a flat mid-grey background the inverted digit is
    mid-grey too, and vanishes), n of them. Shifts "<name>_empty" (EMPTY without their digit):
    the share answered "no digit" as accuracy. no_digit: the share answered "no digit"."""
    M = images.shape[1]
    names = [*SHIFTS, *(f"{s}_empty" for s in EMPTY)]
    hits = {(j, s): torch.zeros(M) for j in judges for s in names}
    nd = {(j, s): torch.zeros(M) for j in judges for s in names}
    count = {s: torch.zeros(M) for s in names}
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].float().div(255)
        y, mk = labels[i:i + batch_size], masks[i:i + batch_size]
        for s in SHIFTS:
            xs, empty = shifted(x, mk, s, p), shifted(x, mk, s, p, digit=False)
            shown = ink(xs, empty, mk) >= MIN_INK  # [B, M]
            count[s] += shown.sum(0)
            if s in EMPTY:
                count[f"{s}_empty"] += len(x)
            for j, clf in judges.items():
                pred = predict(clf, xs)
                hits[j, s] += ((pred == y[:, None]) & shown).sum(0)
                nd[j, s] += ((pred == NO_DIGIT) & shown).sum(0)
                if s in EMPTY:  # the right answer is "no digit": accuracy and no_digit coincide
                    said = (predict(clf, empty) == NO_DIGIT).sum(0)
                    hits[j, f"{s}_empty"] += said
                    nd[j, f"{s}_empty"] += said
    return [{"judges": j, "shift": s, "modality": m, "n": int(count[s][m]),
             "accuracy": hits[j, s][m].item() / max(1, count[s][m].item()),
             "no_digit": nd[j, s][m].item() / max(1, count[s][m].item())}
            for j in judges for s in names for m in range(M)]


# ------------------------------------------------------------------ two digits at once


def partners(labels, generator):
    """For each tuple, another tuple whose digit differs, drawn uniformly among those: int64 [N]."""
    labels = torch.as_tensor(labels)
    if len(labels.unique()) < 2:
        raise ValueError("partners need tuples of at least two digits")
    out = torch.empty(len(labels), dtype=torch.int64)
    for d in labels.unique().tolist():
        mine, others = (labels == d).nonzero()[:, 0], (labels != d).nonzero()[:, 0]
        out[mine] = others[torch.randint(len(others), (len(mine),), generator=generator)]
    return out


def blend(x, mask, other_mask, weight, p=ShiftParams()):
    """The mean of two images that differ only in their digit, the image's own at `weight` and
    another at 1 - weight, on the image's smoothed background and blurred as the generations are:
    what a decoder draws when its latent leaves the digit in doubt between two. The mean of
    compose(bg, a) and compose(bg, b) is compose with the mask w a + (1 - w) b."""
    return _blend_on(gaussian_blur(background(x, mask), p.bg_sigma), mask, other_mask, weight, p)


def _blend_on(bg, mask, other_mask, weight, p):
    """`blend` on an already smoothed background (score_blends smooths it once for every weight)."""
    mixed = weight * mask.to(bg.dtype) + (1 - weight) * other_mask.to(bg.dtype)
    return gaussian_blur(compose(bg, mixed), p.digit_sigma)


BLEND_WEIGHTS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@torch.no_grad()
def score_blends(judges, images, labels, masks, weights=BLEND_WEIGHTS, p=ShiftParams(), seed=0, batch_size=1000):
    """Every judge set on two-digit blends (`blend`) of the test tuples, the own digit at each of
    `weights`, the other digit from a partner tuple of another digit (`partners`, seeded), the same
    partner at every weight -> rows {judges, weight, modality, n, own, other, either, no_digit,
    third}: the shares answered with the own digit, the partner's, one of the two, "no digit", and
    a digit that is neither; n counts the images whose own digit, alone on the smoothed background
    and before the blur, is shown (ink >= MIN_INK; score_shifts measures ink after its shift's blur). Plus, for each pair of judge sets, a row {judges: "a=b",
    weight, modality, n, agree}: the share of those images both sets answer alike. Above weight 0.5
    the own digit is the dominant one, the answer the eye gives."""
    M = images.shape[1]
    partner = partners(labels, torch.Generator().manual_seed(seed))
    pairs = [(a, b) for i, a in enumerate(judges) for b in list(judges)[i + 1:]]
    keys = ("own", "other", "either", "no_digit", "third")
    sums = {(j, w): torch.zeros(len(keys), M) for j in judges for w in weights}
    agree = {(a, b, w): torch.zeros(M) for a, b in pairs for w in weights}
    n = torch.zeros(M)
    for i in range(0, len(images), batch_size):
        idx = torch.arange(i, min(i + batch_size, len(images)))
        x, mk = images[idx].float().div(255), masks[idx]
        y, y2, mk2 = labels[idx][:, None], labels[partner[idx]][:, None], masks[partner[idx]]
        bg = gaussian_blur(background(x, mk), p.bg_sigma)
        shown = ink(compose(bg, mk), bg, mk) >= MIN_INK  # [B, M]
        n += shown.sum(0)
        for w in weights:
            xs = _blend_on(bg, mk, mk2, w, p)
            said = {j: predict(clf, xs) for j, clf in judges.items()}
            for j, pred in said.items():
                own, other, none = pred == y, pred == y2, pred == NO_DIGIT
                hits = torch.stack([own, other, own | other, none, ~(own | other | none)])  # [K, B, M]
                sums[j, w] += (hits & shown).sum(1)
            for a, b in pairs:
                agree[a, b, w] += ((said[a] == said[b]) & shown).sum(0)
    share = {key: (v / n.clamp_min(1)).tolist() for key, v in [*sums.items(), *agree.items()]}
    rows = [{"judges": j, "weight": w, "modality": m, "n": int(n[m]),
             **{k: round(share[j, w][i][m], 4) for i, k in enumerate(keys)}} for j, w in sums for m in range(M)]
    rows += [{"judges": f"{a}={b}", "weight": w, "modality": m, "n": int(n[m]), "agree": round(share[a, b, w][m], 4)}
             for a, b, w in agree for m in range(M)]
    return rows


# ------------------------------------------------------------------ how soft are the generations?


def edge_stats(x, floor=0.25):
    """Per image of x [..., 3, H, W]: (sum |grad|, sum |grad|^2) over the pixels whose |grad| is at
    least `floor` times the image's largest (the digit's edges: a smooth background's gentler
    slopes drop out), colour channels taken together. For an edge of height h blurred by a
    Gaussian of width s, the largest gradient is h / (s sqrt(2 pi)) and the edge's profile above
    a fixed share of it is ~ s wide; so (sum |grad|)^2 / sum |grad|^2 grows with the blur and
    does not depend on the contrast h."""
    gx = x[..., :, 1:] - x[..., :, :-1]
    gy = x[..., 1:, :] - x[..., :-1, :]
    g = (gx[..., :-1, :].pow(2).sum(-3) + gy[..., :, :-1].pow(2).sum(-3)).sqrt()  # [..., H-1, W-1]
    g = g * (g >= floor * g.amax((-2, -1), keepdim=True))
    return g.sum((-2, -1)), g.pow(2).sum((-2, -1))


SIGMA_GRID = tuple(s / 4 for s in range(0, 17))  # 0 to 4 pixels


@torch.no_grad()
def measure_softness(generated, images, masks, grid=SIGMA_GRID):
    """The blur (pixels) and contrast of generations per modality, read against real digits.

    generated: [N, M, 3, 28, 28] in [0, 1] (e.g. cross generations of test tuples); images, masks:
    real test tuples and their digit masks. The real digits are put on flat backgrounds (the
    generations' backgrounds are smooth, so their gradients are the digit's edges) and blurred by
    each sigma of the grid; the generations' median edge ratio (edge_stats) is read off that curve,
    and their contrast is their median sum |grad| over the real one's at that sigma.
    Returns {"sigma": [M], "contrast": [M]}."""
    flat = compose(flatten(background(images.float().div(255), masks)), masks)
    l1, l2 = edge_stats(generated.float())
    gen_ratio = (l1**2 / l2.clamp_min(1e-12)).median(0).values  # [M]
    gen_l1 = l1.median(0).values
    curve_ratio, curve_l1 = [], []
    for s in grid:
        a, b = edge_stats(gaussian_blur(flat, s))
        curve_ratio.append((a**2 / b.clamp_min(1e-12)).median(0).values)
        curve_l1.append(a.median(0).values)
    curve_ratio, curve_l1 = torch.stack(curve_ratio), torch.stack(curve_l1)  # [S, M]
    sigma, contrast = [], []
    for m in range(generated.shape[1]):
        s = float(np.interp(gen_ratio[m].item(), curve_ratio[:, m].numpy(), grid))
        sigma.append(s)
        contrast.append(gen_l1[m].item() / float(np.interp(s, grid, curve_l1[:, m].numpy())))
    return {"sigma": sigma, "contrast": contrast}

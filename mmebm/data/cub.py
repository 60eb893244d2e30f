"""CUB Image-Captions (MMVAE/MMVAE+) resident on the training device.

Each image has 10 captions. As in MMVAE+ (its `resampler`: caption idx -> image idx // 10), an
item is one caption with its image, so an epoch walks every caption once and shows each image 10
times. With a partial image set only the captions whose image is present are kept.

    data = CUBImageCaptions.load(root, "train", device="cuda")   # root holds cub/
    for x, s in data.batches(32, generator=g):                   # x [32, 3, 64, 64] in [0, 1], s int64 [32, 32]
        ...
    text = CUBCaptions.load(root, "test")                        # captions only: s int64 [B, 32]
    data.vocab.decode(s[0]); one_hot(s, len(data.vocab))         # "a small bird ...", [B, 32, V]
"""

import numpy as np
import torch

from .cub_images import GET_IMAGES, describe, find_images, pair_by_name, split_ids
from .cub_text import SPLITS, load_captions, one_hot  # noqa: F401  (one_hot re-exported for users)
from .mnist import DataError

CAPTIONS_PER_IMAGE = 10


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' (MMVAE's trainval classes) or 'test', got {split!r}")


def _check_lines(n_lines, ids, split, source):
    if n_lines != CAPTIONS_PER_IMAGE * len(ids):
        raise DataError(
            f"{source} has {n_lines} caption lines but split {split!r} has {len(ids)} images, which needs "
            f"{CAPTIONS_PER_IMAGE} x {len(ids)} = {CAPTIONS_PER_IMAGE * len(ids)}: caption i would not belong to image "
            "i // 10. Use the caption file that goes with these splits (one caption per line, no blank lines).")


def _evenly(n, limit):
    """`limit` evenly spaced positions of n (items are sorted by class, so all classes stay)."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.linspace(0, n - 1, limit).round().astype(np.int64)


def _batches(n, device, batch_size, shuffle, generator, drop_last):
    """Index batches of one epoch; the permutation is drawn on the CPU, so it is the same on every device."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(device)
    stop = n - n % batch_size if drop_last else n
    for s in range(0, stop, batch_size):
        yield order[s : s + batch_size]


class CUBCaptions:
    """Captions only: `captions` int64 [N, 32] on `device`; batches are id tensors [B, 32].

    `lines[i]` is the caption's line in its file; `image_ids[i]` its image ('class/image'), when
    cub/splits/ is there to say (else None).
    """

    def __init__(self, captions, vocab, lines=None, image_ids=None, meta=None, device="cpu"):
        self.captions = torch.as_tensor(captions, dtype=torch.int64).to(device)
        self.vocab, self.meta = vocab, meta or {}
        self.lines = np.arange(len(self.captions)) if lines is None else np.asarray(lines)
        self.image_ids = image_ids

    @classmethod
    def load(cls, root, split, device="cpu", cache_dir="data/cub", test_text="auto", limit=None):
        _check_split(split)
        caps = load_captions(root, cache_dir, test_text)
        ids = split_ids(root, split)
        n = len(caps.ids[split])
        if ids is not None:
            _check_lines(n, ids, split, caps.meta["sources"][split]["file"])
        keep = _evenly(n, limit)
        image_ids = None if ids is None else [ids[j // CAPTIONS_PER_IMAGE] for j in keep]
        return cls(caps.ids[split][keep], caps.vocab, keep, image_ids, caps.meta, device)

    def __len__(self):
        return len(self.captions)

    def __getitem__(self, idx):
        return self.captions[idx]

    def batches(self, batch_size, shuffle=True, generator=None, drop_last=False):
        for b in _batches(len(self), self.captions.device, batch_size, shuffle, generator, drop_last):
            yield self[b]


class CUBImageCaptions:
    """Image-caption pairs: `images` uint8 [M, 3, 64, 64] (each image once), `captions` int64 [N, 32],
    `image_index` [N] (row of each caption's image), all on `device`. Batches: (x float [B, 3, 64, 64]
    in [0, 1], s int64 [B, 32]).

    Also: `names[m]` image id of row m, `lines[i]` caption line in its file, `classes[i]` CUB class
    number (1-200) of item i, `coverage` (images found of the split, classes; see `pair_by_name`).
    """

    def __init__(self, images, captions, image_index, vocab=None, names=None, lines=None, coverage=None,
                 meta=None, device="cpu"):
        images, captions = torch.as_tensor(images), torch.as_tensor(captions, dtype=torch.int64)
        image_index = torch.as_tensor(image_index, dtype=torch.int64)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1:] != (3, 64, 64):
            raise ValueError(f"images must be uint8 [M, 3, 64, 64], got {images.dtype} {tuple(images.shape)}")
        bad = len(image_index) and not 0 <= image_index.min() <= image_index.max() < len(images)
        if len(image_index) != len(captions) or bad:
            raise ValueError("image_index must give, for every caption, a row of images")
        self.images, self.captions, self.image_index = images.to(device), captions.to(device), image_index.to(device)
        self.vocab, self.names, self.coverage, self.meta = vocab, names, coverage, meta or {}
        self.lines = np.arange(len(captions)) if lines is None else np.asarray(lines)
        num = [n.split(".")[0] for n in names] if names else ["0"] * len(images)  # '001.Black_footed...' -> 1
        cls_of_row = torch.tensor([int(c) if c.isdigit() else 0 for c in num], dtype=torch.int64)
        self.classes = cls_of_row[image_index.cpu()].to(device)

    @classmethod
    def load(cls, root, split, device="cpu", cache_dir="data/cub", test_text="auto", images=None, limit=None,
             progress=False):
        """Pairs of `split` whose image is present. `images`: explicit npz/folder (else searched, see
        cub_images); `limit` keeps that many evenly spaced pairs (quick runs)."""
        _check_split(split)
        caps = load_captions(root, cache_dir, test_text)
        found = find_images(root, split, cache_dir, images, progress)
        if found is None:
            raise DataError(f"no CUB images for split {split!r} under {root} (looked for cub/images64/*.npz, "
                            f"cub/{split}/, cub/CUB_200_2011/images/). {GET_IMAGES} For the text modality alone "
                            "use CUBCaptions.")
        ids = split_ids(root, split)
        if ids is None:  # official MMVAE layout: no id list, the folder order is the caption order
            ids = found.names
        _check_lines(len(caps.ids[split]), ids, split, caps.meta["sources"][split]["file"])
        row, coverage = pair_by_name(ids, found.names)
        if coverage["images"] == 0:
            raise DataError(f"none of the {len(found.names)} images in {found.source} belongs to split {split!r} "
                            f"({coverage['of']} ids in cub/splits). Are they the other split's images? {GET_IMAGES}")
        have = np.flatnonzero(row >= 0)  # split positions of the images we have, in split order
        rank = np.full(len(ids), -1)
        rank[have] = np.arange(len(have))
        lines = np.flatnonzero(row[np.arange(len(caps.ids[split])) // CAPTIONS_PER_IMAGE] >= 0)
        lines = lines[_evenly(len(lines), limit)]
        meta = dict(caps.meta, images=found.source, coverage_text=describe(coverage))
        return cls(found.images[row[have]], caps.ids[split][lines], rank[lines // CAPTIONS_PER_IMAGE], caps.vocab,
                   [ids[j] for j in have], lines, coverage, meta, device)

    def __len__(self):
        return len(self.captions)

    def __getitem__(self, idx):
        return self.images[self.image_index[idx]].float().div_(255), self.captions[idx]

    def batches(self, batch_size, shuffle=True, generator=None, drop_last=False):
        for b in _batches(len(self), self.captions.device, batch_size, shuffle, generator, drop_last):
            yield self[b]

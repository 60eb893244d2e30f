"""PolyMNIST resident on the training device, so no step ever waits on PNG decoding."""

from functools import lru_cache
from pathlib import Path

import torch

from .polymnist import load_polymnist


class PolyMNIST:
    """All tuples as uint8 [N, M, 3, 28, 28] on `device` (705 MB for the train split);
    batches come out as float32 in [0, 1]: x [B, M, 3, 28, 28], y int64 [B]."""

    def __init__(self, images, labels, device="cpu"):
        images, labels = torch.as_tensor(images), torch.as_tensor(labels)
        if images.dtype != torch.uint8 or images.ndim != 5 or images.shape[2:] != (3, 28, 28):
            raise ValueError(f"images must be uint8 [N, M, 3, 28, 28], got {images.dtype} {tuple(images.shape)}")
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} tuples but {len(labels)} labels")
        self.images = images.to(device)
        self.labels = labels.to(device=device, dtype=torch.int64)

    @classmethod
    def load(cls, root, split, device="cpu", limit=None):
        """Load a built split (see `python -m mmebm.data polymnist`). `limit` keeps `limit` evenly
        spaced tuples; tuples are sorted by digit, so every class stays represented."""
        data = load_polymnist(root, split)
        return cls(*_evenly_spaced(data.images, data.labels, limit), device)

    @classmethod
    def load_cached(cls, root, split, limit=None, device="cpu"):
        """`load`, with the split's arrays kept for the next call in this process (the same files,
        any limit): training, evaluating and judging several runs in one process (02_models, the
        tests) read the 705 MB train split once. The arrays are shared: read-only use only."""
        npz = Path(root) / f"polymnist_{split}.npz"
        stamp = npz.stat().st_mtime_ns if npz.is_file() else None
        full = _load_full(str(Path(root).resolve()), split, stamp)
        return cls(*_evenly_spaced(full.images, full.labels, limit), device)

    @property
    def n_modalities(self):
        return self.images.shape[1]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        return self.images[idx].float().div_(255), self.labels[idx]

    def batches(self, batch_size, shuffle=True, generator=None, drop_last=False):
        """One epoch of (x, y) batches; the permutation is drawn on the CPU from `generator`
        so the order is the same on every device for a given seed."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        order = order.to(self.images.device)
        stop = n - n % batch_size if drop_last else n
        for s in range(0, stop, batch_size):
            yield self[order[s : s + batch_size]]


def _evenly_spaced(images, labels, limit):
    if limit is not None and limit < len(labels):
        keep = torch.linspace(0, len(labels) - 1, limit).round().long().numpy()
        return images[keep], labels[keep]
    return images, labels


@lru_cache(maxsize=2)  # the train and the test split
def _load_full(root, split, stamp):
    return load_polymnist(root, split)

"""MNIST from the standard IDX files (gzipped or not), with an explicit download option."""

import gzip
import os
from pathlib import Path

import numpy as np

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Folders below the given root where the IDX files are commonly found
# (torchvision keeps them in MNIST/raw, ../shared/data in mnist/raw).
SUBDIRS = ("", "raw", "MNIST/raw", "mnist/raw")


class DataError(ValueError):
    """Input data is missing or malformed; the message says what to do."""


def read_idx(path):
    """Read one IDX file (optionally gzipped) into a uint8 array, checking its header."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # EOFError: gzip stream cut short
        raise DataError(f"{path}: cannot read IDX file ({e}). Re-download it.") from e
    if len(raw) < 8:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes). Re-download it.")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in (IMAGES_MAGIC, LABELS_MAGIC):
        raise DataError(
            f"{path}: IDX magic {magic} is neither {IMAGES_MAGIC} (images) nor "
            f"{LABELS_MAGIC} (labels). Is this an MNIST IDX file? Re-download it."
        )
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape))
    if len(raw) - offset != expected:
        raise DataError(
            f"{path}: header promises {shape} = {expected} bytes of data but the file holds "
            f"{len(raw) - offset}. The file is truncated or corrupt: re-download it."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def find_idx(root, name):
    """Locate IDX file `name` (plain or .gz) under `root` or its usual subfolders."""
    root = Path(root)
    for sub in SUBDIRS:
        for suffix in ("", ".gz"):
            p = root / sub / (name + suffix)
            if p.is_file():
                return p
    raise DataError(
        f"MNIST file {name}[.gz] not found in {root} (looked in {', '.join(s or '.' for s in SUBDIRS)}). "
        "Point --mnist (or MMEBM_DATA) at the folder holding the four IDX files, or download them "
        "with `python -m mmebm.data mnist --download --out DIR`."
    )


def load_mnist(root, split):
    """Return (images uint8 [N, 28, 28], labels uint8 [N]) of MNIST `split` ('train' or 'test')."""
    if split not in FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    img_name, lbl_name = FILES[split]
    images, labels = read_idx(find_idx(root, img_name)), read_idx(find_idx(root, lbl_name))
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{img_name}: expected images of shape [N, 28, 28], got {images.shape}.")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{split}: {len(images)} images but labels of shape {labels.shape}. The IDX files do not belong together."
        )
    if labels.max(initial=0) > 9:
        raise DataError(f"{lbl_name}: labels must be digits 0-9, found {labels.max()}.")
    return images, labels


def download_mnist(root):
    """Download MNIST through torchvision (needs internet); returns the folder of the IDX files."""
    from torchvision.datasets import MNIST

    for train in (True, False):
        MNIST(os.fspath(root), train=train, download=True)
    return Path(root) / "MNIST" / "raw"

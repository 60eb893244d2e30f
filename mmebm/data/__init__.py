"""Data pipelines: MNIST, PolyMNIST and CUB image-captions.

The data root (MMEBM_DATA, or --data-root) is laid out as ../shared/data is:
`mnist/` with the four IDX files, `polymnist/backgrounds/` with the background JPEGs.
`cub/` holds the CUB caption files, splits and images (see cub.py, cub_text.py, cub_images.py).
"""

import os
from pathlib import Path

from .cub import CUBCaptions, CUBImageCaptions
from .cub_images import find_images, load_image_npz, pair_by_name, save_image_npz, split_ids
from .cub_text import Vocab, caption_files, load_captions, one_hot, tokenize
from .dataset import PolyMNIST
from .experiment_data import load_experiment_data
from .mnist import DataError, download_mnist, load_mnist, read_idx
from .polymnist import (PolyMNISTArrays, background_crops, build_polymnist, build_split, check_backgrounds, composite, ensure_polymnist, load_backgrounds,
                        load_png_layout, load_polymnist, write_png_layout)

DATA_ROOT_ENV = "MMEBM_DATA"


def data_root(root=None):
    """The raw-data root: `root` if given, else $MMEBM_DATA, else ./data/raw."""
    return Path(root or os.environ.get(DATA_ROOT_ENV) or "data/raw")


__all__ = ["PolyMNIST", "PolyMNISTArrays", "DataError", "data_root", "download_mnist", "load_mnist",
           "read_idx", "load_experiment_data", "background_crops", "check_backgrounds", "build_polymnist", "build_split", "composite", "ensure_polymnist", "load_backgrounds",
           "load_png_layout", "load_polymnist", "write_png_layout"]
__all__ += ["CUBCaptions", "CUBImageCaptions", "Vocab", "caption_files", "find_images", "load_captions",
            "load_image_npz", "one_hot", "pair_by_name", "save_image_npz", "split_ids", "tokenize"]

"""CUB-200-2011 images at 64x64, found in whatever layout the user has, paired with captions by image id.

An image id is 'class/image' without extension, e.g. '001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111'.
`cub/splits/{trainval,test}_images.txt` list the ids of each split in caption-file order, so caption
line j belongs to id j // 10 of that list. Images may cover only part of a split (offline here:
classes 001-050); pairing goes by id, never by row, and `coverage` says how much is there.

Layouts searched, first hit wins (split 'train' is MMVAE's trainval):
  1. cub/images64/{trainval,test}.npz  -- compact: `images` uint8 [N, 64, 64, 3] or [N, 3, 64, 64], `names`
  2. cub/{train,test}/<class>/<image>.jpg  -- the MMVAE download (ImageFolder)
  3. cub/CUB_200_2011/images/<class>/<image>.jpg or CUB_200_2011/images/...  -- the official Caltech archive
JPEG folders are resized once (whole image, bicubic, as the staged npz was made; MMVAE's
`transforms.Resize([64, 64])` is bilinear) and cached as npz in the cache dir.
"""

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .cub_text import cub_dir
from .mnist import DataError

SIZE = 64
SPLIT_FILES = {"train": "trainval", "test": "test"}  # our split name -> CUB/Reed file stem
IMAGE_EXT = (".jpg", ".jpeg", ".png")
GET_IMAGES = (
    "Download CUB-200-2011 from Caltech (https://www.vision.caltech.edu/datasets/cub_200_2011/, "
    "CUB_200_2011.tgz) and extract it into the cub/ folder of the data root, so that "
    "cub/CUB_200_2011/images/<class>/<image>.jpg exists; or put the MMVAE layout cub/{train,test}/<class>/<image>.jpg "
    "there. `python -m mmebm.data cub` then converts them to 64x64 once."
)


@dataclass
class ImageSet:
    images: np.ndarray  # uint8 [N, 3, 64, 64]
    names: list  # N ids 'class/image'
    source: str


def split_ids(root, split):
    """The split's image ids in caption-file order, from cub/splits/; None if that file is absent."""
    path = cub_dir(root) / "splits" / f"{SPLIT_FILES[split]}_images.txt"
    if not path.is_file():
        return None
    ids = [s.strip() for s in path.read_text().splitlines() if s.strip()]
    if len(set(ids)) != len(ids):
        raise DataError(f"{path} lists some image ids twice. Restore the file from the data root (MANIFEST 3b).")
    return ids


def to_nchw(images, where):
    """uint8 [N, 3, 64, 64] from either [N, 64, 64, 3] (the staged npz) or [N, 3, 64, 64]."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise DataError(f"{where}: images must be uint8 [N, 64, 64, 3] or [N, 3, 64, 64], "
                        f"got {images.dtype} {images.shape}.")
    if images.shape[1:] == (SIZE, SIZE, 3):
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    if images.shape[1:] == (3, SIZE, SIZE):
        return images
    raise DataError(f"{where}: images are {images.shape[1:]}, not 64x64 RGB. "
                    "Convert them with `python -m mmebm.data cub`.")


def save_image_npz(path, images, names):
    """Compact format: `images` uint8 [N, 3, 64, 64], `names` [N] ids; written to a temp name, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, images=to_nchw(images, path), names=np.asarray(names, dtype=str))
    tmp.replace(path)


def load_image_npz(path):
    path = Path(path)
    try:
        with np.load(path) as f:
            if not {"images", "names"} <= set(f.files):
                raise DataError(f"{path} must hold arrays 'images' and 'names', it has {f.files}.")
            images, names = to_nchw(f["images"], path), [str(n) for n in f["names"]]
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read the npz ({e}). Re-create it with `python -m mmebm.data cub`.") from e
    if len(names) != len(images):
        raise DataError(f"{path}: {len(images)} images but {len(names)} names.")
    return ImageSet(images, names, str(path))


def list_image_folder(folder):
    """{id: path} of `folder/<class>/<image>.<ext>`, ids in sorted (ImageFolder) order."""
    found = {}
    for cls in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        for f in sorted(cls.iterdir()):
            if f.suffix.lower() in IMAGE_EXT and not f.name.startswith("."):
                found[f"{cls.name}/{f.stem}"] = f
    return found


def read_image(path, size=SIZE):
    """One image as uint8 [3, size, size]: RGB (greyscale copied to 3 channels), whole image, bicubic."""
    with Image.open(path) as im:
        im = im.convert("RGB").resize((size, size), Image.BICUBIC)
        return np.asarray(im).transpose(2, 0, 1)


def convert_folder(folder, ids=None, cache_dir="data/cub", split="train", progress=False):
    """64x64 arrays of the images in `folder` (only those in `ids`, if given), cached as npz.

    The cache name hashes the folder and its files (name, size, mtime), so new images rebuild it.
    """
    files = list_image_folder(folder)
    if ids is not None:
        wanted = set(ids)
        files = {k: v for k, v in files.items() if k in wanted}
    if not files:
        raise DataError(f"{folder} holds no images{' of this split' if ids is not None else ''} "
                        f"(<class>/<image>.jpg). {GET_IMAGES}")
    sig = hashlib.sha256()
    sig.update(str(Path(folder).resolve()).encode())
    for k, f in files.items():
        st = f.stat()
        sig.update(f"{k}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    out = Path(cache_dir) / f"images64_{split}_{sig.hexdigest()[:16]}.npz"
    if out.is_file():
        return load_image_npz(out)
    items = files.items()
    if progress:
        from tqdm import tqdm
        items = tqdm(items, desc=f"resizing {split} images", unit="img")
    images = np.stack([read_image(f) for _, f in items])
    save_image_npz(out, images, list(files))
    return ImageSet(images, list(files), str(out))


def find_images(root, split, cache_dir="data/cub", images=None, progress=False):
    """The images of `split` (see the module doc for the layouts searched); None if there are none.

    `images` overrides the search: an npz in the compact format, or a folder of <class>/<image>.jpg.
    """
    base = cub_dir(root)
    if images is not None:
        images = Path(images)
        if images.suffix == ".npz":
            return load_image_npz(images)
        if not images.is_dir():
            raise DataError(f"images path {images} is neither an .npz nor a folder. {GET_IMAGES}")
        return convert_folder(images, split_ids(root, split), cache_dir, split, progress)
    npz = base / "images64" / f"{SPLIT_FILES[split]}.npz"
    if npz.is_file():
        return load_image_npz(npz)
    folder = base / split
    if folder.is_dir() and list_image_folder(folder):
        return convert_folder(folder, split_ids(root, split), cache_dir, split, progress)
    for folder in (base / "CUB_200_2011" / "images", base.parent / "CUB_200_2011" / "images"):
        if folder.is_dir():
            ids = split_ids(root, split)
            if ids is None:
                raise DataError(f"found the Caltech archive at {folder} but no {base / 'splits'}/"
                                f"{SPLIT_FILES[split]}_images.txt to tell which images are in split {split!r}. "
                                "Copy cub/splits/ from the project's data root (MANIFEST 3b).")
            return convert_folder(folder, ids, cache_dir, split, progress)
    return None


def pair_by_name(ids, image_names):
    """Row of each split id in `image_names`, -1 where the image is missing; and the coverage.

    coverage: images (found) of total (split ids), classes found of classes in the split,
    unmatched = images that are not in this split (ignored; e.g. another split's folder).
    """
    row = {n: i for i, n in enumerate(image_names)}
    if len(row) != len(image_names):
        raise DataError("the image set names some image twice. Rebuild it with `python -m mmebm.data cub`.")
    index = np.array([row.get(n, -1) for n in ids], dtype=np.int64)
    classes = sorted({n.split("/")[0] for n in ids})
    found = sorted({n.split("/")[0] for n, i in zip(ids, index) if i >= 0})
    coverage = {"images": int((index >= 0).sum()), "of": len(ids), "classes": len(found), "of_classes": len(classes),
                "unmatched": len(set(image_names) - set(ids))}
    return index, coverage


def describe(coverage):
    share = 100 * coverage["images"] / max(coverage["of"], 1)
    return (f"{coverage['images']} of {coverage['of']} images ({share:.1f} %), "
            f"{coverage['classes']} of {coverage['of_classes']} classes")

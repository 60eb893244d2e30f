"""PolyMNIST: the MoPoE recipe (Sutter et al., ICLR 2021), seeded, vectorized, with provenance.

Recipe (SPEC.md section 5). Modality m uses the m-th background in sorted filename order.
For every digit class and every modality independently, the MNIST images of that class are
permuted; the i-th of them becomes sample (i, digit) of modality m, so the M images of a tuple
share only their label. Each sample is a random 28x28 crop of the background whose pixels are
inverted (255 - value, all channels) where the MNIST digit is > 128.

Departures from the reference code, on purpose: every RNG is seeded (its seed was never
applied); the M images of a tuple are distinct MNIST images wherever the class allows (see
`_permutation_avoiding`); and the crop corner is uniform over *all* valid positions 0..W-28
(its `randint(0, W - 28)` never picks the last one).
"""

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .mnist import DataError, load_mnist

N_MODALITIES = 5
SIZE = 28
THRESHOLD = 128  # digit pixels are MNIST values > 128
SPLITS = ("train", "test")
RECIPE_VERSION = 1


@dataclass
class PolyMNISTArrays:
    """One split. Tuples are ordered by (digit, i); `images` is uint8 [N, M, 3, 28, 28]."""

    images: np.ndarray
    labels: np.ndarray  # [N] digit of every tuple
    index: np.ndarray  # [N] i, the position of the tuple within its class: file name {i}.{digit}.png
    mnist_index: np.ndarray | None = None  # [N, M] MNIST image used by each modality
    crop_yx: np.ndarray | None = None  # [N, M, 2] top-left (row, column) of the background crop

    def __len__(self):
        return len(self.labels)


def load_backgrounds(folder, n_modalities=N_MODALITIES):
    """The first `n_modalities` JPEGs of `folder` in sorted filename order, as uint8 [H, W, 3]."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(
            f"background folder {folder} does not exist. Point --backgrounds (or MMEBM_DATA) at the "
            "folder of PolyMNIST background JPEGs (polymnist/backgrounds in the data root)."
        )
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if len(paths) < n_modalities:
        raise DataError(
            f"{folder} holds {len(paths)} background JPEGs but {n_modalities} modalities need one each. "
            "Add the missing backgrounds or lower the number of modalities."
        )
    backgrounds = []
    for p in paths[:n_modalities]:
        bg = np.asarray(Image.open(p).convert("RGB"))
        if bg.shape[0] < SIZE or bg.shape[1] < SIZE:
            raise DataError(
                f"background {p} is {bg.shape[1]}x{bg.shape[0]} pixels, smaller than the {SIZE}x{SIZE} crops "
                "cut from it. Use a larger image."
            )
        backgrounds.append(bg)
    return backgrounds, paths[:n_modalities]


def draw_recipe(labels, bg_shapes, rng):
    """The random part of the recipe: which MNIST image and which crop each sample uses.

    Returns (tuple_labels [N], index [N], mnist_index [N, M], crop_yx [N, M, 2]), tuples ordered
    by digit, then by their position i within the class.
    """
    n_mod = len(bg_shapes)
    tuple_labels, index, mnist_index = [], [], []
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        perms = []
        for _ in range(n_mod):
            perms.append(_permutation_avoiding(members, perms, rng))
        mnist_index.append(np.stack(perms, axis=1))
        tuple_labels.append(np.full(len(members), digit, dtype=np.uint8))
        index.append(np.arange(len(members)))
    mnist_index = np.concatenate(mnist_index).astype(np.int64)
    n = len(mnist_index)
    crop_yx = np.stack(
        [
            np.stack([rng.integers(0, h - SIZE + 1, n), rng.integers(0, w - SIZE + 1, n)], axis=1)
            for (h, w, _) in bg_shapes
        ],
        axis=1,
    )
    return np.concatenate(tuple_labels), np.concatenate(index), mnist_index, crop_yx


def _permutation_avoiding(members, previous, rng, max_tries=10_000):
    """A uniform permutation of `members`, conditioned on sharing no position with `previous`.

    The reference draws the M permutations independently, so about one tuple in a thousand
    shows the same MNIST image in two modalities; rejection keeps each permutation uniform
    among those that clash with none before it (about e^m tries for the m-th). Where the class
    is too small for that to be likely, the draw with the fewest clashes is kept.
    """
    if len(members) <= len(previous):  # no clash-free permutation exists (Latin rectangle)
        return rng.permutation(members)
    best, best_clashes = None, None
    for _ in range(max_tries):
        perm = rng.permutation(members)
        clashes = sum(int((perm == p).sum()) for p in previous)
        if best is None or clashes < best_clashes:
            best, best_clashes = perm, clashes
        if clashes == 0:
            break
    return best


def composite(digits, background, crop_yx):
    """Crop `background` at `crop_yx` [N, 2] and invert it where `digits` [N, 28, 28] > 128.

    Returns uint8 [N, 3, 28, 28]. Inversion in uint8 (255 - v) is exactly what the reference
    gets from 1 - v/255 saved as PNG.
    """
    r = np.arange(SIZE)
    rows = crop_yx[:, 0, None, None] + r[None, :, None]
    cols = crop_yx[:, 1, None, None] + r[None, None, :]
    crop = background[rows, cols]  # [N, 28, 28, 3]
    out = np.where((digits > THRESHOLD)[..., None], 255 - crop, crop)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def background_crops(backgrounds, n, rng):
    """n tuples of digit-free images, uint8 [n, M, 3, 28, 28]: modality m a uniformly placed
    28x28 crop of backgrounds[m], exactly a PolyMNIST sample whose digit is blank (the judges'
    "no digit" class)."""
    out = []
    for bg in backgrounds:
        yx = np.stack([rng.integers(0, bg.shape[0] - SIZE + 1, n), rng.integers(0, bg.shape[1] - SIZE + 1, n)], 1)
        out.append(composite(np.zeros((n, SIZE, SIZE), np.uint8), bg, yx))
    return np.stack(out, 1)


def check_backgrounds(backgrounds_dir, data_dir, n_modalities=N_MODALITIES):
    """The backgrounds of `backgrounds_dir`, checked against the sha256s that a built PolyMNIST
    folder's meta.json records (when it has one), so "no digit" crops come from the same images."""
    backgrounds, paths = load_backgrounds(backgrounds_dir, n_modalities)
    meta = Path(data_dir) / "meta.json"
    if meta.is_file():
        for rec, path in zip(json.loads(meta.read_text()).get("backgrounds", []), paths):
            if hashlib.sha256(path.read_bytes()).hexdigest() != rec["sha256"]:
                raise DataError(f"background {path} is not the {rec['file']} that {data_dir} was built from "
                                f"(sha256 differs): point --backgrounds at the folder the data was built with")
    return backgrounds


def build_split(mnist_images, mnist_labels, backgrounds, seed, split, progress=True, chunk=8192):
    """Build one split of PolyMNIST from MNIST arrays and background images."""
    # One independent stream per split, so the test split does not depend on the train size.
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    labels, index, mnist_index, crop_yx = draw_recipe(mnist_labels, [b.shape for b in backgrounds], rng)
    n, n_mod = mnist_index.shape
    images = np.empty((n, n_mod, 3, SIZE, SIZE), dtype=np.uint8)
    bar = tqdm(total=n * n_mod, desc=f"PolyMNIST {split}", unit="img", disable=not progress)
    for m, bg in enumerate(backgrounds):
        for s in range(0, n, chunk):
            sl = slice(s, s + chunk)
            images[sl, m] = composite(mnist_images[mnist_index[sl, m]], bg, crop_yx[sl, m])
            bar.update(len(images[sl]))
    bar.close()
    return PolyMNISTArrays(images, labels, index, mnist_index.astype(np.int32), crop_yx.astype(np.int32))


def build_polymnist(mnist_dir, backgrounds_dir, out_dir, seed=0, png=False, limit=None,
                    n_modalities=N_MODALITIES, progress=True):
    """Build PolyMNIST into `out_dir` (compact .npz per split; optionally the official PNG layout).

    `limit` keeps only the first `limit` MNIST images of each split (for quick checks).
    """
    backgrounds, bg_paths = load_backgrounds(backgrounds_dir, n_modalities)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        mnist_images, mnist_labels = load_mnist(mnist_dir, split)
        if limit is not None:
            mnist_images, mnist_labels = mnist_images[:limit], mnist_labels[:limit]
        data = build_split(mnist_images, mnist_labels, backgrounds, seed, split, progress)
        save_npz(data, out_dir / f"polymnist_{split}.npz")
        if png:
            write_png_layout(data, out_dir / "png", split, progress)
    meta = {
        "recipe_version": RECIPE_VERSION,
        "seed": seed,
        "limit": limit,
        "n_modalities": n_modalities,
        "backgrounds": [
            {"modality": m, "file": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
             "height": int(b.shape[0]), "width": int(b.shape[1])}
            for m, (p, b) in enumerate(zip(bg_paths, backgrounds))
        ],
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out_dir


# ---------------------------------------------------------------- storage: compact .npz


def save_npz(data, path):
    """Uncompressed .npz (loads in about a second); written to a temporary name, then renamed."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, images=data.images, labels=data.labels, index=data.index,
             mnist_index=data.mnist_index, crop_yx=data.crop_yx)
    tmp.replace(path)


def load_npz(path):
    path = Path(path)
    with np.load(path) as f:
        missing = {"images", "labels", "index"} - set(f.files)
        if missing:
            raise DataError(f"{path} lacks arrays {sorted(missing)}: rebuild it with `python -m mmebm.data polymnist`.")
        return PolyMNISTArrays(f["images"], f["labels"], f["index"],
                               f["mnist_index"] if "mnist_index" in f.files else None,
                               f["crop_yx"] if "crop_yx" in f.files else None)


# ---------------------------------------------------------------- storage: official PNG layout

PNG_NAME = re.compile(r"^(\d+)\.(\d)\.png$")
PROVENANCE_FIELDS = ("i", "digit", "modality", "mnist_index", "crop_y", "crop_x")


def write_png_layout(data, root, split, progress=True):
    """Write `{root}/{split}/m{m}/{i}.{digit}.png` and `{root}/{split}/provenance.csv`."""
    root = Path(root) / split
    n, n_mod = data.images.shape[:2]
    for m in range(n_mod):
        (root / f"m{m}").mkdir(parents=True, exist_ok=True)
    with tqdm(total=n * n_mod, desc=f"PNG {split}", unit="img", disable=not progress) as bar:
        for m in range(n_mod):
            for k in range(n):
                img = Image.fromarray(data.images[k, m].transpose(1, 2, 0))
                img.save(root / f"m{m}" / f"{data.index[k]}.{data.labels[k]}.png")
            bar.update(n)
    if data.mnist_index is not None:
        with open(root / "provenance.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(PROVENANCE_FIELDS)
            for k in range(n):
                for m in range(n_mod):
                    w.writerow((data.index[k], data.labels[k], m, data.mnist_index[k, m], *data.crop_yx[k, m]))


def _png_names(folder):
    names = {}
    for p in folder.iterdir():
        match = PNG_NAME.match(p.name)
        if match is None:
            raise DataError(f"unexpected file {p}: PolyMNIST files are named {{i}}.{{digit}}.png.")
        names[(int(match[2]), int(match[1]))] = p  # key (digit, i): the tuple order
    return names


def load_png_layout(root, split, n_modalities=None, progress=True):
    """Read the official PNG layout `{root}/{split}/m{0..M-1}/{i}.{digit}.png`.

    Files are sorted by (digit, i) and paired across modalities by name; every modality must
    hold the same tuples with the same labels.
    """
    root = Path(root) / split
    mod_dirs = sorted((d for d in root.glob("m*") if d.is_dir()), key=lambda d: d.name)
    if n_modalities is not None:
        mod_dirs = mod_dirs[:n_modalities]
    if not mod_dirs:
        raise DataError(
            f"no modality folders m0, m1, ... in {root}. Expected the PolyMNIST layout "
            "{train,test}/m{0..4}/{i}.{digit}.png."
        )
    expected = [f"m{m}" for m in range(len(mod_dirs))]
    if [d.name for d in mod_dirs] != expected:
        raise DataError(f"{root}: modality folders {[d.name for d in mod_dirs]}, expected {expected}.")
    per_mod = [_png_names(d) for d in mod_dirs]
    ref = per_mod[0]
    for m, names in enumerate(per_mod[1:], start=1):
        if names.keys() != ref.keys():
            only0 = sorted(ref.keys() - names.keys())[:5]
            onlym = sorted(names.keys() - ref.keys())[:5]
            raise DataError(
                f"{root}: m0 has {len(ref)} files, m{m} has {len(names)}; they do not pair up "
                f"(in m0 only: {[f'{i}.{d}.png' for d, i in only0]}, in m{m} only: "
                f"{[f'{i}.{d}.png' for d, i in onlym]}). Files are missing or their labels disagree: "
                "re-extract the dataset."
            )
    keys = sorted(ref)
    images = np.empty((len(keys), len(mod_dirs), 3, SIZE, SIZE), dtype=np.uint8)
    with tqdm(total=len(keys) * len(mod_dirs), desc=f"read PNG {split}", unit="img",
              disable=not progress) as bar:
        for m, names in enumerate(per_mod):
            for k, key in enumerate(keys):
                img = np.asarray(Image.open(names[key]).convert("RGB"))
                if img.shape != (SIZE, SIZE, 3):
                    raise DataError(f"{names[key]} is {img.shape}, expected 28x28 RGB.")
                images[k, m] = img.transpose(2, 0, 1)
            bar.update(len(keys))
    labels = np.array([d for d, _ in keys], dtype=np.uint8)
    index = np.array([i for _, i in keys], dtype=np.int64)
    data = PolyMNISTArrays(images, labels, index)
    prov = root / "provenance.csv"
    if prov.is_file():
        _read_provenance(prov, data, {key: k for k, key in enumerate(keys)})
    return data


def _read_provenance(path, data, row_of):
    n, n_mod = data.images.shape[:2]
    data.mnist_index = np.full((n, n_mod), -1, dtype=np.int32)
    data.crop_yx = np.full((n, n_mod, 2), -1, dtype=np.int32)
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            k, m = row_of[(int(r["digit"]), int(r["i"]))], int(r["modality"])
            data.mnist_index[k, m] = int(r["mnist_index"])
            data.crop_yx[k, m] = int(r["crop_y"]), int(r["crop_x"])
    if (data.mnist_index < 0).any():
        raise DataError(f"{path} does not cover every sample: rebuild the PNG layout.")


def load_polymnist(root, split):
    """Load a split from `root`: the compact `polymnist_{split}.npz` if present, else the PNG layout."""
    root = Path(root)
    npz = root / f"polymnist_{split}.npz"
    if npz.is_file():
        return load_npz(npz)
    for png_root in (root, root / "png"):
        if (png_root / split / "m0").is_dir():
            return load_png_layout(png_root, split)
    raise DataError(
        f"no PolyMNIST {split} split in {root} (neither polymnist_{split}.npz nor {split}/m0/...). "
        "Build it with `python -m mmebm.data polymnist --out DIR`, or point at the official PNG folder."
    )


def ensure_polymnist(out_dir, mnist_dir, backgrounds_dir, seed=0, limit=None, progress=True):
    """Build PolyMNIST into `out_dir` unless a build with the same seed and limit is there."""
    meta_path = Path(out_dir) / "meta.json"
    if meta_path.is_file() and all((Path(out_dir) / f"polymnist_{s}.npz").is_file() for s in SPLITS):
        meta = json.loads(meta_path.read_text())
        if (meta.get("recipe_version"), meta.get("seed"), meta.get("limit")) == (RECIPE_VERSION, seed, limit):
            return Path(out_dir)
    return build_polymnist(mnist_dir, backgrounds_dir, out_dir, seed=seed, limit=limit, progress=progress)

"""PolyMNIST on the real MNIST, checked against the recipe's definition (SPEC.md section 5)."""

import hashlib
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from mmebm.data import (DataError, PolyMNIST, build_polymnist, load_backgrounds, load_mnist,
                        load_png_layout, load_polymnist)


@pytest.fixture(scope="module")
def mnist(data_root):
    return {s: load_mnist(data_root / "mnist", s) for s in ("train", "test")}


@pytest.fixture(scope="module")
def backgrounds(data_root):
    return load_backgrounds(data_root / "polymnist" / "backgrounds")[0]


@pytest.fixture(scope="module")
def splits(polymnist_dir):
    return {s: load_polymnist(polymnist_dir, s) for s in ("train", "test")}


@pytest.mark.parametrize("split,n", [("train", 60000), ("test", 10000)])
def test_counts(splits, split, n):
    d = splits[split]
    assert d.images.shape == (n, 5, 3, 28, 28) and d.images.dtype == np.uint8
    assert d.labels.shape == (n,) and d.mnist_index.shape == (n, 5) and d.crop_yx.shape == (n, 5, 2)


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_modality_shows_the_tuple_label(splits, mnist, split):
    d, (_, mnist_labels) = splits[split], mnist[split]
    # Each modality's MNIST source carries the tuple's label: the 5 labels of a tuple agree.
    assert (mnist_labels[d.mnist_index] == d.labels[:, None]).all()


@pytest.mark.parametrize("split", ["train", "test"])
def test_each_mnist_image_used_once_per_modality(splits, split):
    d = splits[split]
    n = len(d)
    for m in range(5):
        assert np.array_equal(np.sort(d.mnist_index[:, m]), np.arange(n))


@pytest.mark.parametrize("split", ["train", "test"])
def test_tuple_images_come_from_different_mnist_images(splits, split):
    idx = np.sort(splits[split].mnist_index, axis=1)
    assert (np.diff(idx, axis=1) != 0).all()  # every class has thousands of images: always allowed


@pytest.mark.parametrize("split", ["train", "test"])
def test_file_index_numbers_each_class_from_zero(splits, split):
    d = splits[split]
    for digit in range(10):
        i = d.index[d.labels == digit]
        assert np.array_equal(i, np.arange(len(i)))


def _rederive(mnist_image, background, y, x):
    """The recipe's definition, one sample at a time: crop, then invert at digit pixels."""
    crop = background[y : y + 28, x : x + 28].astype(np.int16)  # [28, 28, 3]
    digit = mnist_image > 128
    out = np.where(digit[:, :, None], 255 - crop, crop)
    return out.transpose(2, 0, 1).astype(np.uint8)


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_sample_rederives_from_its_provenance(splits, mnist, backgrounds, split):
    d, (mnist_images, _) = splits[split], mnist[split]
    for m, bg in enumerate(backgrounds):
        ys, xs = d.crop_yx[:, m, 0], d.crop_yx[:, m, 1]
        assert ys.min() >= 0 and xs.min() >= 0
        assert ys.max() <= bg.shape[0] - 28 and xs.max() <= bg.shape[1] - 28
        for k in range(len(d)):
            expected = _rederive(mnist_images[d.mnist_index[k, m]], bg, ys[k], xs[k])
            if not np.array_equal(d.images[k, m], expected):
                raise AssertionError(f"{split} tuple {k} modality {m} does not re-derive")


def test_digit_pixels_invert_the_crop_and_the_rest_is_the_crop(splits, mnist, backgrounds):
    d, (mnist_images, _) = splits["test"], mnist["test"]
    k = np.arange(0, len(d), 97)
    for m, bg in enumerate(backgrounds):
        digit = mnist_images[d.mnist_index[k, m]] > 128  # [n, 28, 28]
        for j, kk in enumerate(k):
            y, x = d.crop_yx[kk, m]
            crop = bg[y : y + 28, x : x + 28].transpose(2, 0, 1)
            img = d.images[kk, m]
            assert np.array_equal(img[:, digit[j]], 255 - crop[:, digit[j]])
            assert np.array_equal(img[:, ~digit[j]], crop[:, ~digit[j]])


def test_crops_come_from_their_own_background(splits, mnist, backgrounds):
    d, (mnist_images, _) = splits["test"], mnist["test"]
    for m in range(5):
        other = backgrounds[(m + 1) % 5]
        hits = 0
        for k in range(0, 2000, 10):
            y, x = d.crop_yx[k, m]
            if y <= other.shape[0] - 28 and x <= other.shape[1] - 28:
                hits += np.array_equal(d.images[k, m], _rederive(mnist_images[d.mnist_index[k, m]], other, y, x))
        assert hits == 0


def _digest(path):
    with np.load(path) as f:
        return hashlib.sha256(b"".join(f[k].tobytes() for k in sorted(f.files))).hexdigest()


def test_same_seed_same_bytes_other_seed_other_bytes(data_root, tmp_path):
    kw = dict(limit=3000, progress=False)
    mnist, bgs = data_root / "mnist", data_root / "polymnist" / "backgrounds"
    a = build_polymnist(mnist, bgs, tmp_path / "a", seed=7, **kw)
    b = build_polymnist(mnist, bgs, tmp_path / "b", seed=7, **kw)
    c = build_polymnist(mnist, bgs, tmp_path / "c", seed=8, **kw)
    for split in ("train", "test"):
        name = f"polymnist_{split}.npz"
        assert _digest(a / name) == _digest(b / name)
        assert _digest(a / name) != _digest(c / name)


@pytest.fixture(scope="module")
def small_png(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("png")
    build_polymnist(data_root / "mnist", data_root / "polymnist" / "backgrounds", out, seed=1,
                    png=True, limit=400, progress=False)
    return out


def test_png_export_roundtrips_exactly(small_png):
    for split in ("train", "test"):
        ref = load_polymnist(small_png, split)  # the .npz
        back = load_png_layout(small_png / "png", split, progress=False)
        assert np.array_equal(back.images, ref.images)
        assert np.array_equal(back.labels, ref.labels)
        assert np.array_equal(back.index, ref.index)
        assert np.array_equal(back.mnist_index, ref.mnist_index)  # provenance.csv
        assert np.array_equal(back.crop_yx, ref.crop_yx)


def test_png_layout_names(small_png):
    names = sorted(p.name for p in (small_png / "png" / "test" / "m3").iterdir())
    assert len(names) == 400 and "0.0.png" in names
    img = Image.open(small_png / "png" / "test" / "m3" / "0.0.png")
    assert img.size == (28, 28) and img.mode == "RGB"


def test_png_missing_file_is_reported(small_png, tmp_path):
    root = tmp_path / "png"
    shutil.copytree(small_png / "png", root)
    (root / "test" / "m2" / "0.0.png").unlink()
    with pytest.raises(DataError, match=r"m2 has 399.*0\.0\.png"):
        load_png_layout(root, "test", progress=False)


def test_png_mismatched_label_is_reported(small_png, tmp_path):
    root = tmp_path / "png"
    shutil.copytree(small_png / "png", root)
    (root / "test" / "m4" / "0.0.png").rename(root / "test" / "m4" / "0.9.png")  # labelled 9 in m4 only
    with pytest.raises(DataError, match="labels disagree"):
        load_png_layout(root, "test", progress=False)


def test_png_wrong_layout_is_reported(tmp_path):
    (tmp_path / "test").mkdir()
    with pytest.raises(DataError, match="no modality folders"):
        load_png_layout(tmp_path, "test")
    with pytest.raises(DataError, match="Build it with"):
        load_polymnist(tmp_path / "nowhere", "train")


def test_too_few_backgrounds(data_root, tmp_path):
    for p in sorted((data_root / "polymnist" / "backgrounds").iterdir())[:3]:
        shutil.copy(p, tmp_path)
    with pytest.raises(DataError, match="3 background JPEGs but 5 modalities"):
        load_backgrounds(tmp_path)


def test_background_smaller_than_crop(tmp_path):
    for k in range(5):
        Image.new("RGB", (64, 20 if k == 2 else 64)).save(tmp_path / f"{k}.jpg")
    with pytest.raises(DataError, match="64x20 pixels, smaller than the 28x28"):
        load_backgrounds(tmp_path)


def test_resident_dataset_batches(polymnist_dir):
    ds = PolyMNIST.load(polymnist_dir, "test")
    g = torch.Generator().manual_seed(0)
    seen, n = torch.zeros(len(ds), dtype=torch.bool), 0
    for x, y in ds.batches(128, generator=g):
        assert x.dtype == torch.float32 and x.shape[1:] == (5, 3, 28, 28)
        assert 0 <= x.min() and x.max() <= 1 and y.dtype == torch.int64
        n += len(y)
    assert n == len(ds) == 10000
    # Same generator seed, same order; the uint8 images map exactly to k / 255.
    (x1, y1), (x2, y2) = (next(ds.batches(64, generator=torch.Generator().manual_seed(3))) for _ in range(2))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    idx = torch.tensor([0, 17, 9999])
    x, y = ds[idx]
    assert torch.equal((x * 255).round().byte(), ds.images[idx]) and torch.equal(y, ds.labels[idx])


def test_limit_keeps_every_class(polymnist_dir):
    ds = PolyMNIST.load(polymnist_dir, "train", limit=500)
    assert len(ds) == 500 and set(ds.labels.tolist()) == set(range(10))

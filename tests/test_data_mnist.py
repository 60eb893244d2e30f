"""MNIST IDX reading on the real files, and every error path of the reader."""

import gzip

import numpy as np
import pytest

from mmebm.data import DataError, load_mnist, read_idx


def test_real_mnist_counts_and_labels(data_root):
    x, y = load_mnist(data_root / "mnist", "train")
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    # Label counts as stated in shared/data/MANIFEST.md
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    xt, yt = load_mnist(data_root / "mnist", "test")
    assert xt.shape == (10000, 28, 28)
    assert np.bincount(yt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _write_idx(path, arr, magic, gz=False):
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)
    return data


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, gz):
    arr = np.random.default_rng(0).integers(0, 256, (7, 28, 28))
    p = tmp_path / ("x.gz" if gz else "x")
    _write_idx(p, arr, 2051, gz)
    assert np.array_equal(read_idx(p), arr)


def test_missing_files_say_where_to_look(tmp_path):
    with pytest.raises(DataError, match="not found.*--mnist"):
        load_mnist(tmp_path, "train")


def test_truncated_data(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte"
    data = _write_idx(p, np.zeros((3, 28, 28)), 2051)
    p.write_bytes(data[:-100])
    with pytest.raises(DataError, match="truncated"):
        read_idx(p)
    p.write_bytes(data[:5])
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(p)


def test_truncated_gzip(tmp_path):
    p = tmp_path / "x.gz"
    _write_idx(p, np.zeros((30, 28, 28)), 2051, gz=True)
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(DataError, match="Re-download"):
        read_idx(p)


def test_wrong_magic(tmp_path):
    p = tmp_path / "x"
    _write_idx(p, np.zeros((3, 28, 28)), 1234)
    with pytest.raises(DataError, match="magic 1234"):
        read_idx(p)


def test_mismatched_label_file(tmp_path):
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((4, 28, 28)), 2051)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3), 2049)
    with pytest.raises(DataError, match="do not belong together"):
        load_mnist(tmp_path, "test")

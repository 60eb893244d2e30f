import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_root():
    root = os.environ.get("MMEBM_DATA")
    return Path(root) if root else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_root():
    """The real data (MNIST, backgrounds, CUB captions) laid out as ../shared/data."""
    root = _data_root()
    if not (root / "mnist").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"real data not found at {root}: set MMEBM_DATA to the shared data folder")
        pytest.skip(f"real data not found at {root} (set MMEBM_DATA)")
    return root


@pytest.fixture(scope="session")
def polymnist_dir(data_root, tmp_path_factory):
    """Full-size PolyMNIST built once per session from the real MNIST (about 10 s)."""
    from mmebm.data import build_polymnist

    out = tmp_path_factory.mktemp("polymnist")
    build_polymnist(data_root / "mnist", data_root / "polymnist" / "backgrounds", out, seed=0, progress=False)
    return out

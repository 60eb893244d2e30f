import os
from pathlib import Path

import pytest

# Under pytest-xdist every worker, and the notebook kernels it starts, gets its share of the CPU
# threads, so that the workers do not oversubscribe the cores.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

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
    """Full-size PolyMNIST built once per session from the real MNIST (about 10 s), shared by the
    pytest-xdist workers: the first builds it, the others wait for it."""
    from filelock import FileLock

    from mmebm.data import build_polymnist

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if "PYTEST_XDIST_WORKER" in os.environ else base  # parent: this session's, common to workers
    out, done = shared / "polymnist", shared / "polymnist.built"
    with FileLock(str(shared / "polymnist.lock")):
        if not done.is_file():
            build_polymnist(data_root / "mnist", data_root / "polymnist" / "backgrounds", out, seed=0, progress=False)
            done.touch()
    return out

"""The data of an experiment, whatever its dataset: the dataset object and its model inputs."""

from .cub import CUBCaptions, CUBImageCaptions
from .dataset import PolyMNIST


def load_experiment_data(cfg, split, device="cpu", limit=None):
    """(dataset, take) for an ExperimentConfig: `take(idx)` gives the model input x of the items
    idx: PolyMNIST x [B, 5, 3, 28, 28]; CUB (image [B, 3, 64, 64], caption ids [B, 32]); captions
    only (caption ids,). CUB data lives under cfg.data.root, or $MMEBM_DATA when it is empty."""
    from . import data_root  # the package's root rule (its __init__ imports this module)

    dataset = cfg.model.dataset
    if dataset == "polymnist":
        data = PolyMNIST.load_cached(cfg.data.root, split, limit, device)
        return data, lambda idx: data[idx][0]
    root, cache = data_root(cfg.data.root or None), cfg.data.cache_dir
    if dataset == "cub":
        data = CUBImageCaptions.load(root, split, device, cache_dir=cache, limit=limit)
        return data, lambda idx: data[idx]
    data = CUBCaptions.load(root, split, device, cache_dir=cache, limit=limit)
    return data, lambda idx: (data[idx],)

"""Experiment configs: small dataclasses, loaded from YAML in configs/ and scaled by a profile.

    cfg = load_config("polymnist_mmvaeplus_ebm", profile="cpu", overrides=["train.epochs=3"])

OmegaConf checks every key and type against the dataclasses, so a typo or a wrong type is an
error that names the key (`train.epoch`, `model.beta`).
"""

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .config import ModelConfig

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass
class DataConfig:
    root: str = "data/polymnist"  # built PolyMNIST (python -m mmebm.data polymnist --out ROOT); for CUB the
                                  # folder holding cub/ ("" : $MMEBM_DATA, else data/raw)
    cache_dir: str = "data/cub"  # CUB: processed captions and image arrays are cached here
    limit: int | None = None  # train on this many evenly spaced tuples / captions (None: all)
    test_limit: int | None = None  # evaluate on this many test tuples (None: all)


@dataclass
class TrainConfig:
    epochs: int = 250  # MMVAE+ PolyMNIST run (srl-ethz/mmvaeplus)
    batch_size: int = 128  # MMVAE+ PolyMNIST run
    lr: float = 1e-3  # Adam with amsgrad, MMVAE+ PolyMNIST run
    amsgrad: bool = True
    seed: int = 0
    device: str = "auto"  # auto: cuda if available, else cpu
    bf16: bool = False  # bf16 autocast (CUDA only)
    compile: bool = False  # torch.compile the model (CUDA only)
    max_steps: int | None = None  # stop after this many optimizer steps (None: all epochs)
    time_budget_s: float | None = None  # stop (and checkpoint) after this much wall time
    log_every: int = 50  # steps between metrics.csv rows
    checkpoint_every: int = 500  # steps between checkpoints (and one at the end)
    tensorboard: bool = False
    # coherence during training (PolyMNIST): every eval_every steps (0: never), cross coherence on
    # eval_test evenly spaced test tuples and joint coherence of eval_joint prior samples, judged by
    # the classifiers in eval_classifiers; rows with split "eval" in metrics.csv
    eval_every: int = 0
    eval_classifiers: str = "runs/classifiers"
    eval_test: int = 500
    eval_joint: int = 1000


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


class ConfigError(ValueError):
    """A config file, profile or override is wrong; the message names the key."""


def _config_file(name_or_path, folder=CONFIG_DIR):
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise ConfigError(f"config file {p} not found")
        return p
    p = folder / f"{name_or_path}.yaml"
    if not p.is_file():
        known = sorted(q.stem for q in folder.glob("*.yaml"))
        raise ConfigError(f"no config named {name_or_path!r} in {folder}; known: {', '.join(known)}")
    return p


def _load_experiment(name_or_path):
    """An experiment YAML; a top-level `base: OTHER` key starts it from config OTHER."""
    experiment = OmegaConf.load(_config_file(name_or_path))
    base = experiment.pop("base", None)
    return OmegaConf.merge(_load_experiment(base), experiment) if base else experiment


def load_config(name_or_path, profile=None, overrides=()):
    """Experiment YAML (and its `base`), then the profile (configs/profiles/PROFILE.yaml), then
    the experiment's own adjustments to that profile (its `profiles: {PROFILE: ...}` section),
    then `key=value` overrides."""
    layers = [OmegaConf.structured(ExperimentConfig)]
    try:
        experiment = _load_experiment(name_or_path)
        own_profiles = experiment.pop("profiles", None) or {}
        layers.append(experiment)
        if profile is not None:
            layers.append(OmegaConf.load(_config_file(profile, CONFIG_DIR / "profiles")))
            layers.append(own_profiles.get(profile, {}))
        layers.append(OmegaConf.from_dotlist(list(overrides)))
        return OmegaConf.to_object(OmegaConf.merge(*layers))
    except (OmegaConfBaseException, ValueError) as e:
        raise ConfigError(f"bad config ({name_or_path}, profile {profile}, overrides {list(overrides)}): {e}") from e


def to_dict(cfg):
    """A plain dict (for checkpoints, metrics.json and YAML dumps)."""
    return OmegaConf.to_container(OmegaConf.structured(cfg))


def from_dict(d):
    """Inverse of `to_dict`, with the same key and type checks."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ExperimentConfig), d))
    except OmegaConfBaseException as e:
        raise ConfigError(f"bad config: {e}") from e

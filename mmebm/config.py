"""Configuration: the model, data and training dataclasses of an experiment, and their loading
from YAML in configs/, scaled by a profile.

    cfg = load_config("polymnist_mmvaeplus_ebm", profile="cpu", overrides=["train.epochs=3"])

Defaults are the MMVAE+ PolyMNIST baseline; `prior="ebm"` makes it the paper's generalized
version (see `preset`). Values the poster gives are marked (poster); the rest come from the
public code of the models the paper builds on, named in each comment (see SPEC.md).

OmegaConf checks every key and type against the dataclasses, so a typo or a wrong type is an
error that names the key (`train.epoch`, `model.beta`).
"""

from dataclasses import dataclass, field, replace
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException


CUB_MODALITIES = {"cub": ["image64", "text"], "cub_captions": ["text"]}  # PolyMNIST: M images
OBJECTIVES = ("moe", "mopoe", "mmjsd", "mvtcae")  # the keys of objectives.OBJECTIVES (this module imports no torch)


@dataclass
class ModelConfig:
    # --- model
    model: str = "mmvaeplus"      # mmvae (base version) | mmvaeplus (generalized version) (poster)
    prior: str = "laplace"        # p(z): gaussian | laplace (the baselines) | ebm (the paper)
    dataset: str = "polymnist"    # polymnist (M=5 images) | cub (image, caption) | cub_captions (caption only)
    n_modalities: int = 5         # PolyMNIST (poster); must be 2 for cub, 1 for cub_captions
    vocab_size: int = 0           # CUB caption vocabulary; 0: taken from the data when training starts
    z_dim: int = 32               # shared z; MMVAE+ PolyMNIST run (srl-ethz/mmvaeplus)
    w_dim: int = 32               # modality-specific w, mmvaeplus only; MMVAE+ PolyMNIST run
    net: str = "resnet"           # resnet: the MMVAE+ authors' networks | conv: lighter ones (PolyMNIST: MoPoE's,
                                  # thomassutter/MoPoE; CUB: ours, mmebm/cub_nets.py); which the paper used for
                                  # the base version is not known
    conv_width: int = 32          # channels of the conv nets' first layer (then 2x, 4x, ...); MoPoE and our CUB nets: 32
    conv_leak: float = 0.0        # negative slope of the conv nets' activations (PolyMNIST and CUB); 0: ReLU
                                  # (MoPoE's), 0.2: the LeakyReLU of MMVAE+'s ResNets
    conv_upsample: str = "k4"     # PolyMNIST conv decoder, its 7->14->28 transposed convs: k4 (kernel 4, padding
                                  # 1; every shipped conv run) | mopoe (kernel 3, output_padding 1, as
                                  # thomassutter/MoPoE: the paper profile of MoPoE, mmJSD and MVTCAE)

    # --- priors' scale, posteriors, likelihood
    prior_scale: float = 1.0      # scale of p(z) (of p0(z) under the EBM) and of p0(w); MMVAE+ PolyMNIST: 1
                                  # (Laplace(0, 1)); its CUB run: softplus(0) = ln 2 (mmvaeplus_CUB.py pz_params)
    posterior: str = "laplace"    # family of q(z|x_m), q(w|x_m), p0(w) and the auxiliary w prior; MMVAE+
    aux_w: str = "learned"        # MMVAE+'s auxiliary prior of w~ in training's cross-reconstructions: learned (its
                                  # scale learnable, mapped as the posterior family's: the reference) | unit (p0(w)
                                  # itself, the prior test-time cross generation draws w from; results/long/, sec. 9)
    scale_eps: float = 1e-20      # added to posterior scales: Constants.eta = 1e-20 (srl-ethz/mmvaeplus src/utils.py)
    likelihood: str = "laplace"   # p(x|z, w): laplace | normal; MMVAE+ PolyMNIST (poster's model writes N(G(z), I))
    lik_scale: float = 0.75       # fixed scale of the image likelihood; MMVAE+ PolyMNIST decoder (CUB: 0.01)
    image_lik_weight: float = 1.0  # log p(image) is multiplied by this; MMVAE+ CUB: 32 / (3*64*64)
    text_lik_weight: float = 1.0   # log p(caption) (one-hot categorical) is multiplied by this; MMVAE+ CUB: 5

    # --- objective (mmebm/objectives.py)
    objective: str = "moe"        # moe: the mixture-of-experts bound, IWAE over K samples per expert; MMVAE / MMVAE+
                                  # mopoe: mixture of products of experts over all subsets (Sutter et al. 2021,
                                  # "Generalized Multimodal ELBO"); mmjsd: the Jensen-Shannon regularizer with the
                                  # dynamic prior (Sutter et al. 2020); mvtcae: the total-correlation objective with
                                  # the product of experts (Hwang et al. 2021). These three need posterior: normal,
                                  # model: mmvae, K: 1 (mmjsd: prior: gaussian too)
    beta: float = 2.5             # weight of the regularizer; MMVAE+ PolyMNIST run
    K: int = 1                    # posterior samples per expert; MMVAE+ PolyMNIST run (ELBO)
    dreg: bool = False            # DReG estimator (used with K > 1); MMVAE / MMVAE+ option
    mmjsd_prior_decoded: bool = False  # mmjsd: decode z ~ p(z) for 1/(M+1) of each batch, the prior a member of
                                  # the reconstruction's mixture as in thomassutter/MoPoE (the run the poster
                                  # quotes); False: the experts alone, as the paper and thomassutter/mmjsd
    tc_alpha: float = 5 / 6       # mvtcae's alpha, the weight of the conditional-VIB terms; its PolyMNIST run
                                  # (gr8joo/MVTCAE main_mmnist.py TC_RATIO = 5/6)

    # --- EBM prior p_alpha(z) = exp(-f_alpha(z)) p0(z) / Z
    ebm_base: str = "gaussian"    # p0(z): "exponential tilting of a Gaussian" (poster)
    ebm_hidden: int = 200         # f_alpha: dim(z) -> 200 -> 200 -> 1; Pang et al. 2020 (latent-space-EBM-prior)
    ebm_act: str = "leakyrelu"    # LeakyReLU(0.2) or gelu; Pang et al. 2020
    langevin_steps: int = 60      # short-run chains from p0; Pang et al. 2020
    langevin_step_size: float = 0.4  # Pang et al. 2020
    langevin_noise: bool = True   # Pang et al. 2020
    ebm_lr: float = 2e-5          # Adam; Pang et al. 2020 (Tian Han group's VAE+EBM code: 2e-6)
    ebm_betas: tuple = (0.5, 0.999)  # Pang et al. 2020 (Tian Han group's VAE+EBM code: (0.0, 0.9))
    # --- levers on the EBM prior (issue #27, results/ebm_levers/); the defaults are the paper's recipe
    ebm_fit: str = "mle"          # "mle": the paper's short-run update; "nce": f_alpha fitted as the log ratio of
                                  # posterior samples to p0 samples (mmebm/nce.py, Aneja et al. 2021)
    ebm_sampler: str = "langevin"  # "langevin" (the paper) | "sir" | "sir+langevin": importance resampling of
                                  # ebm_sir_factor draws from p0 per sample, then (+langevin) the run's chains
    ebm_sir_factor: int = 20
    ebm_penalty: float = 0.0      # "mle": + ebm_penalty * mean f_alpha^2 (Du & Mordatch 2019); mmebm.refit sets 0.1
    ebm_buffer: int = 0           # "mle": persistent chains, a replay buffer of this many states (0: fresh chains
                                  # from p0, the paper). Not in checkpoints: a resumed run refills it from p0

    # --- implementation (no effect on the numbers beyond float rounding)
    batched: bool = True          # PolyMNIST: all modality networks as one grouped computation (grouped
                                  # kernels on CUDA, copy by copy on CPU: see nets.py); False: per-modality loop
    channels_last: bool = True    # memory format of the grouped convs (where grouped kernels run)
    langevin_graph: bool = True   # CUDA: the Langevin chain as one captured CUDA graph (langevin.LangevinGraph);
                                  # False: the eager chain, as on CPU

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"model.objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.dataset != "polymnist" and self.dataset not in CUB_MODALITIES:
            raise ValueError(f"model.dataset must be polymnist, cub or cub_captions, got {self.dataset!r}")
        if self.aux_w not in ("learned", "unit"):
            raise ValueError(f"model.aux_w must be learned or unit, got {self.aux_w!r}")
        if not self.prior_scale > 0:
            raise ValueError(f"model.prior_scale must be positive, got {self.prior_scale}")
        need = len(self.modalities)
        if self.n_modalities != need:
            raise ValueError(f"model.dataset={self.dataset} has {need} modalities; set model.n_modalities={need}")

    @property
    def modalities(self):
        """The kind of each modality, in order: "image28" (PolyMNIST), "image64" or "text" (CUB)."""
        return CUB_MODALITIES.get(self.dataset, ["image28"] * self.n_modalities)

    @property
    def has_w(self):
        return self.model == "mmvaeplus"

    def replace(self, **kw):
        return replace(self, **kw)


def preset(name, **overrides):
    """The four PolyMNIST models: mmvae, mmvae_ebm (base), mmvaeplus, mmvaeplus_ebm (generalized)."""
    kw = {
        # MMVAE (Shi et al. 2019): no beta in its objective, one latent
        "mmvae": dict(model="mmvae", prior="laplace", beta=1.0),
        "mmvae_ebm": dict(model="mmvae", prior="ebm", beta=1.0),
        "mmvaeplus": dict(model="mmvaeplus", prior="laplace"),
        "mmvaeplus_ebm": dict(model="mmvaeplus", prior="ebm"),
    }[name]
    return ModelConfig(**{**kw, **overrides})


PRESETS = ("mmvae", "mmvae_ebm", "mmvaeplus", "mmvaeplus_ebm")


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
    # linear lr ramp over the first warmup_steps steps of a fresh optimizer: from step 0, or from
    # where --warm-start continues shipped weights (their Adam state is not shipped, and a fresh
    # Adam's first steps are sign steps of the full lr); 0: none (the paper)
    warmup_steps: int = 0
    # the lr after warm-up, over the run's length (epochs, capped at max_steps): constant (the paper) |
    # cosine (half a cosine down to 0 at the last step) | step (times lr_gamma at each of lr_milestones,
    # fractions of the steps after warm-up). The optimizers' lr at each step follows from (step, length)
    # alone, so a resumed run continues it exactly, as long as the length is the same
    lr_schedule: str = "constant"
    lr_decay_from: float = 0.0  # cosine: the share of the steps after warm-up at full lr before the decay starts
    lr_milestones: tuple = (0.5, 0.75)
    lr_gamma: float = 0.1
    seed: int = 0
    device: str = "auto"  # auto: cuda if available, else cpu
    bf16: bool = False  # bf16 autocast of the VAE loss (CUDA; on this AVX512-BF16 CPU not faster: results/long/README.md)
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
    # linear: probes every eval_every steps; log: at eval_every * 2^(k/2) (k = 0, 1, ...): dense early,
    # where the curves move fast, and a few dozen probes over a run of any length
    eval_spacing: str = "linear"
    # keep the model's parameters at every probe in RUN_DIR/snapshots/ (about 3 MB each for the conv nets),
    # so the curves can be judged again later by other judges (results/long/)
    snapshots: bool = False

    def __post_init__(self):
        if self.lr_schedule not in ("constant", "cosine", "step"):
            raise ValueError(f"train.lr_schedule must be constant, cosine or step, got {self.lr_schedule!r}")
        if self.eval_spacing not in ("linear", "log"):
            raise ValueError(f"train.eval_spacing must be linear or log, got {self.eval_spacing!r}")
        if not 0 <= self.lr_decay_from < 1:
            raise ValueError(f"train.lr_decay_from is a share of the run, in [0, 1); got {self.lr_decay_from}")
        if not all(0 < m < 1 for m in self.lr_milestones):
            raise ValueError(f"train.lr_milestones are fractions of the run, in (0, 1); got {self.lr_milestones}")


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --- loading

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


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
    then `key=value` overrides. A profile with `base: OTHER` applies OTHER (both layers) first."""
    layers = [OmegaConf.structured(ExperimentConfig)]
    try:
        experiment = _load_experiment(name_or_path)
        own_profiles = experiment.pop("profiles", None) or {}
        layers.append(experiment)
        if profile is not None:
            layers += _profile_layers(profile, own_profiles)
        layers.append(OmegaConf.from_dotlist(list(overrides)))
        return OmegaConf.to_object(OmegaConf.merge(*layers))
    except (OmegaConfBaseException, ValueError) as e:
        raise ConfigError(f"bad config ({name_or_path}, profile {profile}, overrides {list(overrides)}): {e}") from e


PROFILES = tuple(sorted(p.stem for p in (CONFIG_DIR / "profiles").glob("*.yaml")))


def _profile_layers(profile, own_profiles, seen=()):
    """The profile file and the experiment's section for it, after those of the profile it
    names as `base` (gpu: the cpu recipe first, then what a GPU changes)."""
    if profile in seen:
        raise ConfigError(f"profile {profile!r} is its own base")
    layer = OmegaConf.load(_config_file(profile, CONFIG_DIR / "profiles"))
    base = layer.pop("base", None)
    below = _profile_layers(base, own_profiles, (*seen, profile)) if base else []
    return below + [layer, own_profiles.get(profile, {})]


def to_dict(cfg):
    """A plain dict (for checkpoints, metrics.json and YAML dumps)."""
    return OmegaConf.to_container(OmegaConf.structured(cfg))


def from_dict(d):
    """Inverse of `to_dict`, with the same key and type checks."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ExperimentConfig), d))
    except OmegaConfBaseException as e:
        raise ConfigError(f"bad config: {e}") from e

"""Training: python -m mmebm.train CONFIG [--profile cpu|gpu|paper] [--out RUN_DIR] [--resume | --warm-start WEIGHTS] [key=value ...]

One loop for every model and dataset (PolyMNIST, CUB image-captions, CUB captions). Multi-GPU: `torchrun --nproc_per_node=N -m mmebm.train ...`
(each rank trains on its shard of every batch; gradients are averaged across ranks before
each optimizer step; only rank 0 logs and checkpoints).
"""

import argparse
import csv
import ctypes
import math
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from tqdm import tqdm

from .config import PROFILES, ConfigError, from_dict, load_config, to_dict
from .data import load_experiment_data
from .models import build_model, make_optimizers, train_step


class NonFiniteLoss(RuntimeError):
    pass


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path, state):
    """Write to a temporary file, then rename: a crash never leaves a half-written checkpoint."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path, map_location="cpu"):
    return torch.load(path, map_location=map_location, weights_only=True)


def load_run(run_dir, device="cpu"):
    """(model in eval mode, experiment config) from RUN_DIR/checkpoint.pt."""
    return model_from_state(load_checkpoint(Path(run_dir) / "checkpoint.pt", device), device)


def model_from_state(state, device="cpu"):
    """(model in eval mode, experiment config) from a loaded checkpoint."""
    cfg = from_dict(state["config"])
    model = build_model(cfg.model).to(device)
    model.load_state_dict(state["model"])
    return model.eval(), cfg


# ---------------------------------------------------------------- helpers


# Keys that say how long and how verbosely to run, not what to train: a resumed run may change them.
RUN_CONTROL = ("epochs", "max_steps", "time_budget_s", "log_every", "checkpoint_every", "tensorboard", "device",
               "eval_every", "eval_classifiers", "eval_test", "eval_joint", "eval_spacing", "snapshots")


def _comparable(config):
    # an lr schedule spans the run's length: then epochs and max_steps say what is trained, not how long to run
    control = RUN_CONTROL if config["train"].get("lr_schedule", "constant") == "constant" else \
        tuple(k for k in RUN_CONTROL if k not in ("epochs", "max_steps"))
    return {**config, "train": {k: v for k, v in config["train"].items() if k not in control}}


def keep_freed_memory():
    """Make glibc malloc keep freed memory for reuse (no mmap, no trimming). By default every
    tensor over 32 MB is a fresh mmap, page-faulted and zeroed by the kernel on first touch:
    on CPU that makes elementwise ops on the batched path's large activations several times
    slower, while the loop's smaller tensors get recycled. (PyTorch's CPU tuning guide
    suggests jemalloc / tcmalloc for the same reason.) Process-wide; memory is kept at peak."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def resolve_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def set_vocab_size(cfg, data):
    """CUB captions: model.vocab_size from the data's vocabulary (0 in the config), or checked against it."""
    vocab = getattr(data, "vocab", None)
    if vocab is None:
        return
    if cfg.model.vocab_size == 0:
        cfg.model.vocab_size = len(vocab)
    elif cfg.model.vocab_size != len(vocab):
        raise ConfigError(f"model.vocab_size={cfg.model.vocab_size} but the caption vocabulary has {len(vocab)} words "
                          f"(cache in {cfg.data.cache_dir}); set model.vocab_size=0 to take it from the data")


def coherence_probe(cfg, device):
    """The CoherenceProbe of `train.eval_every` (None when off); PolyMNIST only."""
    tc = cfg.train
    if not tc.eval_every:
        return None
    if cfg.model.dataset != "polymnist":
        raise ConfigError(f"train.eval_every: coherence needs digit labels, so it is PolyMNIST only "
                          f"(this is {cfg.model.dataset}); set train.eval_every=0")
    from .classifiers import Classifiers
    from .coherence import CoherenceProbe
    from .data import PolyMNIST

    try:
        classifiers = Classifiers.load(tc.eval_classifiers, cfg.model.n_modalities, device)
    except FileNotFoundError as e:
        raise ConfigError(f"train.eval_every={tc.eval_every} needs the classifiers: {e}") from e
    return CoherenceProbe(classifiers, PolyMNIST.load_cached(cfg.data.root, "test", tc.eval_test, device), tc.eval_joint,
                          seed=tc.seed)


def epoch_generator(seed, epoch):
    """The data order of an epoch depends only on (seed, epoch): resuming reproduces it."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def average_gradients(params, world):
    """All-reduce the gradients of `params` as one flat buffer and divide by the world size."""
    grads = [p.grad for p in params if p.grad is not None]
    if world == 1 or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    for g, new in zip(grads, torch.split(flat, [g.numel() for g in grads])):
        g.copy_(new.view_as(g))


class MetricsLog:
    """metrics.csv rows (step, split, name, value); on resume, rows past the checkpoint are dropped."""

    FIELDS = ("step", "split", "name", "value")

    def __init__(self, path, resume_step=None):
        self.path = Path(path)
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        else:
            rows = []
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, self.FIELDS)
            w.writeheader()
            w.writerows(rows)

    def write(self, step, split, values):
        with open(self.path, "a", newline="") as f:
            w = csv.writer(f)
            for name, value in values.items():
                w.writerow((step, split, name, f"{value:.6g}"))


# ---------------------------------------------------------------- the loop


def lr_factor(tc, step, total, fresh_at=0):
    """The multiplier of train.lr (and model.ebm_lr) at optimizer step `step` (0-based) of a run of
    `total` steps: the linear warm-up from where the optimizer started (`fresh_at`), then
    train.lr_schedule over the steps after it."""
    ramp = min(1.0, (step + 1 - fresh_at) / tc.warmup_steps) if tc.warmup_steps else 1.0
    start = fresh_at + tc.warmup_steps
    t = min(1.0, max(0.0, (step - start) / max(1, total - start)))  # how far through the steps after warm-up
    if tc.lr_schedule == "cosine":  # constant until lr_decay_from, then half a cosine down to 0
        u = max(0.0, t - tc.lr_decay_from) / (1 - tc.lr_decay_from)
        return ramp * 0.5 * (1 + math.cos(math.pi * u))
    if tc.lr_schedule == "step":
        return ramp * tc.lr_gamma ** sum(t >= m for m in tc.lr_milestones)
    return ramp


def probe_steps(tc, total):
    """The steps after which train.eval_every probes (step 0 and the last step come on top)."""
    if not tc.eval_every:
        return set()
    if tc.eval_spacing == "linear":
        return set(range(tc.eval_every, total + 1, tc.eval_every))
    steps, k = set(), 0
    while (step := round(tc.eval_every * 2 ** (k / 2))) <= total:
        steps.add(step)
        k += 1
    return steps


def set_lr(opt, lr):
    for group in (opt.param_groups if opt is not None else ()):
        group["lr"] = lr


def warm_start_state(weights_dir, cfg):
    """Shipped weights (mmebm.weights) as the start of a longer run of the same config: the
    model, the step it reached, and its history. They carry no optimizer state, so Adam starts
    afresh there; the manifest of the continued run says so (`history`)."""
    from .weights import load_shipped

    model, _, manifest = load_shipped(weights_dir)

    def recipe(config):  # what was trained: not where the data lives or how much of it is probed
        config = _comparable(config)
        for key in ("warmup_steps", "lr_schedule", "lr_decay_from", "lr_milestones", "lr_gamma", "epochs", "max_steps"):
            config["train"].pop(key, None)
        return {**config, "data": {k: v for k, v in config["data"].items() if k not in ("root", "cache_dir", "test_limit")}}

    saved, now = recipe(to_dict(from_dict(manifest["config"]))), recipe(to_dict(cfg))
    differs = [part for part in ("model", "train", "data") if saved[part] != now[part]]
    if differs:
        raise ConfigError(f"--warm-start: the {', '.join(differs)} config differs from the one {weights_dir} was "
                          "trained with; continue it with the same config, seed and overrides")
    segment = {"steps": manifest["steps"], "train_wall_s": manifest["train_wall_s"], "machine": manifest["machine"],
               "commit": manifest["commit"], "sha256": manifest["sha256"], "note": manifest.get("note")}
    return {"model": model.state_dict(), "step": manifest["steps"],
            "history": manifest.get("history", []) + [segment], "curves": Path(weights_dir) / "metrics.csv"}


def run_length(tc, per_epoch):
    """The steps a run trains: its epochs of `per_epoch` batches, capped at train.max_steps."""
    return per_epoch * tc.epochs if tc.max_steps is None else min(tc.max_steps, per_epoch * tc.epochs)


def start_process(tc):
    """(distributed, rank, world, device) of this process: torch.distributed where torchrun set
    RANK and WORLD_SIZE (nccl on CUDA, else gloo), one device per rank."""
    distributed = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    rank, world = 0, 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    device = resolve_device(tc.device)
    if device.type == "cuda" and distributed:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if device.type == "cpu":
        keep_freed_memory()  # reuse freed blocks instead of page-faulting fresh ones
    if tc.batch_size % world:
        raise ConfigError(f"train.batch_size={tc.batch_size} must be divisible by the {world} processes")
    return distributed, rank, world, device


class Session:
    """One process's share of a run: the data, model and optimizers, where the run stands (step,
    earlier warm-started segments, training time before this process), and its outputs."""

    def __init__(self, cfg, out_dir, distributed, rank, world, device):
        self.cfg, self.out_dir, self.device = cfg, Path(out_dir), device
        self.distributed, self.rank, self.world, self.main = distributed, rank, world, rank == 0
        self.ckpt_path = self.out_dir / "checkpoint.pt"
        tc = cfg.train
        torch.manual_seed(tc.seed)
        self.data, self.take = load_experiment_data(cfg, "train", device, cfg.data.limit)
        set_vocab_size(cfg, self.data)
        self.model = build_model(cfg.model).to(device)
        if distributed:  # start every rank from rank 0's parameters, then draw different noise per rank
            for t in self.model.state_dict().values():
                dist.broadcast(t, 0)
            torch.manual_seed(tc.seed + rank)
        self.opt_vae, self.opt_ebm = make_optimizers(self.model, tc.lr, tc.amsgrad)
        # Earlier segments of a warm-started run ([] otherwise) and the training time of this run
        # before this process, coherence probes excluded: kept in every checkpoint, so a run
        # stopped from outside still knows what it cost.
        self.step, self.history, self.wall_before = 0, [], 0.0
        self.t0, self.eval_s = time.perf_counter(), 0.0

    def warm_start(self, weights_dir):
        """Continue shipped weights of the same config (a new run folder, a fresh optimizer)."""
        if self.ckpt_path.is_file():
            raise ConfigError(f"--warm-start: {self.ckpt_path} exists; warm-start into a new --out, or --resume that run")
        state = warm_start_state(weights_dir, self.cfg)
        self.model.load_state_dict(state["model"])
        self.step, self.history = state["step"], state["history"]
        torch.manual_seed(self.cfg.train.seed * 1_000_003 + self.step + self.rank)  # fixed by (seed, step, rank)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "metrics.csv").write_bytes(state["curves"].read_bytes())  # the curves continue

    def resume(self):
        """Continue from checkpoint.pt exactly: parameters, optimizers, step and random streams."""
        if not self.ckpt_path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {self.ckpt_path}; start without --resume")
        state = load_checkpoint(self.ckpt_path, self.device)
        if state.get("shipped"):
            raise ConfigError(f"--resume: {self.ckpt_path} holds shipped weights without optimizer state; "
                              "train into a new --out (or delete the folder) to train from scratch")
        if state.get("refit"):
            raise ConfigError(f"--resume: {self.ckpt_path} holds an EBM prior refitted on a frozen VAE (mmebm.refit), "
                              f"without optimizer state; resume its source run, {state['refit']['source']}")
        # through from_dict first: a checkpoint from before a config key existed gets its default
        if _comparable(to_dict(from_dict(state["config"]))) != _comparable(to_dict(self.cfg)):
            raise ConfigError(f"--resume: the config differs from the one in {self.ckpt_path}; "
                              "resume with the same config and overrides, or train into a new --out (under an "
                              "lr schedule the run's length is part of it: stop early with train.time_budget_s)")
        self.model.load_state_dict(state["model"])
        self.opt_vae.load_state_dict(state["opt_vae"])
        if self.opt_ebm is not None:
            self.opt_ebm.load_state_dict(state["opt_ebm"])
        self.step = state["step"]
        self.history, self.wall_before = state.get("history", []), state.get("train_wall_s", 0.0)
        # RNG states are CPU byte tensors, whatever map_location moved the checkpoint to
        rank, rng = self.rank, state["rng"]
        torch.set_rng_state((rng[rank] if rank < len(rng) else rng[0]).cpu())
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"][min(rank, len(state["cuda_rng"]) - 1)].cpu())

    def open_outputs(self, appending, progress):
        """metrics.csv (continued where the run stands when `appending`), config.yaml, TensorBoard,
        the coherence probe and the progress bar: rank 0's alone."""
        self.log = self.board = self.probe = None
        if self.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.log = MetricsLog(self.out_dir / "metrics.csv", self.step if appending else None)
            (self.out_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(self.cfg), sort_keys=False))
            if self.cfg.train.tensorboard:
                from torch.utils.tensorboard import SummaryWriter  # needs `pip install tensorboard`
                self.board = SummaryWriter(self.out_dir / "tensorboard")
            if self.step < self.total:  # a finished run only loads: it needs no classifiers
                with torch.random.fork_rng(devices=[]):  # building the probe draws random numbers (classifier init)
                    self.probe = coherence_probe(self.cfg, self.device)
        self.bar = tqdm(total=self.total, initial=self.step, desc=self.cfg.name, disable=not (self.main and progress),
                        dynamic_ncols=True)

    @property
    def per_epoch(self):
        return len(self.data) // self.cfg.train.batch_size  # full batches only: every step sees the same batch size

    @property
    def total(self):
        return run_length(self.cfg.train, self.per_epoch)

    def train_seconds(self):
        return self.wall_before + time.perf_counter() - self.t0 - self.eval_s

    def evaluate(self):
        t = time.perf_counter()
        values = self.probe(self.model)
        if self.cfg.train.snapshots:  # the parameters behind this probe, for judges that come later
            folder = self.out_dir / "snapshots"
            folder.mkdir(exist_ok=True)
            save_checkpoint(folder / f"step_{self.step:07d}.pt", {"model": self.model.state_dict(), "step": self.step,
                                                                 "config": to_dict(self.cfg)})
        self.eval_s += time.perf_counter() - t
        self.log.write(self.step, "eval", values)

    def checkpoint(self):
        gather = [torch.get_rng_state()]
        if self.distributed:  # every rank's RNG (a collective: all ranks call it), so each stream continues
            gather = [None] * self.world
            dist.all_gather_object(gather, torch.get_rng_state())
        if not self.main:
            return
        save_checkpoint(self.ckpt_path, {
            "model": self.model.state_dict(), "opt_vae": self.opt_vae.state_dict(),
            "opt_ebm": self.opt_ebm.state_dict() if self.opt_ebm else None,
            "step": self.step,
            "rng": gather, "cuda_rng": [torch.cuda.get_rng_state()] if self.device.type == "cuda" else None,
            "config": to_dict(self.cfg),
            "history": self.history, "train_wall_s": self.train_seconds(),
        })

    def out_of_time(self):
        """train.time_budget_s spent (on any rank: every rank stops at the same step)."""
        budget = self.cfg.train.time_budget_s
        out = budget is not None and time.perf_counter() - self.t0 > budget
        if self.distributed and budget is not None:
            flag = torch.tensor(float(out), device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            out = bool(flag.item())
        return out

    def finish(self, start_step):
        """The end row of metrics.csv (wall time, probes' share); with several ranks, a check
        that they hold the same parameters."""
        end = {"wall_s": time.perf_counter() - self.t0}
        if self.probe:
            end["eval_s"] = self.eval_s  # inside wall_s
        if self.distributed:
            sums = [None] * self.world
            dist.all_gather_object(sums, float(sum(p.double().sum() for p in self.model.parameters())))
            end["rank_param_spread"] = max(sums) - min(sums)
            dist.barrier()
            dist.destroy_process_group()
        if self.main and self.step > start_step:
            self.log.write(self.step, "train", end)


def step_function(s):
    """One optimizer step on a batch: the VAE loss (under bf16 autocast where the config asks;
    compiled where it asks, on CUDA), the EBM update, gradients averaged across ranks."""
    tc, cuda = s.cfg.train, s.device.type == "cuda"
    loss = torch.compile(s.model.loss) if tc.compile and cuda else s.model.loss

    def vae_loss(x):
        with torch.autocast(s.device.type, dtype=torch.bfloat16) if tc.bf16 else nullcontext():
            return loss(x)

    reduce_grads = (lambda params: average_gradients(params, s.world)) if s.world > 1 else None
    return lambda x: train_step(s.model, x, s.opt_vae, s.opt_ebm, vae_loss, reduce_grads)


def train(cfg, out_dir, resume=False, progress=True, warm_start=None):
    """Train `cfg` (an ExperimentConfig) into `out_dir`; returns the final step. progress=False
    hides the progress bar (headless notebooks would keep every refresh as a line). warm_start:
    a folder of shipped weights of the same config to continue from (fresh optimizer state)."""
    tc = cfg.train
    s = Session(cfg, out_dir, *start_process(tc))
    if warm_start is not None:
        if resume:
            raise ConfigError("--warm-start starts a new run folder; --resume continues one: give one of them")
        s.warm_start(warm_start)
    if resume:
        s.resume()
    if s.per_epoch == 0:
        raise ConfigError(f"data.limit={cfg.data.limit} leaves fewer tuples than one batch of {tc.batch_size}")
    step_fn = step_function(s)
    s.open_outputs(resume or warm_start is not None, progress)
    s.t0, start_step = time.perf_counter(), s.step
    fresh_at = s.history[-1]["steps"] if s.history else 0  # where this run's optimizer started (warm-up)
    probes = probe_steps(tc, s.total)
    scheduled = tc.warmup_steps or tc.lr_schedule != "constant"
    if s.probe and s.step == 0:
        s.evaluate()  # the untrained model: where every learning curve starts
    s.model.train()
    order, order_epoch = None, None
    while s.step < s.total:
        epoch, b = divmod(s.step, s.per_epoch)  # one step is one batch: the position follows from step
        if epoch != order_epoch:  # the data order depends only on (seed, epoch): resuming reproduces it
            order, order_epoch = torch.randperm(len(s.data), generator=epoch_generator(tc.seed, epoch)).to(s.device), epoch
        x = s.take(order[b * tc.batch_size:(b + 1) * tc.batch_size][s.rank::s.world])
        if scheduled:
            factor = lr_factor(tc, s.step, s.total, fresh_at)
            set_lr(s.opt_vae, tc.lr * factor)
            set_lr(s.opt_ebm, cfg.model.ebm_lr * factor)
        try:
            values = step_fn(x)
        except FloatingPointError as e:
            last = f"{s.ckpt_path} (step {load_checkpoint(s.ckpt_path)['step']})" if s.ckpt_path.is_file() else "none yet"
            raise NonFiniteLoss(f"{e} at step {s.step + 1}; the last good checkpoint is {last}. "
                                "Lower train.lr or check the data.") from e
        if scheduled:
            values["lr"] = s.opt_vae.param_groups[0]["lr"]
        s.step += 1
        if s.main:
            s.bar.update(1)
            s.bar.set_postfix(loss=f"{values['loss']:.1f}", epoch=epoch)
            if s.step % tc.log_every == 0 or s.step == s.total:
                s.log.write(s.step, "train", values)
                if s.board:
                    for k, v in values.items():
                        s.board.add_scalar(f"train/{k}", v, s.step)
        out_of_time = s.out_of_time()
        if s.probe and (s.step in probes or s.step == s.total or out_of_time):
            s.evaluate()
        if s.step % tc.checkpoint_every == 0 or s.step == s.total or out_of_time:
            s.checkpoint()
        if out_of_time:
            break
    s.bar.close()
    s.finish(start_step)
    return s.step


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mmebm.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="name in configs/ (e.g. polymnist_mmvaeplus_ebm) or a YAML path")
    p.add_argument("--profile", choices=PROFILES, help="scale the experiment (configs/profiles/)")
    p.add_argument("--out", help="run folder (default runs/NAME-PROFILE)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    p.add_argument("--warm-start", metavar="WEIGHTS", help="continue shipped weights (e.g. weights/polymnist_mmvaeplus-cpu-s0) "
                   "of the same config in a new RUN_DIR, with a fresh optimizer; raise train.max_steps past theirs "
                   "(and ramp the lr up again with train.warmup_steps=N)")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. train.epochs=5 model.beta=1.0")
    args = p.parse_intermixed_args(argv)
    try:
        cfg = load_config(args.config, args.profile, args.overrides)
        out = args.out or f"runs/{cfg.name}-{args.profile or 'paper'}"
        step = train(cfg, out, resume=args.resume, warm_start=args.warm_start)
    except (ConfigError, NonFiniteLoss, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", 0)) == 0:
        print(f"trained {cfg.name} to step {step}; run folder {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

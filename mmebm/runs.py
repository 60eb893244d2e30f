"""Run folders for the notebooks and `make reproduce`: train, evaluate, or load what is already there.

A finished run is never retrained and an interrupted one resumes, so the figures can be
regenerated from saved runs alone.
"""

import json
import shutil
import time
from pathlib import Path

import torch

from . import classifiers as clf
from .config import from_dict, load_config, to_dict
from .data import load_experiment_data
from .evaluate import REFIT_DIR, SHIPPED_FILE, evaluate, judge_folders, matches, weights_identity, write_json
from .train import load_checkpoint, load_run, run_length, save_checkpoint, train
from .weights import load_shipped


def ensure_classifiers(polymnist_dir, out_dir, epochs=clf.TrainConfig.epochs, limit=None, shipped=None, options=()):
    """The coherence classifiers in `out_dir`: copied from `shipped` (a folder written by
    Classifiers.save, e.g. weights/classifiers) if it holds them, else trained, unless already
    there. `options`: more arguments of `python -m mmebm.classifiers` (PROTOCOL_JUDGES for the
    protocol's judges)."""
    out_dir = Path(out_dir)
    if not (out_dir / clf.INFO_FILE).is_file() and shipped is not None and (Path(shipped) / clf.INFO_FILE).is_file():
        shutil.copytree(shipped, out_dir, dirs_exist_ok=True)
    if not (out_dir / clf.INFO_FILE).is_file():
        argv = ["--data", str(polymnist_dir), "--out", str(out_dir), "--epochs", str(epochs), *options]
        threads = torch.get_num_threads()  # the CLI picks its own thread count; keep ours
        try:
            clf.main(argv + (["--limit", str(limit)] if limit else []))
        finally:
            torch.set_num_threads(threads)
    return clf.Classifiers.load(out_dir)


# the protocol's judges (weights/classifiers_protocol): clean training images, and a "no digit" class
PROTOCOL_JUDGES = ("--no-digit", "--blur", "0")
# the main judges (weights/judges) and their independent check (weights/judges_check): trained
# with the known-answer shifts (mmebm.shifts) and a "no digit" class, other architectures and seeds
MAIN_JUDGES = ("--arch", "resnet", "--shifts", "--no-digit", "--seed", "1", "--bf16")
CHECK_JUDGES = ("--arch", "convbn", "--shifts", "--no-digit", "--seed", "0", "--bf16")  # 8 epochs
# the judge sets that score every run, each a folder of weights/ (results/judges/README.md): the main
# judges, their check, and the protocol's judges
JUDGE_SETS = ("judges", "judges_check", "classifiers_protocol")


def ensure_trained(config, profile, run_dir, overrides=()):
    """Train `config` under `profile` into `run_dir`, resuming (or doing nothing) if a checkpoint is there.
    Returns (model in eval mode, config)."""
    cfg = load_config(config, profile, overrides)
    resume = (Path(run_dir) / "checkpoint.pt").is_file()
    t0 = time.perf_counter()
    step = train(cfg, run_dir, resume=resume, progress=False)
    print(f"{config}: step {step} in {run_dir} ({'resumed or loaded' if resume else 'trained'}, "
          f"{time.perf_counter() - t0:.0f} s)")
    return load_run(run_dir)


def run_dir(runs_dir, config, profile, seed=None):
    """Where `config` trained under `profile` lives: RUNS_DIR/<config>-<profile>, with -s<seed>
    appended for the seeded PolyMNIST runs (the same name under weights/ for shipped ones)."""
    return Path(runs_dir) / (f"{config}-{profile}" + ("" if seed is None else f"-s{seed}"))


def ensure_experiments(configs, profile, runs_dir, overrides=(), weights_dir=None):
    """`ensure_run` for each config (one run each, no seed in its name); returns
    ({config: model}, {config: run folder}, {config: "shipped" | "trained here"})."""
    runs = {name: ensure_run(name, profile, run_dir(runs_dir, name, profile), weights_dir, overrides) for name in configs}
    return ({name: r[0] for name, r in runs.items()}, {name: r[1] for name, r in runs.items()},
            {name: r[2] for name, r in runs.items()})


class MissingWeights(FileNotFoundError):
    """A run is neither shipped nor trained here, and training was not asked for."""


def ensure_run(config, profile, run_folder, weights_dir=None, overrides=()):
    """Shipped weights from WEIGHTS_DIR/<run_folder's name> where they exist, installed into
    <run_folder>-shipped with this machine's data settings; else the run already in run_folder
    (resumed if unfinished). weights_dir None: train (or resume) run_folder instead of looking
    for shipped weights. A run neither shipped nor started here raises MissingWeights, which
    says how to train it: `make reproduce` trains only when asked (TRAIN=1).
    Returns (model, run folder, "shipped" | "trained here")."""
    d = Path(run_folder)
    shipped = None if weights_dir is None else Path(weights_dir) / d.name
    if shipped is not None and (shipped / "manifest.json").is_file():
        d = d.with_name(d.name + "-shipped")
        here = load_config(config, profile, overrides).data
        print(f"{d.name}: shipped weights {shipped}")
        return install_shipped(shipped, d, here), d, "shipped"
    if weights_dir is not None and not (d / "checkpoint.pt").is_file():
        raise MissingWeights(f"the {profile!r} profile ships no weights for {d.name} (looked in {shipped}), and "
                             f"{d} holds no run: train it with `make reproduce PROFILE={profile} TRAIN=1` (it prints "
                             f"the measured step time and the expected total first), or `python -m mmebm.train "
                             f"{config} --profile {profile}`")
    return ensure_trained(config, profile, d, overrides)[0], d, "trained here"


def without_missing(configs, profile, seeds, runs_dir, weights_dir, required=()):
    """`configs` less those that are neither shipped for `profile` in WEIGHTS_DIR nor started in
    RUNS_DIR for any of their seeds (printing how to train each); a `required` one stays, so
    that ensure_run stops on it with MissingWeights. For `make reproduce` without TRAIN=1 under a
    profile that ships only some models (gpu: the four poster models)."""
    kept = []
    for name in configs:
        started = any((run_dir(runs_dir, name, profile, k) / "checkpoint.pt").is_file()
                      for k in (seeds[name] if isinstance(seeds, dict) else seeds))
        if name in required or shipped_seeds(weights_dir, name, profile) or started:
            kept.append(name)
        else:
            print(f"{name}: the {profile!r} profile ships no weights for it and runs/ holds none; left out "
                  f"(train it: make reproduce PROFILE={profile} TRAIN=1)")
    return kept


def plan_seeds(experiments, profile, seeds, train_models, runs_dir, weights_dir, required=()):
    """What 02_models runs: (configs, {config: [seeds]}). `seeds`: a list for every config, a dict, or
    None: with `train_models` seed 0, else every seed WEIGHTS_DIR ships per config (0 where none).
    Without `train_models`, a config neither shipped nor started is left out (without_missing), unless
    `required`."""
    if seeds is None:
        seeds = [0] if train_models else {n: shipped_seeds(weights_dir, n, profile) or [0] for n in experiments}
    seeds = dict(seeds) if isinstance(seeds, dict) else {n: list(seeds) for n in experiments}
    configs = list(experiments) if train_models else without_missing(experiments, profile, seeds, runs_dir,
                                                                     weights_dir, required)
    return configs, {n: seeds[n] for n in configs}


def ensure_other_profiles(configs, profile, others, runs_dir, weights_dir, overrides=()):
    """The shipped runs of each profile in `others` but `profile` (never trained: the rows that sit
    beside this profile's in the tables), each listed in RUNS_DIR/index_file(other).
    Returns {other: {(config, seed): (model, folder, "shipped")}} for the profiles that ship any."""
    out = {}
    for other in others:
        seeds = {n: shipped_seeds(weights_dir, n, other) for n in configs}
        seeds = {n: ks for n, ks in seeds.items() if ks}
        if other != profile and seeds:
            out[other] = ensure_seeded_runs(list(seeds), other, seeds, runs_dir, weights_dir, overrides,
                                            index=index_file(other))
    return out


def step_seconds(cfg, n_steps=2):
    """Median wall time of one training step of `cfg` on its device, after one warm-up step,
    measured on a batch of its training data with a throwaway model and optimizers."""
    from .bench import _sync
    from .models import build_model, make_optimizers, train_step
    from .train import resolve_device, set_vocab_size

    device = resolve_device(cfg.train.device)
    with torch.random.fork_rng(devices=[]):  # leave the caller's random stream alone
        data, take = load_experiment_data(cfg, "train", device, cfg.train.batch_size)
        set_vocab_size(cfg, data)
        model = build_model(cfg.model).to(device)
        opts = make_optimizers(model, cfg.train.lr, cfg.train.amsgrad)
        x = take(torch.arange(cfg.train.batch_size, device=device))
        times = []
        for _ in range(n_steps + 1):
            _sync(device)
            t = time.perf_counter()
            train_step(model, x, *opts)
            _sync(device)
            times.append(time.perf_counter() - t)
    return sorted(times[1:])[len(times[1:]) // 2]


def training_plan(configs, profile, seeds, overrides=(), measure=step_seconds):
    """Before training: each config's measured step time and steps, and the expected total over
    its seeds (probes and evaluation not included); prints the plan and returns the total seconds."""
    total, lines = 0.0, []
    for name in configs:
        n = len(seeds[name] if isinstance(seeds, dict) else seeds)
        cfg = load_config(name, profile, overrides)
        data, _ = load_experiment_data(cfg, "train", "cpu", cfg.data.limit)  # the run length needs its size
        steps = run_length(cfg.train, len(data) // cfg.train.batch_size)
        s = measure(cfg)
        total += s * steps * n
        lines.append(f"  {name}: {s:.3f} s/step x {steps:,} steps x {n} seed(s) = {s * steps * n / 60:,.1f} min")
    print(f"training {profile!r} here: measured step times and the expected total (probes and evaluation extra)")
    print("\n".join(lines))
    print(f"  expected total: {total / 60:,.1f} min ({total / 3600:,.1f} h)", flush=True)
    return total


def default_profile(weights_dir=Path(__file__).resolve().parents[1] / "weights"):
    """What `make reproduce` runs: `gpu` where CUDA is available and weights/ ships gpu runs, else `cpu`."""
    has_gpu_weights = any(Path(weights_dir).glob("*-gpu-s*/manifest.json"))
    return "gpu" if torch.cuda.is_available() and has_gpu_weights else "cpu"


def install_shipped(weights_dir, run_dir, data=None):
    """Put shipped weights (mmebm.weights) into RUN_DIR as an evaluation-only checkpoint (no
    optimizer state: `train` refuses to resume it) with the run's learning curves; returns the
    model in eval mode. `data` (a DataConfig) replaces the manifest's data section: where the
    data is on this machine and how much of the test split to evaluate on are not the weights'.
    Does nothing but load if RUN_DIR already holds these weights; refuses to overwrite a run
    that was trained here."""
    model, _, manifest = load_shipped(weights_dir)
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoint.pt"
    config = from_dict(manifest["config"])
    if data is not None:
        config.data = data
    if ckpt.is_file():
        old = load_checkpoint(ckpt)
        if "shipped" not in old:
            raise FileExistsError(f"{run_dir} holds a run trained here; install shipped weights elsewhere")
        if old["shipped"]["sha256"] == manifest["sha256"] and to_dict(from_dict(old["config"])) == to_dict(config):
            return model
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").unlink(missing_ok=True)  # an evaluation of other weights (of the same step count)
    save_checkpoint(ckpt, {"model": model.state_dict(), "step": manifest["steps"], "config": to_dict(config),
                           "shipped": manifest})
    (run_dir / "metrics.csv").write_bytes((Path(weights_dir) / "metrics.csv").read_bytes())
    return model


INDEX_FILE = "polymnist_runs.json"  # the runs of the profile 02_models ran; the other profiles': index_file(profile)


def index_file(profile=None):
    """The run list 02_models writes for its own profile (None), or for another shipped profile."""
    return INDEX_FILE if profile is None else f"polymnist_runs-{profile}.json"


def shipped_seeds(weights_dir, config, profile):
    """The seeds of `config` under `profile` that WEIGHTS_DIR ships weights for, sorted."""
    suffixes = (m.parent.name.rsplit("-s", 1)[1] for m in Path(weights_dir).glob(f"{config}-{profile}-s*/manifest.json"))
    return sorted(int(s) for s in suffixes if s.isdigit())


def ensure_seeded_runs(configs, profile, seeds, runs_dir, weights_dir=None, overrides=(), index=INDEX_FILE):
    """The runs of `configs` x `seeds` (a list for every config, or {config: list}): shipped
    weights from WEIGHTS_DIR/<config>-<profile>-s<seed> where they exist (unless weights_dir is
    None), installed into RUNS_DIR/<that name>-shipped, else trained (or resumed) with
    train.seed=seed into RUNS_DIR/<config>-<profile>-s<seed>. Writes RUNS_DIR/<index>
    (polymnist_runs.json), the list the results notebook reads. Returns {(config, seed): (model, run folder, "shipped" | "trained here")}."""
    out = {}
    for name in configs:
        for seed in (seeds[name] if isinstance(seeds, dict) else seeds):
            out[name, seed] = ensure_run(name, profile, run_dir(runs_dir, name, profile, seed), weights_dir,
                                         [*overrides, f"train.seed={seed}"])
    runs = [{"config": name, "seed": seed, "run": str(d), "weights": source}
            for (name, seed), (_, d, source) in out.items()]
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    (Path(runs_dir) / index).write_text(json.dumps({"profile": profile, "runs": runs}, indent=2) + "\n")
    return out


REFIT = "+refit"  # the index's config name of a run's refitted variant: "<config>+refit"


def ensure_refitted_runs(runs, runs_dir, cfg=None, device="auto", index=INDEX_FILE):
    """The refitted EBM prior (mmebm.refit, the variant of issue #27) of every EBM run in `runs`
    (ensure_seeded_runs' result) in <run folder>-refit, refitted unless there; added to
    RUNS_DIR/<index> as config "<config>+refit". Returns {("<config>+refit", seed): (model, folder,
    "refitted")}."""
    from .refit import RefitConfig, ensure_refit

    out = {}
    for (name, seed), (model, d, _) in runs.items():
        if model.has_ebm and not name.endswith(REFIT):
            folder = ensure_refit(d, cfg or RefitConfig(), device)
            out[name + REFIT, seed] = (load_run(folder)[0], folder, "refitted")
    path = Path(runs_dir) / index
    listed = json.loads(path.read_text())
    listed["runs"] = [r for r in listed["runs"] if not r["config"].endswith(REFIT)]
    listed["runs"] += [{"config": name, "seed": seed, "run": str(d), "weights": source}
                       for (name, seed), (_, d, source) in out.items()]
    path.write_text(json.dumps(listed, indent=2) + "\n")
    return out


def ensure_evaluated(run_dir, classifiers_dir, n_joint=10_000, device="auto", judges=(), shipped=None):
    """RUN_DIR/metrics.json, unless it is current (evaluate.matches: the same weights, judges,
    EVAL_VERSION, n_joint and test split): else the shipped evaluation SHIPPED/evaluation.json
    where it matches (the run was installed from the weights in SHIPPED), else evaluated here.
    metrics["evaluated"] says which: "here" or "shipped"."""
    return _evaluation(run_dir, classifiers_dir, n_joint, device, judges, shipped)[0]


def _evaluation(run_dir, classifiers_dir, n_joint, device, judges, shipped):
    """(metrics, how) for ensure_evaluated; how: "current" (metrics.json was), "shipped" or "here"."""
    path = Path(run_dir) / "metrics.json"
    state = load_checkpoint(Path(run_dir) / "checkpoint.pt")
    key = (state["step"], weights_identity(state), judge_folders(classifiers_dir, judges), n_joint,
           state["config"]["data"].get("test_limit"))
    if path.is_file() and matches(metrics := json.loads(path.read_text()), *key) and (
            shipped is not None or metrics.get("evaluated") != "shipped"):  # without SHIPPED: evaluated here only
        return metrics, "current"
    if shipped is not None and (Path(shipped) / SHIPPED_FILE).is_file():
        metrics = json.loads((Path(shipped) / SHIPPED_FILE).read_text())
        if matches(metrics, *key):
            metrics |= {"run": str(run_dir), "evaluated": "shipped"}
            for folder in key[2]:  # the same judges (sha256), in this machine's folders, not the shipper's
                metrics["judges"][Path(folder).name]["folder"] = str(Path(folder).resolve())
            write_json(path, metrics)
            return metrics, "shipped"
    return evaluate(run_dir, classifiers_dir, n_joint, device, progress=False, judges=judges), "here"


def ensure_all_evaluated(runs, classifiers_dir, n_joint=10_000, device="auto", judges=(), weights_dir=None,
                         reevaluate=False, log=print):
    """ensure_evaluated for every run of `runs` ({key: (model, run folder, source)}, as
    ensure_seeded_runs returns), one line per run with the elapsed time and an estimate of the
    time left. A run installed from shipped weights reuses the evaluation shipped beside them
    (WEIGHTS_DIR/<run>/evaluation.json) where it matches, unless `reevaluate`. Returns {key: metrics}."""
    out, t0, spent, n_here = {}, time.perf_counter(), 0.0, 0
    for i, (key, (_, d, source)) in enumerate(runs.items(), 1):
        shipped, name = None, Path(d).name
        if weights_dir is not None and not reevaluate:  # where an evaluation may ship beside the weights
            if source == "shipped":
                shipped = Path(weights_dir) / name.removesuffix("-shipped")
            elif name.endswith("-shipped-refit"):
                shipped = Path(weights_dir) / name.removesuffix("-shipped-refit") / REFIT_DIR
        t = time.perf_counter()
        out[key], how = _evaluation(d, classifiers_dir, n_joint, device, judges, shipped)
        dt = time.perf_counter() - t
        if how == "here":
            spent, n_here = spent + dt, n_here + 1
        left = len(runs) - i
        eta = f"; about {spent / n_here * left / 60:.0f} min left at most" if n_here and left else ""
        what = {"current": "evaluated before", "shipped": "shipped evaluation (same weights and judges)",
                "here": "evaluated here"}[how]
        log(f"[{i}/{len(runs)}] {Path(d).name}: {what}, {dt:.0f} s ({(time.perf_counter() - t0) / 60:.1f} min so far{eta})",
            flush=True)
    return out


def main(argv=None):
    """`python -m mmebm.runs default-profile`: the profile `make reproduce` picks on this machine."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args != ["default-profile"]:
        print("usage: python -m mmebm.runs default-profile", file=sys.stderr)
        return 2
    print(default_profile())
    return 0


def coherence_table(metrics):
    """A plain-text table per run: joint and cross coherence under every judge set, and the joint
    coherence of z ~ p0 (EBM prior) and of z from the aggregate posterior."""
    lines = [f"{'run':<32}{'judges':<22}{'joint':>7}{'cross':>7}{'z~p0':>7}{'z~aggr.':>9}"]
    for name, m in metrics.items():
        for judges, b in m["judges"].items():
            p0 = f"{b['joint']['p0']['coherence']:.3f}" if "p0" in b["joint"] else "-"
            lines.append(f"{name:<32}{judges:<22}{b['joint']['prior']['coherence']:>7.3f}{b['cross_coherence']:>7.3f}"
                         f"{p0:>7}{b['joint']['aggregate']['coherence']:>9.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

"""Evaluation: python -m mmebm.evaluate RUN_DIR [--classifiers DIR] [--judges DIR ...] [--n-joint 10000]

Writes RUN_DIR/metrics.json: joint and cross coherence as in MMVAE+ (SPEC.md section 4), the 5x5
cross-coherence matrix, the digits of the joint samples, the classifiers' test accuracies, and the
config evaluated. Every judge set (the main `--classifiers` and each `--judges`) scores the same
generations; its numbers go to metrics["judges"][<its folder's name>], and the main set's are also
the top-level keys. Besides the model's own prior, joint coherence is measured for two more
sources of z, the columns of the prior hole (issue #27):

- "p0": the EBM's untilted base density (EBM prior only): what tilting starts from;
- "aggregate": the aggregate posterior, the posterior sample of a random training tuple through a
  random expert: what a perfect prior would generate. The hole is aggregate - p0; the share a
  prior closes, (prior - p0) / (aggregate - p0), is computed by report.hole_closed.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from .classifiers import Classifiers, fingerprint
from .coherence import joint_agreement, model_cross_coherences, sample_predictions
from .config import to_dict
from .data import PolyMNIST
from .objectives import pick
from .train import load_checkpoint, model_from_state, resolve_device

# 2: several judge sets, the p0 and aggregate-posterior columns; 3: the judges' and the weights' sha256
# (a shipped evaluation is reused only for the same weights and judges). Older metrics.json are redone.
EVAL_VERSION = 3
SHIPPED_FILE = "evaluation.json"  # a shipped run's evaluation, beside its weights (weights/<run>/)


@torch.no_grad()
def aggregate_posterior_sample(model, train, n, batch_size=500):
    """n draws of z from the aggregate posterior q(z) = E_x 1/M sum_m q(z | x_m): a uniformly
    drawn training tuple through a uniformly drawn expert, one posterior sample each."""
    idx = torch.randint(len(train), (n,))
    expert = torch.randint(train.n_modalities, (n,))
    device = next(model.parameters()).device
    out = []
    for s in range(0, n, batch_size):
        x, _ = train[idx[s : s + batch_size].to(train.images.device)]
        z = model.objective.single_samples(model.encode(x.to(device)).z)  # [B, M, Dz]
        out.append(pick(z, expert[s : s + batch_size].to(z.device)))
    return torch.cat(out)


def judge_folders(classifiers_dir, judges=()):
    """The main judges' folder, then every other one of `judges` (the main one listed again is skipped)."""
    return [Path(classifiers_dir), *(Path(j) for j in judges if Path(j) != Path(classifiers_dir))]


def joint_column(pred):
    """What metrics.json keeps of one source of z, from the predictions [n, M] of its samples."""
    ok = joint_agreement(pred)
    return {"coherence": ok.double().mean().item(), "n": len(pred), "n_coherent": int(ok.sum()),
            # the digits of the coherent samples alone: blurry samples that every judge reads as
            # one digit count as coherent, so a share near 1 for one digit flags a degenerate joint
            "coherent_digit_histogram": torch.bincount(pred[ok, 0], minlength=10)[:10].tolist(),
            # modality 0's answers over all samples; [10] is "no digit" for judges with an eleventh class
            "modality0_answers": torch.bincount(pred[:, 0], minlength=11).tolist()}


def evaluate(run_dir, classifiers_dir="runs/judges", n_joint=10_000, device="auto", seed=0,
             progress=True, judges=()):
    """Coherence of the model in `run_dir` scored by the classifiers in `classifiers_dir` and in each
    folder of `judges`; returns the metrics dict and writes metrics.json."""
    device = resolve_device(device)
    t0 = time.perf_counter()
    state = load_checkpoint(Path(run_dir) / "checkpoint.pt", device)
    model, cfg = model_from_state(state, device)
    if cfg.model.dataset != "polymnist":
        raise ValueError(f"{run_dir} is a {cfg.model.dataset} run: coherence needs digit labels, so it is "
                         "PolyMNIST only; notebooks/04_cub.py shows what we measure on CUB")
    folders = judge_folders(classifiers_dir, judges)
    if len({f.name for f in folders}) < len(folders):
        raise ValueError(f"judge folders need distinct names (their metrics are keyed by them): {folders}")
    sets = {f.name: Classifiers.load(f, cfg.model.n_modalities, device) for f in folders}
    main = folders[0].name
    test = PolyMNIST.load_cached(cfg.data.root, "test", cfg.data.test_limit, device)
    torch.manual_seed(seed)  # posterior samples, w ~ p0(w) and Langevin noise: same seed, same numbers
    cross = model_cross_coherences(model, test, sets, progress=progress)
    sources = {"prior": lambda n: model.sample(n)}
    if model.has_ebm:
        sources["p0"] = lambda n: model.sample(n, tilted=False)
    train = PolyMNIST.load_cached(cfg.data.root, "train", cfg.data.limit)  # on the CPU: a random subset moves
    sources["aggregate"] = lambda n: model.decode_z(aggregate_posterior_sample(model, train, n))
    preds = {src: sample_predictions(draw, sets, n_joint, progress=progress, desc=f"joint coherence, z ~ {src}")
             for src, draw in sources.items()}
    blocks = {name: {"folder": str(folder.resolve()), "sha256": fingerprint(folder), "classifier_accuracy": sets[name].test_accuracy,
                     "n_classes": sets[name].n_classes,
                     "cross_coherence": cross[name].mean,
                     "cross_coherence_per_target": cross[name].per_target.tolist(),
                     "cross_coherence_matrix": cross[name].matrix.tolist(),  # [source][target]; diagonal: self-rec.
                     "joint": {src: joint_column(p[name]) for src, p in preds.items()}}
              for name, folder in zip(sets, folders)}
    m, pred = blocks[main], preds["prior"][main]
    metrics = {
        "run": str(run_dir),
        "step": state["step"],
        "version": EVAL_VERSION,
        "weights_sha256": weights_identity(state),  # None: trained here
        # the main judges' numbers, as every earlier metrics.json had them
        "joint_coherence": m["joint"]["prior"]["coherence"],
        "cross_coherence": m["cross_coherence"],
        "cross_coherence_per_target": m["cross_coherence_per_target"],
        "cross_coherence_matrix": m["cross_coherence_matrix"],
        "joint_digit_histogram": torch.bincount(pred[:, 0], minlength=10).tolist(),
        "joint_coherent_digit_histogram": m["joint"]["prior"]["coherent_digit_histogram"],
        "joint_coherence_aggregate": m["joint"]["aggregate"]["coherence"],
        "n_joint": n_joint,
        "n_test": len(test),
        "classifier_accuracy": sets[main].test_accuracy,
        "judges": blocks,
        "seed": seed,
        "config": to_dict(cfg),
    }
    if model.has_ebm:
        metrics["joint_coherence_p0"] = m["joint"]["p0"]["coherence"]
    metrics["eval_s"] = time.perf_counter() - t0
    metrics["machine"] = {"torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads()}
    metrics["evaluated"] = "here"  # a shipped evaluation, reused elsewhere, says "shipped" there (runs.ensure_evaluated)
    write_json(Path(run_dir) / "metrics.json", metrics)
    return metrics


def write_json(path, obj):
    """Write atomically: a reader never sees half a file."""
    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)


REFIT_DIR = "refit"  # weights/<run>/refit/evaluation.json: the evaluation of the run's refitted prior


def weights_identity(state):
    """What an evaluation of a checkpoint is keyed by: the shipped weights' sha256 (None for a run
    trained here); for the refit of a shipped run (mmebm.refit), the sha256 of those weights and of
    the refitted f_alpha together, so that a refit that comes out otherwise elsewhere is evaluated
    again. A refit made before that key existed has none (None: evaluated here)."""
    sha = state.get("shipped", {}).get("sha256")
    return state["refit"].get("weights_sha256") if sha and state.get("refit") else sha


def matches(metrics, step, weights_sha256, judges, n_joint, test_limit, seed=0):
    """Whether `metrics` (a metrics.json or a shipped evaluation) is this evaluation: same weights
    (sha256 and step), same judge sets (names and sha256), this EVAL_VERSION, n_joint, test split
    and seed."""
    return (metrics.get("version") == EVAL_VERSION and metrics.get("step") == step and metrics.get("seed") == seed
            and metrics.get("weights_sha256") == weights_sha256 and metrics.get("n_joint") == n_joint
            and metrics.get("config", {}).get("data", {}).get("test_limit") == test_limit
            and {n: b.get("sha256") for n, b in metrics.get("judges", {}).items()}
            == {Path(f).name: fingerprint(f) for f in judges})


def ship(run_dir, weights_dir):
    """Copy RUN_DIR/metrics.json, an evaluation of the shipped weights in WEIGHTS_DIR, to
    WEIGHTS_DIR/evaluation.json (for the refit of those weights: WEIGHTS_DIR/refit/evaluation.json):
    `make reproduce` then reuses it while weights and judges match."""
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    manifest = json.loads((Path(weights_dir) / "manifest.json").read_text())
    state = load_checkpoint(Path(run_dir) / "checkpoint.pt")
    refit = bool(state.get("refit"))
    if (state.get("shipped", {}).get("sha256") != manifest["sha256"] or metrics.get("version") != EVAL_VERSION
            or metrics.get("weights_sha256") != weights_identity(state) or metrics["weights_sha256"] is None):
        raise ValueError(f"{run_dir}/metrics.json is not a current evaluation of the weights in {weights_dir}"
                         + (" (refitted)" if refit else ""))
    metrics["run"] = Path(weights_dir).name + ("-refit" if refit else "")
    dest = Path(weights_dir) / REFIT_DIR if refit else Path(weights_dir)
    dest.mkdir(exist_ok=True)
    write_json(path := dest / SHIPPED_FILE, metrics)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mmebm.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--classifiers", default="runs/judges",
                   help="the main judges (weights/judges, as 02_models installs them), trained by python -m mmebm.classifiers")
    p.add_argument("--judges", nargs="*", default=[],
                   help="more classifier folders scoring the same generations (e.g. the protocol's judges)")
    p.add_argument("--n-joint", type=int, default=10_000, help="prior samples for joint coherence")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ship-to", metavar="WEIGHTS_DIR",
                   help="then copy the evaluation beside the shipped weights it evaluated (weights/<run>)")
    args = p.parse_args(argv)
    try:
        m = evaluate(args.run_dir, args.classifiers, args.n_joint, args.device, args.seed, judges=args.judges)
        if args.ship_to:
            print(f"shipped: {ship(args.run_dir, args.ship_to)}")
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, b in m["judges"].items():
        joint = ", ".join(f"z ~ {src} {c['coherence']:.3f}" for src, c in b["joint"].items())
        print(f"{name}: cross coherence {b['cross_coherence']:.3f}; joint coherence {joint}")
    print(f"->  {Path(args.run_dir) / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

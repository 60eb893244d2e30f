"""The judges on known-answer shifts and on generations (issue #37). From the repository root:

    python results/judges/report.py softness     # how soft the shipped models' generations are
    python results/judges/report.py shifts       # every judge set on every shift of the test split
    python results/judges/report.py blends --limit 2000   # every judge set on two digits blended, at several weights
    python results/judges/report.py agreement [--runs RUN ...]   # per-target cross coherence of every shipped model, all judge sets
    python results/judges/report.py eye          # 100 generations per target modality to count by eye
    python results/judges/report.py disputed     # the generations main and check read differently, blind
    python results/judges/report.py tables       # tables.md from what the others wrote

Writes beside this file. The data: data/polymnist (python -m mmebm.data polymnist) and the MNIST
files under $MMEBM_DATA (default ../shared/data).
"""

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import torch

from mmebm.classifiers import Classifiers
from mmebm.coherence import model_cross_coherences, predict
from mmebm.data import PolyMNIST, data_root
from mmebm.plots import judged_grid, save
from mmebm.shifts import ShiftParams, load_split_with_masks, measure_softness, score_blends, score_shifts
from mmebm.weights import load_shipped

HERE = Path(__file__).resolve().parent
WEIGHTS = Path("weights")
JUDGES = {"protocol": "classifiers_protocol", "blur_robust": "classifiers", "main": "judges", "check": "judges_check"}
SOFTNESS_RUNS = [f"polymnist_{m}-{p}-s0" for p in ("cpu", "gpu") for m in ("mmvae", "mmvaeplus", "mmvae_ebm", "mmvaeplus_ebm")]


def judges():
    return {name: Classifiers.load(WEIGHTS / folder) for name, folder in JUDGES.items() if (WEIGHTS / folder).is_dir()}


def test_split(limit):
    return load_split_with_masks("data/polymnist", data_root() / "mnist", "test", limit)


def cross_by_target(model, x):
    """Cross generations [B * (M - 1), M(target), ...] of x [B, M, ...]: for each target, its
    generations from every other source."""
    with torch.no_grad():
        gen = model.cross_generate_all(x).clamp(0, 1)  # [M(src), B, M(tgt), ...]
    M = gen.shape[0]
    return torch.stack([torch.cat([gen[s, :, t] for s in range(M) if s != t]) for t in range(M)], 1)


def softness(args):
    images, labels, masks = test_split(500)
    x = images.float() / 255
    out = {}
    for run in SOFTNESS_RUNS:
        if not (WEIGHTS / run).is_dir():
            continue
        model, _, _ = load_shipped(WEIGHTS / run)
        torch.manual_seed(0)
        out[run] = measure_softness(cross_by_target(model, x), images, masks)
        print(run, {k: [round(v, 2) for v in vs] for k, vs in out[run].items()}, flush=True)
    (HERE / "softness.json").write_text(json.dumps(out, indent=1) + "\n")


def shifts(args):
    images, labels, masks = test_split(args.limit)
    params = ShiftParams(digit_sigma=args.digit_sigma)
    rows = score_shifts(judges(), images, labels, masks, params)
    name = "shifts.csv" if params == ShiftParams() else f"shifts_sigma{args.digit_sigma}.csv"
    with open(HERE / name, "w", newline="") as f:
        w = csv.DictWriter(f, rows[0].keys())
        w.writeheader()
        w.writerows(rows)
    print(shift_table(rows))


def blends(args):
    images, labels, masks = test_split(args.limit)
    rows = score_blends(judges(), images, labels, masks)
    with open(HERE / "blends.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["judges", "weight", "modality", "n", "own", "other", "either", "no_digit", "third", "agree"])
        w.writeheader()
        w.writerows(rows)
    print(blend_table(rows))


def blend_table(rows, modalities=(0, 4)):
    """Markdown: per judge set and weight, on `modalities` (the faint ones of the generations): the
    share answered with the dominant digit, the other one, neither ("third"), and "no digit"; then
    how often main and check answer alike."""
    sets = [j for j in dict.fromkeys(r["judges"] for r in rows) if "=" not in j]
    weights = list(dict.fromkeys(float(r["weight"]) for r in rows))
    cols = [f"m{m} {k}" for m in modalities for k in ("own", "other", "third", "no digit")]
    lines = ["| judges | weight | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    get = {(r["judges"], float(r["weight"]), int(r["modality"])): r for r in rows}
    for j in sets:
        for w in weights:
            lines.append(f"| {j} | {w:.1f} | " + " | ".join(
                f"{float(get[j, w, m][k]):.2f}" for m in modalities for k in ("own", "other", "third", "no_digit")) + " |")
    pair = next((j for j in dict.fromkeys(r["judges"] for r in rows) if j in ("main=check", "check=main")), None)
    if pair:
        lines += ["", f"| weight | " + " | ".join(f"m{m} main = check" for m in range(5)) + " |", "|---|" + "---|" * 5]
        for w in weights:
            lines.append(f"| {w:.1f} | " + " | ".join(f"{float(get[pair, w, m]['agree']):.2f}" for m in range(5)) + " |")
    return "\n".join(lines)


def shift_table(rows):
    """Markdown: one row per (shift, judge set), the five modalities' accuracy."""
    lines = ["| shift | judges | m0 | m1 | m2 | m3 | m4 |", "|---|---|---|---|---|---|---|"]
    keys = dict.fromkeys((r["shift"], r["judges"]) for r in rows)
    for shift, j in keys:
        acc = [r for r in rows if r["shift"] == shift and r["judges"] == j]
        lines.append(f"| {shift} | {j} | " + " | ".join(
            f"{r['accuracy']:.3f}" + (f" ({r['no_digit']:.2f})" if r["no_digit"] >= 0.05 and not shift.endswith("_empty") else "")
            for r in acc) + " |")
    return "\n".join(lines)


def agreement(args):
    data = PolyMNIST.load("data/polymnist", "test", limit=args.limit)
    sets = judges()
    runs = args.runs or sorted(p.name for p in WEIGHTS.glob("polymnist_*") if (p / "manifest.json").is_file())
    rows = []
    if args.runs and (HERE / "agreement.csv").is_file():  # measure these runs again, keep the others' rows
        with open(HERE / "agreement.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["run"] not in runs]
    for run in runs:
        t = time.time()
        model, _, _ = load_shipped(WEIGHTS / run)
        torch.manual_seed(0)
        cc = model_cross_coherences(model, data, sets, progress=False)
        for name, c in cc.items():
            rows.append({"run": run, "judges": name, "mean": round(c.mean, 4),
                         **{f"m{t}": round(v, 4) for t, v in enumerate(c.per_target.tolist())}})
        gap = max(abs(a - b) for a, b in zip(cc["main"].per_target.tolist(), cc["check"].per_target.tolist())) \
            if {"main", "check"} <= set(cc) else float("nan")
        print(f"{run}: " + ", ".join(f"{n} {c.mean:.3f}" for n, c in cc.items()) + f"; largest main-check gap {gap:.3f}"
              f" ({time.time() - t:.0f} s)", flush=True)
    rows.sort(key=lambda r: (r["run"], list(JUDGES).index(r["judges"])))
    with open(HERE / "agreement.csv", "w", newline="") as f:
        w = csv.DictWriter(f, rows[0].keys())
        w.writeheader()
        w.writerows(rows)


def eye(args):
    """For each target modality, 100 cross generations of the run (10 test tuples of each digit,
    each from a random other source), drawn one digit a row, with every judge set's answer."""
    data = PolyMNIST.load("data/polymnist", "test")
    sets = judges()
    model, _, _ = load_shipped(WEIGHTS / args.run)
    g = torch.Generator().manual_seed(0)
    pick = torch.cat([(data.labels == d).nonzero()[:, 0][torch.randperm(int((data.labels == d).sum()), generator=g)[:10]]
                      for d in range(10)])
    x, y = data[pick]
    torch.manual_seed(0)
    with torch.no_grad():
        gen = model.cross_generate_all(x).clamp(0, 1)  # [M(src), 100, M(tgt), ...]
    M = gen.shape[0]
    rows = []
    for t in range(M):
        src = torch.tensor([s for s in range(M) if s != t])[torch.randint(M - 1, (100,), generator=g)]
        full = gen[src, torch.arange(100)]  # [100, M, ...]: each judge reads its own modality's image
        imgs = full[:, t]  # [100, 3, 28, 28]
        answers = {name: predict(clf, full)[:, t] for name, clf in sets.items()}
        shown = {} if args.blind else {n: a.view(10, 10) for n, a in answers.items()}  # blind: to count by eye first
        fig = judged_grid(imgs.view(10, 10, 3, 28, 28), shown,
                          row_labels=[str(d) for d in range(10)],
                          title=f"{args.run}: target m{t}, 10 test tuples of each digit (rows), each from a random other source")
        save(fig, HERE / f"eye_m{t}{'_blind' if args.blind else ''}.png", pdf=False)
        for i in range(100):
            rows.append({"target": t, "image": i, "row": i // 10, "col": i % 10, "digit": int(y[i]), "source": int(src[i]),
                         **{n: int(a[i]) for n, a in answers.items()}})
    with open(HERE / "eye_answers.csv", "w", newline="") as f:
        w = csv.DictWriter(f, rows[0].keys())
        w.writeheader()
        w.writerows(rows)


def disputed(args):
    """The generations the main judges and their check disagree on, to settle by eye: cross
    generations of --limit evenly spaced test tuples (default 1,000) into each of --targets, each
    from a random other source; of those where the two sets answer differently, 40 at random per
    target, drawn blind (numbered, no digit, no answer: disputed_m<t>_blind.png). Every judge
    set's answers and the true digit go to disputed_answers.csv, to be opened only after the
    images are read (disputed_readings.csv: target, image, reading; "?" for unreadable). --stretch
    shows each image with its own range stretched to [0, 1] (the judges read the images as made)."""
    import matplotlib.pyplot as plt

    data = PolyMNIST.load("data/polymnist", "test", limit=args.limit or 1000)
    sets = judges()
    model, _, _ = load_shipped(WEIGHTS / args.run)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        gen = model.cross_generate_all(data.images.float() / 255).clamp(0, 1)  # [M(src), N, M(tgt), ...]
    M, N = gen.shape[:2]
    rows = []
    for t in args.targets:
        src = torch.tensor([s for s in range(M) if s != t])[torch.randint(M - 1, (N,), generator=g)]
        full = gen[src, torch.arange(N)]  # each judge reads its own modality's image
        answers = {name: predict(clf, full)[:, t] for name, clf in sets.items()}
        differ = (answers["main"] != answers["check"]).nonzero()[:, 0]
        pick = differ[torch.randperm(len(differ), generator=g)[:40]]
        fig, axes = plt.subplots(5, 8, figsize=(8 * 1.3, 5 * 1.45))
        for i, ax in enumerate(axes.flat):
            ax.set_xticks([])
            ax.set_yticks([])
            if i < len(pick):
                img = full[pick[i], t]
                if args.stretch:  # each image's own range stretched to [0, 1]: the eye reads faint digits
                    img = (img - img.min()) / (img.max() - img.min()).clamp_min(1e-6)
                ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
                ax.set_title(str(i), fontsize=8)
        fig.suptitle(f"{args.run}: target m{t}, {len(pick)} of the {len(differ)} of {N} cross generations the main "
                     f"judges and their check read differently (blind: no digit, no answer"
                     + ("; each image's contrast stretched)" if args.stretch else ")"), fontsize=8)
        save(fig, HERE / f"disputed_m{t}_blind.png", pdf=False)
        for i, j in enumerate(pick.tolist()):
            rows.append({"target": t, "image": i, "tuple": j, "digit": int(data.labels[j]), "source": int(src[j]),
                         **{n: int(a[j]) for n, a in answers.items()}})
        print(f"m{t}: main and check differ on {len(differ)} of {N}", flush=True)
    with open(HERE / "disputed_answers.csv", "w", newline="") as f:
        w = csv.DictWriter(f, rows[0].keys())
        w.writeheader()
        w.writerows(rows)


def disputed_table():
    """Markdown: the disputed images by eye against each judge set and the true digit."""
    answers = {(r["target"], r["image"]): r for r in csv.DictReader(open(HERE / "disputed_answers.csv"))}
    readings = list(csv.DictReader(open(HERE / "disputed_readings.csv")))
    sets = [k for k in next(iter(answers.values())) if k not in ("target", "image", "tuple", "digit", "source")]
    out = ["| target | images | unreadable by eye | eye = true digit | " + " | ".join(f"eye = {s}" for s in sets)
           + " | " + " | ".join(f"{s} = true digit" for s in sets) + " |", "|---|---|---|---|" + "---|" * 2 * len(sets)]
    for t in sorted({r["target"] for r in readings}):
        rs = [(r["reading"], answers[t, r["image"]]) for r in readings if r["target"] == t]
        read = [(e, a) for e, a in rs if e != "?"]
        out.append(f"| m{t} | {len(rs)} | {len(rs) - len(read)} | {sum(e == a['digit'] for e, a in read)} | "
                   + " | ".join(str(sum(e == a[s] for e, a in read)) for s in sets) + " | "
                   + " | ".join(str(sum(a[s] == a["digit"] for _, a in rs)) for s in sets) + " |")
    return "\n".join(out)


def tables(args):
    """tables.md: the shift table (shifts.csv, and shifts_sigma*.csv where present), the agreement
    of the two new sets per run and target (agreement.csv) and the by-eye counts against each set."""
    out = []
    for path in sorted(HERE.glob("shifts*.csv")):
        rows = [dict(r, accuracy=float(r["accuracy"]), no_digit=float(r["no_digit"])) for r in csv.DictReader(open(path))]
        out += [f"## {path.name}: accuracy per modality (the share answered 'no digit', where 0.05 or more)", "",
                shift_table(rows), ""]
    rows = list(csv.DictReader(open(HERE / "agreement.csv")))
    out += ["## agreement.csv: per-target cross coherence, main / check judges, and the largest gap", "",
            "| run | m0 | m1 | m2 | m3 | m4 | largest gap | protocol (mean) | blur-robust (mean) |",
            "|---|---|---|---|---|---|---|---|---|"]
    gaps = []
    for run in dict.fromkeys(r["run"] for r in rows):
        by = {r["judges"]: r for r in rows if r["run"] == run}
        gap = max(abs(float(by["main"][f"m{t}"]) - float(by["check"][f"m{t}"])) for t in range(5))
        gaps.append(gap)
        cells = [f"{float(by['main'][f'm{t}']):.3f} / {float(by['check'][f'm{t}']):.3f}" for t in range(5)]
        out.append(f"| {run} | " + " | ".join(cells) + f" | {'**' if gap > 0.05 else ''}{gap:.3f}{'**' if gap > 0.05 else ''}"
                   f" | {float(by['protocol']['mean']):.3f} | {float(by['blur_robust']['mean']):.3f} |")
    out += ["", f"{sum(g <= 0.05 for g in gaps)} of {len(gaps)} runs within 0.05 on every target.", ""]
    answers = list(csv.DictReader(open(HERE / "eye_answers.csv")))
    counts = list(csv.DictReader(open(HERE / "eye_counts.csv")))
    sets = [k for k in answers[0] if k not in ("target", "image", "row", "col", "digit", "source")]
    out += ["## By eye: agreement with the source digit, 100 cross generations per target", "",
            "| target | by eye (confidence) | " + " | ".join(sets) + " |", "|---|---|" + "---|" * len(sets)]
    for t in range(5):
        eye = sum(int(c["agree"]) for c in counts if int(c["target"]) == t) / 100
        conf = {c["confidence"] for c in counts if int(c["target"]) == t}.pop()
        rs = [r for r in answers if int(r["target"]) == t]
        out.append(f"| m{t} | {eye:.2f} ({conf}) | " + " | ".join(
            f"{sum(int(r[s]) == int(r['digit']) for r in rs) / len(rs):.2f}" for s in sets) + " |")
    if (HERE / "disputed_readings.csv").is_file():
        out += ["", "## Disputed: the generations the main judges and their check read differently, read by eye "
                "blind (counts)", "", disputed_table()]
    (HERE / "tables.md").write_text("\n".join(out) + "\n")
    print("\n".join(out))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["softness", "shifts", "blends", "agreement", "eye", "disputed", "tables"])
    p.add_argument("--limit", type=int, default=None, help="test tuples (evenly spaced; default all)")
    p.add_argument("--run", default="polymnist_mmvae-cpu-s0", help="eye: the shipped run")
    p.add_argument("--runs", nargs="+", help="agreement: measure only these shipped runs again (default: all)")
    p.add_argument("--digit-sigma", type=float, default=ShiftParams.digit_sigma,
                   help="shifts: the digit's blur in the blurred shifts (pixels)")
    p.add_argument("--blind", action="store_true", help="eye: the grids without the judges' answers")
    p.add_argument("--targets", type=int, nargs="+", default=[0, 4], help="disputed: the target modalities")
    p.add_argument("--stretch", action="store_true", help="disputed: stretch each image's contrast for the eye")
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 1)))
    {"softness": softness, "shifts": shifts, "blends": blends, "agreement": agreement, "eye": eye, "disputed": disputed,
     "tables": tables}[args.what](args)


if __name__ == "__main__":
    sys.exit(main())

"""The PolyMNIST tables of 03_results, built from evaluated runs (runs/*/metrics.json), and what they show.

    groups = load_profiles(runs_dir, "cpu")   # {profile: Group}: this profile's runs first, then the others'
    rows, per_run, summary = coherence_rows(groups)
    holes, hole_runs = hole_rows(groups)
    generalized = generalized_rows(rows, "cpu")
    findings(rows, groups)                    # "What this shows", as Markdown bullets, computed from the numbers

Every number is read from the metrics 02_models wrote; nothing here evaluates a model.
"""

import csv
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .report import fmt_mean_sd, hole_closed, mean_sd, wilson_interval
from .runs import INDEX_FILE, REFIT, index_file
from .train import load_checkpoint
from .weights import train_wall_seconds

# The poster's PolyMNIST numbers (its results table): label, joint, cross coherence.
PAPER = {
    "polymnist_mmvae": ("MMVAE", 0.232, 0.844),
    "polymnist_mmvae_ebm": ("Ours, base (MMVAE + EBM prior)", 0.746, 0.853),
    "polymnist_mmvaeplus": ("MMVAE+", 0.344, 0.869),
    "polymnist_mmvaeplus_ebm": ("Ours, generalized (MMVAE+ + EBM prior)", 0.878, 0.897),
}
# the other baselines of the poster's generalized table: shown when 02_models ran them
BASELINES = {"polymnist_mopoe": ("MoPoE", 0.141, 0.720), "polymnist_mvtcae": ("MVTCAE", 0.003, 0.591),
             "polymnist_mmjsd": ("mmJSD", 0.060, 0.778)}
GENERALIZED_TABLE = ["polymnist_mmvaeplus_ebm", "polymnist_mmvaeplus", *BASELINES]  # the poster's row order
# the refitted EBM priors of 02_models (mmebm.refit): a variant of ours, no poster numbers
VARIANTS = {"polymnist_mmvae_ebm" + REFIT: ("Ours, base, refitted prior (penalty 0.1)", "", ""),
            "polymnist_mmvaeplus_ebm" + REFIT: ("Ours, generalized, refitted prior (penalty 0.1)", "", "")}
LABELS = {**PAPER, **BASELINES, **VARIANTS}
ORDER = ["polymnist_mmvae", "polymnist_mmvae_ebm", "polymnist_mmvae_ebm" + REFIT, "polymnist_mmvaeplus",
         "polymnist_mmvaeplus_ebm", "polymnist_mmvaeplus_ebm" + REFIT, *BASELINES]
PAIRS = {"base": ("polymnist_mmvae", "polymnist_mmvae_ebm"),  # the poster's two comparisons: twin, EBM model
         "generalized": ("polymnist_mmvaeplus", "polymnist_mmvaeplus_ebm")}
# the judge sets of metrics.json (02_models: their folder names) and their labels: the main judges
# (trained with the known-answer shifts), their independent check, and the paper's protocol
JUDGES = {"judges": "main", "judges_check": "check", "classifiers_protocol": "protocol"}
AGREE = 0.05  # the check disagrees with the main judges on a target where their cross coherence differs more
N_TRAIN = 60_000  # PolyMNIST training tuples: an epoch
PAPER_EPOCHS = 250


@dataclass
class Group:
    """One profile's evaluated runs: {(config, seed): folder}, {config: [seeds]}, {(config, seed): metrics},
    {(config, seed): ("shipped", manifest) or ("trained here", None)} and, for refitted runs,
    {(config, seed): the refit's seconds}; each checkpoint is read once, here."""
    runs: dict
    seeds: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)
    refit_s: dict = field(default_factory=dict)


def _group(entries, required):
    runs = {(r["config"], r["seed"]): Path(r["run"]) for r in entries if r["config"] in LABELS}
    unevaluated = [str(d) for d in runs.values() if not (d / "metrics.json").is_file()]
    if required and unevaluated:
        raise FileNotFoundError(f"runs not evaluated: {unevaluated}; run 02_models first")
    runs = {k: d for k, d in runs.items() if (d / "metrics.json").is_file()}
    metrics = {k: json.loads((d / "metrics.json").read_text()) for k, d in runs.items()}
    stale = [str(runs[k]) for k, m in metrics.items() if set(JUDGES) - set(m.get("judges", {}))]
    if stale:
        raise FileNotFoundError(f"runs not evaluated by every judge set {list(JUDGES)}: {stale}; run 02_models first")
    seeds = {name: sorted(k for n, k in runs if n == name) for name in ORDER}
    group = Group(runs, {n: ks for n, ks in seeds.items() if ks}, metrics)
    for k, d in runs.items():
        state = load_checkpoint(d / "checkpoint.pt")
        group.sources[k] = ("shipped", state["shipped"]) if state.get("shipped") else ("trained here", None)
        if state.get("refit"):
            group.refit_s[k] = state["refit"]["seconds"]
    return group


def load_profiles(runs_dir, profile):
    """{profile: Group} from the run lists 02_models writes: `profile`'s own (every poster model must be
    there) and each other profile it evaluated (compare_profiles). In the tables' order: the `long`
    profile first (the longest-trained runs), then `profile`, then the others alphabetically."""
    path = Path(runs_dir) / INDEX_FILE
    index = json.loads(path.read_text()) if path.is_file() else {"profile": None, "runs": []}
    if index["profile"] != profile:
        raise FileNotFoundError(f"no {profile!r} runs listed in {path}: run 02_models with profile={profile!r} "
                                "first (make reproduce does)")
    groups = {profile: _group(index["runs"], required=True)}
    missing = [name for name in PAPER if name not in groups[profile].seeds]
    if missing:
        raise FileNotFoundError(f"no run of {missing} in {path}; run 02_models first")
    for other in sorted(Path(runs_dir).glob(index_file("*"))):
        listed = json.loads(other.read_text())
        if listed["profile"] != profile:
            groups[listed["profile"]] = _group(listed["runs"], required=False)
    return {p: groups[p] for p in sorted(groups, key=lambda p: (p != "long", p != profile, p))}


def judged(m, judges, src="prior"):
    """(joint coherence of z ~ src, cross coherence) of metrics m under one judge set."""
    b = m["judges"][judges]
    return b["joint"][src]["coherence"], b["cross_coherence"]


def model_means(group, name, judges="judges", src="prior"):
    """(joint coherence of z ~ src, cross coherence) of one model under one judge set, mean over its seeds."""
    per_seed = [judged(group.metrics[name, k], judges, src) for k in group.seeds[name]]
    return tuple(statistics.fmean(col) for col in zip(*per_seed))


def top_share(column):
    """The commonest digit among a column's coherent samples, and its share."""
    h = column["coherent_digit_histogram"]
    return max(range(10), key=h.__getitem__), max(h) / max(sum(h), 1)


def nets(model):
    """The networks and, for the conv nets, their activation (the cpu recipe's lever: README)."""
    if model["net"] != "conv":
        return model["net"]
    leak = model.get("conv_leak", 0.0)
    return f"conv, LeakyReLU {leak:g}" if leak else "conv, ReLU"


def trained_on(manifest):
    return (manifest["machine"].get("gpu") or manifest["machine"]["processor"]) if manifest else "this machine"


def epochs(m):
    """Epochs a run trained: its steps times its batch over its training tuples (data.limit, if set)."""
    n_train = min(m["config"].get("data", {}).get("limit") or N_TRAIN, N_TRAIN)
    return m["step"] * m["config"]["train"]["batch_size"] / n_train


def check_gaps(ms, main="judges", check="judges_check"):
    """Per target modality, the check's cross coherence minus the main judges', mean over the runs `ms`."""
    per = [[c - a for a, c in zip(m["judges"][main]["cross_coherence_per_target"],
                                  m["judges"][check]["cross_coherence_per_target"])] for m in ms]
    return [statistics.fmean(col) for col in zip(*per)]


def fmt_gaps(gaps, limit=AGREE):
    """"m0 +0.08, m4 +0.11": the targets where the check differs by more than `limit`; "agrees" if none."""
    out = [f"m{t} {g:+.3f}" for t, g in enumerate(gaps) if abs(g) > limit]
    return ", ".join(out) if out else f"agrees (within {limit})"


def train_minutes(group, key):
    """A run's training minutes: its manifest's wall time if shipped, else its metrics.csv."""
    manifest = group.sources[key][1]
    if manifest and "train_wall_s" in manifest:
        return manifest["train_wall_s"] / 60
    return train_wall_seconds(group.runs[key] / "metrics.csv") / 60


def _model_row(group, prof, name, label, paper_joint, paper_cross):
    ms = [group.metrics[name, k] for k in group.seeds[name]]
    cfg = ms[0]["config"]
    minutes = [train_minutes(group, (name, k)) for k in group.seeds[name]]
    steps = sorted({m["step"] for m in ms})
    row = {"model": label, "profile": prof,
           "joint (ours)": fmt_mean_sd(judged(m, "judges")[0] for m in ms),
           "cross (ours)": fmt_mean_sd(judged(m, "judges")[1] for m in ms),
           "joint (paper)": paper_joint, "cross (paper)": paper_cross,
           "check judges": fmt_gaps(check_gaps(ms)),
           "joint, protocol judges": fmt_mean_sd(judged(m, "classifiers_protocol")[0] for m in ms),
           "cross, protocol judges": fmt_mean_sd(judged(m, "classifiers_protocol")[1] for m in ms),
           "seeds": len(ms),
           "evaluated": "/".join(sorted({m.get("evaluated", "here") for m in ms})),
           "weights": "/".join(sorted({group.sources[name, k][0] for k in group.seeds[name]})),
           "nets": nets(cfg["model"]),
           "steps": "/".join(map(str, steps)),
           "epochs": "/".join(sorted({f"{epochs(m):.1f}" for m in ms})),
           "batch": cfg["train"]["batch_size"],
           "train min per run": f"{statistics.fmean(minutes):.0f}",
           "refit min, this machine": "",
           "trained on": "/".join(sorted({trained_on(group.sources[name, k][1]) for k in group.seeds[name]})),
           "test tuples": ms[0]["n_test"], "joint samples": ms[0]["n_joint"]}
    if name.endswith(REFIT):  # the refit's own time, apart: it is a timing of this machine, not of the run
        row["refit min, this machine"] = f"{statistics.fmean(group.refit_s[name, k] for k in group.seeds[name]) / 60:.1f}"
    return row


def _run_row(group, prof, name, label, k):
    m, (kind, manifest) = group.metrics[name, k], group.sources[name, k]
    row = {"model": label, "profile": prof, "seed": k}
    for judges, jl in JUDGES.items():
        col = m["judges"][judges]["joint"]["prior"]
        lo, hi = wilson_interval(col["n_coherent"], col["n"])
        row |= {f"joint, {jl}": round(col["coherence"], 4), f"{jl} 95% low": round(lo, 4),
                f"{jl} 95% high": round(hi, 4), f"cross, {jl}": round(m["judges"][judges]["cross_coherence"], 4)}
    digit, share = top_share(m["judges"]["judges"]["joint"]["prior"])
    return row | {"coherent (main judges): commonest digit": f"{digit} ({share:.0%})", "steps": m["step"],
                  "evaluated": m.get("evaluated", "here"), "weights": kind, "trained on": trained_on(manifest)}


def coherence_rows(groups):
    """(rows {(config, profile): row}, per-run rows, summary rows: mean and sd per model, profile, judges, metric)."""
    rows, per_run, summary = {}, [], []
    for prof, group in groups.items():
        for name, (label, paper_joint, paper_cross) in LABELS.items():
            if name not in group.seeds:
                continue
            ms = [group.metrics[name, k] for k in group.seeds[name]]
            for judges, jl in JUDGES.items():
                for i, key in enumerate(("joint_coherence", "cross_coherence")):
                    mean, sd = mean_sd(judged(m, judges)[i] for m in ms)
                    summary.append({"model": label, "profile": prof, "judges": jl, "metric": key,
                                    "mean": round(mean, 4), "sd": round(sd, 4), "seeds": len(ms)})
            rows[name, prof] = _model_row(group, prof, name, label, paper_joint, paper_cross)
            per_run += [_run_row(group, prof, name, label, k) for k in group.seeds[name]]
    order = {name: i for i, name in enumerate(ORDER)}  # per profile, the models in the poster's order
    rows = dict(sorted(rows.items(), key=lambda kv: (list(groups).index(kv[0][1]), order[kv[0][0]])))
    return rows, per_run, summary


SOURCES = ("p0", "prior", "aggregate")


def _hole_run(label, prof, k, jl, cols):
    share, lo, hi = (hole_closed(cols["p0"]["n_coherent"], cols["prior"]["n_coherent"], cols["aggregate"]["n_coherent"],
                                 cols["prior"]["n"]) if "p0" in cols else (None, None, None))
    row = {"model": label, "profile": prof, "seed": k, "judges": jl}
    row |= {f"joint, z~{s}": round(cols[s]["coherence"], 4) if s in cols else "" for s in SOURCES}
    row |= {f"z~{s}: 95% interval": "[{:.4f}, {:.4f}]".format(*wilson_interval(cols[s]["n_coherent"], cols[s]["n"]))
            if s in cols else "" for s in SOURCES}
    row |= {"hole closed": "" if share is None else round(share, 3),
            "hole closed 95% low": "" if lo is None else round(lo, 3),
            "hole closed 95% high": "" if hi is None else round(hi, 3)}
    row |= {f"z~{s}: commonest coherent digit": "{} ({:.0%})".format(*top_share(cols[s]))
            if s in cols and cols[s]["n_coherent"] else "" for s in SOURCES}
    row |= {f"z~{s}: modality 0 says 'no digit'": round(cols[s]["modality0_answers"][10] / cols[s]["n"], 3)
            if s in cols and len(cols[s]["modality0_answers"]) > 10 else "" for s in SOURCES}
    return row, (share, lo, hi)


def hole_rows(groups):
    """The prior hole per model, profile and judge set (rows), and per run (with intervals)."""
    rows, per_run = [], []
    for prof, group in groups.items():
        for name in ORDER:
            if name not in group.seeds:
                continue
            label, ms = LABELS[name][0], [group.metrics[name, k] for k in group.seeds[name]]
            for judges, jl in JUDGES.items():
                closed, shares = [], {s: [] for s in SOURCES}
                for k, m in zip(group.seeds[name], ms):
                    cols = m["judges"][judges]["joint"]
                    row, c = _hole_run(label, prof, k, jl, cols)
                    per_run.append(row)
                    closed.append(c)
                    for s in cols:
                        if cols[s]["n_coherent"]:
                            shares[s].append(top_share(cols[s])[1])
                has_p0 = all("p0" in m["judges"][judges]["joint"] for m in ms)
                defined = [c for c in closed if c[0] is not None]
                rows.append({
                    "model": label, "profile": prof, "judges": jl,
                    "joint, z~p0": fmt_mean_sd(judged(m, judges, "p0")[0] for m in ms) if has_p0 else "",
                    "joint, z~prior": fmt_mean_sd(judged(m, judges)[0] for m in ms),
                    "joint, z~aggregate": fmt_mean_sd(judged(m, judges, "aggregate")[0] for m in ms),
                    "hole closed": (fmt_mean_sd((c[0] for c in defined), 2) if len(defined) == len(closed) else
                                    f"no hole ({len(closed) - len(defined)} of {len(closed)} seeds)") if has_p0 else "",
                    "hole closed: seeds' 95% range": f"{min(c[1] for c in defined):.2f} to {max(c[2] for c in defined):.2f}"
                                                     if has_p0 and defined and len(defined) == len(closed) else "",
                    "commonest digit's share, z~p0 / prior / aggregate": " / ".join(
                        f"{statistics.fmean(shares[s]):.2f}" if shares[s] else "-" for s in SOURCES),
                    "seeds": len(ms)})
    return rows, per_run


GENERALIZED_COLUMNS = ["model", "joint (ours)", "cross (ours)", "joint (paper)", "cross (paper)", "check judges",
                       "joint, protocol judges", "cross, protocol judges", "seeds", "steps", "train min per run"]


def generalized_rows(rows, profile):
    """The poster's generalized table: its rows in its order (then the refitted generalized prior, where
    02_models refitted it), `profile`'s numbers; a baseline that was not run says so."""
    out = []
    for name in [*GENERALIZED_TABLE, "polymnist_mmvaeplus_ebm" + REFIT]:
        label, paper_joint, paper_cross = LABELS[name]
        if name in VARIANTS and (name, profile) not in rows:
            continue
        ours = rows.get((name, profile), {"joint (ours)": "not run", "cross (ours)": "not run"})
        out.append({c: ours.get(c, "") for c in GENERALIZED_COLUMNS}
                   | {"model": label, "joint (paper)": paper_joint and f"{paper_joint:.3f}",
                      "cross (paper)": paper_cross and f"{paper_cross:.3f}"})
    return out


def markdown(rows):
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows])


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)


# ---------------------------------------------------------------- what the tables show


def pooled_interval(ms, judges="judges", src="prior"):
    """The 95 % Wilson interval of the joint coherence pooled over the runs `ms` (all their samples)."""
    cols = [m["judges"][judges]["joint"][src] for m in ms]
    return wilson_interval(sum(c["n_coherent"] for c in cols), sum(c["n"] for c in cols))


def pair_finding(group, prof, version, twin, ebm):
    """One sentence on an EBM model against its twin in one profile: the joint ratio against the
    poster's, whether the pooled intervals are apart, and the change in cross coherence."""
    if twin not in group.seeds or ebm not in group.seeds:
        return None
    a, b = ([group.metrics[n, k] for k in group.seeds[n]] for n in (twin, ebm))
    (ja, ca), (jb, cb) = model_means(group, twin), model_means(group, ebm)
    (la, ha), (lb, hb) = pooled_interval(a), pooled_interval(b)
    # apart only where both hold: the binomial intervals (sampling) and every seed (training's spread)
    sa, sb = ([judged(m, "judges")[0] for m in ms] for ms in (a, b))
    apart = "apart" if (lb > ha and min(sb) > max(sa)) or (la > hb and min(sa) > max(sb)) else "not apart"
    ratio = f"{jb / ja:.1f}x" if ja > 0 else "undefined (the twin has none)"
    paper = PAPER[ebm][1] / PAPER[twin][1]
    share = statistics.fmean(epochs(m) for m in a + b) / PAPER_EPOCHS
    return (f"**{version.capitalize()}, profile `{prof}`** ({share:.1%} of the poster's {PAPER_EPOCHS} epochs): "
            f"the EBM prior's joint coherence is {jb:.3f} against its twin's {ja:.3f}, a ratio of {ratio} "
            f"(poster: {paper:.1f}x); the binomial 95 % intervals of the pooled seeds, [{lb:.3f}, {hb:.3f}] and "
            f"[{la:.3f}, {ha:.3f}], and the seeds themselves are {apart}. Cross coherence moves by {cb - ca:+.3f} (poster: "
            f"{PAPER[ebm][2] - PAPER[twin][2]:+.3f}), and stands at {cb / PAPER[ebm][2]:.0%} of the poster's.")


def mean_cross(group, names, judges):
    """Cross coherence under one judge set: mean over each model's seeds, then over the models."""
    return statistics.fmean(model_means(group, n, judges)[1] for n in names)


def findings(rows, groups):
    """"What this shows" for the coherence table, as Markdown bullets computed from its numbers."""
    out = []
    for prof, group in groups.items():
        for version, (twin, ebm) in PAIRS.items():
            line = pair_finding(group, prof, version, twin, ebm)
            if line:
                out.append(line)
    own = {k: r for k, r in rows.items() if k[0] not in VARIANTS}  # a refit repeats its run's cross generations
    disagree = [f"{r['model']} ({r['profile']}: {r['check judges']})" for r in own.values()
                if not r["check judges"].startswith("agrees")]
    out.append(f"The check judges agree with the main ones within {AGREE} on every target of "
               f"{len(own) - len(disagree)} of {len(own)} rows" + (f"; they differ on {'; '.join(disagree)}."
                                                                   if disagree else "."))
    for prof, group in groups.items():
        poster = [n for n in PAPER if n in group.seeds]
        if poster:
            main, protocol = mean_cross(group, poster, "judges"), mean_cross(group, poster, "classifiers_protocol")
            out.append(f"Profile `{prof}`: the poster models' cross coherence ({len(poster)} of them) is "
                       f"{main:.2f} under the main judges and {protocol:.2f} under the paper's protocol judges"
                       + (", which read soft digits as 'no digit' (results/judges/)." if protocol < main - AGREE
                          else "."))
    return "\n".join(f"- {line}" for line in out)


def generalized_findings(groups, profile):
    """"What this shows" for the generalized table: the models' order by joint and by cross coherence
    (main judges, unrounded means over the seeds) against the poster's order."""
    group = groups[profile]
    names = [n for n in GENERALIZED_TABLE if n in group.seeds]
    if len(names) < 2:
        return "- Too few of the table's models were run to rank them."
    lines = []
    for metric, i in (("joint", 0), ("cross", 1)):
        mean = {n: model_means(group, n)[i] for n in names}
        ours = sorted(names, key=lambda n: -mean[n])
        paper = sorted(names, key=lambda n: -LABELS[n][1 + i])
        lines.append(f"By {metric} coherence ours rank {', '.join(LABELS[n][0] for n in ours)}; the poster's "
                     f"{', '.join(LABELS[n][0] for n in paper)}" + (" (the same order)." if ours == paper else "."))
    if order := baseline_order(group):
        lines.append(order)
    return "\n".join(f"- {line}" for line in lines)


def baseline_order(group):
    """The poster's order of the baselines by cross coherence (mmJSD > MoPoE > MVTCAE), each step
    checked on our seeds: the means ± sd, and whether every seed of one lies above every seed of the
    other. The spread that matters is training's: a seed's cross coherence on 10,000 test tuples has a
    sampling error of at most 0.005."""
    names = sorted((n for n in BASELINES if n in group.seeds), key=lambda n: -LABELS[n][2])
    if len(names) < 2:
        return None
    cross = {n: [judged(group.metrics[n, k], "judges")[1] for k in group.seeds[n]] for n in names}
    steps = []
    for a, b in zip(names, names[1:]):
        holds = "holds" if statistics.fmean(cross[a]) > statistics.fmean(cross[b]) else "is reversed"
        apart = min(cross[a]) > max(cross[b]) or min(cross[b]) > max(cross[a])
        steps.append(f"{LABELS[a][0]} > {LABELS[b][0]} {holds} ({fmt_mean_sd(cross[a])} against "
                     f"{fmt_mean_sd(cross[b])}; the seeds {'apart' if apart else 'overlap'})")
    return f"The poster's order of the baselines by cross coherence: {'; '.join(steps)}."


def hole_findings(holes):
    """"What this shows" for the prior hole: each EBM model's share of the hole closed, main judges."""
    lines = []
    for r in holes:
        if r["judges"] != "main" or not r["joint, z~p0"]:
            continue
        where = (f"between z ~ p0 ({r['joint, z~p0']}) and the aggregate posterior ({r['joint, z~aggregate']}); "
                 f"the prior's samples score {r['joint, z~prior']}")
        if r["hole closed"].startswith("no hole"):
            lines.append(f"{r['model']} ({r['profile']}): {r['hole closed']}, no hole of 0.02 or more {where}.")
            continue
        spread = r["hole closed: seeds' 95% range"]
        lines.append(f"{r['model']} ({r['profile']}): the prior closes {r['hole closed']} of the hole {where}"
                     + (f"; the seeds' 95 % intervals span {spread}" if spread else "") + ".")
    return "\n".join(f"- {line}" for line in lines) or "- No EBM model was run."


def conclusion(groups, holes, profile):
    """The notebook's closing "What this shows": per comparison of `profile`, the EBM prior against its
    twin and the poster; the hole closed; and how far the budget is from the poster's, with the
    longest-trained shipped run of each poster model beside it."""
    group, lines = groups[profile], []
    for version, (twin, ebm) in PAIRS.items():
        if twin in group.seeds and ebm in group.seeds:
            (ja, ca), (jb, cb) = model_means(group, twin), model_means(group, ebm)
            hole = next((r["hole closed"] for r in holes if r["judges"] == "main" and r["profile"] == profile
                         and r["model"] == LABELS[ebm][0]), "")
            lines.append(f"{version.capitalize()} version: the EBM prior's joint coherence is "
                         + (f"{jb / ja:.1f}x its twin's" if ja > 0 else "above its twin's zero")
                         + f" (poster: {PAPER[ebm][1] / PAPER[twin][1]:.1f}x) at a cross coherence {cb - ca:+.3f} "
                         f"from it; it closes {hole} of the prior hole. In absolute terms, {jb:.3f} against the "
                         f"poster's {PAPER[ebm][1]:.3f}.")
    share = statistics.fmean(epochs(m) for m in group.metrics.values()) / PAPER_EPOCHS
    lines.append(f"These runs trained {share:.1%} of the poster's {PAPER_EPOCHS} epochs.")
    for name in PAPER:  # the profile that trained this model longest, if not this one: mean over its seeds
        trained = {p: statistics.fmean(epochs(g.metrics[name, k]) for k in g.seeds[name])
                   for p, g in groups.items() if name in g.seeds}
        longest = max(trained, key=trained.get, default=profile)
        if trained.get(longest, 0) > trained.get(profile, 0):
            g = groups[longest]
            joint, cross = model_means(g, name)
            seeds = f"seed {g.seeds[name][0]}" if len(g.seeds[name]) == 1 else f"mean of {len(g.seeds[name])} seeds"
            lines.append(f"{LABELS[name][0]} trained {trained[longest]:.1f} epochs (profile `{longest}`, {seeds}): "
                         f"cross coherence {cross:.3f} (poster {PAPER[name][2]:.3f}), joint {joint:.3f} "
                         f"(poster {PAPER[name][1]:.3f}).")
    return "\n".join(f"- {line}" for line in lines)

# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Results: the poster's PolyMNIST table and figures
#
# This notebook reads only saved runs (`runs/<config>-<profile>/`: checkpoint, `metrics.json`,
# `metrics.csv`), written by `02_models`, so the table and figures can be
# regenerated anywhere without retraining. It writes into `figures/`:
#
# - `table_polymnist.md`: joint and cross coherence, ours (mean ± sd over seeds) beside the
#   poster's, with the profile and training budget that produced ours, and per run the joint
#   coherence with its 95 % binomial interval; the same numbers in `table_polymnist.csv` (mean
#   and sd per model and metric) and `table_polymnist_runs.csv` (per run);
# - `table_polymnist_generalized.md`: the poster's generalized-version table, its five rows
#   (ours, MMVAE+, MoPoE, MVTCAE, mmJSD) beside the poster's numbers;
# - `learning_curves.png`: cross and joint coherence against training steps, every model in one
#   figure (the coherence probes of the trainer, `train.eval_every`);
# - `joint_base.png`, `joint_generalized.png`: prior samples, MMVAE vs the base version and
#   MMVAE+ vs the generalized version (the poster's joint-generation figure);
# - `cross_coherence_matrix.png`: cross coherence per source and target modality, per model;
# - `cross_base.png`, `cross_generalized.png`: every modality generated from one modality (the
#   source the models read best, chosen from the matrix);
# - `langevin_chain_base.png`, `langevin_chain_generalized.png`: samples decoded along the
#   short-run Langevin chain, from $z_0 \sim p_0$ to $z_K \sim p_\alpha$;
# - `energy_landscape_base.png`, `energy_landscape_generalized.png`: the learned energy over the
#   posterior clusters, with Langevin samples.

# %% tags=["parameters"]
profile = "cpu"  # cpu | gpu | paper
polymnist_dir = "../data/polymnist"
runs_dir = "../runs"
figures_dir = "../figures"
seed = 0  # the figures' random draws
n_show = 8  # samples per figure
chain_show = [0, 5, 10, 20, 40, 60]  # Langevin steps to decode (clipped to the run's chain length)

# %%
import csv
import json
from pathlib import Path

import torch

from mmebm import plots
from mmebm.data import PolyMNIST
from mmebm.report import best_source, fmt_mean_sd, learning_curve, mean_sd, median_seed, wilson_interval
from mmebm.runs import INDEX_FILE, index_file
from mmebm.train import load_checkpoint, load_run
from mmebm.weights import train_wall_seconds

# The poster's PolyMNIST numbers (SPEC.md section 6): label, joint, cross coherence.
PAPER = {
    "polymnist_mmvae": ("MMVAE", 0.232, 0.844),
    "polymnist_mmvae_ebm": ("Ours, base (MMVAE + EBM prior)", 0.746, 0.853),
    "polymnist_mmvaeplus": ("MMVAE+", 0.344, 0.869),
    "polymnist_mmvaeplus_ebm": ("Ours, generalized (MMVAE+ + EBM prior)", 0.878, 0.897),
}
# the other baselines of the generalized table: shown when 02_models ran them
BASELINES = {"polymnist_mopoe": ("MoPoE", 0.141, 0.720), "polymnist_mvtcae": ("MVTCAE", 0.003, 0.591),
             "polymnist_mmjsd": ("mmJSD", 0.060, 0.778)}
GENERALIZED_TABLE = ["polymnist_mmvaeplus_ebm", "polymnist_mmvaeplus", *BASELINES]  # the poster's row order
# the runs 02_models trained or installed last, listed in runs_dir (run folders relative to the notebooks)
index_path = Path(runs_dir) / INDEX_FILE
index = json.loads(index_path.read_text()) if index_path.is_file() else {"profile": None, "runs": []}
if index["profile"] != profile:
    raise FileNotFoundError(f"no {profile!r} runs listed in {index_path}: run 02_models with "
                            f"profile={profile!r} first (make reproduce does)")
MODELS = {**PAPER, **{name: v for name, v in BASELINES.items() if any(r["config"] == name for r in index["runs"])}}
runs = {(r["config"], r["seed"]): Path(r["run"]) for r in index["runs"] if r["config"] in MODELS}
seeds = {name: sorted(k for n, k in runs if n == name) for name in MODELS}  # the seeds of each model
missing = [f"{name} (no run)" for name, ks in seeds.items() if not ks]
missing += [str(d) for d in runs.values() if not (d / "metrics.json").is_file()]
if missing:
    raise FileNotFoundError(f"runs missing or not evaluated: {missing}; run 02_models first")
metrics = {key: json.loads((d / "metrics.json").read_text()) for key, d in runs.items()}


def other_profile(path):
    """(runs, seeds, metrics) of another profile's evaluated shipped runs (02_models' compare_profiles)."""
    entries = [r for r in json.loads(path.read_text())["runs"] if r["config"] in MODELS]
    runs_ = {(r["config"], r["seed"]): Path(r["run"]) for r in entries}
    runs_ = {key: d for key, d in runs_.items() if (d / "metrics.json").is_file()}
    seeds_ = {name: sorted(k for n, k in runs_ if n == name) for name in MODELS}
    return runs_, {n: ks for n, ks in seeds_.items() if ks}, {key: json.loads((d / "metrics.json").read_text())
                                                             for key, d in runs_.items()}


# the rows of the table: this profile's runs, then those of the other profiles that 02_models evaluated
groups = {profile: (runs, seeds, metrics)}
for path in sorted(Path(runs_dir).glob(index_file("*"))):
    other = json.loads(path.read_text())["profile"]
    if other != profile:
        groups[other] = other_profile(path)

# %% [markdown]
# ## The table
#
# One row per model: coherence as mean ± sd over the seeds, the poster's beside it, and what
# the numbers cost. "weights" says whether the runs were trained by this `make reproduce`
# or shipped with the repository (then the manifest says where and when they were trained).
# Below this profile's rows come those of the other profiles whose shipped runs `02_models`
# evaluated (`compare_profiles`: the gpu profile's beside the cpu profile's), judged alike.

# %%
def source(d):
    """("shipped", its manifest) or ("trained here", None) for a run folder."""
    manifest = load_checkpoint(d / "checkpoint.pt").get("shipped")
    return ("shipped", manifest) if manifest else ("trained here", None)


def nets(model):
    """The networks and, for the conv nets, their activation (the cpu recipe's lever: README)."""
    if model["net"] != "conv":
        return model["net"]
    leak = model.get("conv_leak", 0.0)
    return f"conv, LeakyReLU {leak:g}" if leak else "conv, ReLU"


def trained_on(manifest):
    return (manifest["machine"].get("gpu") or manifest["machine"]["processor"]) if manifest else "this machine"


rows, per_run, summary = {}, [], []
for prof, (runs_, seeds_, metrics_) in groups.items():
    sources_ = {key: source(d) for key, d in runs_.items()}  # one checkpoint read per run
    if prof == profile:
        sources = sources_
    for name, (label, paper_joint, paper_cross) in MODELS.items():
        if not seeds_.get(name):
            continue
        ms = [metrics_[name, k] for k in seeds_[name]]
        cfg = ms[0]["config"]
        for key in ("joint_coherence", "cross_coherence"):
            mean, sd = mean_sd(m[key] for m in ms)
            summary.append({"model": label, "profile": prof, "metric": key, "mean": round(mean, 4), "sd": round(sd, 4),
                            "seeds": len(ms)})
        kinds = {sources_[name, k][0] for k in seeds_[name]}
        # shipped runs: the manifest's wall time (a run stopped from outside has none in metrics.csv)
        minutes = [(sources_[name, k][1] or {}).get("train_wall_s", train_wall_seconds(runs_[name, k] / "metrics.csv"))
                   / 60 for k in seeds_[name]]
        rows[name, prof] = {
            "model": label,
            "joint (ours)": fmt_mean_sd(m["joint_coherence"] for m in ms),
            "cross (ours)": fmt_mean_sd(m["cross_coherence"] for m in ms),
            "joint, z~p0 (ours)": fmt_mean_sd(m["joint_coherence_p0"] for m in ms) if "joint_coherence_p0" in ms[0] else "",
            "joint (paper)": paper_joint,
            "cross (paper)": paper_cross,
            "seeds": len(seeds_[name]),
            "profile": prof,
            "weights": "/".join(sorted(kinds)),
            "nets": nets(cfg["model"]),
            "steps": "/".join(str(m["step"]) for m in ms) if len({m["step"] for m in ms}) > 1 else str(ms[0]["step"]),
            "batch": cfg["train"]["batch_size"],
            "train min per run": f"{sum(minutes) / len(minutes):.0f}",
            "trained on": "/".join(sorted({trained_on(sources_[name, k][1]) for k in seeds_[name]})),
            "test tuples": ms[0]["n_test"],
            "joint samples": ms[0]["n_joint"],
        }
        for k, m in zip(seeds_[name], ms):
            n = m["n_joint"]
            lo, hi = wilson_interval(round(m["joint_coherence"] * n), n)
            kind, manifest = sources_[name, k]
            coherent = m["joint_coherent_digit_histogram"]
            per_run.append({"model": label, "profile": prof, "seed": k, "joint": round(m["joint_coherence"], 4),
                            "joint 95% low": round(lo, 4), "joint 95% high": round(hi, 4),
                            "coherent: commonest digit": f"{max(range(10), key=coherent.__getitem__)} "
                                                         f"({max(coherent) / max(sum(coherent), 1):.0%})",
                            "cross": round(m["cross_coherence"], 4), "steps": m["step"], "weights": kind,
                            "trained on": trained_on(manifest)})


def markdown(rows):
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows])


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)


Path(figures_dir).mkdir(parents=True, exist_ok=True)
write_csv(Path(figures_dir) / "table_polymnist.csv", summary)  # numbers: mean and sd per model and metric
write_csv(Path(figures_dir) / "table_polymnist_runs.csv", per_run)
table = markdown(list(rows.values()))
others_note = "".join(f", then the shipped runs of profile `{p}`" for p in groups if p != profile)
n_joint = metrics[next(iter(runs))]["n_joint"]
(Path(figures_dir) / "table_polymnist.md").write_text(
    f"PolyMNIST coherence, profile `{profile}`{others_note} (ours: mean ± sd over the seeds of each model) "
    f"beside the poster's numbers.\n\n{table}\n\nPer run: joint coherence of {n_joint} prior samples with its "
    f"95 % Wilson interval, and the commonest digit among the coherent samples with its share (near 100 %: "
    f"the joint coherence counts one digit, a mode of the prior or a blur that every classifier reads "
    f"alike).\n\n{markdown(per_run)}\n")
print(table)
print()
print(markdown(per_run))

# %% [markdown]
# The poster's second table compares the generalized version with four baselines on
# PolyMNIST. The same numbers as above, in its rows and order; a baseline that `02_models` did
# not run is marked so.

# %%
columns = ["model", "joint (ours)", "cross (ours)", "joint (paper)", "cross (paper)", "seeds", "steps",
           "train min per run"]
generalized = []
for name in GENERALIZED_TABLE:
    label, paper_joint, paper_cross = {**PAPER, **BASELINES}[name]
    ours = rows.get((name, profile), {"joint (ours)": "not run", "cross (ours)": "not run"})
    generalized.append({c: ours.get(c, "") for c in columns}
                       | {"model": label, "joint (paper)": f"{paper_joint:.3f}", "cross (paper)": f"{paper_cross:.3f}"})
table_generalized = markdown(generalized)
(Path(figures_dir) / "table_polymnist_generalized.md").write_text(
    f"The poster's generalized-version table on PolyMNIST, profile `{profile}` (ours: mean ± sd over the "
    f"seeds; every model trained by mmebm's trainer on the same data, judged by the same classifiers).\n\n"
    f"{table_generalized}\n")
print(table_generalized)

# %% [markdown]
# ## Learning curves
#
# Coherence measured while training (cross coherence on a fixed subset of test tuples, joint
# coherence of prior samples; `train.eval_every`), one colour per model, one line per seed.
# This is the view that tells whether a run has learned at all: at chance, cross coherence is
# about 0.1.

# %%
curves = {MODELS[name][0]: [learning_curve(runs[name, k]) for k in seeds[name]] for name in MODELS}
# where shipped runs were continued from earlier weights (`--warm-start`, with a fresh Adam): the
# curves are not joined across that step, since the probes after it may be scored by other judges
breaks = {h["steps"]: "warm start" for _, manifest in sources.values() if manifest for h in manifest.get("history", [])}
if any(c for runs_ in curves.values() for c in runs_):
    fig = plots.learning_curves_figure(curves, chance={"cross_coherence": 0.1}, breaks=breaks)
    plots.save(fig, f"{figures_dir}/learning_curves.png")
else:
    print("these runs were trained without coherence probes (train.eval_every=0): no learning curves")

# %% [markdown]
# The classifiers that score the coherences, and the digits that the joint samples were
# classified as by modality 0 (a prior stuck on one digit would be trivially coherent):

# %%
for (name, k), m in metrics.items():
    print(f"{name:<25} seed {k}: digits of joint samples: {m['joint_digit_histogram']}")
print("classifier accuracy:", [round(a, 4) for a in m["classifier_accuracy"]])

# %% [markdown]
# ## Joint generation
#
# Rows are independent draws $z \sim p(z)$ (Langevin for the EBM prior; $w \sim p_0(w)$ for
# MMVAE+), columns the five modalities. Coherent samples write one digit across a row.

# %%
# the figures show one run per model: its median seed by cross coherence (not the best, nor the first)
shown = {name: median_seed({k: metrics[name, k]["cross_coherence"] for k in seeds[name]}) for name in MODELS}
models = {name: load_run(runs[name, shown[name]])[0] for name in MODELS}
print("seed shown per model:", shown)
modality_labels = [f"m{m}" for m in range(5)]
for version, (base, ebm) in {"base": ("polymnist_mmvae", "polymnist_mmvae_ebm"),
                             "generalized": ("polymnist_mmvaeplus", "polymnist_mmvaeplus_ebm")}.items():
    fig = plots.joint_figure({PAPER[base][0]: models[base], PAPER[ebm][0]: models[ebm]}, n_show, seed)
    plots.save(fig, f"{figures_dir}/joint_{version}.png")

# %% [markdown]
# ## Which modality informs which
#
# Cross coherence is the mean of a matrix: entry (source $m$, target $n$) is the share of test
# tuples whose modality $n$, generated from modality $m$ alone, the classifier of $n$ reads as
# the true digit (the diagonal is self-reconstruction, left out of the mean). Mean over seeds;
# chance is about 0.1. A row at chance is a modality whose encoder carries no digit; a column at
# chance, one whose decoder draws none (or whose classifier cannot read what it draws).

# %%
matrices = {MODELS[name][0]: torch.tensor([metrics[name, k]["cross_coherence_matrix"] for k in seeds[name]]).mean(0)
            for name in MODELS}
plots.save(plots.coherence_matrices(matrices), f"{figures_dir}/cross_coherence_matrix.png")
src = best_source(m.tolist() for m in matrices.values())  # the figures below generate from it
print(f"cross generation figures: from m{src}, the source the models generate from most coherently")

# %% [markdown]
# ## Cross generation
#
# Left, test tuples; then each model's generation of all five modalities from one modality
# alone (one posterior sample of $z$, $w$ from the unit prior): the source modality from which
# the models generate most coherently on average (the matrix above), named in the title.

# %%
test = PolyMNIST.load(polymnist_dir, "test")
x, y = test[torch.arange(0, len(test), len(test) // n_show)[:n_show]]
for version, names in {"base": ("polymnist_mmvae", "polymnist_mmvae_ebm"),
                       "generalized": ("polymnist_mmvaeplus", "polymnist_mmvaeplus_ebm")}.items():
    fig = plots.cross_figure({PAPER[n][0]: models[n] for n in names}, x, src=src, seed=seed)
    plots.save(fig, f"{figures_dir}/cross_{version}.png")

# %% [markdown]
# ## Along the Langevin chain
#
# $z_0 \sim p_0 = \mathcal N(0, I)$, then $z_{k+1} = z_k - \frac{s^2}{2}\nabla_z[f_\alpha(z_k) -
# \log p_0(z_k)] + s\,\epsilon_k$. Each panel decodes the chains at one step $k$ (rows: chains,
# columns: modalities, the same $w$ throughout); the last is the sample from $p_\alpha$.

# %%
for version, name in {"base": "polymnist_mmvae_ebm", "generalized": "polymnist_mmvaeplus_ebm"}.items():
    model = models[name]
    torch.manual_seed(seed)
    chain = model.prior.sample(4, return_chain=True)  # [K + 1, 4, dim z]
    steps = sorted({min(k, len(chain) - 1) for k in chain_show})
    w = model.p0_w.sample((4, 5)) if model.w_dim else None
    panels = {f"step {k}": model.decode_z(chain[k], w) for k in steps}
    fig = plots.side_by_side(panels, col_labels=modality_labels, suptitle=f"{PAPER[name][0]}: z_0 ~ p0 to z_K ~ p_alpha")
    plots.save(fig, f"{figures_dir}/langevin_chain_{version}.png")

# %% [markdown]
# ## Where the EBM prior puts its mass
#
# The poster's argument is that a unimodal prior leaves "holes": regions of high prior density
# between the clusters of the aggregate posterior, whose samples decode to no digit or to
# different digits in different modalities. The tilting $\exp[-f_\alpha(z)]$ should move the
# prior's mass onto the clusters. Below, the unimodal posterior means of 200 test tuples (every
# modality, coloured by digit) on their first two principal axes, over the learned tilting
# $f_\alpha$ and the full energy $f_\alpha(z) - \log p_0(z)$ on that plane, with Langevin samples
# $z \sim p_\alpha$ in black.

# %%
x_e, y_e = test[torch.arange(0, len(test), max(1, len(test) // 200))[:200]]
for version, name in {"base": "polymnist_mmvae_ebm", "generalized": "polymnist_mmvaeplus_ebm"}.items():
    fig = plots.energy_landscape_figure(models[name], x_e, y_e, title=PAPER[name][0])
    plots.save(fig, f"{figures_dir}/energy_landscape_{version}.png")

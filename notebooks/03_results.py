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
# This notebook reads only saved runs (`runs/<config>-<profile>-s<seed>/`: checkpoint,
# `metrics.json`, `metrics.csv`), written by `02_models`, so the tables and figures can be
# regenerated anywhere without retraining. The tables are built by `mmebm.tables`, the figures by
# `mmebm.plots`; each section says how to read what it shows, and ends on what it shows,
# computed from the numbers. It writes into `figures/`:
#
# - `table_polymnist.md` (and `.csv`, `_runs.csv`): joint and cross coherence per model, mean ±
#   sd over seeds, under the main judges, beside the poster's; where the check judges disagree;
#   the paper's protocol judges; what each row cost;
# - `table_prior_hole.md` (and `_runs.csv`): joint coherence of z ~ p0, of z from the prior and of
#   z from the aggregate posterior, and the share of that hole the EBM prior closes;
# - `table_polymnist_generalized.md`: the poster's generalized table, its five rows;
# - `learning_curves.png`, `table_untrained.md`: coherence while training, and at step 0;
# - `joint_base.png`, `joint_generalized.png`: prior samples with the judges' answers per row;
# - `cross_coherence_matrix.png`, `cross_base.png`, `cross_generalized.png`: which modality
#   informs which, and cross generations;
# - `judged_m0.png` ... `judged_m4.png`: 100 cross generations per target with every judge set's
#   answer under each image, for anyone to check the judges by eye;
# - `langevin_chain_*.png`, `energy_landscape_*.png`: the EBM prior's chains and its energy over
#   the posterior clusters.
#
# **Took** 78 s on the 2-core CPU machine, fresh clone, 2026-12-07 (`results/timings.md`).

# %% tags=["parameters"]
profile = "cpu"  # cpu | gpu | paper
polymnist_dir = "../data/polymnist"
runs_dir = "../runs"
figures_dir = "../figures"
seed = 0  # the figures' random draws
n_show = 8  # samples per figure
chain_show = [0, 5, 10, 20, 40, 60]  # Langevin steps to decode (clipped to the run's chain length)
n_untrained = 1000  # joint samples of each untrained model (the learning curves' step 0)
per_digit = 10  # judged cross generations per digit and target (judged_m*.png)

# %%
from pathlib import Path

import torch
from IPython.display import Markdown, display

from mmebm import plots, tables
from mmebm.classifiers import Classifiers
from mmebm.coherence import joint_coherence, judged_cross_generations
from mmebm.config import from_dict
from mmebm.data import PolyMNIST
from mmebm.models import build_model
from mmebm.report import best_source, fmt_mean_sd, learning_curve, median_seed, source_rows
from mmebm.train import load_run

groups = tables.load_profiles(runs_dir, profile)  # the long profile's runs, this profile's, then the others'
runs, seeds, metrics = groups[profile].runs, groups[profile].seeds, groups[profile].metrics
label = {name: tables.LABELS[name][0] for name in seeds}
figures = Path(figures_dir)
figures.mkdir(parents=True, exist_ok=True)
print({prof: {name: ks for name, ks in g.seeds.items()} for prof, g in groups.items()})

# %% [markdown]
# ## The table
#
# One row per model and profile: coherence as mean ± sd over the seeds, the poster's beside it.
# "joint (ours)" and "cross (ours)" are the main judges' (trained with the known-answer shifts:
# `02_models`); "check judges" names the targets where the independent check reads the same
# cross generations more than 0.05 otherwise; then the paper's protocol judges, which call soft
# digits "no digit". Beside this profile's rows come the shipped runs of the other profiles
# (`02_models`' `compare_profiles`), judged alike; the `long` profile's, the longest-trained, come
# first. The refitted EBM priors (`mmebm.refit`) have rows of their own; "train min per run" is
# what the shipped manifests recorded, the refit's minutes are this machine's.

# %%
rows, per_run, summary = tables.coherence_rows(groups)
n_joint = metrics[next(iter(runs))]["n_joint"]
profiles_note = "profiles " + ", ".join(f"`{p}`" + ("" if p == profile else " (shipped runs)") for p in groups)
tables.write_csv(figures / "table_polymnist.csv", summary)
tables.write_csv(figures / "table_polymnist_runs.csv", per_run)
table = tables.markdown(list(rows.values()))
(figures / "table_polymnist.md").write_text(
    f"PolyMNIST coherence, {profiles_note} (ours: mean ± sd over the seeds of each model) beside "
    f"the poster's numbers. Ours are judged by the main judges (trained with the known-answer shifts); 'check "
    f"judges' names the targets where their independent check differs by more than {tables.AGREE}; then the "
    f"paper's protocol judges (clean training images, a 'no digit' answer).\n\n{table}\n\nPer run: joint "
    f"coherence of {n_joint} prior samples with its 95 % Wilson interval under each judge set, and the commonest "
    f"digit among the samples the main judges call coherent, with its share (near 100 %: a mode of the prior, or "
    f"a blur that every judge reads alike).\n\n{tables.markdown(per_run)}\n")
display(Markdown(table))

# %% [markdown]
# ### What this shows

# %%
display(Markdown(tables.findings(rows, groups)))

# %% [markdown]
# ## The prior hole
#
# For every run, joint coherence of three sources of $z$, scored alike: $z \sim p_0$ (the EBM's
# untilted base), $z$ from the model's prior ($p_\alpha$, by its Langevin chains, for the EBM
# models), and $z$ from the aggregate posterior $q(z) = \mathbb E_X \frac1M \sum_m q(z \mid x_m)$,
# a random training tuple through a random expert: what a perfect prior would generate with
# these decoders. The hole is $q - p_0$; a prior closes the share
# $(p_\alpha - p_0) / (q - p_0)$ of it, given with a 95 % interval (each coherent count redrawn
# from its binomial) and only where the hole is at least 0.02. Beside each column, the commonest
# digit's share among its coherent samples: a prior that "closes" the hole by collapsing onto
# one digit shows there. The main judges' rows first, then the check's and the protocol's.

# %%
holes, hole_runs = tables.hole_rows(groups)
holes = sorted(holes, key=lambda r: list(tables.JUDGES.values()).index(r["judges"]))
tables.write_csv(figures / "table_prior_hole_runs.csv", hole_runs)
hole_table = tables.markdown(holes)
(figures / "table_prior_hole.md").write_text(
    f"The prior hole, {profiles_note}: joint coherence of {n_joint} samples with z ~ p0 (the EBM's "
    f"untilted base), z ~ the model's prior (p_alpha for the EBM models) and z from the aggregate posterior (what a "
    f"perfect prior would generate), mean ± sd over the seeds. Hole closed: (prior - p0) / (aggregate - p0), mean ± "
    f"sd over the seeds, and the range of the seeds' 95 % intervals (parametric bootstrap); 'no hole' where "
    f"aggregate - p0 < 0.02. Commonest digit's share: among the coherent samples of each column, mean over the "
    f"seeds. Per run, with intervals and how often modality 0's judge says 'no digit': "
    f"`table_prior_hole_runs.csv`.\n\n{hole_table}\n")
display(Markdown(hole_table))

# %% [markdown]
# ### What this shows

# %%
display(Markdown(tables.hole_findings(holes)))

# %% [markdown]
# ## The generalized table
#
# The poster's second table sets the generalized version against four baselines. The same
# numbers as above, in its rows and order (then the refitted generalized prior, where `02_models`
# refitted it); a baseline that `02_models` did not run says "not run".

# %%
generalized = tables.generalized_rows(rows, profile)
table_generalized = tables.markdown(generalized)
(figures / "table_polymnist_generalized.md").write_text(
    f"The poster's generalized-version table on PolyMNIST, profile `{profile}` (ours: mean ± sd over the seeds; "
    f"every model trained by mmebm's trainer on the same data and judged by the same judges: the main ones, "
    f"then the paper's protocol).\n\n{table_generalized}\n")
display(Markdown(table_generalized))
display(Markdown("**What this shows**\n\n" + tables.generalized_findings(groups, profile)))

# %% [markdown]
# ## Learning curves
#
# Coherence measured while training (cross coherence on a fixed subset of test tuples, joint
# coherence of prior samples; `train.eval_every`), one colour per model, one line style per seed.
# It tells whether a run has learned at all: at chance, cross coherence is about 0.1. The probes
# were scored by the judges each run's trainer was given (`train.eval_classifiers`): the blur-robust
# set (`weights/classifiers`) for most runs, the main judges for those trained after they landed;
# the figure's title names which. The joint panel starts after step 0: an untrained model decodes
# every $z$ to nearly the same flat image, which judges without a "no digit" answer read as one digit alike; the table
# below the figure measures that on untrained models (seed 0, `n_untrained` samples).

# %%
TRAINED = [name for name in seeds if name not in tables.VARIANTS]  # a refitted run's curves are its source's


def probe_judges(group, names):
    """Which set scored the probes: each run's eval_classifiers (a folder named judges: the main set)."""
    by_main = [label[n] for n in names if Path(group.metrics[n, group.seeds[n][0]]["config"]["train"]
                                               .get("eval_classifiers") or "").name == "judges"]
    if len(by_main) == len(names):
        return "the main judges (weights/judges)"
    return "the blur-robust judges (weights/classifiers)" + (
        f"; {', '.join(by_main)}: the main judges (weights/judges)" if by_main else "")


def drop_step0_joint(curves):
    """Take the joint probes at step 0 out of the curves (see above); return them per model."""
    at_step0 = {}
    for model_label, model_curves in curves.items():
        for c in model_curves.values():
            if "joint_coherence" in c:
                steps, values = c["joint_coherence"]
                at_step0.setdefault(model_label, []).extend(v for st, v in zip(steps, values) if st == 0)
                c["joint_coherence"] = ([st for st in steps if st > 0], [v for st, v in zip(steps, values) if st > 0])
    return at_step0


curves = {label[name]: {k: learning_curve(runs[name, k]) for k in seeds[name]} for name in TRAINED}
at_step0 = drop_step0_joint(curves)
# where shipped runs were continued from earlier weights (`--warm-start`, with a fresh Adam): the
# curves are not joined across that step, since the probes after it may be scored by other judges
sources = groups[profile].sources
breaks = {h["steps"]: "warm start" for _, manifest in sources.values() if manifest for h in manifest.get("history", [])}
if any(c for model_curves in curves.values() for c in model_curves.values()):
    fig = plots.learning_curves_figure(curves, chance={"cross_coherence": 0.1}, breaks=breaks,
                                       title=f"profile {profile}: coherence probes while training, scored by "
                                             + probe_judges(groups[profile], TRAINED))
    plots.save(fig, figures / "learning_curves.png")
else:
    print("these runs were trained without coherence probes (train.eval_every=0): no learning curves")

# %% tags=["nbval-ignore-output"]
judged_by = metrics[next(iter(runs))]["judges"]  # each set's folder, as 02_models evaluated with it
judge_sets = {label: Classifiers.load(judged_by[j]["folder"]) for j, label in tables.JUDGES.items()}
untrained = []
for name in TRAINED:
    torch.manual_seed(0)
    samples = build_model(from_dict(metrics[name, seeds[name][0]]["config"]).model).eval().sample(n_untrained)
    untrained.append({"model": label[name],
                      "joint at step 0, in the curves": fmt_mean_sd(at_step0.get(label[name], [float("nan")])),
                      **{f"untrained, {jl} judges": f"{joint_coherence(samples, j):.3f}" for jl, j in judge_sets.items()}})
table_untrained = tables.markdown(untrained)
(figures / "table_untrained.md").write_text(
    f"Joint coherence at step 0: the learning curves' first probe ({probe_judges(groups[profile], TRAINED)}; "
    f"mean ± sd over the seeds), "
    f"and {n_untrained} joint samples of each model untrained (seed 0) under every judge set.\n\n{table_untrained}\n")
display(Markdown(table_untrained))

# %% [markdown]
# ## Joint generation
#
# Rows are independent draws $z \sim p(z)$ (Langevin for the EBM prior; $w \sim p_0(w)$ for
# MMVAE+), columns the five modalities, and right of each row the main judges' digit per
# modality: green where all five agree on one digit, a coherent sample. Each figure shows one
# run per model, its median seed by cross coherence (not the best, nor the first).

# %%
shown = {name: median_seed({k: metrics[name, k]["cross_coherence"] for k in seeds[name]}) for name in TRAINED}
models = {name: load_run(runs[name, shown[name]])[0] for name in TRAINED}
print("seed shown per model:", shown)


def budget(name, group=groups[profile], k=None):
    """The run shown for `name`: its seed (default: the median seed picked above), steps and epochs."""
    k = shown[name] if k is None else k
    m = group.metrics[name, k]
    return f"seed {k}, {m['step']:,} steps ({tables.epochs(m):.1f} epochs)"


for version, pair in tables.PAIRS.items():
    fig = plots.joint_figure({f"{label[n]}; {budget(n)}": models[n] for n in pair}, n_show, seed,
                             judges=judge_sets["main"], suptitle=f"profile {profile}; judges: main (weights/judges)")
    plots.save(fig, figures / f"joint_{version}.png")

# %% [markdown]
# ## Which modality informs which
#
# Cross coherence is the mean of a matrix: entry (source $m$, target $n$) is the share of test
# tuples whose modality $n$, generated from modality $m$ alone, the main judge of $n$ reads as
# the true digit (the diagonal is self-reconstruction, left out of the mean). Mean over seeds;
# chance is about 0.1. A row at chance is a modality whose encoder carries no digit; a column at
# chance, one whose decoder draws none (or whose judge cannot read what it draws).

# %%
matrices = {label[name]: torch.tensor([metrics[name, k]["cross_coherence_matrix"] for k in seeds[name]]).mean(0)
            for name in TRAINED}
fig = plots.coherence_matrices(matrices, suptitle=f"profile {profile}, mean over seeds; judges: main (weights/judges)")
plots.save(fig, figures / "cross_coherence_matrix.png")
src = best_source(mat.tolist() for mat in matrices.values())  # the figures below generate from it
at_chance = {name: [s for s, v in enumerate(source_rows(mat.tolist())) if v < 0.15] for name, mat in matrices.items()}
display(Markdown("**What this shows**\n\n" + "\n".join(
    f"- {name}: " + (f"sources {', '.join(f'm{s}' for s in rows_)} generate at chance (below 0.15)" if rows_
                     else "every source carries the digit (each row above 0.15)") for name, rows_ in at_chance.items())
    + f"\n- The cross generations below start from m{src}, the source the models read best."))

# %% [markdown]
# ## Cross generation
#
# Left, test tuples; then each model's generation of all five modalities from one modality
# alone (one posterior sample of $z$, $w$ from the unit prior): the source modality from which
# the models generate most coherently on average (the matrix above), named in the title.

# %%
test = PolyMNIST.load(polymnist_dir, "test")
x, y = test[torch.arange(0, len(test), len(test) // n_show)[:n_show]]
for version, pair in tables.PAIRS.items():
    fig = plots.cross_figure({f"{label[n]}; {budget(n)}": models[n] for n in pair}, x, src=src, seed=seed,
                             suptitle=f"profile {profile}")
    plots.save(fig, figures / f"cross_{version}.png")

# %% [markdown]
# ## The judges, by eye
#
# Every coherence number rests on the judges. For MMVAE's shown run, `per_digit` test tuples of
# each digit, every target modality generated from a random other one; under each image the
# answer of each judge set (green: the source's digit; red: another; "-": no digit). Anyone can
# count these grids against the judges (`results/judges/` holds our count).

# %%
judged_model = "polymnist_mmvae"
images, answers = judged_cross_generations(models[judged_model], test, judge_sets, per_digit=per_digit, seed=seed)
for t in range(len(images)):
    fig = plots.judged_grid(images[t], {jl: a[t] for jl, a in answers.items()}, [str(d) for d in range(10)],
                            title=f"m{t} generated from another modality: {label[judged_model]}, profile {profile}, "
                                  f"{budget(judged_model)}")
    plots.save(fig, figures / f"judged_m{t}.png")
truth = torch.arange(10)[:, None]
display(Markdown("**What this shows**: share of these generations each judge set reads as the source's digit\n\n"
                 + tables.markdown([{"judges": jl, **{f"m{t}": f"{(a[t] == truth).double().mean():.2f}"
                                                      for t in range(len(a))}} for jl, a in answers.items()])))

# %% [markdown]
# ## Along the Langevin chain
#
# $z_0 \sim p_0 = \mathcal N(0, I)$, then $z_{k+1} = z_k - \frac{s^2}{2}\nabla_z[f_\alpha(z_k) -
# \log p_0(z_k)] + s\,\epsilon_k$. One panel per chain: its rows decode the chain at the steps
# shown (the same $w$ throughout), its columns are the modalities; the last row is the sample
# from $p_\alpha$.

# %%
def langevin_chain(model, model_label, context):
    torch.manual_seed(seed)
    chain = model.prior.sample(4, return_chain=True)  # [K + 1, 4, dim z]
    chain_steps = sorted({min(k, len(chain) - 1) for k in chain_show})
    w = model.p0_w.sample((4, 5)) if model.w_dim else None
    decoded = torch.stack([model.decode_z(chain[k], w) for k in chain_steps], 1)  # [4 chains, steps, M, 3, H, W]
    return plots.chain_figure(decoded, chain_steps, suptitle=f"{model_label}: z_0 ~ p0 to z_K ~ p_alpha; {context}")


for version, (_, name) in tables.PAIRS.items():
    fig = langevin_chain(models[name], label[name], f"profile {profile}, {budget(name)}")
    plots.save(fig, figures / f"langevin_chain_{version}.png")

# %% [markdown]
# ## The longest runs
#
# The same figures for the `long` profile's shipped runs (the cpu recipe for 20 epochs, seed 0):
# the learning curves of every such run, and for each of the poster's pairs whose twin and EBM
# model have both finished, the joint generations, the cross generations from the same source, and
# the Langevin chain. The README shows these where they exist.

# %%
long = groups.get("long") if profile != "long" else None
long_names = [name for name in TRAINED if long and name in long.seeds]
if long_names:
    long_curves = {label[n]: {k: learning_curve(long.runs[n, k]) for k in long.seeds[n]} for n in long_names}
    drop_step0_joint(long_curves)
    fig = plots.learning_curves_figure(long_curves, chance={"cross_coherence": 0.1},
                                       title="profile long: coherence probes while training, scored by "
                                             + probe_judges(long, long_names))
    plots.save(fig, figures / "learning_curves_long.png")
for version, pair in tables.PAIRS.items():
    if not all(n in long_names for n in pair):
        continue
    shown_long = {n: budget(n, long, long.seeds[n][0]) for n in pair}  # seed 0: the one long run so far
    long_models = {n: load_run(long.runs[n, long.seeds[n][0]])[0] for n in pair}
    titled = {f"{label[n]}; {shown_long[n]}": long_models[n] for n in pair}
    fig = plots.joint_figure(titled, n_show, seed, judges=judge_sets["main"],
                             suptitle="profile long; judges: main (weights/judges)")
    plots.save(fig, figures / f"joint_{version}_long.png")
    fig = plots.cross_figure(titled, x, src=src, seed=seed, suptitle="profile long")
    plots.save(fig, figures / f"cross_{version}_long.png")
    ebm = pair[1]
    fig = langevin_chain(long_models[ebm], label[ebm], f"profile long, {shown_long[ebm]}")
    plots.save(fig, figures / f"langevin_chain_{version}_long.png")

# %% [markdown]
# ## Where the EBM prior puts its mass
#
# The poster's argument is that a unimodal prior leaves "holes": regions of high prior density
# between the clusters of the aggregate posterior, whose samples decode to no digit or to
# different digits in different modalities. The tilting $\exp[-f_\alpha(z)]$ should move the
# prior's mass onto the clusters. Below, the unimodal posterior means of 200 test tuples (every
# modality, coloured by digit) on their first two principal axes, over the learned tilting
# $f_\alpha$ and the full energy $f_\alpha(z) - \log p_0(z)$ on that plane, with Langevin samples
# $z \sim p_\alpha$ in black. The table after the figures measures it in the full latent space:
# how far samples of $p_0$ and of $p_\alpha$ land from the nearest posterior mean.

# %%
x_e, y_e = test[torch.arange(0, len(test), max(1, len(test) // 200))[:200]]
distance = []
for version, (_, name) in tables.PAIRS.items():
    model = models[name]
    fig = plots.energy_landscape_figure(model, x_e, y_e, title=f"{label[name]}; profile {profile}, {budget(name)}")
    plots.save(fig, figures / f"energy_landscape_{version}.png")
    torch.manual_seed(seed)
    draws = {"p0": model.prior.p0.sample(1000), "p_alpha": model.prior.sample(1000)}
    with torch.no_grad():
        means = model.encode(x_e).z.loc.flatten(0, 1)
        near = {src: torch.cdist(z.detach(), means).min(1).values.mean().item() for src, z in draws.items()}
    distance.append({"model": label[name], "z ~ p0": f"{near['p0']:.2f}", "z ~ p_alpha": f"{near['p_alpha']:.2f}",
                     "closer": f"{1 - near['p_alpha'] / near['p0']:+.0%}"})
display(Markdown("Mean distance from a prior sample to the nearest of the posterior means:\n\n"
                 + tables.markdown(distance)))

# %% [markdown]
# ## What this shows
#
# The poster's claim, measured here: the EBM prior against its twin, how much of the prior hole
# it closes, how far from the poster's numbers the budget leaves it, and where the longest
# shipped run of each model stands (from the tables above).

# %%
closer = " and ".join(f"{d['closer'].lstrip('+')} ({d['model']})" for d in distance)
display(Markdown(tables.conclusion(groups, holes, profile) + f"\n- The EBM priors' samples land {closer} closer "
                 "to the nearest posterior mean than p0's, in the full latent space."))

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
# # 02 · The PolyMNIST models: base and generalized versions against their baselines
#
# Four models, two comparisons: MMVAE against MMVAE with the EBM prior (the paper's base
# version), and MMVAE+ against MMVAE+ with the EBM prior (the generalized version); and three
# more baselines of the poster's generalized table, MoPoE, MVTCAE and mmJSD, trained by the same
# trainer on the same data and judged by the same classifiers. One set of code cells trains,
# evaluates and shows them all (`experiments` picks which).
#
# ## Base version
#
# The base version of the paper keeps MMVAE (Shi et al., NeurIPS 2019) as it is (one shared
# latent $z$, a mixture-of-experts posterior $q(z\mid X) = \frac1M \sum_m q(z\mid x_m)$, and the
# MoE bound) and only replaces its unimodal prior by the energy-based prior
#
# $$p_\alpha(z) = \frac{1}{Z(\alpha)} \exp[-f_\alpha(z)]\, p_0(z), \qquad p_0 = \mathcal N(0, I).$$
#
# The encoders and decoders are trained on the bound with $\log p(z)$ replaced by
# $-f_\alpha(z) + \log p_0(z)$ ($\log Z$ does not depend on them), and $f_\alpha$ on
# $\overline{f_\alpha(z_{q})} - \overline{f_\alpha(z_{\text{Langevin}})}$ (see `01_objectives`).
#
# What the poster does not say, and where our defaults come from (all are config values):
#
# | choice | value | source |
# |---|---|---|
# | Langevin | 60 steps, step size 0.4, noise on, fresh chains from $p_0$ | Pang et al. 2020 |
# | $f_\alpha$ | MLP $32 \to 200 \to 200 \to 1$, LeakyReLU(0.2) | Pang et al. 2020 |
# | EBM optimizer | Adam, lr 2e-5, betas (0.5, 0.999) | Pang et al. 2020 |
# | baseline prior, posteriors, likelihood | Laplace; Laplace likelihood, scale 0.75 | MMVAE+ PolyMNIST code |
# | VAE optimizer | Adam, lr 1e-3, amsgrad, batch 128 | MMVAE+ PolyMNIST code |
# | networks | `resnet` (MMVAE+) in the `paper` profile, the lighter `conv` (MoPoE) in `cpu` | the paper does not say |
#
# ## Generalized version
#
# MMVAE+ (Palumbo et al., ICLR 2023) splits each modality's latent into the shared $z$ and a
# modality-specific $w_m$. The generalized version of the paper puts the energy-based prior on
# the shared part only and keeps a fixed prior on the rest:
#
# $$p(X, z, W) = \prod_m p_\beta(x_m \mid z, w_m)\; p_\alpha(z)\; p_0(W),
# \qquad p_\alpha(z) = \frac{1}{Z(\alpha)} \exp[-f_\alpha(z)]\, p_0(z).$$
#
# Objective for expert $r$, with $(w_r, z_r) \sim q(\cdot \mid x_r)$ (MMVAE+, with $\log p(z)$
# replaced by the tilted prior):
#
# $$\sum_d \log p(x_d \mid z_r, \tilde w_d) + \beta\big(-f_\alpha(z_r) + \log p_0(z_r) + \log p_0(w_r)
#   - \log q_{\text{mix}}(z_r \mid X) - \log q(w_r \mid x_r)\big),$$
#
# where $\tilde w_d = w_r$ for self-reconstruction ($d = r$) and is drawn from a learnable
# auxiliary prior of modality $d$ for cross-reconstruction (the `cpu` and `long` profiles: from
# $p_0(w)$, `model.aux_w: unit`, for the reason `01_objectives` gives); at test time cross generation draws
# $w$ from the unit prior. Generation: $z$ by Langevin dynamics on $p_\alpha$, $w \sim p_0(w)$.
#
# Defaults where the poster is silent (all are config values):
#
# | choice | value | source |
# |---|---|---|
# | latents | $z$ 32, $w$ 32; Laplace posteriors, priors $p_0(w)$ and baseline $p(z)$ | MMVAE+ PolyMNIST code |
# | objective | $\beta = 2.5$, $K = 1$; Laplace likelihood, scale 0.75 | MMVAE+ PolyMNIST code |
# | VAE optimizer | Adam, lr 1e-3, amsgrad, batch 128 | MMVAE+ PolyMNIST code |
# | EBM base $p_0(z)$ | $\mathcal N(0, I)$ | poster: "tilting of a Gaussian" |
# | Langevin, $f_\alpha$, EBM optimizer | as for the base version | Pang et al. 2020 |
# | networks | `resnet` (MMVAE+) in `paper`; in `cpu` the lighter `conv` (MoPoE's), with MMVAE+'s LeakyReLU(0.2) for MoPoE's ReLU | MMVAE+ / our CPU budget and dead ReLUs (`results/cpu_recipe/`) |
#
# ## The other baselines of the generalized table
#
# Three more ways to form a joint posterior from the unimodal experts $q(z \mid x_m)$, each with
# one shared $z$, Gaussian experts and prior, and its own objective (`mmebm/objectives.py`;
# `configs/polymnist_{mopoe,mvtcae,mmjsd}.yaml` hold their authors' PolyMNIST settings, each with
# its source). With $\tilde q_S$ the normalised product of the experts in a subset $S$:
#
# - **MoPoE** (Sutter et al., ICLR 2021): the mixture of $\tilde q_S$ over all $2^M - 1$ subsets
#   (the prior expert joins the full set), and the mean of the subsets' ELBOs,
#   $\frac{1}{|P|}\sum_S \big(\mathbb E_{\tilde q_S}\log p(X \mid z) - \beta\,\mathrm{KL}(\tilde q_S \,\|\, p)\big)$.
# - **MVTCAE** (Hwang et al., NeurIPS 2021): $q = \tilde q_{\{1..M\}}$ without a prior expert, and
#   the total-correlation objective
#   $\frac{M-\alpha}{M}\mathbb E_q \log p(X \mid z) - \beta\big((1-\alpha)\,\mathrm{KL}(q \,\|\, p)
#   + \frac{\alpha}{M}\sum_m \mathrm{KL}(q \,\|\, q_m)\big)$, $\alpha = 5/6$.
# - **mmJSD** (Sutter et al., NeurIPS 2020): the MoE's reconstruction term and, in place of its KL,
#   the Jensen-Shannon divergence of the $M$ experts and the prior against their weighted
#   geometric mean (the dynamic prior), $\sum_{k=0}^M \frac{1}{M+1}\mathrm{KL}(q_k \,\|\, q_{\text{dyn}})$,
#   $q_0 = p(z)$.
#
# Cross generation from a subset uses each method's own joint posterior: the product of the
# subset's experts (MoPoE, MVTCAE) or their mixture (mmJSD, MMVAE, MMVAE+).
#
# The `cpu` profile departs from these settings where a 2-core CPU needs it (each departure is
# named, with the measurement behind it, in `configs/polymnist.yaml`; the sweep is in
# `results/cpu_recipe/`, the list in the README); the
# `paper` profile runs them as they are (250 epochs) on a GPU.
#
# **Shipped weights.** Training the `cpu` profile far enough for the models to learn digits
# takes longer than a reader wants to wait, so the repository ships the trained weights of
# those runs (`weights/`: fp16, evaluation only, with a manifest per run: config, commit,
# steps, wall time, machine). With `train_models = False` (the default of `make reproduce`)
# this notebook evaluates them; with `True` (`make reproduce TRAIN=1`) it trains every run
# from scratch. Either way the runs land in `runs/`, and the table says which it shows.
#
# **Writes** `runs/`: every run installed (or trained), refitted and evaluated (`metrics.json`),
# and the run lists that `03_results` reads; it shows a first joint figure and saves none
# (`03_results` draws the figures). **Took** 188 s on the 2-core CPU machine, fresh clone,
# 2026-12-07 (`results/timings.md`), with the shipped weights and their shipped evaluations; most
# of it the six refits (25-29 s each). An evaluation it cannot reuse costs 3-4 minutes alone
# (`results/eval_speed/`). One line per run says which it reused and how long the rest will take.

# %% tags=["parameters"]
profile = "cpu"  # cpu | gpu | paper
data_root = None  # raw data (None: $MMEBM_DATA)
polymnist_dir = "../data/polymnist"
runs_dir = "../runs"
judges_dir = "../runs/judges"  # the main judges (weights/judges)
check_judges_dir = "../runs/judges_check"  # their independent check (weights/judges_check)
protocol_judges_dir = "../runs/classifiers_protocol"  # the paper protocol's judges (weights/classifiers_protocol)
classifiers_dir = "../runs/classifiers"  # the training probes' blur-robust judges (weights/classifiers)
figures_dir = "../figures"
weights_dir = "../weights"  # shipped runs (see above)
train_models = False  # True: train every run here instead of evaluating shipped weights
reevaluate = False  # True (make reproduce EVALUATE=1): evaluate every run here, not reusing shipped evaluations
device = "auto"
seeds = None  # train.seed of each run; None: every seed weights/ ships per model (with train_models: [0])
seed = 0  # the figures' random draws
n_joint = 10_000  # prior samples for joint coherence
# extra key=value config overrides (the tests use tiny ones)
overrides = []
classifier_epochs = 6  # judges trained here (train_models): epochs of each set
classifier_limit = None
experiments = ["polymnist_mmvae", "polymnist_mmvae_ebm", "polymnist_mmvaeplus", "polymnist_mmvaeplus_ebm",
               "polymnist_mopoe", "polymnist_mvtcae", "polymnist_mmjsd"]
compare_profiles = ["cpu", "gpu", "long"]  # other profiles whose shipped runs join the table (evaluated, never trained)
refit_steps = 300  # the refitted EBM prior (mmebm.refit): steps of f_alpha on the frozen VAE; 0: no refitted rows
refit_n_train = 10_000  # training tuples whose posterior samples it is fitted to

# %% tags=["nbval-ignore-output"]
from pathlib import Path

import torch

from mmebm import plots
from mmebm.data import data_root as resolve_data_root, ensure_polymnist
from mmebm.report import median_seed
from mmebm.config import PRESETS
from mmebm.refit import RefitConfig
from mmebm.runs import (CHECK_JUDGES, MAIN_JUDGES, PROTOCOL_JUDGES, coherence_table, ensure_all_evaluated,
                        ensure_classifiers, ensure_other_profiles, ensure_refitted_runs, ensure_seeded_runs,
                        plan_seeds, training_plan)

root = resolve_data_root(data_root)
ensure_polymnist(polymnist_dir, root / "mnist", root / "polymnist" / "backgrounds", progress=False)
# the "no digit" class's background crops, and the MNIST digits the known-answer shifts recompose
backgrounds = ["--backgrounds", str(root / "polymnist" / "backgrounds")]
shifted = [*backgrounds, "--mnist", str(root / "mnist" / "raw")]
judge_sets = {}
for set_name, folder, options in [("main", judges_dir, [*MAIN_JUDGES, *shifted]),
                                  ("check", check_judges_dir, [*CHECK_JUDGES, *shifted]),
                                  ("protocol", protocol_judges_dir, [*PROTOCOL_JUDGES, *backgrounds]),
                                  ("blur-robust (training probes)", classifiers_dir, [])]:
    ship_from = None if train_models else f"{weights_dir}/{Path(folder).name}"
    judge_sets[set_name] = ensure_classifiers(polymnist_dir, folder, classifier_epochs, classifier_limit, ship_from, options)

# %% [markdown]
# The coherence metrics classify generated digits with one classifier per modality: a judge set.
# Judges trained on clean images alone, as the paper's protocol has them, read a plainly
# readable but slightly soft digit as "no digit": blur real test digits by one pixel and they say
# so to about 80 % of modalities 0 and 3 (`results/judges/`). Our generations are soft, so three
# sets judge every generation:
#
# - **the main judges** (`weights/judges`, a small ResNet): trained with the known-answer shifts
#   of `mmebm.shifts` as augmentation (smoothed and flat backgrounds, blurred and faint digits),
#   with an eleventh answer, "no digit", learned from backgrounds without a digit. They read each
#   shift at 0.98 or better and stay at 0.98 or better on clean test images. The tables' main
#   columns are theirs.
# - **the check** (`weights/judges_check`, a conv net, another seed): trained alike, independently.
#   Where its cross coherence differs from the main judges' by more than 0.05 on a target, the
#   table says so.
# - **the paper's protocol judges** (`weights/classifiers_protocol`): clean training images only,
#   and "no digit". Their numbers stand beside the main ones, labelled.
#
# The training probes (the learning curves) use a fourth, older set, blur-robust
# (`weights/classifiers`). All ship beside the weights and are copied into `runs/` when it holds
# none yet, so a fresh clone judges with the same weights as ours; with `train_models = True` they
# are trained here.

# %%
for set_name, judges in judge_sets.items():
    print(f"{set_name} judges, test accuracy per modality:", [round(a, 4) for a in judges.test_accuracy])
    if judges.no_digit_accuracy:
        print("  'no digit' on background crops:", [round(a, 4) for a in judges.no_digit_accuracy])

# %% [markdown]
# ## Training
#
# Each run lives in `runs/<config>-<profile>-s<seed>/` (checkpoint, `metrics.csv`,
# `config.yaml`). A finished run is loaded, an interrupted one resumes exactly where it
# stopped. While training, the trainer measures coherence every `train.eval_every` steps (the
# learning curves that `03_results` draws). Before it trains, it measures a step of each model
# on this machine and prints the expected total. Without `train_models`, a poster model that is
# neither shipped nor already in `runs/` is an error that says how to train it; such a baseline
# is left out with a note (the gpu profile ships the four poster models only).

# %% tags=["nbval-ignore-output"]
config_overrides = [f"data.root={polymnist_dir}", f"train.device={device}",
                    f"train.eval_classifiers={classifiers_dir}", *overrides]
# a baseline this profile ships no weights for (gpu: MoPoE, MVTCAE, mmJSD) is left out unless trained here
configs, run_seeds = plan_seeds(experiments, profile, seeds, train_models, runs_dir, weights_dir,
                                required=[f"polymnist_{name}" for name in PRESETS])
if train_models:
    training_plan(configs, profile, run_seeds, config_overrides)
runs = ensure_seeded_runs(configs, profile, run_seeds, runs_dir, None if train_models else weights_dir,
                          config_overrides)
# the other profiles' shipped runs (the gpu and long profiles' beside the cpu one's), for the table
others = ensure_other_profiles(experiments, profile, compare_profiles, runs_dir, weights_dir, config_overrides)

# %% [markdown]
# ## The refitted EBM prior
#
# Joint generation asks the prior to put its mass where the aggregate posterior
# $q(z) = \mathbb E_X \frac1M \sum_m q(z \mid x_m)$ has it; the gap in joint coherence between
# $z \sim p_0$ and $z \sim q(z)$ is the hole the EBM prior is there to close, and $z \sim p_\alpha$
# sits somewhere in between (`03_results` tabulates the three). The paper's update fits
# $f_\alpha$ on 60-step chains that miss the posteriors, and its energies run away
# (`results/ebm_sampling/`). Of the levers we measured with the VAE frozen (`results/ebm_levers/`:
# a replay buffer, a 10x EBM lr, 200-step chains, a noise-contrastive fit sampled by importance
# resampling), the one that closed most of the hole without collapsing onto one digit was the
# paper's own update with an energy penalty (Du & Mordatch 2019):
#
# $$\overline{f_\alpha(z_q)} - \overline{f_\alpha(z_{\text{Langevin}})}
#   + \lambda\,\big(\overline{f_\alpha(z_q)^2} + \overline{f_\alpha(z_{\text{Langevin}})^2}\big), \qquad \lambda = 0.1,$$
#
# run for `refit_steps` steps after training, on the posterior samples of `refit_n_train`
# training tuples encoded once (`mmebm.refit`; about a minute of one CPU thread per run). The
# refitted run is a variant of its own, `<run>-refit`, with rows of its own in the tables; its
# encoders and decoders are those of the run it comes from, so its cross coherence is too.

# %% tags=["nbval-ignore-output"]
if refit_steps:
    refitted = ensure_refitted_runs(runs, runs_dir, RefitConfig(steps=refit_steps, n_train=refit_n_train), device)
    for (name, k), (_, d, _) in refitted.items():
        print(f"{d.name}: refitted in {torch.load(d / 'checkpoint.pt', weights_only=True)['refit']['seconds']:.0f} s")
    runs |= refitted

# %% [markdown]
# ## Coherence
#
# Cross coherence: encode one modality, decode the other four, classify them, compare with the
# true digit (20 ordered pairs). Joint coherence: draw $z$ from the prior (Langevin for the EBM
# prior), decode all five modalities, count the samples whose five predicted digits agree. For
# every model we also draw $z$ from the aggregate posterior (what a perfect prior would
# generate), and for the EBM models $z \sim p_0$, the untilted base: the difference is what the
# tilting $\exp[-f_\alpha(z)]$ does. The three judge sets score the same generations. An
# evaluation shipped beside the weights is reused where the weights and every judge set are the
# same (sha256), so a fresh clone recomputes only what it must (`reevaluate` redoes them all).

# %% tags=["nbval-ignore-output"]
judge_dirs = [check_judges_dir, protocol_judges_dir]  # beside the main judges, judges_dir
shipped = None if train_models else weights_dir  # where an evaluation may ship beside the weights
metrics = ensure_all_evaluated(runs, judges_dir, n_joint, device, judge_dirs, shipped, reevaluate)
print(coherence_table({f"{name} s{k}": m for (name, k), m in metrics.items()}))
for other, other_runs in others.items():
    print(f"\nprofile {other} (shipped):")
    other_metrics = ensure_all_evaluated(other_runs, judges_dir, n_joint, device, judge_dirs, shipped, reevaluate)
    print(coherence_table({f"{name} s{k}": m for (name, k), m in other_metrics.items()}))

# %% [markdown]
# ## Joint generation
#
# A first look; `03_results` draws and saves the figures. One run per model, its median seed by
# cross coherence (not the best one, nor whichever came first); eight draws from each prior,
# every modality decoded (rows: draws; columns: modalities), and right of each row the main
# judges' digit per modality: green where all five agree.

# %%
shown = {name: median_seed({k: metrics[name, k]["cross_coherence"] for k in run_seeds[name]}) for name in configs}
models = {name: runs[name, shown[name]][0] for name in configs}
print("seed shown per model:", shown)
fig = plots.joint_figure(models, n=8, seed=seed, judges=judge_sets["main"],
                         suptitle=f"profile {profile}; judges: main (weights/judges)")

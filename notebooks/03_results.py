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
# - `table_polymnist.md` / `.csv`: joint and cross coherence, ours beside the poster's, with
#   the profile and training budget that produced ours;
# - `joint_base.png`, `joint_generalized.png`: prior samples, MMVAE vs the base version and
#   MMVAE+ vs the generalized version (the poster's joint-generation figure);
# - `cross_base.png`, `cross_generalized.png`: every modality generated from modality 0;
# - `langevin_chain_base.png`, `langevin_chain_generalized.png`: samples decoded along the
#   short-run Langevin chain, from $z_0 \sim p_0$ to $z_K \sim p_\alpha$.

# %% tags=["parameters"]
profile = "cpu"
polymnist_dir = "../data/polymnist"
runs_dir = "../runs"
figures_dir = "../figures"
seed = 0
n_show = 8  # samples per figure
chain_show = [0, 5, 10, 20, 40, 60]  # Langevin steps to decode (clipped to the run's chain length)

# %%
import csv
import json
from pathlib import Path

import torch

from mmebm import plots
from mmebm.data import PolyMNIST
from mmebm.runs import run_dir
from mmebm.train import load_run

# The poster's PolyMNIST numbers (SPEC.md section 6).
PAPER = {
    "polymnist_mmvae": ("MMVAE", 0.232, 0.844),
    "polymnist_mmvae_ebm": ("Ours, base (MMVAE + EBM prior)", 0.746, 0.853),
    "polymnist_mmvaeplus": ("MMVAE+", 0.344, 0.869),
    "polymnist_mmvaeplus_ebm": ("Ours, generalized (MMVAE+ + EBM prior)", 0.878, 0.897),
}
runs = {name: run_dir(runs_dir, name, profile) for name in PAPER}
missing = [str(d) for d in runs.values() if not (d / "metrics.json").is_file()]
if missing:
    raise FileNotFoundError(f"no evaluated runs at {missing}: run 02_models "
                            f"with profile={profile!r} first (make reproduce does)")

# %% [markdown]
# ## The table

# %%
def train_seconds(run_dir):
    """Training wall time of a run (summed over resumed sessions), from its metrics.csv."""
    rows = csv.DictReader(open(run_dir / "metrics.csv"))
    return sum(float(r["value"]) for r in rows if r["name"] == "wall_s")


rows = []
for name, (label, paper_joint, paper_cross) in PAPER.items():
    m = json.loads((runs[name] / "metrics.json").read_text())
    cfg = m["config"]
    rows.append({
        "model": label,
        "joint (ours)": round(m["joint_coherence"], 3),
        "cross (ours)": round(m["cross_coherence"], 3),
        "joint, z~p0 (ours)": round(m["joint_coherence_p0"], 3) if "joint_coherence_p0" in m else "",
        "joint (paper)": paper_joint,
        "cross (paper)": paper_cross,
        "profile": profile,
        "nets": cfg["model"]["net"],
        "steps": m["step"],
        "batch": cfg["train"]["batch_size"],
        "train tuples": cfg["data"]["limit"] or 60000,
        "train time (s)": round(train_seconds(runs[name])),
        "test tuples": m["n_test"],
        "joint samples": m["n_joint"],
    })

columns = list(rows[0])
Path(figures_dir).mkdir(parents=True, exist_ok=True)
with open(Path(figures_dir) / "table_polymnist.csv", "w", newline="") as f:
    w = csv.DictWriter(f, columns)
    w.writeheader()
    w.writerows(rows)
lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]
table = "\n".join(lines)
(Path(figures_dir) / "table_polymnist.md").write_text(
    f"PolyMNIST coherence, profile `{profile}` (ours) beside the poster's numbers.\n\n{table}\n")
print(table)

# %% [markdown]
# The classifiers that score the coherences, and the digits that the joint samples were
# classified as by modality 0 (a prior stuck on one digit would be trivially coherent):

# %%
for name in PAPER:
    m = json.loads((runs[name] / "metrics.json").read_text())
    print(f"{name:<25} digits of joint samples: {m['joint_digit_histogram']}")
print("classifier accuracy:", [round(a, 4) for a in m["classifier_accuracy"]])

# %% [markdown]
# ## Joint generation
#
# Rows are independent draws $z \sim p(z)$ (Langevin for the EBM prior; $w \sim p_0(w)$ for
# MMVAE+), columns the five modalities. Coherent samples write one digit across a row.

# %%
models = {name: load_run(run)[0] for name, run in runs.items()}
modality_labels = [f"m{m}" for m in range(5)]
for version, (base, ebm) in {"base": ("polymnist_mmvae", "polymnist_mmvae_ebm"),
                             "generalized": ("polymnist_mmvaeplus", "polymnist_mmvaeplus_ebm")}.items():
    fig = plots.joint_figure({PAPER[base][0]: models[base], PAPER[ebm][0]: models[ebm]}, n_show, seed)
    plots.save(fig, f"{figures_dir}/joint_{version}.png")

# %% [markdown]
# ## Cross generation
#
# Left, test tuples; then each model's generation of all five modalities from modality 0
# alone (one posterior sample of $z$, $w$ from the unit prior).

# %%
test = PolyMNIST.load(polymnist_dir, "test")
x, y = test[torch.arange(0, len(test), len(test) // n_show)[:n_show]]
for version, names in {"base": ("polymnist_mmvae", "polymnist_mmvae_ebm"),
                       "generalized": ("polymnist_mmvaeplus", "polymnist_mmvaeplus_ebm")}.items():
    fig = plots.cross_figure({PAPER[n][0]: models[n] for n in names}, x, src=0, seed=seed)
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

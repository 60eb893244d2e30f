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
# # 04 · CUB image-captions: captions along the Langevin chain
#
# The poster's second figure generates bird captions along a Markov chain: short-run Langevin
# dynamics starts at $z_0 \sim p_0$ (a Gaussian) and runs toward the learned prior
#
# $$p_\alpha(z) = \frac{1}{Z(\alpha)} \exp[-f_\alpha(z)]\, p_0(z), \qquad
# z_{k+1} = z_k - \frac{s^2}{2}\nabla_z\big[f_\alpha(z_k) - \log p_0(z_k)\big] + s\,\epsilon_k,$$
#
# and a caption is decoded at each stage. Its claim: captions decoded from $p_0$ are broken,
# those from $p_\alpha$ read like real descriptions. A model trained with the Gaussian prior
# itself decodes $z \sim p_0$; it is the baseline.
#
# The model is MMVAE+ on two modalities, a 64x64 image and a 32-word caption, with the EBM prior
# on the shared $z$ (the generalized version); $w$ of each modality keeps $p_0(w)$.
#
# | choice | value | source |
# |---|---|---|
# | latents | $z$ 48, $w$ 16; Normal posteriors; priors $\mathcal N(0, (\ln 2)^2 I)$ (scale softplus(0)) | MMVAE+ CUB run (its code) |
# | objective | IWAE with K = 10, $\beta$ = 1 (`paper`; the reference's `--obj dreg` computes this, see `configs/cub_mmvaeplus.yaml`); the K = 1 ELBO in `cpu` | MMVAE+ CUB run |
# | image likelihood | Laplace, scale 0.01, weighted by $32 / (3\cdot 64\cdot 64)$ | MMVAE+ CUB run |
# | caption likelihood | categorical per word, weighted by 5 | MMVAE+ CUB run |
# | training | batch 32, 50 epochs (`paper`) | MMVAE+ CUB run |
# | optimizer | Adam lr 1e-3 with amsgrad | MMVAE+ PolyMNIST run (SPEC gives none for CUB) |
# | networks | `paper`: MMVAE+'s CUB networks (image ResNets; caption convs with batch norm); `cpu`: ours, lighter (image: 4 conv layers 64 -> 4; caption: MMVAE's sentence-conv layout, no batch norm) | `mmebm/cub_nets.py` |
# | EBM, Langevin | as for PolyMNIST: $f_\alpha$ 48 -> 200 -> 200 -> 1, 60 steps of size 0.4 | Pang et al. 2020 |
#
# Captions are processed as MMVAE does (max length 32 with `<eos>` and `<pad>`, words seen
# more than 3 times in training, `<exc>` = 0 for the rest), with a tokenizer that needs no
# NLTK download (it splits all 147,210 caption lines exactly as NLTK 3.10 does). The vocabulary
# has 1,699 words where the reference has 1,590: our training caption file is rebuilt from the
# raw CUB captions, so typos seen more than 3 times become words (see the README).
#
# The decoder is not autoregressive (as MMVAE's): one pass gives every position's word
# distribution, and greedy decoding takes the most likely word at each position.

# %% tags=["parameters"]
profile = "cpu"  # cpu | paper
data_root = None  # the folder holding cub/ (None: $MMEBM_DATA)
cache_dir = "../data/cub"  # processed captions / images are cached here
runs_dir = "../runs"
figures_dir = "../figures"
device = "auto"
seed = 0
# extra key=value config overrides (the tests use tiny ones)
overrides = []
image_experiments = ["cub_mmvaeplus", "cub_mmvaeplus_ebm"]  # used when CUB images are present
caption_experiments = ["cub_captions", "cub_captions_ebm"]  # otherwise: captions only
n_chains = 6
chain_show = [0, 5, 10, 20, 40, 60]  # Langevin steps whose captions are shown
n_show = 6  # image <-> caption examples
n_score = 500  # chains scored with the bigram yardstick

# %% tags=["nbval-ignore-output"]
from pathlib import Path

import torch

from mmebm import plots
from mmebm.captions import BigramScore, caption_chain, to_text, word_ids
from mmebm.data import CUBCaptions, CUBImageCaptions, DataError, data_root as resolve_data_root
from mmebm.runs import ensure_experiments

root = resolve_data_root(data_root)
train_text = CUBCaptions.load(root, "train", cache_dir=cache_dir)
vocab = train_text.vocab
try:
    pairs = CUBImageCaptions.load(root, "test", cache_dir=cache_dir)
    coverage = {split: CUBImageCaptions.load(root, split, cache_dir=cache_dir).meta["coverage_text"]
                for split in ("train", "test")}
except DataError as e:  # no images: the caption side alone
    pairs, coverage = None, None
    print(f"no CUB images ({str(e).splitlines()[0]}); training the captions-only models")
experiments = image_experiments if pairs is not None else caption_experiments

# %% [markdown]
# ## The data
#
# The image-caption models train on the caption lines whose image is present; an epoch walks
# every such caption once, with its image (as MMVAE+ does). Offline here only the images of
# classes 001-050 are at hand, so the image side sees a third of the classes; with the full
# image set in `cub/` the same notebook uses all of it.

# %%
print(f"vocabulary: {len(vocab)} words; training captions: {len(train_text)}")
if coverage is not None:
    for split, text in coverage.items():
        print(f"images of the {split} split present: {text}")
else:
    print("images: none (captions-only models)")
print("first training caption:", vocab.decode(train_text.captions[0]))

# %% [markdown]
# ## Training
#
# Each run lives in `runs/<config>-<profile>/`; a finished run is loaded, an interrupted one
# resumes. The Gaussian-prior model and the EBM-prior model share every other setting.

# %% tags=["nbval-ignore-output"]
config_overrides = [f"data.root={root}", f"data.cache_dir={cache_dir}", f"train.seed={seed}",
                    f"train.device={device}", *overrides]
models, run_dirs = ensure_experiments(experiments, profile, runs_dir, config_overrides)
gauss, ebm = (models[name] for name in experiments)
label = {experiments[0]: "Gaussian prior", experiments[1]: "EBM prior"}

# %% [markdown]
# ## Captions along the chain
#
# Each row is one chain. The EBM model's captions are decoded at steps $k$ of the chain from
# $z_0 \sim p_0$ (step 0) to $z_{60}$, its sample from $p_\alpha$; the last column is the
# Gaussian-prior model decoding the same $z_0$ (the sample of its own prior). The
# modality-specific $w$ is drawn once per chain from $p_0(w)$, so only $z$ moves.

# %%
chain = caption_chain(ebm, vocab, n_chains, chain_show, seed=seed)
baseline = caption_chain(gauss, vocab, n_chains, [0], seed=seed)[0]
last = max(chain)
columns = {f"EBM, step {k}" + (" (z ~ p0)" if k == 0 else " (z ~ p_alpha)" if k == last else ""): c
           for k, c in chain.items()}
columns["Gaussian prior, z ~ p0"] = baseline
trained_on = f"train images present: {coverage['train']}" if coverage else "captions only, no images"
fig = plots.text_table(columns, row_labels=[f"chain {i}" for i in range(n_chains)],
                       suptitle=f"CUB captions along the Langevin chain (profile {profile}; {trained_on})")
Path(figures_dir).mkdir(parents=True, exist_ok=True)
plots.save(fig, f"{figures_dir}/cub_caption_chain.png")
rows = ["| chain | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
rows += [f"| {i} | " + " | ".join(c[i] for c in columns.values()) + " |" for i in range(n_chains)]
(Path(figures_dir) / "cub_caption_chain.md").write_text(
    f"CUB captions along the Langevin chain, profile `{profile}`, models {', '.join(experiments)} "
    f"({trained_on}).\n\n"
    + "\n".join(rows) + "\n")

# %% [markdown]
# Greedy decoding shows each position's most likely word. Sampling draws every word from its
# distribution instead (three chains from the same starting points $z_0$), which shows how
# unsure the decoder still is:

# %%
sampled = caption_chain(ebm, vocab, 3, [0, last], seed=seed, sample=True)
for k, captions in sampled.items():
    print(f"step {k}:")
    for c in captions:
        print("   ", c)

# %% [markdown]
# ## A yardstick for "reads like a description"
#
# To put a number on the figure, we score captions with a bigram model of the training
# captions: the mean per-word log-probability (higher reads more like training text). It is our
# yardstick, not a metric of the paper. Real test captions set the ceiling, uniformly random
# words the floor. The chains are the figure's, `n_score` of them.

# %%
score = BigramScore(train_text.captions, len(vocab))
test_text = CUBCaptions.load(root, "test", cache_dir=cache_dir)
many = caption_chain(ebm, vocab, n_score, [0, last], seed=seed + 1, as_ids=True)
reference = {
    "real test captions": score(test_text.captions).mean().item(),
    "random words": score(torch.randint(3, len(vocab), (n_score, 32), generator=torch.Generator().manual_seed(seed))).mean().item(),
    "EBM model, z_0 ~ p0": score(many[0]).mean().item(),
    f"EBM model, z_{last} ~ p_alpha": score(many[last]).mean().item(),
    "Gaussian model, z ~ p0": score(caption_chain(gauss, vocab, n_score, [0], seed=seed + 1, as_ids=True)[0]).mean().item(),
}
for name, value in reference.items():
    print(f"{name:<28} {value:7.3f}")
with open(Path(figures_dir) / "cub_caption_chain.md", "a") as f:
    f.write(f"\nBigram yardstick (mean per-word log-probability, {n_score} chains, seed {seed + 1}):\n\n"
            "| captions | bigram log-prob per word |\n|---|---|\n"
            + "".join(f"| {name} | {value:.3f} |\n" for name, value in reference.items()))

# %% [markdown]
# ## Image to caption, caption to image
#
# With images present: test images with a caption of theirs, then each model's caption
# generated from the image alone ($z$ from the image's posterior, $w$ from $p_0(w)$), and images
# generated from the caption alone.

# %%
if pairs is not None:
    idx = torch.linspace(0, len(pairs) - 1, n_show).round().long()
    x = pairs[idx]
    image, caption = x
    rows = [("test image", image), ("its caption", vocab.decode(caption))]
    for name, model in models.items():
        torch.manual_seed(seed)
        rows.append((f"{label[name]}:\ncaption", to_text(model.cross_generate(x, 0)[1], vocab)))
    fig = plots.image_text_grid(rows, suptitle=f"CUB: image -> caption, profile {profile}\n({trained_on})")
    plots.save(fig, f"{figures_dir}/cub_image_to_caption.png")
    rows = [("caption", vocab.decode(caption)), ("its image", image)]
    for name, model in models.items():
        torch.manual_seed(seed)
        rows.append((f"{label[name]}:\nimage", model.cross_generate(x, 1)[0]))
    fig = plots.image_text_grid(rows, suptitle=f"CUB: caption -> image, profile {profile}\n({trained_on})")
    plots.save(fig, f"{figures_dir}/cub_caption_to_image.png")
else:
    print("no CUB images: image <-> caption generation skipped (see the README for where to get them)")

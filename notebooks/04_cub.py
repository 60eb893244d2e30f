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
# **Writes** `runs/cub_*` (the two models, shipped or trained), `figures/cub_caption_chain.png`
# and `.md` (with the yardsticks and colour coherence), `figures/cub_image_to_caption.png` and
# `figures/cub_caption_to_image.png`. **Took** 197 s on this project's 2-core CPU machine, fresh clone, 2026-12-07 (`results/timings.md`).
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
profile = "cpu"  # cpu | gpu | paper
data_root = None  # the folder holding cub/ (None: $MMEBM_DATA)
cache_dir = "../data/cub"  # processed captions / images are cached here
runs_dir = "../runs"
figures_dir = "../figures"
weights_dir = "../weights"  # shipped runs (seed 0), evaluated instead of trained where present
train_models = False  # True: train both models here even where weights/ ships them
device = "auto"
seed = 0
# extra key=value config overrides (the tests use tiny ones)
overrides = []
image_experiments = ["cub_mmvaeplus", "cub_mmvaeplus_ebm"]  # used when CUB images are present
caption_experiments = ["cub_captions", "cub_captions_ebm"]  # otherwise: captions only
n_chains = 6
chain_show = [0, 5, 10, 20, 40, 60]  # Langevin steps whose captions are shown
n_show = 6  # image <-> caption examples
n_score = 500  # chains scored with the yardsticks (and 2x that many test captions reconstructed)
n_colour = None  # test pairs whose image generates a caption and whose caption generates an image (None: all)

# %% tags=["nbval-ignore-output"]
from pathlib import Path

import torch
from IPython.display import Markdown, display

from mmebm import plots
from mmebm.captions import BigramScore, caption_chain, caption_measures, to_text, word_accuracy
from mmebm.colours import cross_colour_coherence, real_colour_coherence, table_cell
from mmebm.data import CUBCaptions, CUBImageCaptions, DataError, data_root as resolve_data_root
from mmebm.runs import MissingWeights, ensure_experiments, training_plan
from mmebm.weights import read_manifest

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
# classes 001-050 are at hand, so the image side sees only the training classes among them:
# about a fifth of the training images (the cell below prints how many). With the full image
# set in `cub/` the same notebook uses all of it.

# %%
print(f"vocabulary: {len(vocab)} words; training captions: {len(train_text)}")
if coverage is not None:
    for split, text in coverage.items():
        print(f"images of the {split} split present: {text}")
else:
    print("images: none (captions-only models)")
print("first training caption:", vocab.decode(train_text.captions[0]))

# %% [markdown]
# ## Training, or the shipped weights
#
# As for PolyMNIST (`02_models`), the `cpu` image-caption models are shipped in `weights/`
# (fp16, evaluation only, a manifest each with the config, commit, steps, wall time and
# machine): their 2,400 steps cost 40-60 minutes each on one CPU thread, so by default this
# notebook evaluates them, and `train_models = True` (`make reproduce TRAIN=1`) trains them
# here. Each run lives in `runs/<config>-<profile>/` (`...-shipped` for installed weights); a
# finished run is loaded, an interrupted one resumes. The Gaussian-prior model and the
# EBM-prior model share every other setting.

# %% tags=["nbval-ignore-output"]
config_overrides = [f"data.root={root}", f"data.cache_dir={cache_dir}", f"train.seed={seed}",
                    f"train.device={device}", *overrides]
if train_models:
    training_plan(experiments, profile, [seed], config_overrides)
shown_profile = profile  # the profile whose runs this notebook shows
try:
    models, run_dirs, sources = ensure_experiments(experiments, profile, runs_dir, config_overrides,
                                                   None if train_models else weights_dir)
except MissingWeights as missing:  # e.g. the gpu profile, which ships PolyMNIST runs only
    if profile == "cpu":
        raise
    print(f"{missing}\n-> this notebook shows the cpu profile's shipped CUB runs instead")
    shown_profile = "cpu"
    models, run_dirs, sources = ensure_experiments(experiments, shown_profile, runs_dir, config_overrides, weights_dir)
gauss, ebm = (models[name] for name in experiments)
for name, model in models.items():  # shipped weights decode words by their index in the vocabulary they trained on
    if model.cfg.vocab_size != len(vocab):
        raise ValueError(f"{name} was trained on a vocabulary of {model.cfg.vocab_size} words, but the captions in "
                         f"{root} give {len(vocab)}: train it here (train_models=True, make reproduce TRAIN=1)")
label = {experiments[0]: "Gaussian prior", experiments[1]: "EBM prior"}
for name in experiments:  # what a shipped run cost (a run trained here printed its own steps and time)
    if sources[name] == "shipped":
        m = read_manifest(Path(weights_dir) / run_dirs[name].name.removesuffix("-shipped"))
        print(f"{name}: shipped, {m['steps']} steps, {m['train_wall_s'] / 60:.0f} min of training on {m['machine']['processor']}")

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
                       suptitle=f"CUB captions along the Langevin chain (profile {shown_profile}; {trained_on})")
Path(figures_dir).mkdir(parents=True, exist_ok=True)
plots.save(fig, f"{figures_dir}/cub_caption_chain.png")
rows = ["| chain | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
rows += [f"| {i} | " + " | ".join(c[i] for c in columns.values()) + " |" for i in range(n_chains)]
(Path(figures_dir) / "cub_caption_chain.md").write_text(
    f"CUB captions along the Langevin chain, profile `{shown_profile}`, models {', '.join(experiments)} "
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
# ## Yardsticks for "reads like a description"
#
# To put numbers on the figure (ours, not the paper's), we score `n_score` chains at each shown
# step, against real test captions (the ceiling) and uniformly random words (the floor):
#
# - **bigram**: the mean per-word log-probability under a bigram model of the training captions
#   (higher reads more like training text). A frequent generic pattern scores well on it, so
#   beside it:
# - **distinct-1 / distinct-2**: the share of distinct words and word pairs among all those of
#   the captions (a caption repeated over and over scores low);
# - **repeated**: the share of captions that occur more than once;
# - **length**: mean words before `<eos>`, against the real captions' mean;
# - **ended**: the share of captions that end with `<eos>` before the maximum length.
#
# Each comes with its 95 % interval over the chains (normal approximation; jackknife over
# chains for the set measures distinct-n and repeated; Wilson for ended).

# %%
score = BigramScore(train_text.captions, len(vocab))
test_text = CUBCaptions.load(root, "test", cache_dir=cache_dir)
g = torch.Generator().manual_seed(seed)
many = caption_chain(ebm, vocab, n_score, chain_show, seed=seed + 1, as_ids=True)
sources = {"real test captions": test_text.captions[torch.randperm(len(test_text), generator=g)[:n_score]],
           "random words": torch.randint(3, len(vocab), (n_score, 32), generator=g)}
sources.update({f"EBM model, step {k}" + (" (z ~ p0)" if k == 0 else " (z ~ p_alpha)" if k == last else ""): v
                for k, v in many.items()})
sources["Gaussian model, z ~ p0"] = caption_chain(gauss, vocab, n_score, [0], seed=seed + 1, as_ids=True)[0]
measures = {name: caption_measures(ids, score) for name, ids in sources.items()}
names = ["bigram", "distinct-1", "distinct-2", "repeated", "length", "ended"]
table = (f"| captions ({n_score}) | " + " | ".join(names) + " |\n" + "|---" * (len(names) + 1) + "|\n"
         + "".join(f"| {src} | " + " | ".join(f"{m[k].value:.3f} ({m[k].lo:.3f}, {m[k].hi:.3f})" for k in names)
                   + " |\n" for src, m in measures.items()))
print(table)
with open(Path(figures_dir) / "cub_caption_chain.md", "a") as f:
    f.write(f"\nYardsticks over {n_score} chains (seed {seed + 1}), each with its 95 % interval over chains:\n\n"
            + table)

# %% [markdown]
# ## Reconstruction: has the caption side learned?
#
# Before asking what the prior adds, the caption networks themselves: the share of the words
# (and `<eos>`) of held-out test captions that greedy decoding of their reconstruction gets right,
# with $z$ and $w$ drawn from the caption's own posterior.

# %%
n_test = len(pairs) if pairs is not None else len(test_text)
limit = torch.linspace(0, n_test - 1, min(n_score * 2, n_test)).round().long()  # evenly spaced test captions
test_x = pairs[limit] if pairs is not None else (test_text.captions[limit],)
test_x = tuple(m.to(next(gauss.parameters()).device) for m in test_x)
torch.manual_seed(seed)
recon = {label[name]: word_accuracy(model, test_x) for name, model in models.items()}
for name, acc in recon.items():
    print(f"{name}: {acc:.3f} of {len(limit)} test captions' words right")
with open(Path(figures_dir) / "cub_caption_chain.md", "a") as f:
    f.write(f"\nGreedy reconstruction of {len(limit)} test captions (z, w from the caption's posterior), share of "
            "words and <eos> right: " + ", ".join(f"{k} {v:.3f}" for k, v in recon.items()) + "\n")

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
    fig = plots.image_text_grid(rows, suptitle=f"CUB: image -> caption, profile {shown_profile}\n({trained_on})")
    plots.save(fig, f"{figures_dir}/cub_image_to_caption.png")
    rows = [("caption", vocab.decode(caption)), ("its image", image)]
    for name, model in models.items():
        torch.manual_seed(seed)
        rows.append((f"{label[name]}:\nimage", model.cross_generate(x, 1)[0]))
    fig = plots.image_text_grid(rows, suptitle=f"CUB: caption -> image, profile {shown_profile}\n({trained_on})")
    plots.save(fig, f"{figures_dir}/cub_caption_to_image.png")
else:
    print("no CUB images: image <-> caption generation skipped (see the README for where to get them)")

# %% [markdown]
# ## Colour coherence: does cross generation keep the bird's colours?
#
# CUB has no labels for a judge, but 97 % of its test captions name a colour. Over the test
# pairs (an image and one of its 10 captions), image -> caption: the share of captions
# generated from the pair's image that name a colour found in any of that image's 10 real
# captions. Caption -> image: the share of images generated from the pair's caption whose two
# dominant colours of the 16 x 16 centre (each pixel named by its nearest colour prototype)
# include a colour the caption names. Chance is the share expected against the reference of a
# random other image, computed exactly as the mean over all other images: a model that ignores
# its input scores as much there (gain 0), whatever colours it favours. The intervals are
# clustered by image (the 10 pairs of one image are not independent). The real test pairs give
# the ceiling (`mmebm/colours.py`; the choice of crop and colours, and of this estimator:
# `results/cub_colours/`).

# %%
if pairs is not None:
    rows = {"real test pairs": real_colour_coherence(pairs, n_colour)}
    rows.update({label[name]: cross_colour_coherence(model, pairs, n_colour, seed) for name, model in models.items()})
    cols = ["image -> caption", "caption -> image"]
    colour_table = ("| | " + " | ".join(f"{c}: share / chance / gain (95 % interval)" for c in cols) + " |\n|---|---|---|\n"
                    + "".join(f"| {who} | " + " | ".join(table_cell(r[c]) for c in cols) + " |\n"
                              for who, r in rows.items()))
    print(colour_table)
    with open(Path(figures_dir) / "cub_caption_chain.md", "a") as f:
        n_pairs = len(pairs) if n_colour is None else min(n_colour, len(pairs))
        f.write(f"\nColour coherence over {n_pairs} test pairs of {len(pairs.images)} images (generation seed {seed}; "
                "chance exact, intervals clustered by image):\n\n" + colour_table)
else:
    print("no CUB images: colour coherence skipped")

# %% [markdown]
# ## What this shows
#
# The poster's claim, that captions decoded from $p_0$ are broken and those from $p_\alpha$ read
# like real descriptions, checked on the yardsticks above (computed from them, not typed). "Higher"
# and "lower" mean the two 95 % intervals do not overlap.

# %%
def compare(a, b, key):
    x, y = measures[a][key], measures[b][key]
    return "higher than" if x.lo > y.hi else "lower than" if x.hi < y.lo else "no different from"


steps = [s for s in measures if s.startswith("EBM model, step")]
start, end, gauss_src = steps[0], steps[-1], "Gaussian model, z ~ p0"
lines = [f"- **{key}**: the EBM model's captions at its last step score {measures[end][key].value:.3f}, "
         f"{compare(end, start, key)} at step 0 ({measures[start][key].value:.3f}) and {compare(end, gauss_src, key)} "
         f"the Gaussian-prior model's ({measures[gauss_src][key].value:.3f}); real test captions "
         f"{measures['real test captions'][key].value:.3f}, random words {measures['random words'][key].value:.3f}."
         for key in ("bigram", "distinct-2", "repeated")]
lines.append("- **Reconstruction** (the caption networks themselves): "
             + ", ".join(f"{name} {acc:.0%} of the words right" for name, acc in recon.items())
             + f", after the `{shown_profile}` profile's training; the claim can only be as clear as the captions are.")
display(Markdown("\n".join(lines)))

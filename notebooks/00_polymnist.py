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
# # 00 · PolyMNIST: the data
#
# PolyMNIST (Sutter et al., ICLR 2021) is the benchmark on which the paper measures joint and
# cross coherence. It has $M = 5$ modalities. Each is MNIST written onto crops of a different
# background image. The five images of a tuple $X = (x^{(1)}, \dots, x^{(5)})$ share **only the
# digit label**: handwriting, crop and background differ. So whatever the shared latent $z$
# learns to carry across modalities is, ideally, the digit.
#
# This notebook builds the data from MNIST and the five background images, explains the
# recipe, shows a grid of tuples, and checks the invariants of the recipe on what it built.
#
# **Writes** `data/polymnist/` and `figures/polymnist_tuples.png`, `figures/polymnist_provenance.png`.
# **Took** 26 s on this project's 2-core CPU machine, fresh clone, 2026-12-07 (`results/timings.md`).

# %% tags=["parameters"]
data_root = None  # raw data (mnist/, polymnist/backgrounds/); None: $MMEBM_DATA
out_dir = "../data/polymnist"  # where the built PolyMNIST goes
figures_dir = "../figures"
seed = 0
limit = None  # None: all of MNIST; an int: the first `limit` images of each split (quick runs)
n_show = 8  # tuples per figure

# %%
import numpy as np
import torch

from mmebm import plots
from mmebm.data import PolyMNIST, data_root as resolve_data_root, ensure_polymnist, load_backgrounds, load_mnist

root = resolve_data_root(data_root)
mnist_dir, backgrounds_dir = root / "mnist", root / "polymnist" / "backgrounds"

# %% [markdown]
# ## The recipe
#
# For modality $m$ take the $m$-th background image $B_m$ (sorted by file name). For each digit
# class $c$ and each modality $m$, draw a permutation $\pi_{c,m}$ of the MNIST images of class
# $c$. Tuple $(i, c)$ is then
#
# $$x^{(m)}_{i,c} = \mathrm{composite}\big(\mathrm{MNIST}[\pi_{c,m}(i)],\ B_m[y:y+28,\ x:x+28]\big),
# \qquad (y, x) \sim \mathcal U\{0..H_m-28\} \times \mathcal U\{0..W_m-28\},$$
#
# where the composite keeps the crop and inverts it ($v \mapsto 255 - v$, all three channels)
# at the digit's pixels, those whose MNIST value is above 128.
#
# Three departures from the reference generator, all deliberate: every random number generator
# is seeded; the permutations of one class avoid sending the same MNIST image to two modalities
# of a tuple (independent permutations do so about once per thousand tuples); the crop corner
# is uniform over all valid positions. The builder records, for every tuple and modality, the
# MNIST index and the crop corner, so every image can be traced and re-derived.
#
# Note on the data at hand: four of the five backgrounds are the original files; modality 1's
# *The Scream* is a different scan of the same painting, so that modality's images differ in
# their pixels from those built from the official archive.

# %% tags=["nbval-ignore-output"]
path = ensure_polymnist(out_dir, mnist_dir, backgrounds_dir, seed=seed, limit=limit, progress=False)
train, test = PolyMNIST.load(path, "train"), PolyMNIST.load(path, "test")
print(f"built or found in {path}")

# %%
print(f"train: {len(train)} tuples, test: {len(test)} tuples, {train.n_modalities} modalities")
print("images per tuple:", tuple(train.images.shape[1:]), train.images.dtype)
print("train tuples per digit:", torch.bincount(train.labels, minlength=10).tolist())

# %% [markdown]
# ## A grid of tuples
#
# Each row is one tuple, each column one modality. Only the digit is shared along a row.

# %%
g = torch.Generator().manual_seed(seed)
rows = torch.randperm(len(test), generator=g)[:n_show]
x, y = test[rows]
fig = plots.image_grid(x, row_labels=[str(int(d)) for d in y], col_labels=[f"m{m}" for m in range(5)],
                       title="PolyMNIST test tuples")
plots.save(fig, f"{figures_dir}/polymnist_tuples.png")

# %% [markdown]
# ## Tracing one sample back to its sources
#
# The provenance saved with the data says which MNIST image and which crop made each sample.

# %%
from mmebm.data import load_polymnist

arrays = load_polymnist(path, "test")
mnist_images, mnist_labels = load_mnist(mnist_dir, "test")
backgrounds, background_files = load_backgrounds(backgrounds_dir)
k = int(rows[0])
print("tuple", k, "label", int(arrays.labels[k]), "file name in m0: "
      f"{arrays.index[k]}.{arrays.labels[k]}.png")
panels = []
for m in range(5):
    yx = arrays.crop_yx[k, m]
    crop = backgrounds[m][yx[0]:yx[0] + 28, yx[1]:yx[1] + 28].transpose(2, 0, 1)
    digit = np.repeat(mnist_images[arrays.mnist_index[k, m]][None], 3, axis=0)
    panels.append([digit, crop, arrays.images[k, m]])
    print(f"m{m}: MNIST #{arrays.mnist_index[k, m]} (label {mnist_labels[arrays.mnist_index[k, m]]}), "
          f"crop at (row {yx[0]}, col {yx[1]}) of {background_files[m].name}")
panels = np.array(panels).transpose(1, 0, 2, 3, 4)  # rows: MNIST, crop, result
fig = plots.image_grid(panels, row_labels=["MNIST", "crop", "sample"], col_labels=[f"m{m}" for m in range(5)])
plots.save(fig, f"{figures_dir}/polymnist_provenance.png")

# %% [markdown]
# ## Invariants of the recipe, checked on what was built
#
# 1. every modality of a tuple shows the tuple's digit (its MNIST source has that label);
# 2. each MNIST image is used exactly once per modality;
# 3. the five images of a tuple come from five different MNIST images;
# 4. every sample re-derives exactly from its recorded MNIST index and crop corner.

# %%
def check(split):
    a = load_polymnist(path, split)
    imgs, labels = load_mnist(mnist_dir, split)
    if limit is not None:
        imgs, labels = imgs[:limit], labels[:limit]
    ok_labels = bool((labels[a.mnist_index] == a.labels[:, None]).all())
    ok_once = all(np.array_equal(np.sort(a.mnist_index[:, m]), np.arange(len(a))) for m in range(5))
    ok_distinct = bool((np.diff(np.sort(a.mnist_index, axis=1), axis=1) != 0).all())
    r = np.arange(28)
    ok_pixels = True
    for m, bg in enumerate(backgrounds):
        yy = a.crop_yx[:, m, 0, None, None] + r[None, :, None]
        xx = a.crop_yx[:, m, 1, None, None] + r[None, None, :]
        crop = bg[yy, xx].transpose(0, 3, 1, 2)
        digit = (imgs[a.mnist_index[:, m]] > 128)[:, None]
        ok_pixels &= bool(np.array_equal(a.images[:, m], np.where(digit, 255 - crop, crop)))
    return ok_labels, ok_once, ok_distinct, ok_pixels


for split in ("train", "test"):
    print(split, dict(zip(["labels agree", "once per modality", "distinct sources", "re-derives"], check(split))))

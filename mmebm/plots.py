"""Figures: image grids of multimodal tuples, caption tables and image-caption grids, saved as PNG and PDF."""

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import torch


def tile(images):
    """[R, C, 3, H, W] images in [0, 1] (tensor or uint8 array) -> one [R*H, C*W, 3] float image."""
    x = torch.as_tensor(images)
    if x.dtype == torch.uint8:
        x = x.float() / 255
    r, c, ch, h, w = x.shape
    return x.permute(0, 3, 1, 4, 2).reshape(r * h, c * w, ch).clamp(0, 1).cpu().numpy()


def image_grid(images, row_labels=None, col_labels=None, title=None, cell=0.6):
    """A figure showing `images` [R, C, 3, H, W] as an R x C grid with optional labels."""
    r, c = images.shape[:2]
    fig, ax = plt.subplots(figsize=(c * cell + 0.8, r * cell + 0.6))
    ax.imshow(tile(images), interpolation="nearest")
    h, w = images.shape[-2:]
    ax.set_xticks([w * (j + 0.5) for j in range(c)] if col_labels is not None else [])
    ax.set_yticks([h * (i + 0.5) for i in range(r)] if row_labels is not None else [])
    if col_labels is not None:
        ax.set_xticklabels(col_labels)
        ax.xaxis.tick_top()
    if row_labels is not None:
        ax.set_yticklabels(row_labels)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def save(fig, path, pdf=True):
    """Save `fig` as `path` (.png) and, if `pdf`, beside it as .pdf; returns the PNG path."""
    path = Path(path).with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    if pdf:
        # Fixed metadata so the same figure gives the same PDF bytes.
        fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight", metadata={"CreationDate": None})
    return path


def side_by_side(panels, col_labels=None, cell=0.45, suptitle=None):
    """Several image grids next to each other: `panels` maps a title to images [R, C, 3, H, W]."""
    n = len(panels)
    r, c = next(iter(panels.values())).shape[:2]
    fig, axes = plt.subplots(1, n, figsize=(n * (c * cell + 0.4), r * cell + 0.8), squeeze=False)
    for ax, (title, images) in zip(axes[0], panels.items()):
        ax.imshow(tile(images), interpolation="nearest")
        w = images.shape[-1]
        ax.set_xticks([w * (j + 0.5) for j in range(c)] if col_labels is not None else [])
        if col_labels is not None:
            ax.set_xticklabels(col_labels, fontsize=7)
        ax.set_yticks([])
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_title(title, fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def joint_figure(models, n=8, seed=0):
    """Joint generations of several models side by side: `models` maps a title to a model;
    rows are draws from the model's prior, columns modalities. Same seed for every model."""
    panels = {}
    for title, model in models.items():
        torch.manual_seed(seed)
        panels[title] = model.sample(n).cpu()
    return side_by_side(panels, col_labels=_modalities(panels))


def cross_figure(models, x, src=0, seed=0):
    """Test tuples x [n, M, 3, H, W], then each model's generation of all modalities from
    modality `src` alone."""
    panels = {"test tuples": x.cpu()}
    for title, model in models.items():
        torch.manual_seed(seed)
        panels[title] = model.cross_generate(x, src).cpu()
    return side_by_side(panels, col_labels=_modalities(panels), suptitle=f"every modality generated from m{src} alone")


def coherence_matrices(matrices):
    """Heatmaps of cross-coherence matrices side by side: `matrices` maps a title to an [M, M]
    array, entry [src, tgt] the accuracy of modality tgt generated from modality src (the
    diagonal is self-reconstruction), each cell annotated with its value."""
    n = len(matrices)
    fig, axes = plt.subplots(1, n, figsize=(n * 2.7 + 0.8, 2.9), squeeze=False)
    for ax, (title, mat) in zip(axes[0], matrices.items()):
        mat = torch.as_tensor(mat, dtype=torch.float64)
        im = ax.imshow(mat.numpy(), vmin=0, vmax=1, cmap="viridis")
        for (i, j), v in zip(torch.cartesian_prod(torch.arange(len(mat)), torch.arange(len(mat))).tolist(),
                             mat.flatten().tolist()):
            ax.text(j, i, f"{v:.2f}".lstrip("0"), ha="center", va="center", fontsize=6,
                    color="white" if v < 0.6 else "black")
        labels = [f"m{m}" for m in range(len(mat))]
        ax.set_xticks(range(len(mat)), labels, fontsize=7)
        ax.set_yticks(range(len(mat)), labels, fontsize=7)
        ax.set_xlabel("generated (target)", fontsize=7)
        if ax is axes[0, 0]:
            ax.set_ylabel("given (source)", fontsize=7)
        ax.set_title(textwrap.fill(title, 30), fontsize=8)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    return fig


def _modalities(panels):
    return [f"m{m}" for m in range(next(iter(panels.values())).shape[1])]


# ---------------------------------------------------------------- CUB: captions and images


def _wrap(text, width):
    return textwrap.fill(text or "(empty)", width)


def text_table(columns, width=26, row_labels=None, suptitle=None, fontsize=7):
    """Captions in a grid: `columns` maps a column title to a list of captions (one per row)."""
    titles = list(columns)
    n_rows = len(columns[titles[0]])
    wrapped = {t: [_wrap(c, width) for c in columns[t]] for t in titles}
    lines = max(w.count("\n") + 1 for col in wrapped.values() for w in col)
    fig, axes = plt.subplots(n_rows, len(titles), squeeze=False,
                             figsize=(len(titles) * width * 0.075 + 0.6, n_rows * (lines * 0.13 + 0.15) + 0.6))
    for j, t in enumerate(titles):
        for i, text in enumerate(wrapped[t]):
            ax = axes[i, j]
            ax.text(0.0, 1.0, text, va="top", ha="left", fontsize=fontsize, family="serif", transform=ax.transAxes)
            ax.set_axis_off()
            if i == 0:
                ax.set_title(t, fontsize=fontsize + 1, loc="left")
            if j == 0 and row_labels is not None:
                ax.text(-0.04, 1.0, row_labels[i], va="top", ha="right", fontsize=fontsize, transform=ax.transAxes)
    if suptitle:
        fig.suptitle(suptitle, fontsize=fontsize + 2)
    fig.tight_layout()
    return fig


def image_text_grid(rows, width=22, cell=1.3, suptitle=None, fontsize=6):
    """Columns of items with images and captions stacked: `rows` is a list of (label, items) where
    items is either images [N, 3, H, W] in [0, 1] or a list of N captions."""
    n = len(rows[0][1])
    heights = [1.0 if torch.is_tensor(items) else 0.9 for _, items in rows]
    fig, axes = plt.subplots(len(rows), n, squeeze=False, figsize=(n * cell + 1.0, sum(heights) * cell + 0.5),
                             gridspec_kw={"height_ratios": heights})
    for i, (label, items) in enumerate(rows):
        for j in range(n):
            ax = axes[i, j]
            if torch.is_tensor(items):
                ax.imshow(items[j].permute(1, 2, 0).clamp(0, 1).cpu().numpy(), interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                ax.text(0.0, 1.0, _wrap(items[j], width), va="top", ha="left", fontsize=fontsize, family="serif",
                        transform=ax.transAxes)
                ax.set_axis_off()
            if j == 0:
                ax.text(-0.08, 0.5, label, va="center", ha="right", fontsize=fontsize + 1, transform=ax.transAxes)
    if suptitle:
        fig.suptitle(suptitle, fontsize=fontsize + 3)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- learning curves


def learning_curves_figure(curves, names=("cross_coherence", "joint_coherence"), chance=None, breaks=None):
    """One panel per metric, one colour per model, one line per seed: `curves` maps a model label
    to a list of report.learning_curve dicts (one per seed). `chance` maps a metric to a
    dashed reference line. `breaks` maps a step to a label: a dotted line there, and the curves
    are not joined across it (e.g. where runs were warm-started and scored by other judges)."""
    cuts = sorted(breaks or {})
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 3.6), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes[0], names):
        for i, (label, runs) in enumerate(curves.items()):
            for j, run in enumerate(runs):
                if name in run:
                    steps, values = run[name]
                    for k, (lo, hi) in enumerate(zip([-1, *cuts], [*cuts, float("inf")])):
                        seg = [(s, v) for s, v in zip(steps, values) if lo < s <= hi]
                        if seg:
                            ax.plot(*zip(*seg), color=colours[i % len(colours)], lw=1.4, alpha=0.85,
                                    label=label if j == 0 and k == 0 else None)
        for step in cuts:
            ax.axvline(step, color="black", ls=":", lw=0.8)
            ax.text(step, 0.98, f" {breaks[step]}", fontsize=6, va="top", rotation=90)
        if chance and name in chance:
            ax.axhline(chance[name], color="grey", ls="--", lw=0.8, label="chance")
        ax.set_xlabel("training step")
        ax.set_ylabel(name.replace("_", " "))
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the EBM prior over the posteriors


@torch.no_grad()
def energy_landscape_figure(model, x, y, n_samples=1000, grid=80, title=None):
    """Where the EBM prior puts its mass, against where the data's posteriors are.

    The unimodal posterior means of test tuples x (all modalities, labelled by their digit y) are
    projected on their first two principal axes; the background is the tilting f_alpha (left:
    low energy = more mass than p0 gives) and the full energy f_alpha - log p0 (right) on that
    plane through the posterior mean; black dots are Langevin samples z ~ p_alpha. If the prior
    closes the holes between digit clusters, the low-energy regions sit on the clusters.
    """
    z = model.encode(x).z.loc.flatten(0, 1)                       # [N*M, D]
    labels = y.repeat_interleave(x.shape[1]).cpu()
    centre = z.mean(0)
    _, _, v = torch.pca_lowrank(z - centre, q=2, center=False)    # [D, 2]
    pc = ((z - centre) @ v).cpu()
    torch.manual_seed(0)
    samples = ((model.prior.sample(n_samples) - centre) @ v).cpu()
    lo = torch.minimum(pc.min(0).values, samples.min(0).values) - 0.5
    hi = torch.maximum(pc.max(0).values, samples.max(0).values) + 0.5
    a, b = torch.meshgrid(torch.linspace(lo[0], hi[0], grid), torch.linspace(lo[1], hi[1], grid), indexing="xy")
    plane = centre + torch.stack([a, b], -1).reshape(-1, 2).to(z) @ v.T
    panels = {"tilting f_alpha(z)": model.prior.f_alpha(plane), "energy f_alpha(z) - log p0(z)": model.prior.energy(plane)}
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), layout="constrained")
    for ax, (name, e) in zip(axes, panels.items()):
        cs = ax.contourf(a, b, e.reshape(grid, grid).cpu(), levels=30, cmap="viridis")
        fig.colorbar(cs, ax=ax, fraction=0.046)
        sc = ax.scatter(pc[:, 0], pc[:, 1], c=labels, cmap="tab10", s=4, alpha=0.6, vmin=-0.5, vmax=9.5)
        ax.scatter(samples[:, 0], samples[:, 1], c="black", s=2, alpha=0.5, label="z ~ p_alpha (Langevin)")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("principal axis 1 of the posterior means")
    axes[0].set_ylabel("principal axis 2")
    fig.colorbar(sc, ax=axes, ticks=range(10), label="digit of the posterior means", location="bottom", shrink=0.5)
    axes[0].legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title)
    return fig


def judged_grid(images, answers, row_labels, title=None, cell=0.75):
    """images [R, C, 3, H, W], one digit a row (row_labels: the true digit), and each judge set's
    answers {name: [R, C]} printed under every image: green where it says the row's digit, red
    where it says another, grey "-" for "no digit" (class 10)."""
    r, c = images.shape[:2]
    names = list(answers)
    fig, axes = plt.subplots(r, c, figsize=(c * cell, r * (cell + 0.12 * len(names))))
    for i in range(r):
        for j in range(c):
            ax = axes[i, j]
            ax.imshow(tile(images[i:i + 1, j:j + 1]), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for k, name in enumerate(names):
                a = int(answers[name][i, j])
                text, colour = ("-", "grey") if a == 10 else (str(a), "green" if str(a) == row_labels[i] else "red")
                ax.text(0.1 + 0.8 * k / max(1, len(names) - 1), -0.08, text, color=colour, fontsize=7,
                        ha="center", va="top", transform=ax.transAxes)
            if j == 0:
                ax.set_ylabel(row_labels[i], rotation=0, labelpad=8)
    fig.suptitle((title or "") + ("\nunder each image: " + ", ".join(names) if names else ""), fontsize=8)
    fig.tight_layout(h_pad=0.9, w_pad=0.1)
    return fig

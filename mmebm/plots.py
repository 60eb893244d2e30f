"""Figures: image grids of multimodal tuples, saved as PNG and PDF."""

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
    return side_by_side(panels, col_labels=_modalities(panels))


def _modalities(panels):
    return [f"m{m}" for m in range(next(iter(panels.values())).shape[1])]

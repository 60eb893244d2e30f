"""Figures: image grids of multimodal tuples, caption tables and image-caption grids, saved as PNG and PDF."""

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from matplotlib.lines import Line2D

from .coherence import NO_DIGIT, joint_agreement, predict


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


def side_by_side(panels, col_labels=None, cell=0.45, suptitle=None, row_notes=None):
    """Several image grids next to each other: `panels` maps a title to images [R, C, 3, H, W].
    `row_notes` maps a panel title to one (text, colour) per row, written right of that row."""
    n = len(panels)
    r, c = next(iter(panels.values())).shape[:2]
    notes_w = 0.75 if row_notes else 0.0  # room for the notes right of each panel
    fig, axes = plt.subplots(1, n, figsize=(n * (c * cell + 0.4 + notes_w), r * cell + 0.8), squeeze=False)
    for ax, (title, images) in zip(axes[0], panels.items()):
        ax.imshow(tile(images), interpolation="nearest")
        h, w = images.shape[-2:]
        ax.set_xticks([w * (j + 0.5) for j in range(c)] if col_labels is not None else [])
        if col_labels is not None:
            ax.set_xticklabels(col_labels, fontsize=7)
        ax.set_yticks([])
        if row_notes and title in row_notes:
            _note_rows(ax, h, row_notes[title])
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_title(_wrap_to(title, c * cell + notes_w, 9), fontsize=9)
    _suptitle(fig, suptitle)
    fig.tight_layout()
    return fig


def _note_rows(ax, h, notes):
    # as right-hand tick labels, so that tight_layout makes room for them
    ax.yaxis.tick_right()
    ax.set_yticks([h * (i + 0.5) for i in range(len(notes))], [t for t, _ in notes], fontsize=7, family="monospace")
    for label, (_, colour) in zip(ax.get_yticklabels(), notes):
        label.set_color(colour)


def _wrap_to(text, inches, fontsize):
    """`text` wrapped, line by line, to about `inches` of width at `fontsize` points."""
    width = max(10, int(inches * 72 / (0.55 * fontsize)))  # a character is about 0.55 em wide
    return "\n".join(textwrap.fill(line, width) for line in str(text).split("\n"))


def _suptitle(fig, text, fontsize=10):
    # wrapped to the figure's width: the notebooks pass judges, profile and budget, which run long
    if text:
        fig.suptitle(_wrap_to(text, fig.get_figwidth(), fontsize), fontsize=fontsize)


GREEN, RED = "tab:green", "tab:red"


def row_verdicts(answers):
    """Per row of judge answers [n, M] (10: "no digit"): (the M answers as text, "-" for no digit;
    green when the row is coherent, all M the same digit, red otherwise)."""
    answers = torch.as_tensor(answers)
    coherent = joint_agreement(answers)
    return [(" ".join("-" if a == NO_DIGIT else str(a) for a in row), GREEN if ok else RED)
            for row, ok in zip(answers.tolist(), coherent.tolist())]


def joint_figure(models, n=8, seed=0, judges=None, suptitle=None):
    """Joint generations of several models side by side: `models` maps a title to a model;
    rows are draws from the model's prior, columns modalities. Same seed for every model.
    With `judges` (Classifiers), each row shows the judges' answer per modality, green where all
    agree on one digit (a coherent sample), and each title the count of coherent rows."""
    panels, notes = {}, {}
    for title, model in models.items():
        torch.manual_seed(seed)
        images = model.sample(n).detach().cpu()
        if judges is not None:
            verdicts = row_verdicts(predict(judges, images))
            title = f"{title}\ncoherent {sum(c == GREEN for _, c in verdicts)} of {len(verdicts)}"
            notes[title] = verdicts
        panels[title] = images
    if judges is not None:
        key = "right of each row: the judges' digit per modality (- no digit); green: all agree"
        suptitle = f"{suptitle}\n{key}" if suptitle else key
    return side_by_side(panels, col_labels=_modalities(panels), suptitle=suptitle, row_notes=notes or None)


def cross_figure(models, x, src=0, seed=0, suptitle=None):
    """Test tuples x [n, M, 3, H, W], then each model's generation of all modalities from
    modality `src` alone; `suptitle` is appended to the title line."""
    panels = {"test tuples": x.cpu()}
    for title, model in models.items():
        torch.manual_seed(seed)
        panels[title] = model.cross_generate(x, src).detach().cpu()
    line = f"every modality generated from m{src} alone" + (f"; {suptitle}" if suptitle else "")
    return side_by_side(panels, col_labels=_modalities(panels), suptitle=line)


def chain_figure(chains, steps, col_labels=None, suptitle=None, per_row=2, cell=0.5):
    """Langevin chains decoded along the way: `chains` [C, S, M, 3, H, W], `steps` the S step
    numbers. One panel per chain, rows its steps, columns the modalities; `per_row` panels a
    figure row, each image `cell` inches, so that at page width a digit stays readable."""
    c, s, m = chains.shape[:3]
    h, w = chains.shape[-2:]
    rows = -(-c // per_row)
    cols = min(c, per_row)
    # 0.75 in beside a panel for the "step k" labels, 0.45 in above it for its title and column labels
    fig, axes = plt.subplots(rows, cols, squeeze=False,
                             figsize=(cols * (m * cell + 0.75), rows * (s * cell + 0.45) + (0.4 if suptitle else 0)))
    col_labels = col_labels if col_labels is not None else [f"m{j}" for j in range(m)]
    for i, ax in enumerate(axes.flat):
        if i >= c:
            fig.delaxes(ax)  # an unfilled slot in the last row
            continue
        ax.imshow(tile(chains[i].detach().cpu()), interpolation="nearest")
        ax.set_xticks([w * (j + 0.5) for j in range(m)], col_labels, fontsize=7)
        ax.xaxis.tick_top()
        ax.set_yticks([h * (k + 0.5) for k in range(s)], [f"step {k}" for k in steps], fontsize=7)
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_title(f"chain {i}", fontsize=9)
    _suptitle(fig, suptitle)
    fig.tight_layout()
    return fig


def coherence_matrices(matrices, suptitle=None):
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
    _suptitle(fig, suptitle)
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


SEED_STYLES = ("-", "--", ":", "-.")  # line style of seed index j: SEED_STYLES[j % 4]


def learning_curves_figure(curves, names=("cross_coherence", "joint_coherence"), chance=None, breaks=None,
                           title=None):
    """One panel per metric, one colour per model, one line style per seed: `curves` maps a model
    label to {seed: report.learning_curve dict}, or to a list of them (then "seed j" in the legend
    is the j-th). `chance` maps a metric to a grey reference line. `breaks` maps a step to a
    label: a dotted line there, and the curves are not joined across it (e.g. where runs were
    warm-started and scored by other judges). Each panel's y axis runs from 0 to a little above
    its data; one legend below the panels; `title` above them."""
    cuts = sorted(breaks or {})
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.2), squeeze=False, layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    # {seed: curve} per model, or a list (seed j: the j-th); a seed keeps its line style in every model
    curves = {label: dict(runs) if isinstance(runs, dict) else dict(enumerate(runs)) for label, runs in curves.items()}
    seeds = sorted({k for runs in curves.values() for k in runs})
    drew_chance = False
    for ax, name in zip(axes[0], names):
        peak = 0.0
        for i, runs in enumerate(curves.values()):
            for j, run in runs.items():
                if name in run:
                    peak = max([peak, *run[name][1]])
                    _plot_segments(ax, *run[name], cuts, color=colours[i % len(colours)],
                                   ls=SEED_STYLES[j % len(SEED_STYLES)], lw=1.4, alpha=0.85)
        for step in cuts:
            ax.axvline(step, color="black", ls=":", lw=0.8)
            # at the top of the panel whatever its y range
            ax.text(step, 0.98, f" {breaks[step]}", fontsize=6, va="top", rotation=90, transform=ax.get_xaxis_transform())
        if chance and name in chance:
            ax.axhline(chance[name], **CHANCE_STYLE)
            peak = max(peak, chance[name])
            drew_chance = True
        ax.set_xlabel("training step")
        ax.set_ylabel(name.replace("_", " "))
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:,.0f}")  # 3,000 rather than 3000 or 1e4
        ax.set_ylim(0, _y_top(peak))
        ax.grid(alpha=0.3)
    handles = _curve_legend_handles(list(curves), colours, seeds, drew_chance)
    if handles:
        fig.legend(handles=handles, loc="outside lower center", fontsize=7, frameon=False,
                   ncol=min(len(handles), max(1, int(fig.get_figwidth() // 2.2))))
    _suptitle(fig, title)
    return fig


# thick and pale, so it is told apart from every seed's line style
CHANCE_STYLE = dict(color="grey", lw=3, alpha=0.35)


def _plot_segments(ax, steps, values, cuts, **style):
    # one line between consecutive breaks: a curve is not joined across a break
    for lo, hi in zip([-1, *cuts], [*cuts, float("inf")]):
        seg = [(s, v) for s, v in zip(steps, values) if lo < s <= hi]
        if seg:
            ax.plot(*zip(*seg), **style)


def _y_top(peak):
    """Upper y limit for a panel whose largest value (data or chance) is `peak`: a little above
    it, at most 1; 1 for an empty panel."""
    return min(1.0, peak * 1.12) if peak > 0 else 1.0


def _curve_legend_handles(labels, colours, seeds, chance):
    handles = [Line2D([], [], color=colours[i % len(colours)], lw=1.8, label=label) for i, label in enumerate(labels)]
    handles += [Line2D([], [], color="black", lw=1.2, ls=SEED_STYLES[j % len(SEED_STYLES)], label=f"seed {j}")
                for j in seeds]
    if chance:
        handles.append(Line2D([], [], **CHANCE_STYLE, label="chance"))
    return handles


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
    v = torch.linalg.svd(z - centre, full_matrices=False).Vh[:2].T  # [D, 2]; exact PCA (pca_lowrank draws from the RNG)
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
    where it says another, grey "-" for "no digit" (class 10). One axes for the whole grid (100
    small axes took seconds to draw)."""
    r, c = images.shape[:2]
    h, w = images.shape[-2:]
    names = list(answers)
    gap = round(h * 0.12 * max(1, len(names)) / 1.5) + 2  # room under each row for its answers
    canvas = torch.ones(r * (h + gap), c * (w + 2), 3)
    for i in range(r):
        row = torch.as_tensor(tile(images[i:i + 1].cpu()))  # [H, C*W, 3]
        for j in range(c):
            canvas[i * (h + gap):i * (h + gap) + h, j * (w + 2):j * (w + 2) + w] = row[:, j * w:(j + 1) * w]
    fig, ax = plt.subplots(figsize=(c * cell, c * cell * canvas.shape[0] / canvas.shape[1] + 0.6))
    ax.imshow(canvas.numpy(), interpolation="nearest")
    for i in range(r):
        for j in range(c):
            for k, name in enumerate(names):
                a = int(answers[name][i, j])
                text, colour = ("-", "grey") if a == 10 else (str(a), "green" if str(a) == row_labels[i] else "red")
                x = j * (w + 2) + w * (0.1 + 0.8 * k / max(1, len(names) - 1))
                ax.text(x, i * (h + gap) + h + 1, text, color=colour, fontsize=7, ha="center", va="top")
    ax.set_xticks([])
    ax.set_yticks([i * (h + gap) + h / 2 for i in range(r)], row_labels)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.suptitle((title or "") + ("\nunder each image: " + ", ".join(names) if names else ""), fontsize=8)
    fig.tight_layout()
    return fig

"""The figures explain themselves: judges' answers on the joint grid, readable chains, one legend."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from mmebm import plots  # noqa: E402
from mmebm.coherence import predict  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def suptitle(fig):
    return fig._suptitle.get_text().replace("\n", " ") if fig._suptitle else ""


class DigitReader(nn.Module):
    """Judges that read digit round(10 * pixel [0, 0, 0]) of each image (10: no digit)."""

    n_modalities = 5

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))  # predict() asks for the device

    def forward(self, x):
        digit = (x[:, :, 0, 0, 0] * 10).round().long()
        return nn.functional.one_hot(digit, 11).float() + self.dummy


ANSWERS = [[3, 3, 3, 3, 3], [3, 3, 5, 3, 3], [10, 10, 10, 10, 10], [7, 7, 7, 7, 7]]


class FixedModel:
    """sample(n): images whose judge answers are ANSWERS (first n rows)."""

    def sample(self, n):
        x = torch.full((n, 5, 3, 28, 28), 0.5)
        x[:, :, 0, 0, 0] = torch.tensor(ANSWERS[:n], dtype=torch.float) / 10
        return x


def test_row_verdicts_colour_and_text():
    verdicts = plots.row_verdicts(torch.tensor(ANSWERS[:3]))
    assert [c for _, c in verdicts] == [plots.GREEN, plots.RED, plots.RED]
    assert [t for t, _ in verdicts] == ["3 3 3 3 3", "3 3 5 3 3", "- - - - -"]


def test_fake_judges_read_the_fixed_images():
    assert predict(DigitReader(), FixedModel().sample(4)).tolist() == ANSWERS


def test_joint_figure_counts_coherent_rows_and_colours_them():
    fig = plots.joint_figure({"A": FixedModel(), "B": FixedModel()}, n=4, judges=DigitReader(),
                             suptitle="profile cpu, 3,000 steps; judges: fake")
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 2
    for ax in axes:
        assert "coherent 2 of 4" in ax.get_title()  # rows 0 and 3
        labels = ax.get_yticklabels()
        assert [t.get_text() for t in labels] == ["3 3 3 3 3", "3 3 5 3 3", "- - - - -", "7 7 7 7 7"]
        assert [t.get_color() for t in labels] == [plots.GREEN, plots.RED, plots.RED, plots.GREEN]
    assert "profile cpu, 3,000 steps; judges: fake" in suptitle(fig)


def test_joint_figure_without_judges_as_before():
    fig = plots.joint_figure({"A": FixedModel()}, n=4)
    (ax,) = fig.axes
    assert ax.get_title() == "A" and not ax.get_yticklabels() and fig._suptitle is None


def chains(c=3, s=4, m=5):
    return torch.rand(c, s, m, 3, 28, 28)


def test_chain_figure_panels_titles_and_step_labels():
    fig = plots.chain_figure(chains(), [0, 10, 50, 200], suptitle="EBM prior, profile cpu")
    assert len(fig.axes) == 3 and all(ax.images for ax in fig.axes)  # the fourth slot removed
    assert [ax.get_title() for ax in fig.axes] == ["chain 0", "chain 1", "chain 2"]
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_yticklabels()] == ["step 0", "step 10", "step 50", "step 200"]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["m0", "m1", "m2", "m3", "m4"]
    assert "EBM prior, profile cpu" in suptitle(fig)


def test_chain_figure_digit_readable_at_page_width():
    fig = plots.chain_figure(chains(c=4, s=6), list(range(6)))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    page = 7 / (fig.get_tightbbox(renderer).width)  # saved with bbox_inches="tight", scaled to 7 in
    for ax in fig.axes:
        digit = ax.get_window_extent().width / fig.dpi / 5  # the image fills the axes' width
        assert digit * page >= 0.45


def curves():
    run = lambda a, b: {"cross_coherence": ([100, 200, 300], [0.2, a, 0.5]),  # noqa: E731
                        "joint_coherence": ([100, 200, 300], [0.01, b, 0.12])}
    return {"MMVAE": [run(0.3, 0.05), run(0.35, 0.06)], "Ours": [run(0.4, 0.08), run(0.45, 0.1)]}


def test_learning_curves_one_shared_legend():
    fig = plots.learning_curves_figure(curves(), chance={"cross_coherence": 0.1}, title="judges: blur-robust")
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert sorted(texts) == sorted(["MMVAE", "Ours", "seed 0", "seed 1", "chance"])
    assert "judges: blur-robust" in suptitle(fig)


def test_learning_curves_y_range_fits_the_data():
    fig = plots.learning_curves_figure(curves(), chance={"cross_coherence": 0.1})
    cross, joint = fig.axes
    assert joint.get_ylim()[0] == 0 and 0.12 < joint.get_ylim()[1] < 0.2
    assert 0.5 < cross.get_ylim()[1] <= 1


def test_learning_curves_seeds_differ_in_line_style():
    fig = plots.learning_curves_figure(curves())
    ax = fig.axes[0]
    colour = ax.lines[0].get_color()
    same_model = [line for line in ax.lines if line.get_color() == colour]
    assert len(same_model) == 2
    assert same_model[0].get_linestyle() != same_model[1].get_linestyle()


def test_learning_curves_breaks_split_lines():
    fig = plots.learning_curves_figure(curves(), breaks={200: "warm start"})
    ax = fig.axes[0]
    # 2 models x 2 seeds x 2 segments, plus the break's vertical line
    assert len(ax.lines) == 9


def test_coherence_matrices_and_cross_figure_suptitles():
    fig = plots.coherence_matrices({"A": torch.eye(5)}, suptitle="judges: protocol")
    assert "judges: protocol" in suptitle(fig)

    class Copy:
        def cross_generate(self, x, src):
            return x[:, src:src + 1].expand_as(x)

    x = torch.rand(3, 5, 3, 28, 28)
    fig = plots.cross_figure({"copy": Copy()}, x, src=2, suptitle="profile cpu")
    assert suptitle(fig) == "every modality generated from m2 alone; profile cpu"
    assert plots.cross_figure({"copy": Copy()}, x, src=2)._suptitle.get_text() == "every modality generated from m2 alone"


def test_learning_curves_legend_names_the_real_seeds():
    """Curves given as {seed: curve}: a model shipped with seeds 1 and 2 is labelled so, each seed one style."""
    curve = {"cross_coherence": ([100, 200], [0.2, 0.4])}
    fig = plots.learning_curves_figure({"A": {1: curve, 2: curve}, "B": {2: curve}})
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["A", "B", "seed 1", "seed 2"]
    styles = {line.get_linestyle() for line in fig.axes[0].get_lines()}
    assert styles == {plots.SEED_STYLES[1], plots.SEED_STYLES[2]}
    plt.close(fig)


def test_judged_grid_writes_every_answer_in_its_colour():
    """Row digit 3: an answer 3 is green, 5 red, no digit a grey "-"; one text per image and judge set."""
    answers = {"main": torch.tensor([[3, 5]]), "check": torch.tensor([[10, 3]])}
    fig = plots.judged_grid(torch.rand(1, 2, 3, 28, 28), answers, ["3"], title="t")
    texts = [(t.get_text(), t.get_color()) for t in fig.axes[0].texts]
    assert sorted(texts) == sorted([("3", "green"), ("5", "red"), ("-", "grey"), ("3", "green")])
    assert "under each image: main, check" in fig._suptitle.get_text()
    plt.close(fig)

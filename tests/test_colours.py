"""Colour coherence against inputs whose colours are known."""

import pytest
import torch

from mmebm.colours import PALETTE, caption_colours, colour_coherence, image_colours, image_references
from mmebm.data import Vocab
from mmebm.data.cub_text import EOS, PAD


def test_caption_colours_fold_synonyms_and_stop_at_eos():
    vocab = Vocab(["<exc>", "<pad>", "<eos>", "a", "gray", "bird", "red", "tan", "blue"])
    ix = vocab.index
    ids = torch.tensor([[ix["a"], ix["gray"], ix["bird"], EOS, ix["blue"]],
                        [ix["red"], ix["tan"], EOS, PAD, PAD],
                        [ix["a"], ix["bird"], EOS, PAD, PAD]])
    assert caption_colours(ids, vocab) == [{"grey"}, {"red", "brown"}, set()]


def test_image_colours_read_the_centre_and_rank_by_pixels():
    img = torch.zeros(1, 3, 64, 64)
    img[0, :, 24:40, 24:40] = torch.tensor(PALETTE["yellow"])[:, None, None]  # the 16 x 16 centre
    img[0, :, 24:28, 24:40] = torch.tensor(PALETTE["blue"])[:, None, None]    # a quarter of it blue
    img[0, :, :4] = torch.tensor(PALETTE["red"])[:, None, None]               # outside the crop: unseen
    assert image_colours(img) == [{"yellow", "blue"}]
    assert image_colours(img, top=1) == [{"yellow"}]


def test_chance_is_the_mean_over_every_partner_of_another_image():
    g = torch.Generator().manual_seed(0)
    names = list(PALETTE)
    draw = lambda: {names[c] for c in torch.randint(len(names), (int(torch.randint(3, (1,), generator=g)),), generator=g)}
    named, reference = [draw() for _ in range(60)], [draw() for _ in range(60)]
    groups = torch.randint(12, (60,), generator=g)
    out = colour_coherence(named, reference, groups, chunk=7)  # chunks that do not divide the items
    expected = [sum(bool(named[i] & reference[j]) for j in range(60) if groups[j] != groups[i])
                / int((groups != groups[i]).sum()) for i in range(60)]
    assert out["chance"].value == pytest.approx(sum(expected) / 60)
    assert out["share"].value == pytest.approx(sum(bool(a & r) for a, r in zip(named, reference)) / 60)
    assert out["gain"].value == pytest.approx(out["share"].value - out["chance"].value)
    with pytest.raises(ValueError, match="two images"):
        colour_coherence(named, reference, torch.zeros(60))


def test_colour_coherence_of_a_copy_and_of_a_model_that_ignores_its_input():
    colours = [{"red"}, {"blue"}, {"yellow"}, {"green"}] * 25
    groups = torch.arange(100)
    perfect = colour_coherence(colours, colours, groups)
    # chance: another item's colour is the same for 24 of the 99 others
    assert perfect["share"].value == 1.0 and perfect["chance"].value == pytest.approx(24 / 99)
    assert perfect["gain"].value == pytest.approx(1 - 24 / 99) and perfect["gain"].lo > 0.5
    # always naming red: hits exactly where the reference is red, own or other, so no gain at all
    constant = colour_coherence([{"red"}] * 100, colours, groups)
    assert constant["share"].value == 0.25
    assert constant["gain"].value == pytest.approx(0.0, abs=1e-12)
    assert constant["gain"].lo < 0 < constant["gain"].hi
    with pytest.raises(ValueError, match="length"):
        colour_coherence(colours[:3], colours, groups)


def synthetic_pairs():
    """Four images, each a bird of one colour in the centre, with two captions naming it."""
    from mmebm.data import CUBImageCaptions

    words = ["<exc>", "<pad>", "<eos>", "a", "bird", "red", "blue", "yellow", "green"]
    vocab = Vocab(words)
    colours = ["red", "blue", "yellow", "green"]
    images = torch.zeros(4, 3, 64, 64, dtype=torch.uint8)
    for m, c in enumerate(colours):
        images[m, :, 20:44, 20:44] = (torch.tensor(PALETTE[c]) * 255).round().to(torch.uint8)[:, None, None]
    captions = torch.full((8, 32), PAD)
    captions[:, :4] = torch.tensor([[vocab.index["a"], vocab.index[colours[i // 2]], vocab.index["bird"], EOS]
                                    for i in range(8)])
    return CUBImageCaptions(images, captions, torch.arange(8) // 2, vocab), colours


def test_image_references_hold_the_colours_of_the_image_captions():
    pairs, colours = synthetic_pairs()
    ix = pairs.vocab.index
    pairs.captions[1, 1] = ix["blue"]  # image 0's second caption says blue, not red
    refs, others = image_references(pairs), image_references(pairs, leave_own_out=True)
    assert refs[:3] == [{"red", "blue"}, {"red", "blue"}, {"blue"}]
    assert others[:2] == [{"blue"}, {"red"}]  # each caption's reference is the other caption of its image


def test_real_colour_coherence_of_pairs_that_agree():
    from mmebm.colours import real_colour_coherence

    pairs, _ = synthetic_pairs()
    real = real_colour_coherence(pairs)
    assert real["image -> caption"]["share"].value == 1.0 and real["image -> caption"]["chance"].value == 0.0
    assert real["caption -> image"]["share"].value == 1.0 and real["caption -> image"]["chance"].value == 0.0


def test_cross_colour_coherence_of_an_oracle():
    """A 'model' whose cross generation returns the source's true partner scores as the real data does."""
    from types import SimpleNamespace

    from mmebm.colours import cross_colour_coherence

    pairs, _ = synthetic_pairs()
    V = len(pairs.vocab)

    def cross_generate(x, src):
        image, caption = x
        return image, torch.nn.functional.one_hot(caption, V).float()

    oracle = SimpleNamespace(cfg=SimpleNamespace(modalities=["image64", "text"]), cross_generate=cross_generate,
                             parameters=lambda: iter([torch.zeros(1)]))
    out = cross_colour_coherence(oracle, pairs)
    for direction in ("image -> caption", "caption -> image"):
        assert out[direction]["share"].value == 1.0 and out[direction]["chance"].value == 0.0

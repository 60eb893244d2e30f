"""The judges' known-answer shifts (mmebm.shifts): the recipe taken apart and put together again,
the blur and softness measurements against inputs whose answer is known, the training
augmentation."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from mmebm.classifiers import Classifiers, TrainConfig, shift_batch, train
from mmebm.coherence import NO_DIGIT
from mmebm.data import PolyMNIST, load_backgrounds, load_polymnist
from mmebm.shifts import (EMPTY, SHIFTS, ShiftParams, background, blend, compose, flatten, fog,
                          gaussian_blur, ink, load_split_with_masks, measure_softness, partners, score_blends,
                          score_shifts, shifted)


@pytest.fixture(scope="module")
def test_split(polymnist_dir, data_root):
    return load_split_with_masks(polymnist_dir, data_root / "mnist", "test", limit=300)


def test_the_background_comes_back_exactly(test_split, polymnist_dir, data_root):
    """background(x, mask) is the recipe's crop of the background image, pixel for pixel, and
    compose puts the digit back as the recipe did."""
    images, labels, masks = test_split
    arrays = load_polymnist(polymnist_dir, "test")
    keep = torch.linspace(0, len(arrays) - 1, 300).round().long().numpy()
    assert np.array_equal(arrays.labels[keep], labels.numpy())  # the same tuples as PolyMNIST.load(limit=300)
    backgrounds, _ = load_backgrounds(data_root / "polymnist" / "backgrounds")
    x = images.float() / 255
    bg = (background(x, masks) * 255).round().to(torch.uint8)
    for k in (0, 150, 299):
        for m, img in enumerate(backgrounds):
            y0, x0 = arrays.crop_yx[keep[k], m]
            crop = torch.from_numpy(img[y0:y0 + 28, x0:x0 + 28].transpose(2, 0, 1).copy())
            assert torch.equal(bg[k, m], crop), (k, m)
    assert ((compose(background(x, masks), masks) - x).abs().max() * 255) < 1e-3
    assert masks.float().mean() > 0.05  # the masks hold digits


def test_shifts_change_only_what_they_say(test_split):
    images, _, masks = test_split
    x = images[:20].float() / 255
    mk = masks[:20]
    p = ShiftParams(bg_sigma=3.0, digit_sigma=1.0, contrast=0.5)
    assert torch.allclose(shifted(x, mk, "clean", p), x, atol=1e-5)
    bg = background(x, mk)
    flat = shifted(x, mk, "flat_bg", p, digit=False)
    assert flat.flatten(-2).std(-1).max() < 1e-6  # one colour per image, the background's mean
    assert torch.allclose(flat[..., 0, 0], bg.mean((-2, -1)), atol=1e-5)
    low = shifted(x, mk, "low_contrast", p)
    inside = mk.unsqueeze(-3).expand_as(x)
    assert torch.allclose(low[~inside], bg[~inside])  # the background is untouched
    assert torch.allclose(low[inside], (bg + 0.5 * (1 - 2 * bg))[inside])  # halfway to the inverted colour
    assert torch.allclose(ink(low, bg, mk), 0.5 * ink(x, bg, mk), atol=1e-5)
    for name in SHIFTS:
        for digit in (True, False):
            out = shifted(x, mk, name, p, digit)
            assert out.shape == x.shape and out.min() >= -1e-6 and out.max() <= 1 + 1e-6, name


def test_fog_is_the_digit_averaged_over_other_crops(test_split):
    images, _, masks = test_split
    x, mk = images[:20].float() / 255, masks[:20]
    bg = background(x, mk)
    same = compose(bg[:1].expand_as(bg), mk)  # every tuple on the first tuple's crops: fog changes nothing
    assert torch.allclose(fog(same, mk, k=4), same, atol=1e-5)
    f = fog(x, mk, k=3)  # tuple 5's digit on the crops of tuples 4, 3 and 2, averaged
    assert torch.allclose(f[5], sum(compose(bg[5 - j], mk[5]) for j in (1, 2, 3)) / 3, atol=1e-5)
    empty = shifted(x, mk, "fog", ShiftParams(digit_sigma=0.0), digit=False)  # the mean of 16 other crops
    assert torch.allclose(empty[0], bg[-16:].mean(0), atol=1e-5)
    assert empty.flatten(-2).std(-1).mean() < 0.5 * bg.flatten(-2).std(-1).mean()  # smoother than any crop
    with pytest.raises(ValueError, match="pass more than 16 tuples"):
        fog(x[:10], mk[:10])


def test_gaussian_blur_keeps_constants_and_has_the_asked_width():
    flat = torch.full((2, 3, 28, 28), 0.3)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat)
    delta = torch.zeros(1, 1, 28, 28)
    delta[..., 14, 14] = 1.0
    out = gaussian_blur(delta, 1.5)[0, 0]
    assert abs(out.sum().item() - 1) < 1e-5
    r = torch.arange(28.0) - 14
    var = (out.sum(0) * r**2).sum().item()  # the spread along one axis
    assert abs(var - 1.5**2) / 1.5**2 < 0.02


def test_softness_is_measured_back(test_split):
    """Real digits made soft by a known blur and contrast: measure_softness reads them back."""
    images, _, masks = (t[::3] for t in test_split)
    x = images.float() / 255
    known = gaussian_blur(compose(flatten(background(x, masks)), masks, 0.5), 1.5)
    got = measure_softness(known, images, masks)
    assert got["sigma"] == pytest.approx([1.5] * 5, abs=0.02)
    assert got["contrast"] == pytest.approx([0.5] * 5, abs=0.02)
    # on smoothed (not flat) backgrounds, as generations have: the blur within 0.15 pixel
    known = gaussian_blur(compose(gaussian_blur(background(x, masks), 3.0), masks, 0.7), 1.0)
    assert measure_softness(known, images, masks)["sigma"] == pytest.approx([1.0] * 5, abs=0.15)


class InkJudge(nn.Module):
    """Answers "no digit" where an image is nearly one colour, else 0: a judge whose answers on
    each shift are known."""

    n_modalities = 5

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        ink = x.flatten(-2).std(-1).amax(-1) > 0.02  # [B, M]: spread within a channel
        logits = torch.zeros(*x.shape[:2], 11)
        logits[..., 0] = ink.float()
        logits[..., NO_DIGIT] = (~ink).float()
        return logits


def test_score_shifts_scores_each_shift_against_its_answer(test_split):
    images, labels, masks = (t[::2] for t in test_split)
    rows = score_shifts({"ink": InkJudge()}, images, labels, masks)
    assert len(rows) == (len(SHIFTS) + len(EMPTY)) * 5
    by = {(r["shift"], r["modality"]): r for r in rows}
    zero = (labels == 0).double().mean().item()
    for m in range(5):
        assert by["flat_bg_empty", m]["accuracy"] == 1.0  # one colour: "no digit", the right answer
        assert by["flat_bg_empty", m]["n"] == len(labels)
        # a digit on a flat background shows unless that colour is near mid-grey, whose inverse
        # is itself; those are left out, and the ink judge sees every digit that is left
        assert by["flat_bg", m]["no_digit"] == 0.0 and by["clean", m]["n"] >= 0.98 * len(labels)
        assert by["flat_bg", m]["n"] >= 0.8 * len(labels)
        assert abs(by["flat_bg", m]["accuracy"] - zero) < 0.06


def test_partners_differ_in_digit_and_are_seeded():
    labels = torch.arange(10).repeat_interleave(50)
    a = partners(labels, torch.Generator().manual_seed(0))
    assert (labels[a] != labels).all()
    assert torch.equal(a, partners(labels, torch.Generator().manual_seed(0)))
    assert not torch.equal(a, partners(labels, torch.Generator().manual_seed(1)))
    for d in range(10):  # drawn among all the other digits
        assert len(labels[a][labels == d].unique()) == 9, d


def test_blend_is_the_mean_of_the_two_images(test_split):
    """Weight 1 is the blurred_digit shift, weight 0 the partner's digit on the same background,
    and every weight between is their weighted mean (compose is affine in the mask, the blur linear)."""
    images, labels, masks = (t[:40] for t in test_split)
    x = images.float() / 255
    other = partners(labels, torch.Generator().manual_seed(0))
    own, theirs = blend(x, masks, masks[other], 1.0), blend(x, masks, masks[other], 0.0)
    assert torch.allclose(own, shifted(x, masks, "blurred_digit"), atol=1e-6)
    assert torch.allclose(theirs, gaussian_blur(compose(gaussian_blur(background(x, masks), 3.0), masks[other]), 1.0),
                          atol=1e-6)
    for w in (0.5, 0.7):
        assert torch.allclose(blend(x, masks, masks[other], w), w * own + (1 - w) * theirs, atol=1e-6)


class ConstJudge(InkJudge):
    """Answers `digit` to every image."""

    def __init__(self, digit):
        super().__init__()
        self.digit = digit

    def forward(self, x):
        logits = torch.zeros(*x.shape[:2], 11)
        logits[..., self.digit] = 1.0
        return logits


def test_score_blends_counts_own_other_and_third_answers(test_split):
    images, labels, masks = (t[::3] for t in test_split)
    rows = score_blends({"zero": ConstJudge(0), "also_zero": ConstJudge(0), "one": ConstJudge(1)}, images, labels, masks,
                        weights=(0.5, 0.8))
    other = labels[partners(labels, torch.Generator().manual_seed(0))]  # the seed score_blends draws with
    by = {(r["judges"], r["weight"], r["modality"]): r for r in rows}
    assert len(rows) == (3 + 3) * 2 * 5  # three sets and their three pairs, two weights, five modalities
    for m in range(5):
        r = by["zero", 0.5, m]
        assert 0.8 * len(labels) <= r["n"] <= len(labels)  # digits on a near-mid-grey crop are left out
        # "0" is the own digit of the 0s and the partner's digit of the tuples paired with a 0
        assert abs(r["own"] - (labels == 0).double().mean().item()) < 0.05
        assert abs(r["other"] - (other == 0).double().mean().item()) < 0.05
        assert r["no_digit"] == 0.0 and abs(r["own"] + r["other"] + r["third"] - 1) < 1e-3
        assert r["either"] == pytest.approx(r["own"] + r["other"], abs=1e-3)  # never both: partners differ
        assert by["zero=also_zero", 0.8, m]["agree"] == 1.0 and by["zero=one", 0.8, m]["agree"] == 0.0


class RecordingJudge(ConstJudge):
    """Answers 0 and keeps every batch of images it was shown."""

    def __init__(self):
        super().__init__(0)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.clone())
        return super().forward(x)


def test_score_blends_shows_the_judges_the_blends_of_its_partners(test_split):
    images, labels, masks = (t[:60] for t in test_split)
    judge = RecordingJudge()
    score_blends({"rec": judge}, images, labels, masks, weights=(0.5, 0.8), batch_size=1000)
    partner = partners(labels, torch.Generator().manual_seed(0))
    x = images.float() / 255
    seen = torch.cat(judge.seen)  # weight 0.5 for all tuples, then 0.8 (one batch of tuples)
    expected = torch.cat([blend(x, masks, masks[partner], w) for w in (0.5, 0.8)])
    assert torch.allclose(seen, expected, atol=1e-6)


def test_shift_batch_shifts_a_known_share_and_is_seeded():
    x = torch.rand(200, 5, 3, 28, 28)
    mask = torch.rand(200, 5, 28, 28) > 0.8
    out = shift_batch(x, mask, 4.0, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(out, shift_batch(x, mask, 4.0, 0.3, torch.Generator().manual_seed(0)))
    outside = (~mask).unsqueeze(2).expand_as(out).float()  # the background's pixels
    mean = (out * outside).sum((-2, -1), keepdim=True) / outside.sum((-2, -1), keepdim=True)
    flat = (((out - mean) * outside).abs().flatten(2).amax(-1) < 1e-5).float().mean().item()
    unchanged = ((out - x).abs().flatten(2).amax(-1) < 1e-6).float().mean().item()
    assert 0.19 < flat < 0.31  # a quarter of the backgrounds flattened
    assert 0.19 < unchanged < 0.31  # background kept (1/2) and full contrast (1/2)


def test_judges_train_with_shifts_and_a_second_architecture(polymnist_dir, data_root):
    images, labels, masks = load_split_with_masks(polymnist_dir, data_root / "mnist", "train", limit=256)
    data = PolyMNIST(images, labels)
    cfg = TrainConfig(epochs=1, batch_size=64, shifts=True, arch="resnet", progress=False)
    with pytest.raises(ValueError, match="masks"):
        train(data, cfg=cfg)
    clf = train(data, cfg=cfg, masks=masks)
    again = train(data, cfg=cfg, masks=masks)
    assert isinstance(clf, Classifiers) and clf.arch == "resnet" and clf(images[:2].float() / 255).shape == (2, 5, 10)
    for a, b in zip(clf.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)

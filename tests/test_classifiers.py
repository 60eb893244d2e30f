"""The per-modality digit classifiers: architecture, determinism, save/load, CLI, errors.

None of these need an accurate classifier, so each trains for a handful of steps."""

import json

import pytest
import torch
import torch.nn as nn

from mmebm.classifiers import (ARCHS, INFO_FILE, Classifiers, ConvBNClassifier, DigitClassifier, TrainConfig, blur,
                               blur_half, main, train, weight_file)
from mmebm.data import PolyMNIST

TINY = TrainConfig(epochs=1, batch_size=64, seed=0, progress=False)


@pytest.fixture(scope="module")
def tiny_data(polymnist_dir):
    return PolyMNIST.load(polymnist_dir, "train", limit=320), PolyMNIST.load(polymnist_dir, "test", limit=500)


@pytest.fixture(scope="module")
def tiny(tiny_data):
    return train(*tiny_data, cfg=TINY)


def test_architecture_is_the_reference_one():
    layers = list(DigitClassifier().net)
    kinds = [type(l) for l in layers]
    assert kinds == [nn.Conv2d, nn.Dropout2d, nn.ReLU, nn.Conv2d, nn.Dropout2d, nn.ReLU, nn.Flatten,
                     nn.Linear, nn.Dropout, nn.ReLU, nn.Linear]
    c1, c2, f1, f2 = layers[0], layers[3], layers[7], layers[10]
    assert (c1.in_channels, c1.out_channels, c1.kernel_size, c1.stride, c1.padding) == (3, 10, (4, 4), (2, 2), (1, 1))
    assert (c2.in_channels, c2.out_channels, c2.kernel_size, c2.stride, c2.padding) == (10, 20, (4, 4), (2, 2), (1, 1))
    assert (f1.in_features, f1.out_features, f2.in_features, f2.out_features) == (980, 128, 128, 10)
    assert all(l.p == 0.5 for l in layers if isinstance(l, (nn.Dropout, nn.Dropout2d)))
    clf = Classifiers(5, "mmvaeplus")
    assert clf(torch.rand(3, 5, 3, 28, 28)).shape == (3, 5, 10)
    with pytest.raises(ValueError, match="expected x"):
        clf(torch.rand(3, 4, 3, 28, 28))


def test_default_arch_is_the_deeper_convbn():
    clf = Classifiers(5)
    assert clf.arch == "convbn" and all(isinstance(n, ConvBNClassifier) for n in clf.nets)
    convs = [l for l in clf.nets[0].net if isinstance(l, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (3, 16, (3, 3)), (16, 16, (3, 3)), (16, 32, (3, 3)), (32, 32, (3, 3))]
    assert clf(torch.rand(3, 5, 3, 28, 28)).shape == (3, 5, 10)
    with pytest.raises(ValueError, match="unknown classifier arch 'vgg'"):
        Classifiers(5, "vgg")


def test_same_seed_same_weights(tiny_data, tiny):
    again = train(tiny_data[0], cfg=TINY)
    for a, b in zip(tiny.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    other = train(tiny_data[0], cfg=TrainConfig(epochs=1, batch_size=64, seed=1, progress=False))
    assert not torch.equal(tiny.nets[0].net[0].weight, other.nets[0].net[0].weight)


def test_save_load_round_trip(tmp_path, tiny_data, tiny):
    tiny.save(tmp_path, {"note": "tiny"})
    for m in range(5):  # each file is a plain state dict: the safe loader takes it
        sd = torch.load(tmp_path / weight_file(m), weights_only=True)
        assert set(sd) == set(ARCHS[TINY.arch]().state_dict())
    loaded = Classifiers.load(tmp_path, n_modalities=5)
    assert not loaded.training
    x, _ = tiny_data[1][torch.arange(200)]
    tiny.eval()
    with torch.no_grad():
        assert torch.equal(tiny(x), loaded(x))
    assert loaded.test_accuracy == tiny.test_accuracy and len(loaded.test_accuracy) == 5
    assert loaded.blurred_test_accuracy == tiny.blurred_test_accuracy and set(tiny.blurred_test_accuracy) == {1.0, 2.0}
    info = json.loads((tmp_path / INFO_FILE).read_text())
    assert info["n_modalities"] == 5 and info["note"] == "tiny" and info["arch"] == TINY.arch


def test_files_without_arch_load_as_mmvaeplus(tmp_path):
    """classifiers.json written before there was a choice of network: MMVAE+'s."""
    old = Classifiers(5, "mmvaeplus")
    old.save(tmp_path)
    info = json.loads((tmp_path / INFO_FILE).read_text())
    del info["arch"]
    (tmp_path / INFO_FILE).write_text(json.dumps(info))
    loaded = Classifiers.load(tmp_path)
    assert loaded.arch == "mmvaeplus"
    x = torch.rand(2, 5, 3, 28, 28)
    with torch.no_grad():
        assert torch.equal(old.eval()(x), loaded(x))


def test_missing_or_mismatched_classifiers_say_how_to_fix(tmp_path, tiny):
    with pytest.raises(FileNotFoundError, match="python -m mmebm.classifiers"):
        Classifiers.load(tmp_path / "nowhere")
    tiny.save(tmp_path)
    with pytest.raises(ValueError, match=r"trained for 5 modalities.*python -m mmebm.classifiers"):
        Classifiers.load(tmp_path, n_modalities=3)
    (tmp_path / weight_file(2)).unlink()
    with pytest.raises(FileNotFoundError, match=r"classifier_m2.pt missing.*python -m mmebm.classifiers"):
        Classifiers.load(tmp_path)


def test_cli_trains_saves_and_reports(tmp_path, polymnist_dir, capsys):
    out = tmp_path / "clf"
    main(["--data", str(polymnist_dir), "--out", str(out), "--epochs", "1", "--limit", "256", "--seed", "3",
          "--arch", "mmvaeplus"])
    printed = capsys.readouterr().out
    assert printed.count("test accuracy") == 5 and printed.count("sigma 2.0") == 5
    info = json.loads((out / INFO_FILE).read_text())
    assert len(info["test_accuracy"]) == 5 and info["n_test"] == 256 and info["n_train"] == 256
    assert set(info["blurred_test_accuracy"]) == {"1.0", "2.0"}
    assert info["train_config"]["seed"] == 3 and info["arch"] == "mmvaeplus"
    assert Classifiers.load(out).test_accuracy == info["test_accuracy"]


def test_blur_keeps_constants_and_smooths_edges():
    x = torch.rand(4, 5, 3, 28, 28)
    assert blur(x, 0) is x
    flat = torch.full((2, 5, 3, 28, 28), 0.3)
    assert torch.allclose(blur(flat, 1.5), flat)  # the kernel sums to 1 (reflected borders)
    stripes = torch.zeros(1, 1, 3, 28, 28)
    stripes[..., ::2] = 1.0  # vertical stripes of one pixel: a blur of sigma 2 all but averages them out
    out = blur(stripes, 2.0)
    assert out.shape == stripes.shape and abs(out.mean().item() - 0.5) < 0.02 and out.std().item() < 0.05


def test_blur_half_blurs_a_random_half_of_the_tuples():
    x = torch.rand(400, 5, 3, 28, 28)
    assert blur_half(x, 0.0, torch.Generator().manual_seed(0)) is x
    out = blur_half(x, 2.0, torch.Generator().manual_seed(0))
    changed = (out != x).flatten(1).any(1)
    unchanged = (out == x).flatten(1).all(1)
    assert torch.equal(changed, ~unchanged)  # whole tuples, all modalities alike
    assert 150 < changed.sum().item() < 250
    again = blur_half(x, 2.0, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_no_digit_class_learns_background_crops(tiny_data, data_root, polymnist_dir):
    """no_digit=True: an eleventh output, trained on background crops labelled NO_DIGIT, which the
    judges then tell from digits; a few steps suffice for the crops, which are all alike."""
    from mmebm.classifiers import NO_DIGIT, no_digit_batch
    from mmebm.data import check_backgrounds

    backgrounds = check_backgrounds(data_root / "polymnist" / "backgrounds", polymnist_dir)
    with pytest.raises(ValueError, match="background"):
        train(*tiny_data, cfg=TrainConfig(epochs=1, batch_size=64, no_digit=True, progress=False))
    clf = train(*tiny_data, cfg=TrainConfig(epochs=3, batch_size=64, no_digit=True, blur=0, progress=False),
                backgrounds=backgrounds)
    assert clf.n_classes == 11 and clf(torch.rand(2, 5, 3, 28, 28)).shape == (2, 5, 11)
    assert min(clf.no_digit_accuracy) > 0.9
    x, y = no_digit_batch(backgrounds, 8, __import__("numpy").random.default_rng(5), "cpu")
    assert (y == NO_DIGIT).all() and x.shape == (8, 5, 3, 28, 28) and 0 <= x.min() and x.max() <= 1


def test_no_digit_judges_round_trip(tmp_path):
    clf = Classifiers(5, "convbn", n_classes=11)
    clf.test_accuracy, clf.no_digit_accuracy = [0.5] * 5, [1.0] * 5
    clf.save(tmp_path)
    back = Classifiers.load(tmp_path)
    assert back.n_classes == 11 and back.no_digit_accuracy == [1.0] * 5
    with pytest.raises(ValueError, match="n_classes"):
        Classifiers(5, n_classes=12)

"""Coherence metrics against known answers.

Real answers use classifiers trained once per session on a subset of PolyMNIST for a few
seconds (accuracy around 0.8-0.95; the checks below hold for any accuracy). The arithmetic of the
cross-coherence matrix is checked exactly with fake classifiers that read the digit off a pixel.
"""

import pytest
import torch
import torch.nn as nn

from mmebm.classifiers import TrainConfig, train
from mmebm.coherence import (CrossCoherence, cross_coherence, joint_agreement, joint_coherence,
                             judged_cross_generations, model_cross_coherence, model_joint_coherence, predict)
from mmebm.data import PolyMNIST

M = 5


@pytest.fixture(scope="session")
def test_data(polymnist_dir):
    return PolyMNIST.load(polymnist_dir, "test")


@pytest.fixture(scope="session")
def trained(polymnist_dir):
    """Classifiers trained on 24,000 tuples for one epoch: seconds, not minutes. MMVAE+'s small
    network, without blur augmentation: these tests check the metrics, which any fair classifier
    does (convbn is 20x dearer)."""
    data = PolyMNIST.load(polymnist_dir, "train", limit=24_000)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: one thread is as quick, and far quicker on a busy CPU
    try:
        return train(data, cfg=TrainConfig(arch="mmvaeplus", epochs=1, batch_size=128, lr=3e-3, blur=0.0, seed=0,
                                           progress=False))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def truth(trained, test_data):
    """All test tuples as float images, their labels, and each classifier's predictions, computed
    here modality by modality, independently of mmebm.coherence."""
    x, y = test_data[torch.arange(len(test_data))]
    trained.eval()
    with torch.no_grad():
        pred = torch.stack([trained.nets[m](x[:, m]).argmax(-1) for m in range(M)], 1)
    return x, y, pred


def as_cross(x):
    """Real tuples as cross generations: gen[src, tgt] = x[:, tgt] for every source."""
    return x.transpose(0, 1).unsqueeze(0).expand(M, -1, -1, -1, -1, -1)


def test_true_tuples_give_the_classifier_accuracy(trained, truth):
    x, y, pred = truth
    acc = (pred == y[:, None]).double().mean(0)  # [M]
    cc = cross_coherence(as_cross(x), y, trained, batch_size=1500)
    # every source row holds the accuracies of the target classifiers; a mix-up of source and
    # target classifier, or the diagonal in the mean, would move these off
    for src in range(M):
        assert torch.allclose(cc.matrix[src], acc, atol=2e-4), (src, cc.matrix[src], acc)
    assert cc.mean == pytest.approx(acc.mean().item(), abs=2e-4)
    assert cc.n == len(y)


def test_shuffled_labels_give_chance(trained, truth):
    x, y, _ = truth
    g = torch.Generator().manual_seed(1)
    cc = cross_coherence(as_cross(x), y[torch.randperm(len(y), generator=g)], trained)
    # expected sum_k P(pred=k) P(label=k), 0.100 +- 0.001 for near-balanced classes; sampling
    # sd of one cell over 10,000 tuples is 0.003, so 0.02 leaves a wide margin yet catches any
    # use of the predictions' agreement in place of the labels
    assert abs(cc.mean - 0.1) < 0.02, cc.mean
    assert (cc.matrix - 0.1).abs().max() < 0.03


def test_joint_coherence_of_real_tuples_matches_independent_errors(trained, truth):
    """The M images of a test tuple share only their digit: different MNIST images, independent
    crops of different backgrounds. So, given the label, the M classifiers err independently and

        P(all agree) = E_y[ sum_k prod_m P(pred_m = k | y) ],

    which we estimate from each classifier's own confusion matrix (its marginals only; the joint
    is never used). Tolerance 0.02: the sampling sd of a fraction over 10,000 tuples is <= 0.005,
    the confusion estimates add less; 'all agree' rules that count pairs or majorities instead
    move the value by 0.05 or more at these accuracies."""
    x, y, pred = truth
    conf = torch.zeros(M, 10, 10, dtype=torch.float64)  # conf[m, y, k] = P(pred_m = k | y)
    for m in range(M):
        conf[m].index_put_((y, pred[:, m]), torch.ones(len(y), dtype=torch.float64), accumulate=True)
    conf /= conf.sum(-1, keepdim=True)
    expected = conf.prod(0).sum(-1)[y].mean().item()
    acc = (pred == y[:, None]).double().mean(0)

    jc = joint_coherence(x, trained, batch_size=1500)
    assert jc == pytest.approx(expected, abs=0.02), (jc, expected, acc.prod().item())
    # bounds that hold whatever the dependence: all correct needs at most sum of error rates to fail,
    # and agreement needs the worst classifier right or everyone wrong
    assert 1 - (1 - acc).sum().item() - 1e-9 <= jc <= acc.min().item() + (1 - acc).min().item() + 1e-9
    # and it is exactly the fraction of tuples whose M predictions agree
    assert jc == pytest.approx(joint_agreement(pred).double().mean().item(), abs=2e-4)


def test_joint_coherence_of_unpaired_images_is_near_zero(trained, truth):
    # shuffle every modality on its own: the digits of a "tuple" are then independent, and all 5
    # agree with probability sum_k prod_m P(pred_m = k) ~ 1e-4
    x, _, _ = truth
    g = torch.Generator().manual_seed(2)
    mixed = torch.stack([x[torch.randperm(len(x), generator=g), m] for m in range(M)], 1)
    assert joint_coherence(mixed, trained) < 0.005


def test_metrics_use_eval_mode_and_restore_it(trained, truth):
    x, y, _ = truth
    x, y = x[:2000], y[:2000]
    trained.train()  # dropout on: two passes would differ if the metrics did not switch to eval
    try:
        p1, p2 = predict(trained, x), predict(trained, x)
        assert torch.equal(p1, p2)
        assert joint_coherence(x, trained) == joint_coherence(x, trained)
        assert torch.equal(cross_coherence(as_cross(x), y, trained).matrix,
                           cross_coherence(as_cross(x), y, trained).matrix)
        assert trained.training and all(m.training for m in trained.modules())
        # sanity: in train mode the raw classifiers are indeed stochastic, so the check above can fail
        with torch.no_grad():
            assert not torch.equal(trained(x[:200]), trained(x[:200]))
    finally:
        trained.eval()


def test_uint8_images_are_scaled(trained, test_data, truth):
    x, _, pred = truth
    assert torch.equal(predict(trained, test_data.images[:1000]), predict(trained, x[:1000]))


# --- exact arithmetic with fake classifiers ------------------------------------------------------


class PixelClassifiers(nn.Module):
    """Reads the digit as round(10 * pixel[0, 0, 0]) of each image: a classifier with known output."""

    n_modalities = M

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))  # so the metrics can find a device

    def forward(self, x):
        digit = (x[:, :, 0, 0, 0] * 10).round().long().clamp(0, 9)
        return nn.functional.one_hot(digit, 10).float()


def images_of(digits):
    """[..] digits -> [.., 3, 28, 28] images that PixelClassifiers reads back."""
    return (digits.float() / 10)[..., None, None, None].expand(*digits.shape, 3, 28, 28).clone()


def test_cross_matrix_arithmetic():
    n = 100
    y = torch.arange(n) % 10
    # gen[src, tgt] correct on the first k(src, tgt) tuples, wrong on the rest
    k = torch.tensor([[(7 * s + 3 * t) % 11 * 9 for t in range(M)] for s in range(M)])
    digits = torch.empty(M, M, n, dtype=torch.long)
    for s in range(M):
        for t in range(M):
            digits[s, t] = torch.where(torch.arange(n) < k[s, t], y, (y + 1) % 10)
    cc = cross_coherence(images_of(digits), y, PixelClassifiers(), batch_size=7)
    matrix = k.double() / n
    assert torch.allclose(cc.matrix, matrix)
    off = ~torch.eye(M, dtype=torch.bool)
    per_target = torch.stack([matrix[off[:, t], t].mean() for t in range(M)])  # 4 sources each
    assert torch.allclose(cc.per_target, per_target)
    assert cc.mean == pytest.approx(per_target.mean().item())
    assert cc.mean == pytest.approx(matrix[off].mean().item())  # equal counts: same as the 20-pair mean
    # the diagonal (self-reconstruction) does not count
    digits[torch.arange(M), torch.arange(M)] = (y + 1) % 10
    assert cross_coherence(images_of(digits), y, PixelClassifiers()).mean == pytest.approx(cc.mean)


def test_joint_arithmetic():
    digits = torch.tensor([[3] * 5, [3, 3, 3, 3, 4], [0] * 5, [1, 2, 3, 4, 5]])
    assert joint_coherence(images_of(digits), PixelClassifiers(), batch_size=3) == 0.5
    assert joint_agreement(digits).tolist() == [True, False, True, False]


def test_wrong_shapes_are_refused():
    clf = PixelClassifiers()
    with pytest.raises(ValueError, match="expected gen"):
        cross_coherence(torch.zeros(M, 3, 2, 3, 28, 28), torch.zeros(2, dtype=torch.long), clf)
    with pytest.raises(ValueError, match="expected images"):
        joint_coherence(torch.zeros(2, 4, 3, 28, 28), clf)


# --- model-level helpers ---------------------------------------------------------------------------


class RealDataModel:
    """A CoherenceModel that "generates" real data: cross_generate returns the input tuple, sample
    returns test tuples in order. Its sample needs autograd, as Langevin sampling does."""

    def __init__(self, x):
        self.x, self.pos, self.calls = x, 0, []

    def sample(self, n):
        z = torch.zeros(1, requires_grad=True)
        (grad,) = torch.autograd.grad((z * 2).sum(), z)  # fails under torch.no_grad
        out = self.x[self.pos : self.pos + n] + 0 * grad.sum()
        self.pos += n
        return out

    def cross_generate(self, x, src):
        self.calls.append(src)
        return x


def test_model_helpers_match_the_tensor_metrics(trained, test_data, truth):
    x, y, pred = truth
    small = PolyMNIST(test_data.images[:3000], test_data.labels[:3000])
    model = RealDataModel(x[:3000])
    cc = model_cross_coherence(model, small, trained, batch_size=1000, progress=False)
    assert isinstance(cc, CrossCoherence) and cc.n == 3000
    assert sorted(set(model.calls)) == list(range(M))
    acc = (pred[:3000] == y[:3000, None]).double().mean(0)
    assert torch.allclose(cc.matrix, acc.expand(M, M), atol=1e-3)

    jc, p = model_joint_coherence(model, trained, n=2500, batch_size=1000, progress=False)
    assert p.shape == (2500, M)
    assert torch.equal(p, pred[:2500])
    assert jc == joint_agreement(pred[:2500]).double().mean().item()


def test_model_helper_refuses_mismatched_data(trained):
    data = PolyMNIST(torch.zeros(4, 3, 3, 28, 28, dtype=torch.uint8), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="modalities"):
        model_cross_coherence(RealDataModel(None), data, trained, progress=False)



def test_wilson_interval_known_values():
    from mmebm.report import mean_sd, wilson_interval

    # Newcombe (1998), Stat. Med. 17:857, table I: 15/148 -> (0.0624, 0.1605), 0/10 -> (0, 0.2775)
    lo, hi = wilson_interval(15, 148)
    assert abs(lo - 0.0624) < 5e-5 and abs(hi - 0.1605) < 5e-5
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and abs(hi - 0.2775) < 5e-4
    lo, hi = wilson_interval(10, 10)
    assert abs(lo - 0.7225) < 5e-4 and abs(hi - 1.0) < 1e-12
    mean, sd = mean_sd([0.5, 0.7, 0.6])
    assert abs(mean - 0.6) < 1e-12 and abs(sd - 0.1) < 1e-12


def test_best_source_is_the_row_with_the_highest_off_diagonal_mean():
    from mmebm.report import best_source

    # row 0 has the largest diagonal (self-reconstruction), which must not count; row 2 wins
    a = [[0.9, 0.1, 0.1], [0.2, 0.5, 0.3], [0.4, 0.4, 0.1]]
    assert best_source([a]) == 2
    # averaged over matrices: row 1 wins the mean although row 2 wins the first matrix
    b = [[0.9, 0.1, 0.1], [0.9, 0.5, 0.9], [0.1, 0.1, 0.1]]
    assert best_source([a, b]) == 1
    assert best_source(iter([a, b])) == 1  # a generator, as the notebooks pass


def test_median_seed():
    from mmebm.report import median_seed

    assert median_seed({0: 0.30, 1: 0.55, 2: 0.45}) == 2
    assert median_seed({0: 0.30, 1: 0.55, 2: 0.45, 3: 0.50}) == 2  # even count: the lower middle
    assert median_seed({4: 0.4}) == 4
    assert median_seed({0: 0.4, 1: 0.4, 2: 0.4}) == 1  # ties by seed


def test_agreeing_on_no_digit_is_not_coherent():
    """Judges with an eleventh class: five "no digit" answers (class 10) are not a coherent sample."""
    pred = torch.tensor([[10] * 5, [7] * 5, [10, 10, 10, 10, 7]])
    assert joint_agreement(pred).tolist() == [False, True, False]


class SelfWrongModel(nn.Module):
    """cross_generate_all that draws each tuple's own digit in every target, except from the target
    itself (its reconstruction), where it draws the next digit: images PixelClassifiers reads back."""

    def cross_generate_all(self, x):
        digit = (x[:, 0, 0, 0, 0] * 10).round().long()
        right, wrong = images_of(digit), images_of((digit + 1) % 10)
        return torch.stack([torch.stack([wrong if t == s else right for t in range(M)], 1) for s in range(M)])


def test_judged_cross_generations_rows_are_digits_from_other_sources():
    labels = torch.arange(100) % 10
    data = PolyMNIST((images_of(labels)[:, None].expand(-1, M, -1, -1, -1) * 255).round().to(torch.uint8), labels)
    images, answers = judged_cross_generations(SelfWrongModel(), data, {"pixel": PixelClassifiers()}, per_digit=3)
    assert images.shape == (M, 10, 3, 3, 28, 28) and answers["pixel"].shape == (M, 10, 3)
    # every answer is its row's digit: never the target's own reconstruction, always another source
    assert torch.equal(answers["pixel"], torch.arange(10)[None, :, None].expand(M, 10, 3))

"""The prior hole's columns (issue #27): the aggregate-posterior sampler, the share of the hole
closed with its interval, evaluation by two judge sets, and the refitted EBM prior."""

import json
from types import SimpleNamespace

import pytest
import torch

from mmebm.classifiers import Classifiers
from mmebm.config import ConfigError, load_config
from mmebm.data import PolyMNIST
from mmebm.evaluate import EVAL_VERSION, aggregate_posterior_sample, evaluate
from mmebm.refit import RefitConfig, ensure_refit, refit_run
from mmebm.report import hole_closed
from mmebm.runs import ensure_evaluated
from mmebm.train import load_checkpoint, load_run, save_checkpoint, train

TINY = ["model.net=conv", "model.z_dim=8", "model.w_dim=4", "model.langevin_steps=5", "data.limit=128",
        "data.test_limit=100", "train.batch_size=32", "train.max_steps=3", "train.eval_every=0", "train.device=cpu"]


class Coded:
    """A model whose expert m encodes tuple i to z = (label of i, m) exactly: which tuple and which
    expert produced a sample can be read off it."""

    objective = SimpleNamespace(single_samples=lambda qz: qz)

    def parameters(self):
        return iter([torch.zeros(())])  # where the model lives: the CPU

    def encode(self, x):
        B, M = x.shape[:2]
        tuple_id = x[:, 0, 0, 0, 0] * 255  # the tuple's index, written into its first pixel
        return SimpleNamespace(z=torch.stack([tuple_id[:, None].expand(B, M), torch.arange(M).expand(B, M).float()], -1))


def test_aggregate_posterior_draws_tuples_and_experts_uniformly():
    n_tuples, M, n = 40, 5, 40_000
    images = torch.zeros(n_tuples, M, 3, 28, 28, dtype=torch.uint8)
    images[:, 0, 0, 0, 0] = torch.arange(n_tuples, dtype=torch.uint8)
    data = PolyMNIST(images, torch.zeros(n_tuples, dtype=torch.long))
    torch.manual_seed(0)
    z = aggregate_posterior_sample(Coded(), data, n, batch_size=999)
    tuples, experts = torch.bincount(z[:, 0].round().long(), minlength=n_tuples), torch.bincount(z[:, 1].long())
    # each of 40 tuples and 5 experts equally likely: counts within 5 binomial sds of n/40 and n/5
    assert len(tuples) == n_tuples and (tuples - n / n_tuples).abs().max() < 5 * (n / n_tuples) ** 0.5
    assert len(experts) == M and (experts - n / M).abs().max() < 5 * (n / M) ** 0.5
    # expert and tuple are drawn independently: all 200 pairs occur
    assert len(set(map(tuple, z.round().long().tolist()))) == n_tuples * M


def test_hole_closed_is_the_ratio_with_an_interval_that_narrows_with_n():
    share, lo, hi = hole_closed(500, 1250, 5500, 10_000)
    assert share == pytest.approx(0.15) and lo < 0.15 < hi
    _, lo4, hi4 = hole_closed(50, 125, 550, 1000)
    assert hi4 - lo4 > 2 * (hi - lo)  # 10x fewer samples: about 3x wider
    assert hole_closed(500, 500, 5500, 10_000)[0] == 0 and hole_closed(500, 5500, 5500, 10_000)[0] == 1
    assert hole_closed(50, 80, 100, 10_000) == (None, None, None)  # a hole of 0.005: nothing to close


@pytest.fixture(scope="module")
def ebm_run(polymnist_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    train(load_config("polymnist_mmvae_ebm", "cpu", [f"data.root={polymnist_dir}", *TINY]), root / "run", progress=False)
    for name, n_classes in (("classifiers", 10), ("classifiers_protocol", 11)):
        judges = Classifiers(5, n_classes=n_classes)
        judges.test_accuracy = [0.5] * 5
        judges.save(root / name)
    return root


def test_two_judge_sets_score_the_same_generations(ebm_run):
    root = ebm_run
    m = evaluate(root / "run", root / "classifiers", n_joint=60, device="cpu", progress=False,
                 judges=[root / "classifiers_protocol"])
    assert m["version"] == EVAL_VERSION and set(m["judges"]) == {"classifiers", "classifiers_protocol"}
    main = m["judges"]["classifiers"]
    assert set(main["joint"]) == {"prior", "p0", "aggregate"} and main["n_classes"] == 10
    assert m["joint_coherence"] == main["joint"]["prior"]["coherence"] and m["cross_coherence"] == main["cross_coherence"]
    assert m["joint_coherence_p0"] == main["joint"]["p0"]["coherence"]
    for b in m["judges"].values():
        for col in b["joint"].values():
            assert col["n"] == 60 and sum(col["coherent_digit_histogram"]) == col["n_coherent"]
            assert sum(col["modality0_answers"]) == 60
    # the main judges' numbers do not depend on which other judges score beside them
    alone = evaluate(root / "run", root / "classifiers", n_joint=60, device="cpu", progress=False)
    assert alone["judges"]["classifiers"] == main and list(alone["judges"]) == ["classifiers"]
    with pytest.raises(ValueError, match="distinct names"):
        evaluate(root / "run", root / "classifiers", 10, "cpu", progress=False,
                 judges=[root / "a" / "classifiers_protocol", root / "b" / "classifiers_protocol"])


def test_ensure_evaluated_redoes_metrics_of_an_older_evaluation_or_other_judges(ebm_run):
    root = ebm_run
    args = (root / "run", root / "classifiers", 40, "cpu")
    ensure_evaluated(*args, judges=[root / "classifiers_protocol"])
    path = root / "run" / "metrics.json"
    stamp = path.stat().st_mtime_ns
    assert ensure_evaluated(*args, judges=[root / "classifiers_protocol"]) and path.stat().st_mtime_ns == stamp
    assert "classifiers_protocol" not in ensure_evaluated(*args)["judges"]  # fewer judges: redone
    m = json.loads(path.read_text())
    m.pop("version")  # an evaluation from before the hole's columns
    path.write_text(json.dumps(m))
    assert ensure_evaluated(*args)["version"] == EVAL_VERSION


def test_refit_changes_f_alpha_alone_and_is_evaluated_not_resumed(ebm_run, polymnist_dir):
    root = ebm_run
    cfg = RefitConfig(steps=4, n_train=64, batch_size=8)
    out = refit_run(root / "run", cfg=cfg, device="cpu")
    assert out == root / "run-refit"
    before, _ = load_run(root / "run")
    after, acfg = load_run(out)
    changed = {k for k, v in after.state_dict().items() if not torch.equal(v, before.state_dict()[k])}
    assert changed and all(k.startswith("prior.f_alpha.") for k in changed), changed
    assert acfg.model.ebm_penalty == 0.1
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["refit"]["steps"] == 4 and state["refit"]["lr"] == acfg.model.ebm_lr and "opt_ebm" not in state
    stamp = (out / "checkpoint.pt").stat().st_mtime_ns
    assert ensure_refit(root / "run", cfg, "cpu") == out and (out / "checkpoint.pt").stat().st_mtime_ns == stamp
    # same seed, same refit
    again = refit_run(root / "run", root / "again", cfg, "cpu")
    assert all(torch.equal(v, load_run(again)[0].state_dict()[k]) for k, v in after.state_dict().items())
    # other source weights (the same step count): refitted again, and its old evaluation dropped
    (out / "metrics.json").write_text("{}")
    src = load_checkpoint(root / "run" / "checkpoint.pt")
    save_checkpoint(root / "run" / "checkpoint.pt", {**src, "model": {k: v + 1e-3 if k.startswith("enc") else v
                                                                       for k, v in src["model"].items()}})
    ensure_refit(root / "run", cfg, "cpu")
    assert (out / "checkpoint.pt").stat().st_mtime_ns != stamp and not (out / "metrics.json").exists()
    with pytest.raises(ConfigError, match="refitted"):
        train(load_config("polymnist_mmvae_ebm", "cpu", [f"data.root={polymnist_dir}", *TINY, "train.max_steps=5",
                                                         "model.ebm_penalty=0.1"]), out, resume=True, progress=False)
    with pytest.raises(ValueError, match="already a refitted run"):
        refit_run(out, root / "twice", cfg, "cpu")
    with pytest.raises(FloatingPointError, match="lower --lr"):
        refit_run(root / "run", root / "diverged", RefitConfig(steps=50, n_train=64, batch_size=8, lr=1e30, penalty=0.0),
                  "cpu")

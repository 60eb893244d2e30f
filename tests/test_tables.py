"""The tables of 03_results (mmebm.tables) from synthetic evaluated runs whose numbers are known."""

import json

import pytest
import torch

from mmebm import tables
from mmebm.runs import INDEX_FILE, REFIT, index_file

N = 1000  # joint samples per source


def column(coherence, digit=3):
    k = round(coherence * N)
    hist = [0] * 10
    hist[digit] = k
    return {"coherence": k / N, "n": N, "n_coherent": k, "coherent_digit_histogram": hist,
            "modality0_answers": [0] * 10 + [N // 10]}


def block(joint, cross, p0=None, aggregate=0.5, per_target=None):
    joint_cols = {"prior": column(joint), "aggregate": column(aggregate)}
    if p0 is not None:
        joint_cols["p0"] = column(p0)
    return {"cross_coherence": cross, "cross_coherence_per_target": per_target or [cross] * 5, "joint": joint_cols}


def write_run(root, config, profile, seed, joint, cross, p0=None, check_gap=(0.0,) * 5, step=3000, refit_s=None):
    """A run folder with a checkpoint (its manifest says it was shipped) and metrics.json."""
    d = root / f"{config}-{profile}-s{seed}"
    d.mkdir(parents=True)
    state = {"shipped": {"train_wall_s": 600.0, "machine": {"processor": "test CPU"}}}
    if refit_s is not None:
        state["refit"] = {"seconds": refit_s}
    torch.save(state, d / "checkpoint.pt")
    judges = {"judges": block(joint, cross, p0),
              "judges_check": block(joint, cross, p0, per_target=[cross + g for g in check_gap]),
              "classifiers_protocol": block(joint / 10, cross / 2, None if p0 is None else p0 / 10)}
    metrics = {"step": step, "n_test": 100, "n_joint": N, "evaluated": "shipped", "cross_coherence": cross,
               "config": {"train": {"batch_size": 64}, "model": {"net": "conv", "conv_leak": 0.2}}, "judges": judges}
    (d / "metrics.json").write_text(json.dumps(metrics))
    return {"config": config, "seed": seed, "run": str(d)}


POSTER = {  # config: (joint, cross, p0) for seed 0; seed 1 adds 0.01 to the joint coherence
    "polymnist_mmvae": (0.05, 0.70, None), "polymnist_mmvae_ebm": (0.15, 0.72, 0.04),
    "polymnist_mmvaeplus": (0.02, 0.60, None), "polymnist_mmvaeplus_ebm": (0.021, 0.61, 0.015)}


@pytest.fixture
def runs_dir(tmp_path):
    entries = [write_run(tmp_path, c, "cpu", k, j + 0.01 * k, x, p0, check_gap=(0.08, 0, 0, 0, -0.02))
               for c, (j, x, p0) in POSTER.items() for k in (0, 1)]
    entries.append(write_run(tmp_path, "polymnist_mopoe", "cpu", 0, 0.01, 0.65))  # first by cross, last by joint
    entries.append(write_run(tmp_path / "refit", "polymnist_mmvae_ebm" + REFIT, "cpu", 0, 0.2, 0.72, 0.04,
                             refit_s=90.0))
    (tmp_path / INDEX_FILE).write_text(json.dumps({"profile": "cpu", "runs": entries}))
    gpu = [write_run(tmp_path / "gpu", "polymnist_mmvae", "gpu", 0, 0.06, 0.75, step=9370)]
    (tmp_path / index_file("gpu")).write_text(json.dumps({"profile": "gpu", "runs": gpu}))
    return tmp_path


def test_load_profiles_reads_every_profile_and_refuses_others(runs_dir):
    groups = tables.load_profiles(runs_dir, "cpu")
    assert list(groups) == ["cpu", "gpu"]
    assert groups["cpu"].seeds["polymnist_mmvae"] == [0, 1] and groups["gpu"].seeds == {"polymnist_mmvae": [0]}
    assert groups["cpu"].sources["polymnist_mmvae", 0][0] == "shipped"
    with pytest.raises(FileNotFoundError, match="profile='gpu'"):
        tables.load_profiles(runs_dir, "gpu")


def test_load_profiles_names_an_unevaluated_run(runs_dir):
    (runs_dir / "polymnist_mmvae-cpu-s1" / "metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match="polymnist_mmvae-cpu-s1"):
        tables.load_profiles(runs_dir, "cpu")


def test_coherence_rows_main_judges_check_and_protocol(runs_dir):
    rows, per_run, summary = tables.coherence_rows(tables.load_profiles(runs_dir, "cpu"))
    r = rows["polymnist_mmvae_ebm", "cpu"]
    # seeds 0.15 and 0.16: mean 0.155, sd 0.00707
    assert r["joint (ours)"] == "0.155 ± 0.007" and r["cross (ours)"] == "0.720 ± 0.000"
    assert r["joint, protocol judges"] == "0.015 ± 0.001" and r["cross, protocol judges"] == "0.360 ± 0.000"
    assert r["check judges"] == "m0 +0.080"  # m4's -0.02 is within 0.05
    assert r["epochs"] == "3.2" and r["train min per run"] == "10" and r["refit min, this machine"] == ""
    assert rows["polymnist_mmvae_ebm" + REFIT, "cpu"]["refit min, this machine"] == "1.5"
    assert rows["polymnist_mmvae", "gpu"]["steps"] == "9370" and rows["polymnist_mmvae", "gpu"]["seeds"] == 1
    # the rows: this profile's models in the poster's order, then the other profile's
    assert [k for k in rows][:3] == [("polymnist_mmvae", "cpu"), ("polymnist_mmvae_ebm", "cpu"),
                                     ("polymnist_mmvae_ebm" + REFIT, "cpu")]
    assert list(rows)[-1] == ("polymnist_mmvae", "gpu")
    main = next(s for s in summary if s["model"] == "MMVAE" and s["profile"] == "cpu" and s["judges"] == "main"
                and s["metric"] == "joint_coherence")
    assert main["mean"] == 0.055 and main["seeds"] == 2
    run = next(p for p in per_run if p["model"] == "MMVAE" and p["seed"] == 1 and p["profile"] == "cpu")
    lo, hi = tables.wilson_interval(60, N)
    assert (run["joint, main"], run["main 95% low"], run["main 95% high"]) == (0.06, round(lo, 4), round(hi, 4))


def test_hole_rows_share_closed(runs_dir):
    holes, per_run = tables.hole_rows(tables.load_profiles(runs_dir, "cpu"))
    r = next(h for h in holes if h["model"].startswith("Ours, base (") and h["judges"] == "main")
    # seed 0: (0.15 - 0.04) / (0.5 - 0.04) = 0.2391; seed 1: (0.16 - 0.04) / 0.46 = 0.2609
    assert r["hole closed"] == "0.25 ± 0.02"
    assert r["joint, z~p0"] == "0.040 ± 0.000"
    assert next(h for h in holes if h["model"] == "MMVAE")["hole closed"] == ""  # no p0: no hole to close
    assert tables.hole_findings(holes).count("- ") == 3  # base, its refit, generalized: main judges only


def test_generalized_rows_keep_the_posters_order(runs_dir):
    rows, _, _ = tables.coherence_rows(tables.load_profiles(runs_dir, "cpu"))
    gen = tables.generalized_rows(rows, "cpu")
    assert [g["model"] for g in gen] == ["Ours, generalized (MMVAE+ + EBM prior)", "MMVAE+", "MoPoE", "MVTCAE", "mmJSD"]
    assert gen[3]["joint (ours)"] == "not run" and gen[0]["cross (paper)"] == "0.897"
    joint, cross = tables.generalized_findings(tables.load_profiles(runs_dir, "cpu"), "cpu").splitlines()
    # by joint: EBM 0.026, MMVAE+ 0.025, MoPoE 0.01, the poster's order; by cross: MoPoE 0.65, EBM 0.61, MMVAE+ 0.60
    assert joint.startswith("- By joint") and joint.endswith("(the same order).")
    assert cross.startswith("- By cross") and "ours rank MoPoE, Ours, generalized (MMVAE+ + EBM prior), MMVAE+;" in cross
    assert not cross.endswith("(the same order).")



def test_the_posters_baseline_order_is_checked_on_the_seeds(runs_dir):
    """mmJSD > MoPoE > MVTCAE by cross coherence (the poster's): each step holds or not, seeds apart or not."""
    index = json.loads((runs_dir / INDEX_FILE).read_text())
    for config, seed, cross in [("polymnist_mmjsd", 0, 0.62), ("polymnist_mmjsd", 1, 0.70),
                                ("polymnist_mvtcae", 0, 0.30), ("polymnist_mvtcae", 1, 0.34)]:
        index["runs"].append(write_run(runs_dir, config, "cpu", seed, 0.02, cross))
    (runs_dir / INDEX_FILE).write_text(json.dumps(index))
    order = tables.generalized_findings(tables.load_profiles(runs_dir, "cpu"), "cpu").splitlines()[2]
    assert order == ("- The poster's order of the baselines by cross coherence: mmJSD > MoPoE holds (0.660 ± 0.057 "
                     "against 0.650; the seeds overlap); MoPoE > MVTCAE holds (0.650 against 0.320 ± 0.028; the "
                     "seeds apart).")
    mvtcae = runs_dir / "polymnist_mvtcae-cpu-s1" / "metrics.json"
    m = json.loads(mvtcae.read_text())
    m["judges"]["judges"]["cross_coherence"] = 0.90  # now MVTCAE's mean 0.60 < MoPoE's 0.65, but a seed lies above
    mvtcae.write_text(json.dumps(m))
    order = tables.generalized_findings(tables.load_profiles(runs_dir, "cpu"), "cpu").splitlines()[2]
    assert order.endswith("MoPoE > MVTCAE holds (0.650 against 0.600 ± 0.424; the seeds overlap).")

def test_findings_ratio_and_intervals(runs_dir):
    groups = tables.load_profiles(runs_dir, "cpu")
    rows, _, _ = tables.coherence_rows(groups)
    text = tables.findings(rows, groups)
    # base: 0.155 / 0.055 = 2.8x, pooled counts 310 and 110 of 2000: intervals apart
    assert "a ratio of 2.8x (poster: 3.2x)" in text and "are apart" in text
    # generalized: 0.0260 / 0.0250: the intervals overlap
    gen = next(line for line in text.splitlines() if "Generalized, profile `cpu`" in line)
    assert "1.0x" in gen and "not apart" in gen
    assert "agree with the main ones within 0.05 on every target of 2 of 6 rows" in text  # MoPoE, gpu; not the refit
    assert "0.66 under the main judges and 0.33 under the paper's protocol judges" in text


def test_seeds_without_a_hole_are_named(runs_dir):
    """A seed whose aggregate posterior is no better than p0 has no hole to close: said so, not averaged."""
    path = runs_dir / "polymnist_mmvae_ebm-cpu-s1" / "metrics.json"
    m = json.loads(path.read_text())
    m["judges"]["judges"]["joint"]["aggregate"] = column(0.05)  # 0.05 - 0.04 < 0.02
    path.write_text(json.dumps(m))
    holes, _ = tables.hole_rows(tables.load_profiles(runs_dir, "cpu"))
    r = next(h for h in holes if h["model"].startswith("Ours, base (") and h["judges"] == "main")
    assert r["hole closed"] == "no hole (1 of 2 seeds)"
    line = next(x for x in tables.hole_findings(holes).splitlines() if x.startswith("- Ours, base ("))
    assert "no hole (1 of 2 seeds), no hole of 0.02 or more" in line and "closes" not in line


def test_apart_needs_the_seeds_apart_too(runs_dir):
    """Pooled binomial intervals apart are not enough when a seed of each model falls in the other's range."""
    path = runs_dir / "polymnist_mmvae-cpu-s1" / "metrics.json"
    m = json.loads(path.read_text())
    m["judges"]["judges"]["joint"]["prior"] = column(0.17)  # MMVAE seeds 0.05 and 0.17; EBM 0.15 and 0.16
    path.write_text(json.dumps(m))
    g = tables.load_profiles(runs_dir, "cpu")["cpu"]
    twin, ebm = ([g.metrics[n, k] for k in g.seeds[n]] for n in tables.PAIRS["base"])
    assert tables.pooled_interval(twin)[1] < tables.pooled_interval(ebm)[0]  # pooled 0.110 and 0.155: apart
    assert "not apart" in tables.pair_finding(g, "cpu", "base", *tables.PAIRS["base"])


def test_conclusion_names_ratio_budget_and_the_longest_run(runs_dir):
    groups = tables.load_profiles(runs_dir, "cpu")
    holes, _ = tables.hole_rows(groups)
    text = tables.conclusion(groups, holes, "cpu")
    assert "Base version: the EBM prior's joint coherence is 2.8x its twin's (poster: 3.2x)" in text
    assert "it closes 0.25 ± 0.02 of the prior hole" in text
    assert "These runs trained 1.3% of the poster's 250 epochs." in text
    # the gpu run trained 9,370 steps of 64: 10 epochs, the longest MMVAE
    assert "MMVAE trained 10.0 epochs (profile `gpu`, seed 0): cross coherence 0.750" in text


def test_the_long_profile_comes_first(runs_dir):
    """The longest-trained runs head the tables (issue #36), then this profile's, then the others'."""
    long = [write_run(runs_dir / "long", "polymnist_mmvae", "long", 0, 0.08, 0.88, step=18740)]
    (runs_dir / index_file("long")).write_text(json.dumps({"profile": "long", "runs": long}))
    groups = tables.load_profiles(runs_dir, "cpu")
    assert list(groups) == ["long", "cpu", "gpu"]
    rows, _, _ = tables.coherence_rows(groups)
    assert list(rows)[0] == ("polymnist_mmvae", "long") and list(rows)[1] == ("polymnist_mmvae", "cpu")

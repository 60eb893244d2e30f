"""The benchmark runs and prints a row of positive numbers per model (a smoke test: its speeds
are measurements, not assertions)."""

from mmebm import bench


def test_bench_prints_a_row_per_model(capsys):
    bench.main(["--models", "mmvae_ebm", "mvtcae", "--net", "conv", "--batch", "8", "--steps", "1", "--impl", "loop"])
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:-1]}
    assert list(rows) == ["mmvae_ebm", "mvtcae"]
    for name, cols in rows.items():
        sps, ratio, langevin, gflop, gflops = cols
        assert float(sps) > 0 and ratio == "-" and float(gflop) > 0 and float(gflops) > 0
        assert (float(langevin.rstrip("%")) > 0) == (name == "mmvae_ebm")  # only the EBM prior samples
    # the baselines decode M modalities once, MoE's experts M x M times: fewer FLOPs per sample
    assert float(rows["mvtcae"][3]) < float(rows["mmvae_ebm"][3]) / 2

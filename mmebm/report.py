"""Numbers for the tables: binomial intervals, mean and spread over seeds, learning curves.

    wilson_interval(k, n)          -> (low, high), the 95 % Wilson score interval of k / n
    mean_sd([0.61, 0.64, 0.59])    -> (mean, sample sd); sd is nan for one value
    learning_curve(run_dir)        -> {name: (steps, values)} from the eval rows of metrics.csv
    source_rows(matrix)            -> per source modality, its mean cross coherence to the other targets
    best_source(matrices)          -> the source modality with the highest mean cross coherence
    median_seed({0: .3, 1: .5, 2: .4}) -> 2, the seed whose value is the median (the lower one of an even count)
    hole_closed(k_p0, k_prior, k_agg, n) -> (share, low, high): how much of the prior hole a prior closes
"""

import csv
import math
import statistics
from pathlib import Path

import torch

Z95 = 1.959963984540054  # the 0.975 quantile of N(0, 1)


def wilson_interval(k, n, z=Z95):
    """Wilson score interval of a binomial proportion k / n (stays inside [0, 1], sensible at 0 and n)."""
    if n <= 0:
        raise ValueError("n must be positive")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_sd(values):
    """Mean and sample standard deviation (n - 1); the sd of a single value is nan."""
    values = list(values)
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else float("nan")


def fmt_mean_sd(values, digits=3):
    mean, sd = mean_sd(values)
    return f"{mean:.{digits}f}" if math.isnan(sd) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def learning_curve(run_dir):
    """The coherence probes of a run (train.eval_every): {name: (steps, values)}, steps ascending."""
    curves = {}
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["split"] == "eval":
                steps, values = curves.setdefault(r["name"], ([], []))
                steps.append(int(r["step"]))
                values.append(float(r["value"]))
    return curves


def source_rows(matrix):
    """Per source modality, the mean of its row of a cross-coherence matrix ([src][tgt]) off the
    diagonal: how well that modality's encoder carries the digit to the others."""
    return [statistics.fmean(v for t, v in enumerate(row) if t != s) for s, row in enumerate(matrix)]


def best_source(matrices):
    """The source modality from which generation is most coherent: the row of the cross-coherence
    matrices (each [M, M], [src][tgt], as in metrics.json) with the highest off-diagonal mean,
    averaged over the matrices (the models and seeds to be shown)."""
    rows = [source_rows(mat) for mat in matrices]
    mean = [statistics.fmean(r[s] for r in rows) for s in range(len(rows[0]))]
    return max(range(len(mean)), key=mean.__getitem__)


def median_seed(values):
    """The seed whose value is the median of {seed: value} (for an even count, the lower of the two
    middle ones; ties to the smaller seed): the run a figure shows as typical of its model."""
    ranked = sorted(values, key=lambda k: (values[k], k))
    return ranked[(len(ranked) - 1) // 2]


MIN_HOLE = 0.02  # below this gap between the aggregate posterior and p0 there is no hole to speak of


def hole_closed(k_p0, k_prior, k_agg, n, draws=20_000, seed=0, min_hole=MIN_HOLE):
    """The share of the prior hole a prior closes, (prior - p0) / (aggregate - p0), from the
    coherent counts of n joint samples with z ~ p0, z ~ the prior and z ~ the aggregate posterior,
    with a 95 % parametric-bootstrap interval (each count redrawn as Binomial(n, k / n), the
    2.5 and 97.5 percentiles of the ratio; draws whose hole is under min_hole are dropped).
    (None, None, None) when the measured hole itself is under min_hole: nothing to close."""
    if (k_agg - k_p0) / n < min_hole:
        return None, None, None
    g = torch.Generator().manual_seed(seed)
    p0, prior, agg = (torch.binomial(torch.full((draws,), float(n)), torch.full((draws,), k / n), generator=g) / n
                      for k in (k_p0, k_prior, k_agg))
    keep = agg - p0 >= min_hole
    ratio = ((prior - p0) / (agg - p0))[keep]
    lo, hi = torch.quantile(ratio.double(), torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return (k_prior - k_p0) / (k_agg - k_p0), lo, hi

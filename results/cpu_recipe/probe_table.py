"""Probe rows (cross coherence / self-reconstruction every 500 steps, joint at the end) of the
runs of section 11, from their metrics.csv: python results/cpu_recipe/probe_table.py FOLDER ..."""
import csv
import sys
from pathlib import Path

for folder in sys.argv[1:]:
    rows = {(int(r["step"]), r["name"]): float(r["value"])
            for r in csv.DictReader(open(Path(folder) / "metrics.csv")) if r["split"] == "eval"}
    steps = sorted({s for s, _ in rows})
    shown = [s for s in steps if s % 500 == 0 and s > 0]
    cells = " ".join(f"{s}:{rows[s, 'cross_coherence']:.2f}/{rows[s, 'self_reconstruction']:.2f}" for s in shown)
    print(f"{Path(folder).name}: {cells} | joint at {steps[-1]}: {rows[steps[-1], 'joint_coherence']:.3f}")

"""Probe rows (cross coherence / self-reconstruction every 500 steps, joint at the end) of the
runs of section 11, from their metrics.csv: python results/cpu_recipe/probe_table.py FOLDER ..."""
import sys
from pathlib import Path

from mmebm.report import learning_curve

for folder in sys.argv[1:]:
    curves = {name: dict(zip(*curve)) for name, curve in learning_curve(folder).items()}
    cross, recon, joint = curves["cross_coherence"], curves["self_reconstruction"], curves["joint_coherence"]
    cells = " ".join(f"{s}:{cross[s]:.2f}/{recon[s]:.2f}" for s in sorted(cross) if s % 500 == 0 and s > 0)
    last = max(joint)
    print(f"{Path(folder).name}: {cells} | joint at {last}: {joint[last]:.3f}")

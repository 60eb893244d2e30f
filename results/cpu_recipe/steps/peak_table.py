"""Where the cross-coherence probes of the LeakyReLU MMVAE+ runs peak (section 12):
python results/cpu_recipe/steps/peak_table.py RUN ..., each a folder with a metrics.csv."""
import sys
from pathlib import Path

import numpy as np

from mmebm.report import learning_curve

STEPS = (2000, 2500, 3000, 3500, 4000)
rows = {}
for folder in sys.argv[1:]:
    cross = dict(zip(*learning_curve(folder)["cross_coherence"]))
    rows[Path(folder).name] = [cross.get(s, np.nan) for s in STEPS]
    peak = max(cross, key=cross.get)
    cells = " | ".join(f"{v:.3f}" for v in rows[Path(folder).name])
    print(f"| {Path(folder).name} | {cells} | {cross[peak]:.3f} at {peak} |")
values = np.array(list(rows.values()))
mean = np.nanmean(values, axis=0)
print("| mean | " + " | ".join(f"{v:.3f}" for v in mean) + " | |")

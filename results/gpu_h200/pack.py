"""Pack STAGE/weights/* (one folder per run) into at most 6 tar files under 15.5 MiB each, and
STAGE's logs and long-run curves into one more: the device tool returns 8 files of 16 MiB at most.

    python results/gpu_h200/pack.py STAGE OUT
"""

import sys
import tarfile
from pathlib import Path

LIMIT = int(15.5 * 2**20)
stage, out = Path(sys.argv[1]), Path(sys.argv[2])
runs = sorted((sum(f.stat().st_size for f in d.rglob("*") if f.is_file()), d) for d in (stage / "weights").iterdir())
bins = []  # first fit, largest first
for size, d in reversed(runs):
    for b in bins:
        if b[0] + size <= LIMIT:
            b[0] += size
            b[1].append(d)
            break
    else:
        bins.append([size, [d]])
if len(bins) > 6:
    print(f"warning: {len(bins)} bins; the last {len(bins) - 6} stay behind")
for i, (size, dirs) in enumerate(bins[:6]):
    with tarfile.open(out / f"weights{i}.tar", "w") as tar:
        for d in dirs:
            tar.add(d, arcname=d.name)
    print(f"weights{i}.tar: {size / 2**20:.1f} MiB, {', '.join(d.name for d in dirs)}")
with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
    for name in ("logs", "long"):
        if (stage / name).is_dir():
            tar.add(stage / name, arcname=name)

"""The lever table (markdown) from levers_*.json: per model and lever, the mean over the seeds of
joint coherence under each set of judges, its spread (sd over seeds) and the lowest lower and
highest upper 95 % Wilson bound among the seeds, the share of the hole closed, the CPU seconds.

    python results/ebm_levers/summarize.py results/ebm_levers/levers_*.json
"""

import json
import statistics as st
import sys
from collections import defaultdict

for path in sys.argv[1:]:
    rows = json.load(open(path))
    by = defaultdict(list)
    for r in rows:
        by[r["lever"]].append(r)
    judges = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    ref = {(r["run"], r["lever"]): r for r in rows}
    hole = {(run, j): ref[run, "aggregate"][j]["joint"] - ref[run, "p0"][j]["joint"]
            for run in {r["run"] for r in rows} for j in judges}
    print(f"\n{path}: {len({r['run'] for r in rows})} runs ({', '.join(sorted({r['run'].split('/')[-1] for r in rows}))})\n")
    head = "| z from | " + " | ".join(f"{j}: joint (mean ± sd; intervals' range) | {j}: hole closed" for j in judges) + " | commonest digit's share (last judges) | seconds |"
    print(head)
    print("|" + "---|" * (3 + 2 * len(judges)))
    for lever, rs in by.items():
        cells = []
        for j in judges:
            js = [r[j]["joint"] for r in rs]
            lo, hi = min(r[j]["interval"][0] for r in rs), max(r[j]["interval"][1] for r in rs)
            sd = st.stdev(js) if len(js) > 1 else 0.0
            # the share closed only where the hole is measurable: aggregate - p0 at least 0.02 in that run
            closed = [r[j].get("hole_closed") for r in rs if hole[r["run"], j] >= 0.02]
            closed = [c for c in closed if c is not None and c == c]
            cells.append(f"{st.mean(js):.3f} ± {sd:.3f} ({lo:.3f}-{hi:.3f})")
            cells.append(f"{st.mean(closed):+.2f}" if closed else "-")
        top = st.mean(r[judges[-1]]["top_digit_share"] for r in rs)
        print(f"| {lever} | " + " | ".join(cells) + f" | {top:.2f} | {st.mean(r['seconds'] for r in rs):.0f} |")

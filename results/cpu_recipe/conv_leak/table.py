"""The full evaluations of the LeakyReLU runs (evaluation.json here, at export; weights and manifests
in weights/), one row per run, then mean +- sd per model over its seeds:
python results/cpu_recipe/conv_leak/table.py"""
import json
from collections import defaultdict
from pathlib import Path

from mmebm.report import mean_sd, wilson_interval

here = Path(__file__).parent
weights = here.parents[2] / "weights"
by_model = defaultdict(list)
print("| run | steps | cross | joint (95 % interval) | joint, z~p0 | train min |\n|---|---|---|---|---|---|")
for d in sorted(p.parent for p in here.glob("*/evaluation.json")):
    # the manifest beside the evaluation while a model's runs are not yet all in weights/
    man_path = d / "manifest.json" if (d / "manifest.json").exists() else weights / d.name / "manifest.json"
    ev, man = (json.loads(f.read_text()) for f in (d / "evaluation.json", man_path))
    p0, n = ev.get("joint_coherence_p0"), ev["n_joint"]
    lo, hi = wilson_interval(round(ev["joint_coherence"] * n), n)
    print(f"| {d.name} | {man['steps']} | {ev['cross_coherence']:.3f} | {ev['joint_coherence']:.3f} ({lo:.3f}-{hi:.3f}) | "
          f"{'' if p0 is None else f'{p0:.3f}'} | {man['train_wall_s'] / 60:.0f} |")
    by_model[d.name.split("-")[0], man["steps"]].append((ev["cross_coherence"], ev["joint_coherence"]))
print("\n| model | steps | seeds | cross | joint |\n|---|---|---|---|---|")
for (name, steps), rows in by_model.items():
    (cm, cs), (jm, js) = (mean_sd(column) for column in zip(*rows))
    print(f"| {name} | {steps} | {len(rows)} | {cm:.3f} ± {cs:.3f} | {jm:.3f} ± {js:.3f} |")

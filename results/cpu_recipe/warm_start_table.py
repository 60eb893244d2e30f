"""The probe table of section 10 from results/cpu_recipe/warm_start/*/metrics.csv and warm_start_judges.txt."""
import ast
import csv
resc = {}
for line in open("results/cpu_recipe/warm_start_judges.txt"):
    m, s, d = line.split(" ", 2)
    resc[m, int(s)] = ast.literal_eval(d)
print("| model | seed | cross at 4,000 (old judges) | at 4,000 (new judges) | 4,250 / 4,500 / 4,750 / 5,000 | joint at 4,000 (new) / 5,000 | self-reconstruction at 4,000 (new) / 5,000 |")
print("|---|---|---|---|---|---|---|")
for m, label in (("polymnist_mmvaeplus", "MMVAE+"), ("polymnist_mmvaeplus_ebm", "MMVAE+ + EBM prior")):
    for s in range(3):
        rows = {(int(r["step"]), r["name"]): float(r["value"]) for r in csv.DictReader(open(f"results/cpu_recipe/warm_start/{m}-cpu-s{s}/metrics.csv")) if r["split"] == "eval"}
        if (5000, "cross_coherence") not in rows:
            continue
        r4 = resc[m, s]
        later = " / ".join(f"{rows[st, 'cross_coherence']:.2f}" for st in (4250, 4500, 4750, 5000))
        print(f"| {label} | {s} | {rows[4000, 'cross_coherence']:.2f} | {r4['cross_coherence']:.2f} | {later} | "
              f"{r4['joint_coherence']:.3f} / {rows[5000, 'joint_coherence']:.3f} | {r4['self_reconstruction']:.2f} / {rows[5000, 'self_reconstruction']:.2f} |")

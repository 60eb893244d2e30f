#!/usr/bin/env bash
# The second device call of 2026-12-04 (after run.sh): the cuda tests again after two fixes (the
# resume's RNG states, the grouped test's tolerance per TF32 setting), then one gpu-profile run
# with the card to itself, to time it. The call's limit: about 240 s in all.
set -u
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
OUT=${OUT:-/tmp/mmebm_out}; mkdir -p "$OUT"
exec > >(tee "$OUT/log2.txt") 2>&1
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD MMEBM_DATA=$PWD/.carry/data
export MMEBM_COMMIT=$(cat .carry/commit 2>/dev/null || echo unknown)
python3 -m mmebm.data polymnist --out data/polymnist --quiet > /tmp/data.log 2>&1 &
DATA=$!
echo "== [$(el) s] cuda tests"
timeout 100 python3 -m pytest -q -m cuda -p no:cacheprovider -s tests/test_cuda.py 2>&1 | grep -v "^$" | tail -40
wait "$DATA"
echo "== [$(el) s] one gpu-profile run alone on the card (100 s at most)"
timeout 120 python3 -m mmebm.train polymnist_mmvaeplus_ebm --profile gpu --out runs/solo \
  train.eval_classifiers=.carry/classifiers train.time_budget_s=100 > /tmp/solo.log 2>&1
tail -c 400 /tmp/solo.log | tr '\r' '\n' | grep -v '^\s*$' | tail -3
cp runs/solo/metrics.csv "$OUT/solo_metrics.csv"
echo "== [$(el) s] done"

#!/usr/bin/env bash
# The lever probe (levers.py) on the six shipped cpu-profile EBM runs, one process each, side by side on
# one GPU (device call of 2026-12-04). Run from a copy of the repository that holds the weights:
#   bash results/ebm_levers/run_gpu.sh   (TOY=1: the same on CPU at toy sizes)
set -u
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
OUT=${OUT:-/tmp/levers_out}; mkdir -p "$OUT"
if [ "${TOY:-0}" = 1 ]; then ARGS=(--device cpu --n 500 --n-train 500 --mle-steps 3 --nce-steps 5); RUNS="polymnist_mmvae_ebm-cpu-s0"
else ARGS=(--device cuda --n 4000 --n-train 20000 --mle-steps 1000 --nce-steps 3000)
  RUNS="polymnist_mmvae_ebm-cpu-s0 polymnist_mmvae_ebm-cpu-s1 polymnist_mmvae_ebm-cpu-s2 polymnist_mmvaeplus_ebm-cpu-s0 polymnist_mmvaeplus_ebm-cpu-s1 polymnist_mmvaeplus_ebm-cpu-s2"; fi
exec > >(tee "$OUT/log_levers.txt") 2>&1
export PYTHONUNBUFFERED=1
[ "${TOY:-0}" = 1 ] || { python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$WHEELS"/*.whl || exit 1; export PYTHONPATH=/tmp/site; }
export PYTHONPATH=${PYTHONPATH:-}:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null
echo "== [$(el) s] data"
python3 -m mmebm.data polymnist --out data/polymnist --quiet || exit 1
echo "== [$(el) s] levers"
PIDS=()
for r in $RUNS; do
  timeout 225 python3 results/ebm_levers/levers.py weights/$r "${ARGS[@]}" --out "$OUT/levers_$r.json" > "$OUT/levers_$r.txt" 2>&1 &
  PIDS+=($!)
done
for p in "${PIDS[@]}"; do wait "$p"; done
cat "$OUT"/levers_*.txt
echo "== [$(el) s] done"

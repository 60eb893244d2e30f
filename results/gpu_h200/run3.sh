#!/usr/bin/env bash
# The third device call (2026-12-04, second session): the twelve gpu-profile poster runs again, to the
# profile's full 3,000 steps (the first call's stopped at 1,982-2,702 steps, sharing the card with 13
# processes and the cuda tests). Twelve processes, nothing else on the card. time_budget_s is only a
# safety net so every run checkpoints before the call's limit; the manifests say how far each got.
#   TOY=1 bash results/gpu_h200/run3.sh   # the same script on CPU at toy sizes
set -u
if [ "${TOY:-0}" = 1 ]; then TOY_ARGS=(train.max_steps=4 data.limit=512 train.eval_every=2
  train.eval_test=50 train.eval_joint=50 model.langevin_steps=3 train.device=cpu); SEEDS="0"
else TOY_ARGS=(); SEEDS="0 1 2"; fi
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
OUT=${OUT:-/tmp/mmebm_out}; mkdir -p "$OUT"
STAGE=/tmp/stage3; rm -rf "$STAGE"; mkdir -p "$STAGE/weights" "$STAGE/logs"
exec > >(tee "$OUT/log3.txt") 2>&1
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD MMEBM_DATA=$PWD/.carry/data
export MMEBM_COMMIT=$(cat .carry/commit 2>/dev/null || echo unknown)  # the device's copy has no git history
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
echo "== [$(el) s] data"
python3 -m mmebm.data polymnist --out data/polymnist --quiet || exit 1
echo "== [$(el) s] training: 4 models x seeds $SEEDS (gpu profile), side by side"
BUDGET=$(( 500 - $(el) ))
COMMON=(--profile gpu "train.eval_classifiers=.carry/classifiers" "train.time_budget_s=$BUDGET" "${TOY_ARGS[@]}")
PIDS=()
for seed in $SEEDS; do
  for m in mmvaeplus_ebm mmvae_ebm mmvaeplus mmvae; do
    run=polymnist_$m-gpu-s$seed
    python3 -m mmebm.train polymnist_$m --out runs/$run "${COMMON[@]}" train.seed=$seed \
      > "$STAGE/logs/$run.log" 2>&1 &
    PIDS+=($!)
  done
done
echo "budget ${BUDGET} s each; ${#PIDS[@]} runs"
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv 2>/dev/null
for p in "${PIDS[@]}"; do wait "$p"; done
echo "== [$(el) s] runs finished"
for f in "$STAGE"/logs/polymnist_*.log; do echo "$(basename "$f"): $(tail -c 300 "$f" | tr '\r' '\n' | grep -v '^\s*$' | tail -1)"; done
echo "== [$(el) s] export (fp16, manifests)"
EXPORTS=()
for d in runs/polymnist_*-gpu-s?; do
  python3 -m mmebm.weights export "$d" "$STAGE/weights/$(basename "$d")" \
    --note "gpu profile on one NVIDIA H200, one of 12 runs sharing the card (results/gpu_h200/run3.sh)" \
    > "$STAGE/logs/export-$(basename "$d").log" 2>&1 &
  EXPORTS+=($!)
done
for p in "${EXPORTS[@]}"; do wait "$p"; done
cat "$STAGE"/logs/export-*.log
python3 "$(dirname "$0")/pack.py" "$STAGE" "$OUT"
echo "== [$(el) s] done"

#!/usr/bin/env bash
# Prepared for a device call (issue #27, not yet run): does the energy penalty that closes most of the
# prior hole on the frozen VAE (mmebm.refit) also work trained jointly with the VAE? Both EBM models,
# seeds 0-2, the gpu profile with model.ebm_penalty=0.1, six processes side by side (the gpu profile's
# twelve runs took 337-401 s each sharing the card: results/gpu_h200/run3.sh). Compare them with the
# shipped gpu runs (the same recipe without the penalty) by evaluating both: `02_models` does it once
# their weights are in weights/ under their own config names, or `python -m mmebm.evaluate` directly.
#   TOY=1 bash results/ebm_levers/joint_gpu.sh   # the same script on CPU at toy sizes
set -u
if [ "${TOY:-0}" = 1 ]; then TOY_ARGS=(train.max_steps=4 data.limit=512 train.eval_every=2
  train.eval_test=50 train.eval_joint=50 model.langevin_steps=3 train.device=cpu); SEEDS="0"
else TOY_ARGS=(); SEEDS="0 1 2"; fi
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
OUT=${OUT:-/tmp/mmebm_out}; mkdir -p "$OUT"
STAGE=/tmp/stage_joint; rm -rf "$STAGE"; mkdir -p "$STAGE/weights" "$STAGE/logs"
exec > >(tee "$OUT/log_joint.txt") 2>&1
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD MMEBM_DATA=$PWD/.carry/data
export MMEBM_COMMIT=$(cat .carry/commit 2>/dev/null || echo unknown)  # the device's copy has no git history
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
echo "== [$(el) s] data"
python3 -m mmebm.data polymnist --out data/polymnist --quiet || exit 1
echo "== [$(el) s] training: 2 EBM models x seeds $SEEDS (gpu profile, penalty 0.1), side by side"
BUDGET=$(( 500 - $(el) ))
COMMON=(--profile gpu model.ebm_penalty=0.1 "train.eval_classifiers=.carry/classifiers" "train.time_budget_s=$BUDGET"
        "${TOY_ARGS[@]}")
PIDS=()
for seed in $SEEDS; do
  for m in mmvaeplus_ebm mmvae_ebm; do
    run=polymnist_$m-gpu-s$seed-penalty
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
for d in runs/polymnist_*-gpu-s?-penalty; do
  python3 -m mmebm.weights export "$d" "$STAGE/weights/$(basename "$d")" \
    --note "gpu profile, model.ebm_penalty=0.1, on one GPU, one of 6 runs sharing the card (results/ebm_levers/joint_gpu.sh)" \
    > "$STAGE/logs/export-$(basename "$d").log" 2>&1 &
  EXPORTS+=($!)
done
for p in "${EXPORTS[@]}"; do wait "$p"; done
cat "$STAGE"/logs/export-*.log
python3 results/gpu_h200/pack.py "$STAGE" "$OUT"
echo "== [$(el) s] done"

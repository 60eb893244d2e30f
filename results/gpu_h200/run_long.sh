#!/usr/bin/env bash
# A device call for issue #36: the `long` profile (20 epochs, 18,740 steps of batch 64) of a run the CPU
# has not started: the generalized EBM model, seed 0, by default, then MMVAE+ (RUNS=...), one run a call:
# alone, a run did 47 steps/s on the H200 (README), so 18,740 steps take about 7 minutes, and two side
# by side would not fit a 10-minute call. A call that ends before its run is finished brings back the
# run's full state (fp32 weights, optimizer, RNG: checkpoint.pt, 42 MB for MMVAE+), and the next call
# resumes it exactly: carry it in as .carry/state/<run>/ (one run's state: a call carries 64 MiB).
#   RUNS="polymnist_mmvaeplus_ebm-long-s0"   # the default
#   TOY=1 [TOY_STEPS=4 LIMIT_S=120] bash results/gpu_h200/run_long.sh  # the same on CPU at toy sizes
# Carry (ignored paths): .carry/wheels (omegaconf and its deps), .carry/data (mnist/, polymnist/backgrounds/),
# .carry/classifiers (weights/classifiers: the probes' judges), .carry/commit, and .carry/state/ to resume.
# Comes back under $OUT: finished runs as fp16 weights with manifests (weights*.tar), unfinished ones as
# state parts (state_<run>.tar.part*, under 15.5 MiB each: `cat state_<run>.tar.part* | tar x`), and logs.tar.gz.
set -u
RUNS=${RUNS:-"polymnist_mmvaeplus_ebm-long-s0"}
if [ "${TOY:-0}" = 1 ]; then TOY_ARGS=(train.max_steps=${TOY_STEPS:-4} data.limit=2048 train.eval_test=50 train.eval_joint=50
  model.langevin_steps=3 train.device=cpu); LIMIT_S=${LIMIT_S:-120}
else TOY_ARGS=(); LIMIT_S=${LIMIT_S:-560}; fi  # the call's limit (timeout_s), less the time to pack
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
OUT=${OUT:-/tmp/mmebm_out}; mkdir -p "$OUT"
STAGE=/tmp/stage_long; rm -rf "$STAGE"; mkdir -p "$STAGE/weights" "$STAGE/logs" "$STAGE/long"
exec > >(tee "$OUT/log_long.txt") 2>&1
export PYTHONUNBUFFERED=1
if [ -d .carry/wheels ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/wheels/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD MMEBM_DATA=${MMEBM_DATA:-$PWD/.carry/data}
export MMEBM_COMMIT=$(cat .carry/commit 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
echo "== [$(el) s] data"
python3 -m mmebm.data polymnist --out data/polymnist --quiet || exit 1
BUDGET=$(( LIMIT_S - 60 - $(el) ))  # each run checkpoints and stops by then; 60 s are left to export and pack
[ "$BUDGET" -ge 30 ] || { echo "only $BUDGET s left to train: raise LIMIT_S"; exit 1; }
echo "== [$(el) s] training: $RUNS (profile long), side by side, budget $BUDGET s each"
PIDS=()
for run in $RUNS; do
  config=${run%-long-s*}; seed=${run##*-s}
  RESUME=()
  if [ -f ".carry/state/$run/checkpoint.pt" ]; then  # the last call's state: resume it exactly
    mkdir -p "runs/$run" && cp -r ".carry/state/$run/." "runs/$run/" && RESUME=(--resume)
    echo "$run: resuming at $(python3 -c "import torch; print(torch.load('runs/$run/checkpoint.pt', map_location='cpu', weights_only=True)['step'])")"
  fi
  # snapshots off: 15 of them would not come back through the 8 x 16 MiB the call returns
  python3 -m mmebm.train "$config" --profile long --out "runs/$run" "${RESUME[@]}" train.seed="$seed" \
    train.log_every=50 train.eval_classifiers=.carry/classifiers train.snapshots=false \
    "train.time_budget_s=$BUDGET" "${TOY_ARGS[@]}" > "$STAGE/logs/$run.log" 2>&1 &
  PIDS+=($!)
done
sleep 30; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv 2>/dev/null
for p in "${PIDS[@]}"; do wait "$p"; done
echo "== [$(el) s] runs stopped"
for run in $RUNS; do
  d=runs/$run
  step=$(python3 -c "import torch; print(torch.load('$d/checkpoint.pt', map_location='cpu', weights_only=True)['step'])")
  total=$(python3 -c "
import sys
from mmebm.config import load_config
from mmebm.train import run_length
cfg = load_config(sys.argv[1], 'long', sys.argv[2:])  # the trainer's per_epoch: full batches of the 60,000
print(run_length(cfg.train, min(cfg.data.limit or 60000, 60000) // cfg.train.batch_size))" "${run%-long-s*}" "${TOY_ARGS[@]}")
  echo "$run: step $step of $total; $(tail -c 300 "$STAGE/logs/$run.log" | tr '\r' '\n' | grep -v '^\s*$' | tail -1)"
  cp "$d/metrics.csv" "$STAGE/long/$run.metrics.csv"
  if [ "$step" = "$total" ]; then
    python3 -m mmebm.weights export "$d" "$STAGE/weights/$run" \
      --note "long profile on one $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo CPU), beside: $RUNS (results/gpu_h200/run_long.sh)"
  else  # the full state, in parts the call can return; carry them back as .carry/state/<run>/ to resume
    tar cf - -C runs "$run/checkpoint.pt" "$run/config.yaml" "$run/metrics.csv" \
      | split -b 15500000 - "$OUT/state_$run.tar.part"
  fi
done
if ls "$STAGE"/weights/* > /dev/null 2>&1; then
  python3 "$(dirname "$0")/pack.py" "$STAGE" "$OUT"
else
  tar czf "$OUT/logs.tar.gz" -C "$STAGE" logs long
fi
ls -la "$OUT"
echo "== [$(el) s] done"

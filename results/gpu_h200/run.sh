#!/usr/bin/env bash
# One device call of issue #26 on one NVIDIA H200 (2026-12-04): the CUDA bench (eager against
# captured Langevin chain, and the other knobs of the step), the cuda tests, and the gpu-profile
# runs of the four poster models, three seeds each, side by side on the card, plus one longer run
# whose learning curve says whether the gpu profile should train longer. Everything lands in $OUT.
#
#   bash results/gpu_h200/run.sh        (repo root; .carry/ holds data/{mnist,polymnist/backgrounds},
#                                        classifiers/ and wheels/, copies of ../shared and weights/)
# Deadlines are seconds from the start; the call's limit is 600 s.
set -u
# TOY=1: the same script at toy sizes on the CPU (how it was tested before the call)
if [ "${TOY:-0}" = 1 ]; then DEV=cpu STEPS=1 B=4 TOY_ARGS=(train.max_steps=4 data.limit=512 train.eval_every=2
  train.eval_test=50 train.eval_joint=50 model.langevin_steps=3 train.device=cpu)
else DEV=cuda STEPS=10 B=64 TOY_ARGS=(); fi
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
OUT=${OUT:-/tmp/mmebm_out}; mkdir -p "$OUT"
STAGE=/tmp/stage; mkdir -p "$STAGE/weights" "$STAGE/logs"
exec > >(tee "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD MMEBM_DATA=$PWD/.carry/data
export MMEBM_COMMIT=$(cat .carry/commit 2>/dev/null || echo unknown)  # the device's copy has no git history
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"

python3 -m mmebm.data polymnist --out data/polymnist --quiet > "$STAGE/logs/data.log" 2>&1 &
DATA=$!

echo "== [$(el) s] bench: the EBM step's variants (the card to itself)"
BENCH="python3 -m mmebm.bench --device $DEV --steps $STEPS"
$BENCH --net conv --batch $B --models mmvaeplus_ebm --variants eager graph bf16 tf32 nchw batch2x
$BENCH --net resnet --batch $((2 * B)) --models mmvaeplus_ebm --variants eager graph bf16 tf32 nchw batch2x
$BENCH --net conv --batch $((2 * B)) --models mmvae_ebm mmvaeplus_ebm --variants eager graph
echo "== [$(el) s] bench: torch.compile of the loss (80 s at most)"
timeout 80 $BENCH --net conv --batch $B --models mmvaeplus_ebm --variants graph compile || echo "compile bench stopped at 80 s"

wait $DATA; cat "$STAGE/logs/data.log"
echo "== [$(el) s] training: 4 models x seeds 0-2 (gpu profile) + one long run, side by side"
BUDGET=$(( 465 - $(el) ))  # every run stops (and checkpoints) by about 465 s
COMMON=(--profile gpu "train.eval_classifiers=.carry/classifiers" "train.time_budget_s=$BUDGET" "${TOY_ARGS[@]}")
PIDS=()
for seed in 0 1 2; do
  for m in mmvae mmvae_ebm mmvaeplus mmvaeplus_ebm; do
    run=polymnist_$m-gpu-s$seed
    python3 -m mmebm.train polymnist_$m --out runs/$run "${COMMON[@]}" train.seed=$seed \
      > "$STAGE/logs/$run.log" 2>&1 &
    PIDS+=($!)
  done
done
python3 -m mmebm.train polymnist_mmvaeplus_ebm --out runs/long-mmvaeplus_ebm-gpu-s0 "${COMMON[@]}" \
  train.max_steps=30000 train.eval_every=500 > "$STAGE/logs/long.log" 2>&1 &
PIDS+=($!)
echo "budget ${BUDGET} s each; $(( ${#PIDS[@]} )) runs"
sleep 20
echo "== [$(el) s] cuda tests, beside the training"
python3 -m pytest -q -m cuda -p no:cacheprovider -s tests/test_cuda.py 2>&1 | tail -25
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
for p in "${PIDS[@]}"; do wait "$p"; done
echo "== [$(el) s] runs finished"
for f in "$STAGE"/logs/polymnist_*.log "$STAGE/logs/long.log"; do echo "$(basename "$f"): $(tail -c 300 "$f" | tr '\r' '\n' | grep -v '^\s*$' | tail -1)"; done

echo "== [$(el) s] export (fp16, manifests)"
EXPORTS=()
for d in runs/polymnist_*-gpu-s?; do
  python3 -m mmebm.weights export "$d" "$STAGE/weights/$(basename "$d")" \
    --note "gpu profile on one NVIDIA H200, one of 13 runs sharing the card (results/gpu_h200/run.sh)" \
    > "$STAGE/logs/export-$(basename "$d").log" 2>&1 &
  EXPORTS+=($!)
done
for p in "${EXPORTS[@]}"; do wait "$p"; done  # a bare `wait` would wait for the tee of the log too
cat "$STAGE"/logs/export-*.log
mkdir -p "$STAGE/long"; cp runs/long-mmvaeplus_ebm-gpu-s0/metrics.csv "$STAGE/long/"
python3 "$(dirname "$0")/pack.py" "$STAGE" "$OUT"
echo "== [$(el) s] done"

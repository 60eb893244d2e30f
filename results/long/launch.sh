#!/usr/bin/env bash
# Start or resume one long run in the background, one thread, its state outside the work tree.
#   results/long/launch.sh NAME CONFIG [overrides ...] [--resume]
# e.g. results/long/launch.sh polymnist_mmvae_ebm-long-s0 polymnist_mmvae_ebm train.seed=0 --resume
# State: $MMEBM_STATE/long/NAME (default ~/mmebm_state); log in NAME/train.log, metrics in NAME/metrics.csv.
set -euo pipefail
name=$1 config=$2; shift 2
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${MMEBM_STATE:-$HOME/mmebm_state}/long/$name
mkdir -p "$out"
cd "$repo"
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nohup .venv/bin/python -m mmebm.train "$config" --profile long --out "$out" \
  train.log_every=50 train.eval_classifiers=weights/classifiers "$@" >> "$out/train.log" 2>&1 &
echo "$name: pid $! -> $out"

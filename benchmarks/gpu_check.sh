#!/usr/bin/env bash
# The one prepared GPU check of issue #18 (see benchmarks/gpu_check.py for the steps).
#
#   benchmarks/gpu_check.sh              on one GPU, <= 8 minutes: results/gpu/summary.json + gpu_check.log
#   benchmarks/gpu_check.sh --dry-run    on CPU, tiny sizes, into a temp folder, < 1 minute (a CPU test runs it)
#
# Python: $PYTHON, else the checkout's .venv, else python3 (a GPU machine's own PyTorch); genas is used
# from src/ (no install needed). Fashion-MNIST: --data-dir DIR, or .gpu-data/fashion-mnist in the checkout
# (copy the four .gz files there to carry them to a bare machine), else a synthetic stand-in.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
out="" dry=0 args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --dry-run) dry=1 ;;
    --out) out="${args[i+1]:-}" ;;
    --out=*) out="${args[i]#--out=}" ;;
  esac
done
if [ -z "$out" ]; then
  if [ "$dry" = 1 ]; then out=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-XXXXXX"); else out=results/gpu; fi
  args+=(--out "$out")
fi
mkdir -p "$out"
"$PY" benchmarks/gpu_check.py "${args[@]}" 2>&1 | tee "$out/gpu_check.log"

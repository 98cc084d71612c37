#!/usr/bin/env bash
# Fresh machine to first results: installs the dataset when missing, builds in
# release mode, runs the quick suite, and prints where the results are.
# Extra arguments go to `joulebench run` (e.g. --device cpu).
#
# On a machine with an NVIDIA GPU (nvidia-smi lists one) it builds with the
# `cuda` feature — with the system's nvcc when there is one, else with the
# wheel toolchain of scripts/build-cuda.sh — and the run's default
# `--device auto` then trains on cuda:0 and measures it with NVML.
# JOULEBENCH_CPU_ONLY=1 skips the GPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-data.sh
bin="${CARGO_TARGET_DIR:-target}/release/joulebench"
if [ "${JOULEBENCH_CPU_ONLY:-0}" != 1 ] && command -v nvidia-smi >/dev/null \
   && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  echo "NVIDIA GPU found: $(nvidia-smi -L | head -1); building with CUDA"
  if command -v nvcc >/dev/null; then
    cargo build --release --quiet --features cuda
  else
    scripts/build-cuda.sh
    bin=dist/joulebench-cuda
  fi
else
  cargo build --release --quiet
fi
"$bin" run experiments/quick.toml "$@"

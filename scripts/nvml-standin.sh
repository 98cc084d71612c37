#!/usr/bin/env bash
# Builds the NVML stand-in (tools/nvml-standin) and prints the path of its
# libnvidia-ml.so.1 on the last line, for JOULEBENCH_NVML_LIB:
#   JOULEBENCH_NVML_LIB=$(scripts/nvml-standin.sh | tail -1) joulebench meters --gpus all
# A scenario (tools/nvml-standin/src/scenario.rs) is read from standin.json
# beside the library, else from $JOULEBENCH_NVML_SCENARIO, else the default:
# one load-following H200 (84 W idle, 684 W busy, counter every 100 ms).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p nvml-standin
target="${CARGO_TARGET_DIR:-target}"
dir="$target/nvml-standin"
mkdir -p "$dir"
cp "$target/release/libnvml_standin.so" "$dir/libnvidia-ml.so.1"
echo "$(cd "$dir" && pwd)/libnvidia-ml.so.1"

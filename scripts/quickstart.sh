#!/usr/bin/env bash
# Fresh machine to first results: installs the dataset when missing, builds in
# release mode, runs the quick suite, and prints where the results are.
# Extra arguments go to `joulebench run` (e.g. --device cuda:0).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-data.sh
cargo build --release --quiet
"${CARGO_TARGET_DIR:-target}/release/joulebench" run experiments/quick.toml "$@"

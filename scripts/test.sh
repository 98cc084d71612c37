#!/usr/bin/env bash
# All tests, as CI runs them: formatting, clippy, then the test suite.
# Set JOULEBENCH_REQUIRE_DATA=1 to make the real-data tests fail (not skip)
# when Fashion-MNIST is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --all-targets

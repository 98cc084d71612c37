#!/usr/bin/env bash
# Step time of joulebench (examples/perf_summary) as a ratio to PyTorch eager
# on this machine: the two interleaved, A B A B, in one sitting (absolute
# times drift on shared machines), both at 2 threads, batch 128, AdamW.
#
# Usage: scripts/torch-ratio.sh [ROUNDS]
# Env:   TORCH_PY   a Python with torch and numpy (default /tmp/torch-venv/bin/python)
#        TORCH_REF  the reference script (default ../shared/bench/torch_reference.py;
#                   it reads Fashion-MNIST from Debian's dataset-fashion-mnist)
# Prints every RESULT line, then the median of each side and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
py=${TORCH_PY:-/tmp/torch-venv/bin/python}
ref=${TORCH_REF:-../shared/bench/torch_reference.py}
[ -x "$py" ] || { echo "error: TORCH_PY=$py is not an executable Python with torch" >&2; exit 2; }
[ -f "$ref" ] || { echo "error: TORCH_REF=$ref does not exist" >&2; exit 2; }
export RAYON_NUM_THREADS=2
cargo build -q --release --example perf_summary
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for r in $(seq "$rounds"); do
  echo "round $r/$rounds" >&2
  target/release/examples/perf_summary | grep '^RESULT' >>"$log"
  for case in "mlp f32" "cnn f32" "cnn bf16amp"; do
    "$py" "$ref" $case | grep '^RESULT' >>"$log"
  done
done
cat "$log"
# Median per (framework, model, precision); torch's bf16amp is joulebench's bf16.
awk '
  { fw = ""; model = ""; prec = ""; ms = "";
    for (i = 1; i <= NF; i++) { split($i, kv, "=");
      if (kv[1] == "framework") fw = kv[2]; else if (kv[1] == "model") model = kv[2];
      else if (kv[1] == "precision" || kv[1] == "dtype") prec = (kv[2] == "bf16amp" ? "bf16" : kv[2]);
      else if (kv[1] == "ms_per_step_median") ms = kv[2] }
    key = model " " prec; n[fw, key]++; v[fw, key, n[fw, key]] = ms; keys[key] = 1 }
  function med(fw, key,   m, i, j, t, a) {
    m = n[fw, key]; if (m == 0) return -1
    for (i = 1; i <= m; i++) a[i] = v[fw, key, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
  END { printf "| model | precision | joulebench ms | PyTorch ms | ratio |\n|---|---|---|---|---|\n"
    for (key in keys) { j = med("joulebench", key); t = med("torch", key)
      if (j > 0 && t > 0) { split(key, k, " "); printf "| %s | %s | %.2f | %.2f | %.2fx |\n", k[1], k[2], j, t, j / t } } }' "$log"

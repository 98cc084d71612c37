#!/usr/bin/env bash
# One prepared check for a GPU host without a Rust toolchain or network:
#   scripts/gpu-check.sh [BINARY]       (default dist/joulebench-cuda)
# Prepare on the build machine: scripts/build-cuda.sh && scripts/pack-gpu-data.sh,
# then carry dist/joulebench-cuda.gz (~20 MB) and gpu-data/ (~5 MB). Finds the CUDA and NVML libraries, runs
# `joulebench meters`, then experiments/gpu-smoke.toml on cuda:0, writes logs
# and the run folder under $OUT (default ./gpu-check-out) and prints a short
# table last: per workload and precision, ms/step, J/step with provenance,
# idle W, net J, accuracy and the NVML self-check (counter vs instant-power
# integral), then the CUDA test binaries' result (dist/cuda-tests, from
# build-cuda.sh: every test_device! test on cuda:0). It never changes
# clocks, power limits or modes.
set -uo pipefail
cd "$(dirname "$0")/.."
bin="${1:-dist/joulebench-cuda}"
out="${OUT:-gpu-check-out}"
mkdir -p "$out"
if [ ! -x "$bin" ] && [ -f "$bin.gz" ]; then
  gunzip -c "$bin.gz" > /tmp/joulebench-cuda && chmod +x /tmp/joulebench-cuda && bin=/tmp/joulebench-cuda
fi
[ -x "$bin" ] || { echo "error: $bin not found or not executable; build it with scripts/build-cuda.sh" >&2; exit 1; }
for d in /usr/local/nvidia/lib64 /usr/local/cuda-13.0/targets/x86_64-linux/lib \
         /opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib /usr/local/cuda/lib64; do
  [ -d "$d" ] && LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export LD_LIBRARY_PATH
if ldd "$bin" | grep -q "not found"; then
  echo "error: libraries missing for $bin:" >&2; ldd "$bin" | grep "not found" >&2; exit 1
fi
[ -d gpu-data/fashion-mnist ] && export JOULEBENCH_FASHION_MNIST="$PWD/gpu-data/fashion-mnist"
[ -d gpu-data/fortunes ] && export JOULEBENCH_CORPUS="$PWD/gpu-data/fortunes"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,power.limit,temperature.gpu --format=csv > "$out/nvidia-smi.csv" 2>&1
"$bin" meters --device cuda:0 --idle-seconds 3 2>&1 | tee "$out/meters.txt"
"$bin" run experiments/gpu-smoke.toml --device cuda:0 --out "$out/results" > "$out/run.log" 2>&1
rc=$?
# The CUDA test binaries: the `cuda` half of every test_device! test.
tests_line="cuda tests: none carried (dist/cuda-tests/*.gz from scripts/build-cuda.sh)"
if ls dist/cuda-tests/*.gz >/dev/null 2>&1; then
  passed=0; failed=0
  for t in dist/cuda-tests/*.gz; do
    exe="/tmp/$(basename "$t" .gz)"
    gunzip -c "$t" > "$exe" && chmod +x "$exe"
    timeout 300 "$exe" cuda --test-threads=1 > "$out/cuda-test-$(basename "$exe").log" 2>&1
    p=$(grep -oE '[0-9]+ passed' "$out/cuda-test-$(basename "$exe").log" | tail -1 | cut -d' ' -f1)
    f=$(grep -oE '[0-9]+ failed' "$out/cuda-test-$(basename "$exe").log" | tail -1 | cut -d' ' -f1)
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-1}))
  done
  tests_line="cuda tests: $passed passed, $failed failed (logs: $out/cuda-test-*.log)"
fi
tail -25 "$out/run.log"
run=$(ls -d "$out"/results/gpu-smoke/*/ 2>/dev/null | tail -1)
[ -n "$run" ] || { echo "error: no run folder (exit $rc); see $out/run.log" >&2; exit 1; }
python3 - "$run" <<'PY' | tee "$out/table.md"
import json, sys, pathlib
run = pathlib.Path(sys.argv[1])
print("| trial | status | ms/step | J/step (provenance) | idle W | net train J | test acc | counter vs instant % |")
print("|---|---|---|---|---|---|---|---|")
for line in (run / "trials.jsonl").read_text().splitlines():
    r = json.loads(line)
    st = r["status"]["state"]
    t = r.get("training") or {}
    steps = sum(e["steps"] for e in r["epochs"]) or 1
    prov = "+".join(sorted({d["provenance"] for d in t.get("domains", [])})) or "-"
    idle = r.get("idle") or {}
    acc = (r.get("test") or {}).get("accuracy")
    err = r["status"].get("error", "")
    check = ", ".join(f"{c['domain']} {c['difference_pct']:+.1f}" for c in r.get("gpu_self_check", [])) or "-"
    print(f"| {r['key']['workload']}/{r['key']['variant']} | {st} {err[:60]} | "
          f"{1000 * t.get('seconds', 0) / steps:.2f} | {t.get('joules', 0) / steps:.3f} ({prov}) | "
          f"{idle.get('avg_watts', float('nan')):.1f} | {t.get('net_joules', float('nan')):.1f} | "
          f"{'-' if acc is None else f'{100 * acc:.2f}%'} | {check} |")
PY
echo "$tests_line" | tee -a "$out/table.md"
exit $rc

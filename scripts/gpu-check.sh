#!/usr/bin/env bash
# One prepared check for a GPU host without a Rust toolchain or network:
#   scripts/gpu-check.sh [BINARY]       (default dist/joulebench-cuda)
# Prepare on the build machine: scripts/build-cuda.sh && scripts/pack-gpu-data.sh,
# then carry dist/joulebench-cuda.gz (~20 MB), dist/cuda-tests/ and gpu-data/
# (~5 MB). Finds the CUDA and NVML libraries, then runs, writing logs and run
# folders under $OUT (default ./gpu-check-out):
#   meters   `joulebench meters --device cuda:0`
#   torch    scripts/torch-gpu-reference.py: PyTorch eager on the same
#            configurations in this sitting (ms and NVML J per step, ~1 min)
#   targets  experiments/gpu-targets.toml: issue #19's three H200
#            configurations, with a table of ms and J per step beside
#            PyTorch eager measured by `torch` (and issue #19's figures) (~2 min)
#   smoke    experiments/gpu-smoke.toml: every workload x f32/bf16/tf32 (~5 min)
#   tests    the CUDA test binaries (dist/cuda-tests: every test_device! test
#            and tests/cuda_kernels.rs on cuda:0)
# and prints a short table per suite: ms/step, J/step with provenance, idle
# W, net J, accuracy, the NVML self-check (counter vs instant-power
# integral) and the kernel self-checks from the manifest.
# Env: GPU_CHECK_PARTS (default meters,torch,targets,smoke,tests),
#      GPU_CHECK_PACK=1 (pack $OUT into gpu-check.tgz beside table.md),
#      GPU_CHECK_DEVICE (default cuda:0; `cpu` for a dry run of the tables),
#      GPU_CHECK_ARGS (extra `joulebench run` arguments, e.g. --workload mlp).
# It never changes clocks, power limits or modes.
set -uo pipefail
cd "$(dirname "$0")/.."
bin="${1:-dist/joulebench-cuda}"
out="${OUT:-gpu-check-out}"
mkdir -p "$out"
# Carried binaries come gzip- or xz-compressed (xz: a third smaller).
unpack() { case "$1" in *.xz) xz -dc "$1" 2>/dev/null || python3 -c 'import lzma,sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' "$1";; *) gunzip -c "$1";; esac; }
if [ ! -x "$bin" ]; then
  for z in "$bin.xz" "$bin.gz"; do
    [ -f "$z" ] && unpack "$z" > /tmp/joulebench-cuda && chmod +x /tmp/joulebench-cuda && bin=/tmp/joulebench-cuda && break
  done
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
parts="${GPU_CHECK_PARTS:-meters,torch,targets,smoke,tests}"
has() { case ",$parts," in *",$1,"*) return 0;; *) return 1;; esac; }
rc=0
dev="${GPU_CHECK_DEVICE:-cuda:0}"
has meters && "$bin" meters --device "$dev" --idle-seconds 3 2>&1 | tee "$out/meters.txt"
if has torch; then
  PYTHONUNBUFFERED=1 timeout 300 python3 scripts/torch-gpu-reference.py gpu-data > "$out/torch.log" 2>&1 || rc=$?
  grep '^RESULT' "$out/torch.log" || tail -5 "$out/torch.log"
  tail -1 "$out/torch.log" | grep '^\[' > "$out/torch.json" || rm -f "$out/torch.json"
fi
# One table per run folder: per trial ms/step, J/step with provenance, idle
# W, net J, accuracy and the NVML self-check; then the kernel self-checks.
table() {
python3 - "$1" "$out/torch.json" <<'PY'
import json, sys, pathlib
run = pathlib.Path(sys.argv[1])
tj = pathlib.Path(sys.argv[2])
measured = {(r["model"], r["precision"]): r for r in json.loads(tj.read_text())} if tj.is_file() else {}
print(f"\n{run.parent.name}:")
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
m = json.loads((run / "manifest.json").read_text())
checks = m.get("kernel_checks") or []
print("kernel self-checks: " + ("; ".join(
    f"{c['kernel']} {'ok' if c['passed'] else 'FAILED'} {c['max_rel_error']:.1e} ({c['build']})" for c in checks) or "none"))
if run.parent.name == "gpu-targets":
    # Issue #19: PyTorch 2.x eager on an H200 (AdamW, NVML energy counter).
    # Issue #19's figures, and PyTorch measured in this sitting (part `torch`).
    published = {("mlp", "f32"): (1.63, 0.288), ("cnn", "f32"): (2.40, 0.386), ("gpt", "bf16"): (18.4, 7.98)}
    print("\n| target | joulebench ms | PyTorch ms (here) | time ratio | joulebench J | PyTorch J (here) | energy ratio | issue #19 ms, J |")
    print("|---|---|---|---|---|---|---|---|")
    for line in (run / "trials.jsonl").read_text().splitlines():
        r = json.loads(line)
        key = (r["key"]["workload"], r["key"]["variant"])
        if r["status"]["state"] != "completed":
            continue
        t = r["training"]
        steps = sum(e["steps"] for e in r["epochs"]) or 1
        ms, j = 1000 * t["seconds"] / steps, t["joules"] / steps
        m = measured.get(key)
        tm, tj = (m["ms_median"], m["j_per_step"]) if m else (float("nan"), float("nan"))
        pub = published.get(key)
        print(f"| {key[0]}/{key[1]} | {ms:.2f} | {tm:.2f} | {ms / tm:.2f}x | {j:.3f} | {tj:.3f} | {j / tj:.2f}x | "
              f"{'-' if pub is None else f'{pub[0]}, {pub[1]}'} |")
PY
}
for suite in targets smoke; do
  has "$suite" || continue
  "$bin" run "experiments/gpu-$suite.toml" --device "$dev" --out "$out/results" ${GPU_CHECK_ARGS:-} > "$out/run-$suite.log" 2>&1 || rc=$?
  tail -5 "$out/run-$suite.log"
  run=$(ls -d "$out/results/gpu-$suite"/*/ 2>/dev/null | tail -1)
  if [ -n "$run" ]; then table "$run" | tee -a "$out/table.md"; else echo "error: no gpu-$suite run folder; see $out/run-$suite.log" | tee -a "$out/table.md"; rc=1; fi
done
# The CUDA test binaries: the `cuda` half of every test_device! test.
tests_line="cuda tests: none carried (dist/cuda-tests/*.gz from scripts/build-cuda.sh)"
if has tests && ls dist/cuda-tests/*.[gx]z >/dev/null 2>&1; then
  passed=0; failed=0
  for t in dist/cuda-tests/*.[gx]z; do
    exe="/tmp/$(basename "${t%.?z}")"
    unpack "$t" > "$exe" && chmod +x "$exe"
    timeout 300 "$exe" cuda --test-threads=1 --nocapture > "$out/cuda-test-$(basename "$exe").log" 2>&1
    p=$(grep -oE '[0-9]+ passed' "$out/cuda-test-$(basename "$exe").log" | tail -1 | cut -d' ' -f1)
    f=$(grep -oE '[0-9]+ failed' "$out/cuda-test-$(basename "$exe").log" | tail -1 | cut -d' ' -f1)
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-1}))
    skipped=$((${skipped:-0} + $(grep -c "skipped: no CUDA device" "$out/cuda-test-$(basename "$exe").log")))
  done
  tests_line="cuda tests: $passed passed, $failed failed, ${skipped:-0} of them skipped for want of a device (logs: $out/cuda-test-*.log)"
fi
echo "$tests_line" | tee -a "$out/table.md"
# GPU_CHECK_PACK=1: everything under $out in one archive beside table.md
# (the device tool brings back at most 8 files, 2 folders down).
if [ "${GPU_CHECK_PACK:-0}" = 1 ]; then
  tar czf /tmp/gpu-check.tgz -C "$out" --exclude table.md . \
    && find "$out" -mindepth 1 ! -name table.md -delete && mv /tmp/gpu-check.tgz "$out/"
fi
exit $rc

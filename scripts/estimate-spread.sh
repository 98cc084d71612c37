#!/usr/bin/env bash
# How far the CPU estimate's figure for one trial moves when the machine is
# shared (issue #32 item 6): runs the same trial (MLP, seed 1, one epoch,
# --meter estimate) RUNS times (default 5) quietly and RUNS times beside a
# one-core busy loop (`sh -c 'while :; do :; done'`), and prints each run's
# estimated training joules (gross and net of the idle baseline), seconds,
# the training windows' interference share and the trial's validity, then
# the spread (min, max, relative sd) of both sets.
#
#   scripts/estimate-spread.sh                # builds release, 5 + 5 runs
#   RUNS=3 SAMPLES=2000 scripts/estimate-spread.sh
#   JOULEBENCH_BIN=target/release/joulebench scripts/estimate-spread.sh
#
# The "quiet" set is only quiet if nothing else runs: the load average is
# printed before each set, with a warning when it exceeds a quarter of the
# CPUs. Extra arguments go to `joulebench run` (e.g. --data-dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-5}"
samples="${SAMPLES:-8000}"
bin="${JOULEBENCH_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/joulebench"
fi
command -v jq >/dev/null || { echo "error: jq is needed to read trials.jsonl" >&2; exit 1; }

work="$(mktemp -d)"
busy=""
cleanup() {
  if [ -n "$busy" ]; then kill "$busy" 2>/dev/null || true; wait "$busy" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/spread.toml" <<EOF
name = "spread"
baseline = "b128"
[defaults]
seeds = [1]
repeats = 1
epochs = 1
optimizer = "adamw"
learning_rate = 1e-3
max_train_samples = $samples
max_eval_samples = 1000
[[workload]]
name = "mlp"
model = "mlp"
[[variant]]
name = "b128"
batch_size = 128
EOF

cpus="$(nproc)"
load() {
  local l
  l="$(cut -d' ' -f1 /proc/loadavg)"
  echo "load average $l on $cpus CPUs"
  if awk -v l="$l" -v c="$cpus" 'BEGIN { exit !(l > c / 4) }'; then
    echo "warning: the machine is busy (load $l > $cpus/4): these runs are not quiet" >&2
  fi
}

# One run; prints "gross net seconds share verdict".
one() {
  local out="$work/out-$1"
  "$bin" run "$work/spread.toml" --out "$out" --meter estimate --no-report "${@:2}" \
    >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
  jq -r '[.training.joules, (.training.net_joules // "null"), .training.seconds,
          (.training.interference.other_share // "null"), (.validity.verdict // "none")]
         | @tsv' "$out"/spread/*/trials.jsonl
}

# Spread of column 1 (gross) and 2 (net) of a set's lines.
spread() {
  awk -v name="$1" '
    function show(label, n, s, ss, lo, hi,   m, sd) {
      m = s / n; sd = n > 1 ? sqrt((ss - n * m * m) / (n - 1)) : 0
      printf "%-6s %-5s min %8.2f J  max %8.2f J  mean %8.2f J  rel. sd %5.1f%%\n",
        name, label, lo, hi, m, m != 0 ? 100 * sd / m : 0
    }
    { n++; g = $1; t = $2
      sg += g; ssg += g * g; if (n == 1 || g < lg) lg = g; if (n == 1 || g > hg) hg = g
      st += t; sst += t * t; if (n == 1 || t < lt) lt = t; if (n == 1 || t > ht) ht = t }
    END { show("gross", n, sg, ssg, lg, hg); show("net", n, st, sst, lt, ht) }'
}

run_set() {
  local name="$1"
  shift
  echo "== $name: $(load)"
  printf "%-4s %10s %10s %8s %7s %s\n" run gross_J net_J secs other verdict
  : >"$work/$name.tsv"
  for k in $(seq "$runs"); do
    read -r g n s o v < <(one "$name-$k" "$@")
    printf "%-4s %10.2f %10.2f %8.2f %7s %s\n" "$k" "$g" "$n" "$s" \
      "$(awk -v o="$o" 'BEGIN { if (o == "null") print "-"; else printf "%.0f%%", 100 * o }')" "$v"
    printf "%s\t%s\n" "$g" "$n" >>"$work/$name.tsv"
  done
}

run_set quiet "$@"
sh -c 'while :; do :; done' &
busy=$!
sleep 1
run_set loaded "$@"
kill "$busy"
wait "$busy" 2>/dev/null || true
busy=""
echo "== spread (estimated training joules)"
spread quiet <"$work/quiet.tsv"
spread loaded <"$work/loaded.tsv"

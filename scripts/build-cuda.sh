#!/usr/bin/env bash
# Builds a stripped release joulebench with the `cuda` feature on a machine
# without a CUDA toolkit or GPU, using NVIDIA's toolchain wheels from PyPI.
#
#  - nvcc 13.0.x (the target cards' driver 580 supports CUDA 13.0; newer PTX is refused)
#  - headers (runtime, cccl, crt, nvvm) for candle's kernels
#  - cuBLAS, cuRAND, NVRTC and the libcuda stub to *link* against; at run
#    time the GPU host's own libraries are used (scripts/gpu-check.sh finds them)
#
# Output: dist/joulebench-cuda (stripped) and dist/joulebench-cuda.gz (to carry),
# and dist/cuda-tests/*.gz: the test binaries with `test_device!` tests
# (techniques, workloads), built with the feature, for scripts/gpu-check.sh.
# Re-runs reuse .venv-cuda and target-cuda (the first build takes ~25 min on 2 cores).
# Env: CUDA_COMPUTE_CAP (default 90 = Hopper: H100/H200).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-cuda
if [ ! -x "$venv/bin/nvcc-ok" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q \
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 \
    nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-nvrtc==13.0.88 \
    'nvidia-cublas>=13.0,<13.1' 'nvidia-curand>=10.4,<10.5'
  touch "$venv/bin/nvcc-ok"
fi
cu=$(echo "$venv"/lib/python3*/site-packages/nvidia/cu13)
[ -x "$cu/bin/nvcc" ] || { echo "error: nvcc not found under $cu/bin" >&2; exit 1; }
# The linker wants unversioned names; the wheels ship sonames only.
links="$PWD/target-cuda/linklibs"
mkdir -p "$links"
for lib in cublas cublasLt curand nvrtc cudart; do
  f=$(ls "$cu"/lib/lib$lib.so.* 2>/dev/null | head -1)
  [ -n "$f" ] || { echo "error: lib$lib.so.* not found in $cu/lib" >&2; exit 1; }
  ln -sf "$PWD/$f" "$links/lib$lib.so"
done
# libcuda comes with the driver, not with any wheel: link against a stub
# that defines the driver API's symbols (generated from cudarc's bindings);
# at run time the real libcuda.so.1 of the GPU host is loaded instead.
if [ ! -f "$links/libcuda.so" ]; then
  cargo fetch -q
  cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* | head -1)
  [ -d "$cudarc" ] || { echo "error: cudarc sources not found in the cargo registry" >&2; exit 1; }
  grep -ohE '^ *fn cu[A-Za-z0-9_]+\(' "$cudarc"/src/driver/sys/mod.rs \
    | sed -E 's/^ *fn (cu[A-Za-z0-9_]+)\(/\1/' | sort -u \
    | awk '{print "int " $1 "(void) { return 999; }"}' > "$links/cuda_stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$links/libcuda.so" "$links/cuda_stub.c"
  echo "generated a libcuda stub with $(wc -l < "$links/cuda_stub.c") driver symbols"
fi
export PATH="$PWD/$cu/bin:$PATH"
export NVCC="$PWD/$cu/bin/nvcc"
export CUDA_ROOT="$PWD/$cu" CUDA_PATH="$PWD/$cu" CUDA_TOOLKIT_ROOT_DIR="$PWD/$cu"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export LIBRARY_PATH="$links:$PWD/$cu/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
export RUSTFLAGS="${RUSTFLAGS:-} -L native=$links"
echo "building with $(nvcc --version | tail -1), compute capability $CUDA_COMPUTE_CAP"
cargo build --release --features cuda --target-dir target-cuda
mkdir -p dist
cp target-cuda/release/joulebench dist/joulebench-cuda
strip dist/joulebench-cuda
# The embedded PTX compresses well: carry the .gz to a GPU host (gpu-check.sh unpacks it).
gzip -9 -c dist/joulebench-cuda > dist/joulebench-cuda.gz
# The CUDA test binaries (every test_device! test runs on cuda:0 there).
mkdir -p dist/cuda-tests
cargo test --release --features cuda --target-dir target-cuda --no-run \
  --test techniques --test workloads --test cuda_kernels --test device_kernels --message-format=json 2>/dev/null \
  | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
' | while read -r name exe; do
  strip -o "dist/cuda-tests/$name" "$exe"
  gzip -9 -f "dist/cuda-tests/$name"
done
ls -la dist/joulebench-cuda dist/joulebench-cuda.gz dist/cuda-tests/

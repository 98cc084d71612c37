#!/usr/bin/env bash
# Packs a subset of the real datasets into gpu-data/ (git-ignored, ~5 MB) so a
# GPU host without apt or network can run the smoke suite: the first 8,000
# Fashion-MNIST training images (the last 5,000 of them form the validation
# split), the first 2,000 test images, and a few fortunes text files.
set -euo pipefail
cd "$(dirname "$0")/.."
src="${JOULEBENCH_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"
mkdir -p gpu-data/fashion-mnist gpu-data/fortunes
python3 - "$src" gpu-data/fashion-mnist <<'PY'
import gzip, struct, sys, os
src, dst = sys.argv[1], sys.argv[2]
def subset(name, n):
    p = os.path.join(src, name + ".gz")
    data = gzip.open(p).read() if os.path.exists(p) else open(os.path.join(src, name), "rb").read()
    ndims = data[3]
    dims = list(struct.unpack(">" + "I" * ndims, data[4:4 + 4 * ndims]))
    per = 1
    for d in dims[1:]:
        per *= d
    dims[0] = min(n, dims[0])
    head = data[:4] + struct.pack(">" + "I" * ndims, *dims)
    body = data[4 + 4 * ndims: 4 + 4 * ndims + dims[0] * per]
    with gzip.open(os.path.join(dst, name + ".gz"), "wb") as f:
        f.write(head + body)
for name, n in [("train-images-idx3-ubyte", 8000), ("train-labels-idx1-ubyte", 8000),
                ("t10k-images-idx3-ubyte", 2000), ("t10k-labels-idx1-ubyte", 2000)]:
    subset(name, n)
PY
corpus="${JOULEBENCH_CORPUS:-/usr/share/games/fortunes}"
for f in computers science work linux; do
  [ -f "$corpus/$f" ] && cp "$corpus/$f" gpu-data/fortunes/
done
du -sh gpu-data

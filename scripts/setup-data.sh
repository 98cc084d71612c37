#!/usr/bin/env bash
# Makes sure the real datasets joulebench trains on are installed (Debian packages).
# Installs them with apt when run as root; otherwise prints the exact command.
set -euo pipefail

dir="${JOULEBENCH_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"
missing=()
[ -e "$dir/train-images-idx3-ubyte.gz" ] || [ -e "$dir/train-images-idx3-ubyte" ] || missing+=(dataset-fashion-mnist)
corpus="${JOULEBENCH_CORPUS:-/usr/share/games/fortunes}"
[ -e "$corpus/fortunes" ] || [ -n "${JOULEBENCH_CORPUS:-}" ] || missing+=(fortunes)
# Plot text needs a TrueType font (or JOULEBENCH_FONT pointing at one).
[ -n "${JOULEBENCH_FONT:-}" ] || [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)

if [ ${#missing[@]} -eq 0 ]; then
  echo "data present: Fashion-MNIST in $dir, text corpus in $corpus, plot font installed"
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} with apt-get ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  echo "installed ${missing[*]}"
else
  echo "error: missing datasets: ${missing[*]}" >&2
  echo "install them with:  sudo apt-get install -y ${missing[*]}" >&2
  echo "(or point JOULEBENCH_FASHION_MNIST at a folder with the four Fashion-MNIST IDX files)" >&2
  exit 1
fi

#!/usr/bin/env bash
# Converts the Fashion-MNIST IDX files installed by Debian's
# dataset-fashion-mnist package into datasets/fashion-mnist.h5 (once).
set -euo pipefail
cd "$(dirname "$0")/.."
src=/usr/share/datasets/fashion-mnist
out=datasets/fashion-mnist.h5
if [ -f "$out" ]; then
  echo "prepare-data: $out already present"
  exit 0
fi
build/mpitrain convert idx --input "$src" --output "$out"

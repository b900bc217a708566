#!/usr/bin/env bash
# Checks scripts/plot.py end to end: a tiny run with gradients and one without, drawn from their
# JSON alone, and the figure of `gradtrace paper`; every expected PNG must exist and be a real
# image of some size.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
bin=./target/release/gradtrace
flags=(--hidden 4,3 --init normal --epochs 4 --samples 100 --quiet)
"$bin" run "${flags[@]}" --out "$scratch/with.json"
"$bin" run "${flags[@]}" --grad-every never --out "$scratch/without.json"
"$GRADTRACE_PYTHON" scripts/plot.py "$scratch" > "$scratch/listing.txt"

for png in with.weights.png with.gradients.png without.weights.png; do
  size=$(stat -c %s "$scratch/$png" 2>/dev/null || echo 0)
  if [ "$size" -lt 10000 ] || [ "$(head -c 4 "$scratch/$png" | tail -c 3)" != "PNG" ]; then
    echo "plot test: $png missing or not a PNG (size $size)" >&2
    exit 1
  fi
done
if [ -e "$scratch/without.gradients.png" ]; then
  echo "plot test: a run without gradient records got a gradient figure" >&2
  exit 1
fi

# gradtrace paper draws its own figure through scripts/plot_paper.py.
"$bin" paper --batch 100 --out-dir "$scratch/paper" >/dev/null
size=$(stat -c %s "$scratch/paper/paper.png" 2>/dev/null || echo 0)
if [ "$size" -lt 10000 ] || [ "$(head -c 4 "$scratch/paper/paper.png" | tail -c 3)" != "PNG" ]; then
  echo "plot test: paper.png missing or not a PNG (size $size)" >&2
  exit 1
fi
echo "plot test: 4 figures drawn, 1 correctly skipped"

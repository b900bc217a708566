#!/usr/bin/env bash
# Checks the plotting scripts end to end: scripts/plot.py on a tiny run with gradients, one
# without, one with the diagnostics keys and one without them; scripts/plot_sweep.py on a tiny
# sweep; and the figure of `gradtrace paper`. Every expected PNG must exist and be a real image
# of some size, and every figure whose data is absent must be skipped.
#
# The diagnostics figures are drawn from diag.json: the binary's own run when it writes the
# diagnostics keys (a top-level "saturation"), else that run with made-up keys added by
# tests/fixtures/diagnostics.py. Either way they must be drawn, so a binary that writes the keys
# and a plot.py that fails to draw them cannot pass.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
bin=./target/release/gradtrace
drawn=0

# A real PNG over 10 kB, else fail naming it.
check_png() {
  local size
  size=$(stat -c %s "$1" 2>/dev/null || echo 0)
  if [ "$size" -lt 10000 ] || [ "$(head -c 4 "$1" | tail -c 3)" != "PNG" ]; then
    echo "plot test: $1 missing or not a PNG (size $size)" >&2
    exit 1
  fi
  drawn=$((drawn + 1))
}

# A figure that must not exist, since its data is absent.
check_absent() {
  if [ -e "$1" ]; then
    echo "plot test: $1 drawn without its data" >&2
    exit 1
  fi
}

# Runs: with gradients, without, with diagnostics (real or made up), without diagnostics.
flags=(--hidden 4,3 --init normal --epochs 4 --samples 100 --quiet)
"$bin" run "${flags[@]}" --out "$scratch/with.json"
"$bin" run "${flags[@]}" --grad-every never --out "$scratch/without.json"
if grep -q '"saturation"' "$scratch/with.json"; then
  cp "$scratch/with.json" "$scratch/diag.json"
  source_of_diagnostics="the binary's own"
else
  "$GRADTRACE_PYTHON" tests/fixtures/diagnostics.py add "$scratch/with.json" "$scratch/diag.json"
  source_of_diagnostics="made-up (this binary writes none)"
fi
"$GRADTRACE_PYTHON" tests/fixtures/diagnostics.py strip "$scratch/with.json" "$scratch/old.json"
"$GRADTRACE_PYTHON" scripts/plot.py "$scratch" > "$scratch/listing.txt"

for png in with.weights with.gradients without.weights old.weights old.gradients \
  diag.weights diag.gradients diag.saturation diag.backprop diag.histograms; do
  check_png "$scratch/$png.png"
done
check_absent "$scratch/without.gradients.png"
for view in saturation backprop histograms; do
  check_absent "$scratch/old.$view.png"
  check_absent "$scratch/without.$view.png"
  # with.json is diag.json's source: its figures follow whether it has the keys.
  if grep -q '"saturation"' "$scratch/with.json"; then
    check_png "$scratch/with.$view.png"
  else
    check_absent "$scratch/with.$view.png"
  fi
done

# A tiny sweep: 2 activations x 2 initializers x 2 seeds, its figures into its folder.
"$bin" sweep --activation sigmoid,tanh --init normal,glorot-uniform --seed-count 2 \
  --hidden 4,3 --epochs 4 --samples 100 --quiet --out-dir "$scratch/sweep"
"$GRADTRACE_PYTHON" scripts/plot_sweep.py "$scratch/sweep" > "$scratch/sweep-listing.txt"
check_png "$scratch/sweep/sweep.heatmaps.png"
check_png "$scratch/sweep/sweep.accuracy.png"

# gradtrace paper draws its own figure through scripts/plot_paper.py.
"$bin" paper --batch 100 --out-dir "$scratch/paper" >/dev/null
check_png "$scratch/paper/paper.png"
echo "plot test: $drawn figures drawn, the absent ones skipped; diagnostics: $source_of_diagnostics"

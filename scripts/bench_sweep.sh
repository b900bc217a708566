#!/usr/bin/env bash
# Times a 64-run sweep of the tutorial network (2-5-5-5-5-1, normal(0, 1) kernels, RMSprop,
# batch 32, gradients recorded every epoch; 2 activations x 32 seeds, EPOCHS epochs each) two
# ways, side by side: `gradtrace sweep` on all cores, and a shell loop of the PyTorch eager
# reference script, one process per run (as a researcher without gradtrace would script it).
#
# Usage: scripts/bench_sweep.sh [EPOCHS]   (default 20)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh

epochs=${1:-20}
[[ "$epochs" =~ ^[1-9][0-9]*$ ]] || { echo "bench: EPOCHS must be a positive whole number" >&2; exit 2; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cargo build --release --quiet

now() { date +%s.%N; }

echo "bench: gradtrace sweep, 64 runs of $epochs epochs on $(nproc) cores" >&2
start=$(now)
target/release/gradtrace sweep --quiet --activation sigmoid,tanh --init normal --seed-count 32 \
  --epochs "$epochs" --out-dir "$scratch/sweep"
gradtrace_s=$(awk -v a="$(now)" -v b="$start" 'BEGIN { print a - b }')

echo "bench: shell loop of scripts/reference_torch.py, 64 processes" >&2
start=$(now)
for activation in sigmoid tanh; do
  for seed in $(seq 0 31); do
    "$GRADTRACE_PYTHON" scripts/reference_torch.py --activation "$activation" --seed "$seed" \
      --epochs "$epochs" >/dev/null
  done
done
torch_s=$(awk -v a="$(now)" -v b="$start" 'BEGIN { print a - b }')

printf '\n64-run sweep, %s epochs each, wall seconds\n' "$epochs"
printf '%-40s %10.1f\n' "gradtrace sweep ($(nproc) workers)" "$gradtrace_s"
printf '%-40s %10.1f\n' "shell loop of PyTorch eager" "$torch_s"
printf '%-40s %9.1fx\n' "PyTorch loop / gradtrace" "$(awk -v a="$torch_s" -v b="$gradtrace_s" 'BEGIN { print a / b }')"

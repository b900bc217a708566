#!/usr/bin/env bash
# What the diagnostics cost: the tutorial's manual-loop run (2-5-5-5-5-1 sigmoid, normal(0, 1)
# kernels, RMSprop, 100 epochs of batch 32, gradients recorded at the first step of every epoch)
# with everything recorded (`--record full`) against kernel gradients only (`--record kernels`),
# and the same pair recording at every step (3,200 records, the worst case). The two settings
# alternate run by run so that a busy machine slows both alike.
#
# Usage: scripts/bench_diagnostics.sh [REPEATS]   (default 7, or BENCH_REPEATS)
#
# Reports the training-loop time each run writes into its JSON (`wall_time_s`: training and
# recording, not start-up or JSON writing), median and minimum, and the ratio full / kernels.
# The target: at most 1.25 at one record per epoch.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/env.sh
source scripts/env.sh

repeats=${1:-${BENCH_REPEATS:-7}}
if ! [[ "$repeats" =~ ^[1-9][0-9]*$ ]]; then
  echo "bench: REPEATS must be a positive whole number (got '$repeats')" >&2
  exit 2
fi

tmpdir=$(mktemp -d)
trap 'rm -rf "$tmpdir"' EXIT

echo "bench: building gradtrace (release)" >&2
cargo build --release --quiet

flags=(--activation sigmoid --init normal --hidden 5,5,5,5 --optimizer rmsprop --epochs 100
  --batch-size 32 --engine single --quiet)
echo "bench: $repeats runs of each of 4 settings" >&2
for i in $(seq 1 "$repeats"); do
  for every in epoch 1; do
    for level in kernels full; do
      target/release/gradtrace run "${flags[@]}" --seed "$i" --grad-every "$every" \
        --record "$level" --out "$tmpdir/$every-$level-$i.json"
    done
  done
done

"$GRADTRACE_PYTHON" - "$tmpdir" "$repeats" <<'PY'
import json
import statistics
import sys
from pathlib import Path

tmpdir, repeats = Path(sys.argv[1]), int(sys.argv[2])


def times(every, level):
    return [json.loads((tmpdir / f"{every}-{level}-{i}.json").read_text())["wall_time_s"]
            for i in range(1, repeats + 1)]


print(f"seconds per 100-epoch run (training loop), {repeats} runs each")
print(f"{'records':<22}{'kernels only':>14}{'all diagnostics':>17}{'ratio':>9}")
for every, label in (("epoch", "one per epoch"), ("1", "every step")):
    kernels, full = times(every, "kernels"), times(every, "full")
    for stat, f in (("median", statistics.median), ("min", min)):
        print(f"{label + ', ' + stat:<22}{f(kernels):>14.3f}{f(full):>17.3f}"
              f"{f(full) / f(kernels):>8.2f}x")
PY

#!/usr/bin/env bash
# Times gradtrace against plain PyTorch eager on the study's tutorial network: a 2-5-5-5-5-1
# sigmoid MLP, normal(0, 1) kernels, RMSprop, 100 epochs of batch 32 on 1000 two-circles points,
# kernel gradients recorded at the first step of every epoch. Both sides train on one CPU thread.
#
# Usage: scripts/bench.sh [REPEATS]   (default 5, or BENCH_REPEATS)
#
# For gradtrace it reports the training-loop time the run writes into its JSON (`wall_time_s`)
# and the whole process (start-up, data, JSON writing); for PyTorch the loop time that
# scripts/reference_torch.py measures in one process. Ratios above 1 mean gradtrace is faster.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/env.sh
source scripts/env.sh

repeats=${1:-${BENCH_REPEATS:-5}}
if ! [[ "$repeats" =~ ^[1-9][0-9]*$ ]]; then
  echo "bench: REPEATS must be a positive whole number (got '$repeats')" >&2
  exit 2
fi

tmpdir=$(mktemp -d)
trap 'rm -rf "$tmpdir"' EXIT

echo "bench: building gradtrace (release)" >&2
cargo build --release --quiet

# gradtrace: one process per run, so the whole-process time includes start-up.
echo "bench: $repeats gradtrace runs" >&2
for i in $(seq 1 "$repeats"); do
  start=$(date +%s.%N)
  target/release/gradtrace run --activation sigmoid --init normal --hidden 5,5,5,5 \
    --optimizer rmsprop --epochs 100 --batch-size 32 --seed "$i" \
    --out "$tmpdir/run$i.json" --quiet
  end=$(date +%s.%N)
  echo "$start $end" >>"$tmpdir/process_times"
done

# PyTorch eager: all runs in one process; only the loop is timed.
echo "bench: $repeats PyTorch eager runs" >&2
"$GRADTRACE_PYTHON" scripts/reference_torch.py --activation sigmoid --epochs 100 --seed 1 \
  --repeats "$repeats" >"$tmpdir/torch_times"

"$GRADTRACE_PYTHON" - "$tmpdir" "$repeats" <<'PY'
import json
import statistics
import sys
from pathlib import Path

tmpdir, repeats = Path(sys.argv[1]), int(sys.argv[2])
loop = [json.loads((tmpdir / f"run{i}.json").read_text())["wall_time_s"]
        for i in range(1, repeats + 1)]
process = [float(end) - float(start)
           for start, end in (line.split() for line in (tmpdir / "process_times").open())]
torch = [float(line.split()[1]) for line in (tmpdir / "torch_times").open()
         if line.startswith("seconds ")]
if len(torch) != repeats:
    sys.exit(f"bench: expected {repeats} timings from reference_torch.py, got {len(torch)}")

rows = [("gradtrace (loop)", loop), ("gradtrace (whole process)", process),
        ("PyTorch eager (loop)", torch)]
print(f"seconds per 100-epoch run, {repeats} runs each")
print(f"{'':<36}{'median':>10}{'min':>10}")
for label, values in rows:
    print(f"{label:<36}{statistics.median(values):>10.3f}{min(values):>10.3f}")
for label, ours in (("loop", loop), ("whole process", process)):
    median = statistics.median(torch) / statistics.median(ours)
    best = min(torch) / min(ours)
    print(f"{'PyTorch / gradtrace, ' + label:<36}{median:>9.2f}x{best:>9.2f}x")
PY

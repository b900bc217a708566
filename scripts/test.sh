#!/usr/bin/env bash
# The whole test suite on a fresh machine or a prepared one: set-up (idempotent), then a check
# that the plotting script draws real figures, every Rust test (unit and end to end), and a
# sweep on a real one-node Slurm cluster (installed from Debian's packages when missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
source scripts/env.sh

# Release mode: the tests train real networks, and the main job shares the compiled libtorch glue.
cargo build --release --quiet
bash scripts/test_plots.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --release --all-targets 2>&1 | tee "$log" || status=$?

# A real one-node Slurm cluster running an array sweep (skips itself, saying why, where the
# machine cannot host slurmd).
slurm=0
bash scripts/test_slurm.sh 2>&1 | tee -a "$log" || slurm=1

# One closing line over every test binary, plus the plot and Slurm checks above.
# A cargo failure with no failing test behind it (a test that does not compile) counts as one.
awk -v slurm_failed="$slurm" -v cargo_status="$status" '
  /^test result:/ { passed += $4; failed += $6 }
  /^slurm test: SKIPPED/ { skipped = 1 }
  END {
    passed += 1
    if (slurm_failed) failed += 1; else if (!skipped) passed += 1
    if (cargo_status != 0 && failed == 0) {
      print "cargo test failed before running every test (see the errors above)"
      failed += 1
    }
    printf "total: %d passed, %d failed\n", passed, failed
  }' "$log"
[ "$status" -eq 0 ] && [ "$slurm" -eq 0 ]

#!/usr/bin/env bash
# The whole test suite on a fresh machine or a prepared one: set-up (idempotent), then a check
# that the plotting script draws real figures, then every Rust test (unit and end to end).
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

# One closing line over every test binary, plus the plot check above.
awk '/^test result:/ { passed += $4; failed += $6 }
     END { printf "total: %d passed, %d failed\n", passed + 1, failed }' "$log"
exit "$status"

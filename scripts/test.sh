#!/usr/bin/env bash
# The whole test suite on a fresh machine or a prepared one: set-up (idempotent), then every
# Rust test (unit and end to end) and a check that the plotting script draws real figures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
source scripts/env.sh

# Release mode: the tests train real networks, and the main job shares the compiled libtorch glue.
cargo build --release --quiet
bash scripts/test_plots.sh
cargo test --release --all-targets

#!/usr/bin/env bash
# The main job on a fresh machine or a prepared one: set-up (idempotent), a release build, and
# `gradtrace tutorial`, which writes outputs/tutorial/ (JSON, summary, PNG figures) and prints
# the table. Extra arguments go to `gradtrace tutorial` (see `--help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
source scripts/env.sh
cargo build --release --quiet
./target/release/gradtrace tutorial "$@"

#!/usr/bin/env bash
# Prepares a fresh machine for gradtrace: a project-local Python virtual environment holding
# torch 2.11.0 (whose bundled libtorch the Rust build links against), numpy, matplotlib, and
# TensorBoard (to view `gradtrace tensorboard` exports; the tests read them back with it).
# Idempotent: when everything is already in place it only checks versions and returns in seconds.
# Prints `export` lines for nothing; the other scripts source scripts/env.sh instead.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
torch_version=2.11.0

# Create the virtual environment once; `python3 -m venv` is part of the standard library.
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating the virtual environment in .venv" >&2
  python3 -m venv "$venv"
fi

# Install only what is missing or at the wrong version, so a second call costs seconds.
have_torch=$("$venv/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])' \
  2>/dev/null || true)
if [ "$have_torch" != "$torch_version" ]; then
  echo "setup: installing torch==$torch_version with its CUDA runtime wheels (about 4.6 GB)" >&2
  "$venv/bin/pip" install --quiet "torch==$torch_version"
fi
if ! "$venv/bin/python" -c 'import numpy, matplotlib, tensorboard' 2>/dev/null; then
  echo "setup: installing numpy, matplotlib and tensorboard" >&2
  "$venv/bin/pip" install --quiet numpy matplotlib tensorboard
fi

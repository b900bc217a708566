#!/usr/bin/env bash
# Packs what scripts/device_check.sh needs on a GPU machine that has no Rust toolchain: the
# release binary, stripped, and a MANIFEST saying what it was built from. The bundle goes to
# device-bundle/ at the repository root (git-ignored) and travels beside a copy of the working
# tree; there the binary finds libtorch through LD_LIBRARY_PATH, which device_check.sh points at
# the local python's torch, since the rpath baked in here names this machine's .venv.
#
# Usage: scripts/device_bundle.sh
#
# It ends by printing the bundle's size and how to run the check there.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/env.sh
source scripts/env.sh
if [ -z "${LIBTORCH:-}" ] || [ ! -x "$GRADTRACE_PYTHON" ]; then
  echo "device_bundle: no torch in $root/.venv: run scripts/setup.sh first" >&2
  exit 1
fi

# What travels, with the working tree, must stay under this many bytes in all.
carry_limit=$((64 * 1024 * 1024))
bundle=device-bundle

echo "device_bundle: building gradtrace (release)" >&2
cargo build --release --quiet

# A fresh folder, so no binary of an older build survives beside the new manifest.
rm -rf "$bundle"
mkdir "$bundle"
cp target/release/gradtrace "$bundle/gradtrace"

# Symbols are of no use there and are most of the file. Keep the stripped copy only if it
# still starts, since a broken binary would cost a whole device run to find out.
strip "$bundle/gradtrace"
if ! version=$("$bundle/gradtrace" --version 2>&1); then
  echo "device_bundle: the stripped binary does not start ($version); shipping it unstripped" >&2
  cp target/release/gradtrace "$bundle/gradtrace"
  version=$("$bundle/gradtrace" --version)
fi

# The manifest lets the far side say what it is testing: which commit (and whether the tree had
# changes on top), which libtorch the binary expects, and the oldest C libraries it can run on.
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
changed=$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)
torch_versions=$("$GRADTRACE_PYTHON" -c \
  'import torch; print(torch.__version__, torch.version.cuda)')
needs_glibc=$(objdump -T "$bundle/gradtrace" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -n 1)
needs_glibcxx=$(objdump -T "$bundle/gradtrace" | grep -o 'GLIBCXX_[0-9.]*' | sort -Vu | tail -n 1)
{
  echo "binary: $version"
  echo "commit: $commit$([ "$changed" -gt 0 ] && echo " plus $changed changed tracked files")"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m)"
  echo "libtorch: ${torch_versions% *}"
  echo "libtorch cuda: ${torch_versions#* }"
  echo "rustc: $(rustc --version)"
  echo "needs: ${needs_glibc:-any glibc}, ${needs_glibcxx:-any libstdc++}"
  echo "sha256: $(sha256sum "$bundle/gradtrace" | cut -d' ' -f1)"
} >"$bundle/MANIFEST"

# Everything a device run carries: the tracked and untracked-but-not-ignored files, plus the
# bundle. Refuse a bundle that cannot travel rather than let the device run find out.
bundle_bytes=$(du -cb "$bundle"/* | tail -n 1 | cut -f1)
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null \
  | awk '$2 == "total" { sum += $1 } END { print sum + 0 }')
total_bytes=$((bundle_bytes + tree_bytes))
if [ "$total_bytes" -ge "$carry_limit" ]; then
  echo "device_bundle: bundle plus working tree is $total_bytes bytes, over the 64 MiB a device" \
    "run carries; remove large untracked files or ignore them" >&2
  exit 1
fi

cat "$bundle/MANIFEST"
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo
echo "bundle: $bundle/ is $(mib "$bundle_bytes"); with the working tree $(mib "$total_bytes")" \
  "of the 64 MiB limit"
echo "run the check on the GPU machine from the repository root with:"
echo "  carry:   [\"$bundle\"]"
echo "  command: bash scripts/device_check.sh"

# Sourced by the other scripts: points the Rust build at the libtorch inside the project's venv.
# torch-sys reads LIBTORCH; the binary finds the same folder at run time through its rpath.
gradtrace_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for candidate in "$gradtrace_root"/.venv/lib/python3*/site-packages/torch; do
  export LIBTORCH="$candidate"
done
export GRADTRACE_PYTHON="$gradtrace_root/.venv/bin/python"

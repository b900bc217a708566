#!/usr/bin/env bash
# The whole GPU check in one call, for a machine with python3 and torch but no Rust toolchain:
# run it from the repository root beside the device-bundle/ folder that scripts/device_bundle.sh
# made elsewhere. Three sections:
#   setup        finds torch's libtorch for the bundled binary (LD_LIBRARY_PATH), shows the GPU,
#                and trains one tiny run on the device to prove the binary sees it;
#   equivalence  the study's networks (sigmoid, tanh, ReLU; normal(0, 1) kernels; 100 epochs)
#                trained on the CPU and on the device with the same seeds, by both engines, every
#                matrix compared by scripts/compare_histories.py within the bounds of
#                tests/ensemble.rs;
#   speed        milliseconds per model-run of the tutorial network on the device, single engine
#                and ensembles of R models, then the 10,000-model sweep against its 10 s target.
#
# Usage: bash scripts/device_check.sh
#   DEVICE=cuda:1         the device to test (default cuda); DEVICE=cpu is a dry run without a GPU
#   QUICK=1               small sizes (2 seeds; R = 1, 64; a 200-model sweep), for dry runs
#   GRADTRACE_PYTHON=...  the python whose torch supplies libtorch (default python3)
#   OUT=DIR               also write device_report.txt, equivalence.csv and speed.csv there
#   TIME_BUDGET_S=480     optional steps are skipped once they would pass this many seconds
#
# Exit status: 0 when every run agrees and every timed run finished, 1 otherwise (the speed
# section still runs after a failed comparison). Missing the speed target is reported, not failed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

device=${DEVICE:-cuda}
quick=${QUICK:-0}
budget_s=${TIME_BUDGET_S:-480}
bin="device-bundle/gradtrace"
# A hung run must not eat the machine's whole lease: each command gets this long.
step_timeout_s=${STEP_TIMEOUT_S:-240}

if [ "$quick" = 1 ]; then
  seeds=2 singles=2 ensembles="1 64" sweep_models=200 sweep_split=64
else
  seeds=4 singles=4 ensembles="1 64 512 4096" sweep_models=10000 sweep_split=4096
fi
target_s=10
tutorial=(--activation sigmoid --init normal --hidden "5,5,5,5" --optimizer rmsprop --epochs 100
  --batch-size 32 --grad-every epoch --record stats --quiet)

fail() {
  echo "device_check: $*" >&2
  exit 1
}

now() { date +%s.%N; }
seconds_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

script_start=$(now)
section_start=$script_start
section() {
  section_start=$(now)
  printf '\n== %s ==\n' "$1"
}
section_done() {
  echo "(section: $(seconds_since "$section_start") s;" \
    "total so far: $(seconds_since "$script_start") s)"
}

# True when EXTRA more seconds still end within the time budget.
within_budget() {
  awk -v spent="$(seconds_since "$script_start")" -v extra="$1" -v budget="$budget_s" \
    'BEGIN { exit !(spent + extra < budget) }'
}

# Runs the bundled binary under the step timeout; sets `took` to its wall-clock seconds.
took=0
run_gradtrace() {
  local start rc=0
  start=$(now)
  timeout "$step_timeout_s" "$bin" "$@" || rc=$?
  took=$(seconds_since "$start")
  if [ "$rc" = 124 ]; then
    echo "device_check: gradtrace $1 timed out after $step_timeout_s s (STEP_TIMEOUT_S)" >&2
  fi
  return "$rc"
}

# "runs finished training_seconds" for a folder of runs or a sweep folder. A run is finished when
# it trained to the end or diverged (not when it failed); its seconds are its wall_time_s, which
# for an ensemble is the ensemble's training time shared out among its models.
training_seconds() {
  "$py" - "$1" <<'PY'
import json
import re
import sys
from pathlib import Path

folder = Path(sys.argv[1])
count = finished = 0
total = 0.0
if (folder / "index.jsonl").exists():
    # A sweep lists every run, its status and time in its index.
    for line in (folder / "index.jsonl").open():
        entry = json.loads(line)
        count += 1
        finished += entry["status"] != "failed"
        total += entry.get("wall_time_s") or 0.0
else:
    # A run file is written only once its run has finished, and wall_time_s is its last key:
    # read the tail rather than parse thousands of whole histories.
    pattern = re.compile(rb'"wall_time_s":\s*([-+0-9.eE]+)')
    for path in folder.glob("*.json"):
        with path.open("rb") as file:
            file.seek(max(0, path.stat().st_size - 256))
            match = pattern.search(file.read())
        count += 1
        finished += match is not None
        total += float(match.group(1)) if match else 0.0
print(count, finished, total)
PY
}

main() {
  # Global, not local: the EXIT trap runs after main has returned.
  work=$(mktemp -d "${TMPDIR:-/tmp}/gradtrace-device-check.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  local failures=0

  # --- setup ---------------------------------------------------------------------------------
  section "setup"
  [ -x "$bin" ] || fail "no $bin here: run scripts/device_bundle.sh on a machine with Rust and" \
    "carry device-bundle/ with the working tree"

  py=${GRADTRACE_PYTHON:-python3}
  command -v "$py" >/dev/null || fail "$py not found: set GRADTRACE_PYTHON to a python with torch"
  local info
  info=$("$py" -c '
import os, platform, torch
print(os.path.join(os.path.dirname(torch.__file__), "lib"))
print(torch.__version__)
print(torch.cuda.is_available())
print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
print(platform.python_version())
' 2>"$work/python.err") || fail "$py cannot import torch ($(tail -n 1 "$work/python.err")):" \
    "set GRADTRACE_PYTHON to a python with torch"
  local torch_lib torch_version cuda_available cuda_name python_version
  { read -r torch_lib; read -r torch_version; read -r cuda_available; read -r cuda_name
    read -r python_version; } <<<"$info"

  # The binary's rpath names the build machine's venv; here libtorch is torch's own lib folder.
  export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "python: $(command -v "$py") $python_version, torch $torch_version," \
    "cuda available: $cuda_available ($cuda_name)"
  echo "LD_LIBRARY_PATH starts with $torch_lib"
  if command -v nvidia-smi >/dev/null; then
    echo "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used \
      --format=csv,noheader 2>&1 | head -n 1)"
  fi
  if [ "$device" != cpu ] && [ "$cuda_available" != True ]; then
    fail "torch sees no CUDA device for DEVICE=$device; on a machine without a GPU use" \
      "DEVICE=cpu QUICK=1"
  fi

  local version
  version=$("$bin" --version 2>&1) || fail "$bin does not start: $(head -n 1 <<<"$version")"
  echo "binary: $version, libtorch from" \
    "$(ldd "$bin" 2>/dev/null | awk '$1 == "libtorch.so" { print $3 }')"
  sed 's/^/  bundle /' device-bundle/MANIFEST 2>/dev/null || echo "  (no device-bundle/MANIFEST)"
  local built_for
  built_for=$(sed -n 's/^libtorch: //p' device-bundle/MANIFEST 2>/dev/null)
  if [ -n "$built_for" ] && [ "$built_for" != "$torch_version" ]; then
    echo "warning: the binary was built against libtorch $built_for, this torch is" \
      "$torch_version: it may fail to load or round differently"
  fi

  # One epoch on the device: the binary links libtorch_cuda itself, so torch seeing the GPU
  # does not prove that the binary does.
  run_gradtrace run --epochs 1 --device "$device" --out "$work/smoke.json" --quiet \
    || fail "a one-epoch run on $device failed (its error is above)"
  local ran_on
  ran_on=$("$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))["device"])' \
    "$work/smoke.json")
  [[ "$ran_on" == "${device%%:*}"* ]] || fail "asked for $device, the run says it ran on $ran_on"
  echo "smoke run: one epoch on $ran_on in $took s"
  section_done

  # --- equivalence -----------------------------------------------------------------------------
  # CPU and device runs of each engine, one ensemble of all seeds per activation (--jobs 1), so
  # the device's ensemble holds the same models as the CPU's.
  section "equivalence: $device against cpu, seeds 0-$((seeds - 1)), 100 epochs, --record full"
  local engine dev side activation
  for engine in single ensemble; do
    for side in reference candidate; do
      dev=$([ "$side" = reference ] && echo cpu || echo "$device")
      for activation in sigmoid tanh relu; do
        if run_gradtrace run --init normal --activation "$activation" --seeds "$seeds" \
          --epochs 100 --record full --engine "$engine" --device "$dev" --jobs 1 \
          --out-dir "$work/equivalence/$engine-$side" --quiet; then
          echo "trained: $engine engine, $activation, $seeds seeds on $dev in $took s"
        else
          echo "FAIL $engine engine, $activation on $dev: training failed (its error is above)"
          failures=$((failures + 1))
        fi
      done
    done
  done
  for engine in single ensemble; do
    echo
    echo "$engine engine: $device against cpu"
    "$py" scripts/compare_histories.py --label "$engine" --csv "$work/equivalence-$engine.csv" \
      "$work/equivalence/$engine-reference" "$work/equivalence/$engine-candidate" \
      || failures=$((failures + 1))
  done
  # One CSV for both engines: the second file without its header.
  if [ -n "${OUT:-}" ]; then
    { cat "$work/equivalence-single.csv"; tail -n +2 "$work/equivalence-ensemble.csv"; } \
      >"$OUT/equivalence.csv" 2>/dev/null || true
  fi
  rm -rf "$work/equivalence"
  section_done

  # --- speed -----------------------------------------------------------------------------------
  # Whole process: start-up, data, training and JSON writing. Training: the runs' own
  # wall_time_s. Both divided by the number of models.
  section "speed on $device: tutorial network, 100 epochs of batch 32, gradients every epoch"
  local speed_csv="$work/speed.csv"
  echo "what,models,process_s,ms_per_model_process,ms_per_model_training,finished" >"$speed_csv"
  printf '%-34s %7s %10s %16s %17s\n' "" models "process s" "ms/model process" \
    "ms/model training"

  # measure LABEL MODELS FOLDER -- gradtrace ARGS: times one command and adds its row.
  local sweep_s=""
  measure() {
    local label=$1 models=$2 folder=$3 rc=0
    shift 4
    run_gradtrace "$@" --out-dir "$folder" || rc=$?
    local finished training
    read -r _ finished training < <(training_seconds "$folder" 2>/dev/null || echo 0 0 0)
    rm -rf "$folder"
    if [ "$rc" != 0 ] || [ "$finished" != "$models" ]; then
      printf '%-34s %7s %10s  FAILED: exit %s, %s of %s runs finished\n' "$label" "$models" \
        "$took" "$rc" "$finished" "$models"
      echo "\"$label\",$models,$took,,,$finished" >>"$speed_csv"
      failures=$((failures + 1))
      return 1
    fi
    local per_process per_training
    per_process=$(awk -v s="$took" -v n="$models" 'BEGIN { printf "%.3f", 1000 * s / n }')
    per_training=$(awk -v s="$training" -v n="$models" 'BEGIN { printf "%.3f", 1000 * s / n }')
    printf '%-34s %7s %10s %16s %17s\n' "$label" "$models" "$took" "$per_process" \
      "$per_training"
    echo "\"$label\",$models,$took,$per_process,$per_training,$finished" >>"$speed_csv"
  }

  measure "single engine, --jobs 1" "$singles" "$work/speed" -- \
    run "${tutorial[@]}" --seeds "$singles" --engine single --jobs 1 --device "$device" || true
  local r
  for r in $ensembles; do
    if ! within_budget 0; then
      echo "ensemble R = $r: skipped, the time budget ($budget_s s) is spent"
      continue
    fi
    measure "ensemble engine, R = $r" "$r" "$work/speed" -- \
      run "${tutorial[@]}" --seeds "$r" --engine ensemble --max-ensemble "$r" --jobs 1 \
      --device "$device" || true
  done

  # The target: every seed of the tutorial network in one sweep, then split as by default.
  local sweep=(sweep --seed-count "$sweep_models" --init normal --record stats --device "$device"
    --engine auto --quiet)
  if measure "sweep, --max-ensemble $sweep_models" "$sweep_models" "$work/sweep" -- \
    "${sweep[@]}" --max-ensemble "$sweep_models"; then
    sweep_s=$took
  fi
  # Another sweep of the same size fits if the first took well under what is left.
  if [ -z "$sweep_s" ]; then
    echo "sweep, --max-ensemble $sweep_split: skipped, the first sweep failed"
  elif within_budget "$(awk -v s="$sweep_s" 'BEGIN { print 2 * s + 10 }')"; then
    measure "sweep, --max-ensemble $sweep_split" "$sweep_models" "$work/sweep" -- \
      "${sweep[@]}" --max-ensemble "$sweep_split" || true
  else
    echo "sweep, --max-ensemble $sweep_split: skipped, it would pass the time budget ($budget_s s)"
  fi
  if [ -n "${OUT:-}" ]; then
    cp "$speed_csv" "$OUT/speed.csv"
  fi

  echo
  if [ -z "$sweep_s" ]; then
    echo "target: a $sweep_models-model sweep under $target_s s: NOT MEASURED (the sweep failed)"
  elif [ "$sweep_models" != 10000 ]; then
    echo "target: $sweep_models-model sweep in $sweep_s s (the $target_s s target is for" \
      "10000 models on a GPU; this was a QUICK run)"
  elif awk -v s="$sweep_s" -v t="$target_s" 'BEGIN { exit !(s < t) }'; then
    echo "target: 10000-model sweep in $sweep_s s: MET (under $target_s s)"
  else
    echo "target: 10000-model sweep in $sweep_s s: MISSED (target $target_s s)"
  fi
  section_done

  echo
  if [ "$failures" -gt 0 ]; then
    echo "device_check: FAIL: $failures failed step(s); see FAIL and FAILED lines above"
    exit 1
  fi
  echo "device_check: PASS: every comparison within bounds, every timed run completed"
}

# With OUT set, the report is kept there as well as printed.
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  set +e
  main 2>&1 | tee "$OUT/device_report.txt"
  exit "${PIPESTATUS[0]}"
fi
main

#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/) and runs each for SECONDS (default 60) from the committed seed
# corpus, copied to a scratch directory so that runs leave the tree clean. Prints, per target,
# the executions, executions per second and crashes found (with where their inputs went).
# Exits 1 when any target crashed, hung past its time limit or ran out of memory.
#
# Usage: bash scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  per target (default 60)
#   TARGET   some of: redis http memcache smtp mysql api ini cli exchange (default: all)
# Environment: FUZZ_OUT=DIR keeps the scratch directory there (corpus grown, crash inputs,
#   logs); otherwise a fresh one under /tmp, kept only when something crashed.
#   FUZZ_RUNS=N: also stop a target after N executions (the first limit reached ends it).
#   FUZZ_JOBS=N: cargo's build jobs (default 2).
#
# Stable Rust is enough: the coverage instrumentation libFuzzer needs is passed as RUSTFLAGS,
# the flags `cargo fuzz build -s none` uses (no sanitizer: the targets look for panics, hangs
# and runaway memory; release with debug assertions and overflow checks on).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECONDS_EACH=${1:-60}
shift || true
ALL=(redis http memcache smtp mysql api ini cli exchange)
if [ $# -gt 0 ]; then
  TARGETS=("$@")
else
  TARGETS=("${ALL[@]}")
fi
for t in "${TARGETS[@]}"; do
  if [ ! -f "fuzz/fuzz_targets/$t.rs" ]; then
    echo "fuzz.sh: no target '$t' (targets: ${ALL[*]})" >&2
    exit 2
  fi
done

TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
FLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
FLAGS+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters"
FLAGS+=" -Cllvm-args=-sanitizer-coverage-pc-table"
FLAGS+=" -Cllvm-args=-sanitizer-coverage-trace-compares"
FLAGS+=" -Cllvm-args=-simplifycfg-branch-fold-threshold=0"
FLAGS+=" -Cdebug-assertions -Coverflow-checks"

echo "==> building the fuzz targets (${TARGETS[*]})"
BINS=()
for t in "${TARGETS[@]}"; do BINS+=(--bin "$t"); done
# --target keeps the instrumentation out of build scripts and proc macros.
RUSTFLAGS="$FLAGS" cargo build --quiet --release --manifest-path fuzz/Cargo.toml \
  --target "$TRIPLE" -j "${FUZZ_JOBS:-2}" "${BINS[@]}"
BIN_DIR=$ROOT/fuzz/target/$TRIPLE/release

if [ -n "${FUZZ_OUT:-}" ]; then
  OUT=$FUZZ_OUT
  mkdir -p "$OUT"
  KEEP=1
else
  OUT=$(mktemp -d /tmp/vaurien-fuzz.XXXXXX)
  KEEP=0
fi
mkdir -p "$OUT/tmp"

FAILED=()
printf '\n%-10s %12s %8s %10s %8s  %s\n' target executions seconds exec/s crashes "crash inputs"
for t in "${TARGETS[@]}"; do
  corpus=$OUT/corpus/$t
  crashes=$OUT/crashes/$t
  mkdir -p "$corpus" "$crashes"
  if [ -d "fuzz/corpus/$t" ]; then
    cp -n fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  fi
  log=$OUT/$t.log
  # -timeout: one input running longer is a hang; -rss_limit_mb: runaway memory. Crash inputs
  # (crash-*, timeout-*, oom-*) go to $crashes. Stdin is closed: no input reads a terminal.
  set +e
  (cd "$OUT/tmp" && TMPDIR=$OUT/tmp "$BIN_DIR/$t" "$corpus" \
    -max_total_time="$SECONDS_EACH" -runs="${FUZZ_RUNS:--1}" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$crashes/" </dev/null >"$log" 2>&1)
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  if [ -z "$runs" ]; then
    runs=$(grep -o '#[0-9]*' "$log" | tail -1 | tr -d '#')
  fi
  runs=${runs:-0}
  found=$(find "$crashes" -type f | wc -l)
  if [ "$rc" -ne 0 ] && [ "$found" -eq 0 ]; then
    found=1 # a crash libFuzzer could not save: see the log
  fi
  rate=$(( runs / ( ${secs:-$SECONDS_EACH} > 0 ? ${secs:-$SECONDS_EACH} : 1 ) ))
  where="-"
  if [ "$found" -gt 0 ]; then
    where="$crashes (log: $log)"
    FAILED+=("$t")
  fi
  printf '%-10s %12s %8s %10s %8s  %s\n' "$t" "$runs" "${secs:-?}" "$rate" "$found" "$where"
done

if [ ${#FAILED[@]} -gt 0 ]; then
  echo
  for t in "${FAILED[@]}"; do
    echo "--- $t: $(grep -m1 -E "panicked at|ERROR: libFuzzer" "$OUT/$t.log" || true)"
    grep -m1 -A3 "panicked at" "$OUT/$t.log" | tail -n +2 || true
  done
  echo
  echo "fuzz.sh: crashes in: ${FAILED[*]} (reproduce: $BIN_DIR/TARGET CRASH_FILE)"
  exit 1
fi
if [ "$KEEP" = 0 ]; then
  rm -rf "$OUT"
fi
echo "fuzz.sh: no crash"

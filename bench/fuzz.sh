#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang, ASan+UBSan) and runs each for a
# while on a copy of its committed corpus (fuzz/corpus/<target>/).
#
# Usage: bench/fuzz.sh [--seconds N] [--jobs J] [--seed S] [target...]
#   --seconds N  per target (default 600; 0: only build)
#   --jobs J     targets run at once (default 1; each is one process)
#   --seed S     libFuzzer's -seed (default: random); CI fixes it so a run is repeatable
#   target       manifest object tar wal_reader agent_config api (default: all)
# Env: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_OUT (default
# $FUZZ_BUILD_DIR/fuzz-out/<time>), FUZZ_CXX (default clang++; not CXX, which
# CI may set to gcc for the main build).
#
# Prints per target: runs, execs/s, coverage (libFuzzer's "cov:"), corpus
# size, crashes. Exits non-zero when any target crashed, hung, leaked or had a
# sanitizer report; the reproducer is kept in FUZZ_OUT/<target>/ and the
# command that replays it is printed. New inputs found go to FUZZ_OUT, never
# into fuzz/corpus (merge them by hand: fuzz_<t> -merge=1 fuzz/corpus/<t> DIR).
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
ALL_TARGETS=(manifest object tar wal_reader agent_config api)
SECONDS_PER=600
JOBS=1
SEED=""
TARGETS=()
die() { echo "fuzz.sh: error: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) [ $# -ge 2 ] || die "--seconds needs a value"; SECONDS_PER="$2"; shift 2 ;;
    --jobs) [ $# -ge 2 ] || die "--jobs needs a value"; JOBS="$2"; shift 2 ;;
    --seed) [ $# -ge 2 ] || die "--seed needs a value"; SEED="$2"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) die "unknown option $1; hint: bench/fuzz.sh --help" ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
[[ "$SECONDS_PER" =~ ^[0-9]+$ ]] || die "--seconds must be a whole number, got \"$SECONDS_PER\""
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "--jobs must be a positive whole number, got \"$JOBS\""
[[ -z "$SEED" || "$SEED" =~ ^[1-9][0-9]*$ ]] || die "--seed must be a positive whole number, got \"$SEED\""
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
for t in "${TARGETS[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || die "unknown target \"$t\"; hint: one of ${ALL_TARGETS[*]}"
done

BUILD="${FUZZ_BUILD_DIR:-$SRC/build-fuzz}"
CXX_BIN="${FUZZ_CXX:-clang++}"
command -v "$CXX_BIN" >/dev/null || die "$CXX_BIN not found; hint: apt-get install clang (libFuzzer comes with it)"
if [ ! -f "$BUILD/build.ninja" ]; then
  # -O1 -g with assertions: what libFuzzer documents; no tests, no CLI binary.
  cmake -S "$SRC" -B "$BUILD" -G Ninja -DSMARTBACKUP_FUZZ=ON -DCMAKE_CXX_COMPILER="$CXX_BIN" \
    -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g" >/dev/null
fi
build_targets=()
for t in "${TARGETS[@]}"; do build_targets+=(--target "fuzz_$t"); done
echo "fuzz.sh: building ${TARGETS[*]} in $BUILD" >&2
cmake --build "$BUILD" -j "${BUILD_JOBS:-$(nproc)}" "${build_targets[@]}" >&2
[ "$SECONDS_PER" -gt 0 ] || exit 0

OUT="${FUZZ_OUT:-$BUILD/fuzz-out/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

run_one() {  # run_one TARGET: fuzzes it, writes OUT/TARGET/{log,rc}
  local t="$1" dir="$OUT/$1"
  mkdir -p "$dir/corpus"
  if [ -d "$SRC/fuzz/corpus/$t" ]; then cp -r "$SRC/fuzz/corpus/$t/." "$dir/corpus/"; fi
  local rc=0
  # Harness scratch directories (extracted archives, the API target's agent
  # state) go below TMPDIR: kept inside this run, removed after it even when
  # a crash skipped the harness's own cleanup.
  mkdir -p "$dir/tmp"
  # -timeout: an input taking 25 s is a hang, reported like a crash.
  TMPDIR="$dir/tmp" "$BUILD/fuzz/fuzz_$t" -max_total_time="$SECONDS_PER" -print_final_stats=1 -timeout=25 \
    -rss_limit_mb=2048 ${SEED:+-seed="$SEED"} -artifact_prefix="$dir/" "$dir/corpus" >"$dir/log" 2>&1 || rc=$?
  echo "$rc" >"$dir/rc"
  chmod -R u+rwx "$dir/tmp" 2>/dev/null || true
  rm -rf "$dir/tmp"
}

running=0
for t in "${TARGETS[@]}"; do
  echo "fuzz.sh: fuzzing $t for ${SECONDS_PER}s" >&2
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n || true; running=$((running - 1)); fi
done
wait || true

failed=0
printf '%-13s %12s %9s %7s %16s %8s\n' target runs execs/s cov corpus crashes
for t in "${TARGETS[@]}"; do
  dir="$OUT/$t" log="$OUT/$t/log"
  rc="$(cat "$dir/rc" 2>/dev/null || echo 99)"
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  eps="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)"
  files="$(find "$dir/corpus" -type f | wc -l)"
  bytes="$(du -sk "$dir/corpus" | cut -f1)"
  crashes="$(find "$dir" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
    -o -name 'oom-*' \) | wc -l)"
  printf '%-13s %12s %9s %7s %16s %8s\n' "$t" "${runs:-?}" "${eps:-?}" "${cov:-?}" "${files} files/${bytes}K" "$crashes"
  if [ "$rc" != 0 ] || [ "$crashes" != 0 ] || grep -q -E 'ERROR: (Address|Leak|Memory)Sanitizer|runtime error:' "$log"; then
    failed=1
    echo "fuzz.sh: $t FAILED (exit $rc); log: $log" >&2
    grep -m1 -E 'ERROR: |runtime error:|==[0-9]+==' "$log" >&2 || tail -5 "$log" >&2
    for f in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-*; do
      [ -e "$f" ] && echo "fuzz.sh: reproduce with: $BUILD/fuzz/fuzz_$t $f" >&2
    done
  fi
done
echo "fuzz.sh: outputs in $OUT" >&2
exit "$failed"

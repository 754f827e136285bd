#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every unit and
# integration test (real PostgreSQL 15 clusters and Azurite on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
bash scripts/install-deps.sh
source scripts/common.sh
bash scripts/build.sh
cd "$BUILD_DIR"
# Integration tests start PostgreSQL as "postgres": it needs to reach the binaries.
chmod o+rx . .. 2>/dev/null || true
ctest --output-on-failure --timeout 900 -j "${TEST_JOBS:-2}" "$@"
# A short seeded chaos run (bench/chaos.sh): faults against the agent on file:// and Azurite, in
# stream and archive mode, then verify and restores checked by SQL. CHAOS_FAULTS=0 skips;
# CHAOS_KINDS=k1,k2 limits the fault kinds (see bench/README.md).
if [ "${CHAOS_FAULTS:-20}" != 0 ]; then
  CHAOS_STORAGE=both
  [ "${SMARTBACKUP_SKIP_AZURE:-}" = 1 ] && CHAOS_STORAGE=file
  bash "$ROOT/bench/chaos.sh" --faults "${CHAOS_FAULTS:-20}" --seed "${CHAOS_SEED:-1}" --storage "$CHAOS_STORAGE" \
    --kinds "${CHAOS_KINDS:-all}" --smartbackup "$BUILD_DIR/smartbackup"
fi
# Each libFuzzer target briefly on its committed corpus (ASan+UBSan build in
# build-fuzz/): replays every seed and past finding. FUZZ_SECONDS=0 skips.
if [ "${FUZZ_SECONDS:-15}" != 0 ]; then
  bash "$ROOT/bench/fuzz.sh" --seconds "${FUZZ_SECONDS:-15}" --seed "${FUZZ_SEED:-1}"
fi

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
# Each libFuzzer target briefly on its committed corpus (ASan+UBSan build in
# build-fuzz/): replays every seed and past finding. FUZZ_SECONDS=0 skips.
if [ "${FUZZ_SECONDS:-15}" != 0 ]; then
  bash "$ROOT/bench/fuzz.sh" --seconds "${FUZZ_SECONDS:-15}" --seed "${FUZZ_SEED:-1}"
fi

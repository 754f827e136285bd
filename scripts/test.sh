#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every unit and
# integration test (real PostgreSQL 15 clusters and Azurite on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
source scripts/common.sh
bash scripts/build.sh
cd "$BUILD_DIR"
# Integration tests start PostgreSQL as "postgres": it needs to reach the binaries.
chmod o+rx . .. 2>/dev/null || true
ctest --output-on-failure --timeout 900 -j "${TEST_JOBS:-2}" "$@"

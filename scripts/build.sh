#!/usr/bin/env bash
# Configures and builds smartbackup and its tests into build/ (Release-like
# flags, ccache when present). Usage: scripts/build.sh [extra cmake args]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
JOBS="${JOBS:-$(nproc)}"
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSMARTBACKUP_WERROR=ON "$@" >/dev/null
fi
cmake --build "$BUILD_DIR" -j "$JOBS"

#!/usr/bin/env bash
# Builds qiusuo and runs every test (GoogleTest under CTest). Usage: scripts/test.sh [ctest args]
# Exits non-zero when a build step or any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
BUILD=${QIUSUO_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"${QIUSUO_JOBS:-2}"
ctest --test-dir "$BUILD" --output-on-failure -j"${QIUSUO_JOBS:-2}" "$@"

#!/usr/bin/env bash
# Runs one Node.js test file of the server (openai.test.mjs, web.test.mjs) with `node --test`.
# The npm packages of package-lock.json are installed (npm ci) into a work directory of the
# build tree, so the source tree stays clean; concurrent runs share it under a lock.
#   run.sh TEST_FILE   with QIUSUO_BIN, QS_MODELS, QS_FIXTURES, QS_SOURCE_DIR, QS_NODE_WORK set
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="${QS_NODE_WORK:?QS_NODE_WORK is not set}"
mkdir -p "$WORK"
(
  flock 9
  if ! cmp -s "$HERE/package-lock.json" "$WORK/package-lock.json" || [[ ! -d "$WORK/node_modules" ]]; then
    cp "$HERE/package.json" "$HERE/package-lock.json" "$WORK/"
    (cd "$WORK" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  cp "$HERE"/*.mjs "$WORK/"
) 9>"$WORK/.lock"
cd "$WORK"
exec node --test --test-reporter=spec "$1"

#!/usr/bin/env bash
# Builds the web chat page (web/src -> web/dist) with the npm packages of package-lock.json.
# web/dist is committed: building qiusuo needs no Node.js; run this after changing web/src.
set -euo pipefail
cd "$(dirname "$0")"
if [[ ! -x node_modules/.bin/esbuild ]]; then npm ci --no-audit --no-fund; fi
node build.mjs

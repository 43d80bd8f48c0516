#!/usr/bin/env bash
# Test models of the server tests: OUT/tiny-v3 and OUT/tiny-r1, random weights of
# tests/serve/tiny-config.json (DeepSeek-V3 layout, vocabulary 129280, hidden size 64) with the
# DeepSeek-V3 and DeepSeek-R1 tokenizers and chat templates of the shared fixtures. Idempotent
# and safe to run concurrently (each model is built in a temporary directory, then renamed).
#   tests/serve/make_models.sh QIUSUO_BIN OUT FIXTURES_DIR
set -euo pipefail
QS="$1"
OUT="$2"
FIX="$3"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$OUT"
for kind in v3 r1; do
  d="$OUT/tiny-$kind"
  [[ -f "$d/tokenizer_config.json" ]] && continue
  tmp="$d.tmp.$$"
  rm -rf "$tmp"
  seed=1
  [[ "$kind" == r1 ]] && seed=2
  if ! "$QS" init --config "$HERE/tiny-config.json" --out "$tmp" --dtype bf16 --seed "$seed" >"$tmp.log" 2>&1; then
    cat "$tmp.log" >&2
    exit 1
  fi
  rm -f "$tmp.log"
  cp "$FIX/tokenizer/deepseek-$kind/tokenizer.json" "$FIX/tokenizer/deepseek-$kind/tokenizer_config.json" "$tmp/"
  chmod u+w "$tmp"/*
  mv -T "$tmp" "$d" 2>/dev/null || rm -rf "$tmp"
done

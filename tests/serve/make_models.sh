#!/usr/bin/env bash
# Test models of the server tests: OUT/tiny-v3 and OUT/tiny-r1, random weights of
# tests/serve/tiny-config.json (DeepSeek-V3 layout, vocabulary 129280, hidden size 64) with the
# DeepSeek-V3 and DeepSeek-R1 tokenizers and chat templates of the shared fixtures, and
# OUT/tiny-mtp: the same with one MTP module (speculative decoding) and the V3 tokenizer. Idempotent
# and safe to run concurrently (each model is built in a temporary directory, then renamed).
#   tests/serve/make_models.sh QIUSUO_BIN OUT FIXTURES_DIR
set -euo pipefail
QS="$1"
OUT="$2"
FIX="$3"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$OUT"
for kind in v3 r1 mtp; do
  d="$OUT/tiny-$kind"
  [[ -f "$d/tokenizer_config.json" ]] && continue
  tmp="$d.tmp.$$"
  rm -rf "$tmp"
  seed=1
  [[ "$kind" == r1 ]] && seed=2
  [[ "$kind" == mtp ]] && seed=3
  config="$HERE/tiny-config.json"
  tok=deepseek-$kind
  if [[ "$kind" == mtp ]]; then
    mkdir -p "$tmp.cfg"
    sed 's/"num_hidden_layers": 2,/"num_hidden_layers": 2, "num_nextn_predict_layers": 1,/' "$config" >"$tmp.cfg/config.json"
    config="$tmp.cfg/config.json"
    tok=deepseek-v3
  fi
  if ! "$QS" init --config "$config" --out "$tmp" --dtype bf16 --seed "$seed" >"$tmp.log" 2>&1; then
    cat "$tmp.log" >&2
    exit 1
  fi
  rm -rf "$tmp.log" "$tmp.cfg"
  cp "$FIX/tokenizer/$tok/tokenizer.json" "$FIX/tokenizer/$tok/tokenizer_config.json" "$tmp/"
  chmod u+w "$tmp"/*
  mv -T "$tmp" "$d" 2>/dev/null || rm -rf "$tmp"
done

#!/usr/bin/env bash
# The main job: train a small DeepSeek-style model (MLA, DeepSeekMoE with auxiliary-loss-free
# balancing, multi-token prediction) on the Python standard library sources that every Debian
# machine has, for a few minutes, then sample from it and report its validation perplexity.
#
#   scripts/demo.sh                 # ~5 minutes on 2 cores
#   QIUSUO_DEMO_MINUTES=10 scripts/demo.sh
#   QIUSUO_DEMO_DIR=/tmp/demo scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"${QIUSUO_JOBS:-2}" --target qiusuo

Q=build/qiusuo
WORK=${QIUSUO_DEMO_DIR:-out/demo}
MINUTES=${QIUSUO_DEMO_MINUTES:-4}
PRESET=${QIUSUO_DEMO_PRESET:-tiny}
PY=$(ls -d /usr/lib/python3.[0-9]* 2>/dev/null | sort -V | tail -1)
[[ -n "$PY" ]] || { echo "demo: no /usr/lib/python3.* to train on" >&2; exit 1; }
# BF16 GEMMs where the CPU has AMX or AVX512-BF16, F32 elsewhere.
PRECISION=fp32
grep -qE 'amx_bf16|avx512_bf16' /proc/cpuinfo && PRECISION=bf16

echo "== 1/4 tokenizer: byte-level BPE (8192 ids) on $PY"
if [[ ! -f "$WORK/tokenizer/tokenizer.json" ]]; then
  $Q tokenizer-train --input "$PY" --include '*.py' --max-bytes 16M --vocab-size 8192 --out "$WORK/tokenizer"
fi
echo "== 2/4 dataset: every *.py file of $PY, one document each"
if [[ ! -f "$WORK/data/meta.json" ]]; then
  $Q prepare --tokenizer "$WORK/tokenizer" --input "$PY" --include '*.py' --out "$WORK/data"
fi
echo "== 3/4 training the '$PRESET' preset for ~$MINUTES minutes ($PRECISION)"
rm -rf "$WORK/model"
$Q train --config "$PRESET" --data "$WORK/data" --out "$WORK/model" --precision "$PRECISION" \
  --steps 100000 --time-limit "$MINUTES" --eval-every 100 --save-every 500
echo "== 4/4 sampling from $WORK/model"
for prompt in "def fibonacci(n):" "import os" "class Parser:"; do
  echo "--- prompt: $prompt"
  $Q generate --model "$WORK/model" --prompt "$prompt" --max-tokens 120 --temperature 0.7 --top-p 0.9 --seed 1
done
$Q eval --model "$WORK/model" --data "$WORK/data" --seq-len 256 --batches 8
echo "plots: $WORK/model/plots/{loss,lr,expert_load}.svg   metrics: $WORK/model/metrics.jsonl"

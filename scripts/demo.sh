#!/usr/bin/env bash
# The main job: DeepSeek-R1 in miniature (`qiusuo r1`, docs/rl.md), end to end on generated data
# with no download: pretrain a small DeepSeek-style MoE on worked arithmetic, R1-Zero GRPO on it,
# rejection sampling + SFT, distillation into a smaller student and the same student trained by
# GRPO alone; every stage evaluated on held-out problems. 4-20 minutes on 2 cores.
#
#   scripts/demo.sh                          # results in out/r1 (results.json, results.md, plots/)
#   QIUSUO_DEMO_DIR=/tmp/r1 scripts/demo.sh  # another run directory (run again to continue it)
#   QIUSUO_DEMO_QUICK=1 scripts/demo.sh      # a seconds-long smoke run with tiny models
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"${QIUSUO_JOBS:-2}" --target qiusuo

WORK=${QIUSUO_DEMO_DIR:-out/r1}
ARGS=()
[[ -n "${QIUSUO_DEMO_QUICK:-}" ]] && ARGS+=(--quick)
build/qiusuo r1 --out "$WORK" "${ARGS[@]}"
echo
cat "$WORK/results.md"

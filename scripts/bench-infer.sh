#!/usr/bin/env bash
# Inference benchmark: `qiusuo bench` on the 6-layer DeepSeek-V2-Lite-shaped model (`qiusuo init
# --config v2-lite --layers 6`, random weights, real widths) in BF16 and FP8, and, when a
# llama.cpp source tree is given, llama.cpp on the same checkpoints converted with its own
# converter (BF16 GGUF; Q8_0 as the 8-bit peer of FP8, since llama.cpp has no FP8 weights),
# one after the other on the same machine and threads. Prints a JSON report (also written to
# WORK/report.json). See docs/benchmarks.md.
#
#   scripts/bench-infer.sh                               qiusuo only
#   scripts/bench-infer.sh --llama-cpp ~/src/llama.cpp   with the llama.cpp peer
#   scripts/bench-infer.sh --fetch-llama-cpp             get llama.cpp's source from the npm registry
#                                                        (the git bundle inside node-llama-cpp) first
#
# Options (each also an environment variable):
#   --threads N        BENCH_THREADS     threads of both engines (default 2)
#   --dtypes "..."     BENCH_DTYPES      from bf16 fp8 (default "bf16 fp8")
#   --work DIR         BENCH_WORK        models, GGUF files, llama.cpp build, report
#                                        (default /tmp/qiusuo-bench-infer)
#   --llama-cpp DIR    LLAMACPP_SRC      llama.cpp source tree (built into WORK/llama-build)
#   --fetch-llama-cpp                    npm pack node-llama-cpp@$LLAMACPP_NPM_VERSION (default 3.22.1)
#                                        and clone its llama.cpp bundle into WORK/llama.cpp
#   --tokenizer FILE   BENCH_TOKENIZER   tokenizer.json for the GGUF vocabulary (default: the
#                                        DeepSeek-V3 tokenizer of ../shared/fixtures, cut to the vocab)
#   --skip-install     BENCH_SKIP_INSTALL=1  do not call scripts/install-deps.sh --bench
#   QIUSUO_BIN         qiusuo binary (default build/qiusuo, built if missing)
#   PYTHON             Python with numpy and torch for llama.cpp's converter (default /usr/bin/python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
THREADS="${BENCH_THREADS:-2}"
DTYPES="${BENCH_DTYPES:-bf16 fp8}"
WORK="${BENCH_WORK:-/tmp/qiusuo-bench-infer}"
LLAMA_SRC="${LLAMACPP_SRC:-}"
FETCH=0
NPM_VERSION="${LLAMACPP_NPM_VERSION:-3.22.1}"
TOKENIZER="${BENCH_TOKENIZER:-}"
SKIP_INSTALL="${BENCH_SKIP_INSTALL:-0}"
PYTHON="${PYTHON:-/usr/bin/python3}"

die() { echo "bench-infer: error: $*" >&2; exit 1; }
log() { echo "bench-infer: $*" >&2; }
need_value() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) need_value "$@"; THREADS="$2"; shift 2 ;;
    --dtypes|--dtype) need_value "$@"; DTYPES="$2"; shift 2 ;;
    --work) need_value "$@"; WORK="$2"; shift 2 ;;
    --llama-cpp) need_value "$@"; LLAMA_SRC="$2"; shift 2 ;;
    --fetch-llama-cpp) FETCH=1; shift ;;
    --tokenizer) need_value "$@"; TOKENIZER="$2"; shift 2 ;;
    --skip-install) SKIP_INSTALL=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
DTYPES="${DTYPES//,/ }"
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer, got '$THREADS'"
for d in $DTYPES; do [[ "$d" == bf16 || "$d" == fp8 ]] || die "dtype '$d' is not bf16 or fp8"; done

mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
if [[ "$SKIP_INSTALL" != 1 ]]; then "$ROOT/scripts/install-deps.sh" --bench >&2; fi

QS="${QIUSUO_BIN:-$ROOT/build/qiusuo}"
if [[ ! -x "$QS" ]]; then
  log "building qiusuo"
  cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release >&2
  cmake --build "$ROOT/build" --target qiusuo -j"$(nproc)" >&2
fi

# --- the llama.cpp peer's source and build ---------------------------------------------------
if [[ "$FETCH" == 1 ]]; then
  command -v npm >/dev/null || die "--fetch-llama-cpp needs npm (apt-get install npm)"
  if [[ ! -f "$WORK/llama.cpp/convert_hf_to_gguf.py" ]]; then
    log "fetching node-llama-cpp@$NPM_VERSION from the npm registry (it carries llama.cpp's source as a git bundle)"
    rm -rf "$WORK/npm" "$WORK/llama.cpp"
    mkdir -p "$WORK/npm"
    (cd "$WORK/npm" && npm pack --silent "node-llama-cpp@$NPM_VERSION" >/dev/null && tar xzf node-llama-cpp-*.tgz)
    git clone -q "$WORK/npm/package/llama/gitRelease.bundle" "$WORK/llama.cpp" 2>/dev/null ||
      die "could not clone the llama.cpp bundle of node-llama-cpp@$NPM_VERSION"
  fi
  LLAMA_SRC="$WORK/llama.cpp"
fi
LLAMA_BENCH=""
LLAMA_BATCHED=""
if [[ -n "$LLAMA_SRC" ]]; then
  [[ -f "$LLAMA_SRC/convert_hf_to_gguf.py" && -f "$LLAMA_SRC/CMakeLists.txt" ]] ||
    die "$LLAMA_SRC is not a llama.cpp source tree"
  LLAMA_SRC="$(cd "$LLAMA_SRC" && pwd)"
  "$PYTHON" -c "import numpy, torch" 2>/dev/null ||
    die "$PYTHON cannot import numpy and torch (llama.cpp's converter needs them): scripts/install-deps.sh --bench"
  B="$WORK/llama-build"
  # Native build (-march=native). On CPUs with AMX, ggml's AMX path holds Q8_0 weights in its
  # own buffer type, which supports only plain MUL_MAT; with deepseek2 graphs the scheduler then
  # finds no backend for another op on those weights and aborts (GGML_ASSERT(*cur_backend_id !=
  # -1) in ggml-backend.cpp, llama.cpp de3ff81). Those AMX kernels serve only quantized types,
  # so build without them: Q8_0 then runs on AVX-512-VNNI, BF16 is unaffected.
  NOAMX=""
  if grep -q amx_int8 /proc/cpuinfo; then NOAMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"; fi
  if [[ ! -x "$B/bin/llama-bench" || ! -x "$B/bin/llama-batched-bench" ]]; then
    log "building llama.cpp (llama-bench, llama-batched-bench) in $B"
    cmake -S "$LLAMA_SRC" -B "$B" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
      -DCMAKE_C_FLAGS="$NOAMX" -DCMAKE_CXX_FLAGS="$NOAMX" \
      -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >&2
    cmake --build "$B" --target llama-bench llama-batched-bench -j"$(nproc)" >&2
  fi
  LLAMA_BENCH="$B/bin/llama-bench"
  LLAMA_BATCHED="$B/bin/llama-batched-bench"
  if [[ -z "$TOKENIZER" ]]; then
    for d in "$ROOT/../shared/fixtures/tokenizer/deepseek-v3" /work/shared/fixtures/tokenizer/deepseek-v3; do
      [[ -f "$d/tokenizer.json" ]] && TOKENIZER="$d/tokenizer.json" && break
    done
  fi
  [[ -f "$TOKENIZER" ]] || die "no tokenizer.json for the GGUF vocabulary (give --tokenizer FILE)"
fi

# --- runs --------------------------------------------------------------------------------------
mkdir -p "$WORK/runs"
# WORK/v2lite6-DTYPE, created with `qiusuo init` unless present.
model_dir() {
  local m="$WORK/v2lite6-$1"
  if [[ ! -f "$m/config.json" ]]; then
    log "qiusuo init --config v2-lite --layers 6 --dtype $1"
    rm -rf "$m"
    "$QS" init --config v2-lite --layers 6 --dtype "$1" --seed 0 --out "$m" >&2
  fi
  echo "$m"
}
for d in $DTYPES; do
  M="$(model_dir "$d")"
  log "qiusuo bench, $d, $THREADS threads"
  "$QS" bench --model "$M" --threads "$THREADS" --json > "$WORK/runs/qiusuo-$d.json"
  if [[ -n "$LLAMA_BENCH" ]]; then
    # llama.cpp has no FP8 weight type: its 8-bit peer of our FP8 checkpoint is Q8_0
    # (blocks of 32 int8 with one F16 scale, 8.5 bits per weight).
    case "$d" in bf16) OT=bf16 ;; fp8) OT=q8_0 ;; esac
    G="$WORK/v2lite6-$OT.gguf"
    if [[ ! -f "$G" ]]; then
      log "converting to $OT GGUF with llama.cpp's convert_hf_to_gguf.py"
      "$PYTHON" "$ROOT/bench/llamacpp_convert.py" --llama-cpp "$LLAMA_SRC" --model "$(model_dir bf16)" \
        --tokenizer "$TOKENIZER" --outtype "$OT" --out "$G.tmp" > "$WORK/runs/convert-$OT.log" 2>&1 ||
        { tail -20 "$WORK/runs/convert-$OT.log" >&2; die "GGUF conversion failed (log: $WORK/runs/convert-$OT.log)"; }
      mv "$G.tmp" "$G"
    fi
    log "llama-bench, $OT, $THREADS threads"
    # prefill of 512 tokens; 32 decode steps after a 128-token context (as qiusuo bench)
    "$LLAMA_BENCH" -m "$G" -t "$THREADS" -p 512 -n 0 -r 3 -o json > "$WORK/runs/llama-$OT-pp.json" \
      2> "$WORK/runs/llama-$OT-pp.log" || { log "llama-bench failed (log: $WORK/runs/llama-$OT-pp.log)"; rm -f "$WORK/runs/llama-$OT-pp.json"; }
    "$LLAMA_BENCH" -m "$G" -t "$THREADS" -p 0 -n 32 -d 128 -r 3 -o json > "$WORK/runs/llama-$OT-tg.json" \
      2> "$WORK/runs/llama-$OT-tg.log" || { log "llama-bench failed (log: $WORK/runs/llama-$OT-tg.log)"; rm -f "$WORK/runs/llama-$OT-tg.json"; }
    log "llama-batched-bench, $OT, 8 sequences"
    "$LLAMA_BATCHED" -m "$G" -t "$THREADS" -tb "$THREADS" -c 2048 -b 2048 -ub 512 -npp 128 -ntg 32 -npl 1,8 \
      --output-format jsonl > "$WORK/runs/llama-$OT-batched.jsonl" 2> "$WORK/runs/llama-$OT-batched.log" ||
      log "llama-batched-bench failed (log: $WORK/runs/llama-$OT-batched.log)"
  fi
done

"$PYTHON" - "$WORK" "$DTYPES" "$THREADS" <<'PY' | tee "$WORK/report.json"
import json, os, platform, sys
work, dtypes, threads = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])
cpu = "?"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip(); break
except OSError:
    pass
rep = {"machine": {"cpu": cpu, "logical_cpus": os.cpu_count(), "kernel": platform.release()},
       "model": "qiusuo init --config v2-lite --layers 6 (hidden 2048, 1 dense + 5 MoE layers, 64 routed top-6 + 2 shared, vocab 102400)",
       "threads": threads, "results": {}}
for d in dtypes:
    r = {"qiusuo": json.load(open(f"{work}/runs/qiusuo-{d}.json"))}
    ot = {"bf16": "bf16", "fp8": "q8_0"}[d]
    pp, tg = f"{work}/runs/llama-{ot}-pp.json", f"{work}/runs/llama-{ot}-tg.json"
    if os.path.exists(pp) and os.path.exists(tg):
        l = {"weights": ot}
        for f, key in ((pp, "prefill_tokens_per_s"), (tg, "decode_tokens_per_s")):
            rows = json.load(open(f))
            l[key] = rows[0]["avg_ts"]
            l[key + "_stddev"] = rows[0]["stddev_ts"]
            l["build"] = rows[0].get("build_commit")
            l["model_size_bytes"] = rows[0].get("model_size")
        bj = f"{work}/runs/llama-{ot}-batched.jsonl"
        if os.path.exists(bj):
            for line in open(bj):
                try:
                    o = json.loads(line)
                except ValueError:
                    continue
                if o.get("pl") == 8:
                    l["decode_batch8_tokens_per_s"] = o.get("speed_tg")
                if o.get("pl") == 1:
                    l["decode_batch1_batched_bench_tokens_per_s"] = o.get("speed_tg")
        r["llama_cpp"] = l
        q = r["qiusuo"]
        r["ratio_qiusuo_over_llama_cpp"] = {
            k: q[k] / l[k] for k in ("prefill_tokens_per_s", "decode_tokens_per_s", "decode_batch8_tokens_per_s")
            if l.get(k)}
    rep["results"][d] = r
print(json.dumps(rep, indent=1))
PY

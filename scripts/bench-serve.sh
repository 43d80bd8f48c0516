#!/usr/bin/env bash
# Serving benchmark: bench/serve_load.mjs (the metrics of vLLM's benchmark_serving.py: request and
# output-token throughput, TTFT, TPOT, ITL at p50/p99) at concurrency 1, 4, 16, 64 against
#   - `qiusuo serve` on the 6-layer DeepSeek-V2-Lite-shaped model of scripts/bench-infer.sh
#     (`qiusuo init --config v2-lite --layers 6`, BF16, with the DeepSeek-V3 tokenizer cut to its
#     vocabulary, as the GGUF conversion does),
#   - llama.cpp's `llama-server` on the same checkpoint converted to a BF16 GGUF by llama.cpp's own
#     converter (bench/llamacpp_convert.py), one after the other in the same run, same threads,
#   - `qiusuo serve` on the tiny test model (tests/serve/tiny-config.json, V3 tokenizer).
# Prints a JSON report (also WORK/serve-report.json). See docs/benchmarks.md.
#
#   scripts/bench-serve.sh --fetch-llama-cpp          llama.cpp from the npm registry (as bench-infer.sh)
#   scripts/bench-serve.sh --llama-cpp ~/src/llama.cpp
#   scripts/bench-serve.sh --no-llama-cpp             qiusuo only
#
# Options (each also an environment variable):
#   --threads N              BENCH_THREADS   compute threads of both servers (default 2)
#   --levels "1,4,16,64"     BENCH_LEVELS    concurrency levels
#   --requests "2x"          BENCH_REQUESTS  requests per level: N, or Kx = K x concurrency (>= 8)
#   --input-len N            BENCH_INPUT     mean prompt tokens (default 128; lengths ±50%)
#   --output-len N           BENCH_OUTPUT    mean output tokens (default 64; ±50%; ignore_eos)
#   --work DIR               BENCH_WORK      models, GGUF, llama.cpp build (default /tmp/qiusuo-bench-infer,
#                                            shared with scripts/bench-infer.sh)
#   --skip-tiny / --skip-v2lite              leave out a model
#   --skip-install           BENCH_SKIP_INSTALL=1
#   QIUSUO_BIN (default build/qiusuo), PYTHON (default /usr/bin/python3), LLAMACPP_NPM_VERSION
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
THREADS="${BENCH_THREADS:-2}"
LEVELS="${BENCH_LEVELS:-1,4,16,64}"
REQUESTS="${BENCH_REQUESTS:-2x}"
INPUT="${BENCH_INPUT:-128}"
OUTPUT="${BENCH_OUTPUT:-64}"
WORK="${BENCH_WORK:-/tmp/qiusuo-bench-infer}"
LLAMA_SRC="${LLAMACPP_SRC:-}"
FETCH=0
NO_LLAMA=0
SKIP_TINY=0
SKIP_V2=0
SKIP_INSTALL="${BENCH_SKIP_INSTALL:-0}"
PYTHON="${PYTHON:-/usr/bin/python3}"
NPM_VERSION="${LLAMACPP_NPM_VERSION:-3.22.1}"

die() { echo "bench-serve: error: $*" >&2; exit 1; }
log() { echo "bench-serve: $*" >&2; }
need_value() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) need_value "$@"; THREADS="$2"; shift 2 ;;
    --levels) need_value "$@"; LEVELS="$2"; shift 2 ;;
    --requests) need_value "$@"; REQUESTS="$2"; shift 2 ;;
    --input-len) need_value "$@"; INPUT="$2"; shift 2 ;;
    --output-len) need_value "$@"; OUTPUT="$2"; shift 2 ;;
    --work) need_value "$@"; WORK="$2"; shift 2 ;;
    --llama-cpp) need_value "$@"; LLAMA_SRC="$2"; shift 2 ;;
    --fetch-llama-cpp) FETCH=1; shift ;;
    --no-llama-cpp) NO_LLAMA=1; shift ;;
    --skip-tiny) SKIP_TINY=1; shift ;;
    --skip-v2lite) SKIP_V2=1; shift ;;
    --skip-install) SKIP_INSTALL=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer"
command -v node >/dev/null || die "node is needed for bench/serve_load.mjs (scripts/install-deps.sh)"
mkdir -p "$WORK/runs"
WORK="$(cd "$WORK" && pwd)"
if [[ "$SKIP_INSTALL" != 1 ]]; then "$ROOT/scripts/install-deps.sh" --bench >&2; fi
QS="${QIUSUO_BIN:-$ROOT/build/qiusuo}"
if [[ ! -x "$QS" ]]; then
  log "building qiusuo"
  cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release >&2
  cmake --build "$ROOT/build" --target qiusuo -j"$(nproc)" >&2
fi
MAX_LEVEL=$(tr ',' '\n' <<<"$LEVELS" | sort -n | tail -1)
TOKENIZER=""
for d in "$ROOT/../shared/fixtures" /work/shared/fixtures; do
  [[ -f "$d/tokenizer/deepseek-v3/tokenizer.json" ]] && FIX="$(cd "$d" && pwd)" && TOKENIZER="$FIX/tokenizer/deepseek-v3/tokenizer.json" && break
done
[[ -n "$TOKENIZER" ]] || die "no shared fixtures (../shared/fixtures) for the tokenizer"

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_health() {  # URL PID LOG
  for _ in $(seq 1 1200); do
    if curl -sf "$1/health" >/dev/null 2>&1; then return 0; fi
    kill -0 "$2" 2>/dev/null || { tail -20 "$3" >&2; die "server exited (log: $3)"; }
    sleep 0.5
  done
  die "server not ready after 10 minutes (log: $3)"
}
load() {  # URL LABEL OUT
  node "$ROOT/bench/serve_load.mjs" --url "$1" --label "$2" --concurrency "$LEVELS" --requests-per-level "$REQUESTS" \
    --input-len "$INPUT" --output-len "$OUTPUT" --out "$3" >&2
}
run_qiusuo() {  # MODEL_DIR LABEL
  local port log pid
  port=$(free_port)
  log="$WORK/runs/qiusuo-$2.log"
  log "qiusuo serve ($2), $THREADS threads, port $port"
  "$QS" serve --model "$1" --port "$port" --threads "$THREADS" --max-batch "$MAX_LEVEL" --quiet \
    --ctx $(( (INPUT + OUTPUT) * 2 + 64 )) >"$log" 2>&1 &
  pid=$!
  wait_health "http://127.0.0.1:$port" "$pid" "$log"
  load "http://127.0.0.1:$port" "qiusuo-$2" "$WORK/runs/qiusuo-$2.json"
  kill -TERM "$pid"
  wait "$pid" || die "qiusuo serve exited non-zero after SIGTERM (log: $log)"
}

# --- models ------------------------------------------------------------------------------------
if [[ "$SKIP_V2" != 1 ]]; then
  M="$WORK/v2lite6-bf16"
  if [[ ! -f "$M/config.json" ]]; then
    log "qiusuo init --config v2-lite --layers 6 --dtype bf16"
    rm -rf "$M"
    "$QS" init --config v2-lite --layers 6 --dtype bf16 --seed 0 --out "$M" >&2
  fi
  # The serving copy: the weights (links) and the V3 tokenizer cut to the model's vocabulary, the
  # same vocabulary the GGUF gets (bench/llamacpp_convert.py).
  S="$WORK/serve-stage/model"
  if [[ ! -f "$S/tokenizer.json" ]]; then
    rm -rf "$WORK/serve-stage"
    mkdir -p "$WORK/serve-stage"
    PYTHONPATH="$ROOT/bench" "$PYTHON" -c 'import sys; from pathlib import Path; from llamacpp_convert import staged_model_dir; staged_model_dir(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))' \
      "$M" "$TOKENIZER" "$WORK/serve-stage"
  fi
fi
if [[ "$SKIP_TINY" != 1 ]]; then
  "$ROOT/tests/serve/make_models.sh" "$QS" "$WORK" "$FIX"
fi

# --- the llama.cpp peer ------------------------------------------------------------------------
LLAMA_SERVER=""
if [[ "$NO_LLAMA" != 1 && "$SKIP_V2" != 1 ]]; then
  if [[ "$FETCH" == 1 && ! -f "$WORK/llama.cpp/convert_hf_to_gguf.py" ]]; then
    command -v npm >/dev/null || die "--fetch-llama-cpp needs npm"
    log "fetching node-llama-cpp@$NPM_VERSION from the npm registry (llama.cpp's source as a git bundle)"
    rm -rf "$WORK/npm" "$WORK/llama.cpp"
    mkdir -p "$WORK/npm"
    (cd "$WORK/npm" && npm pack --silent "node-llama-cpp@$NPM_VERSION" >/dev/null && tar xzf node-llama-cpp-*.tgz)
    git clone -q "$WORK/npm/package/llama/gitRelease.bundle" "$WORK/llama.cpp" 2>/dev/null || die "could not clone the llama.cpp bundle"
  fi
  [[ "$FETCH" == 1 ]] && LLAMA_SRC="$WORK/llama.cpp"
  if [[ -n "$LLAMA_SRC" ]]; then
    [[ -f "$LLAMA_SRC/convert_hf_to_gguf.py" ]] || die "$LLAMA_SRC is not a llama.cpp source tree"
    LLAMA_SRC="$(cd "$LLAMA_SRC" && pwd)"
    B="$WORK/llama-build"
    NOAMX=""  # as bench-infer.sh: ggml's AMX buffer type breaks deepseek2 graphs on AMX hosts
    if grep -q amx_int8 /proc/cpuinfo; then NOAMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"; fi
    if [[ ! -x "$B/bin/llama-server" ]]; then
      log "building llama-server in $B"
      cmake -S "$LLAMA_SRC" -B "$B" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
        -DCMAKE_C_FLAGS="$NOAMX" -DCMAKE_CXX_FLAGS="$NOAMX" -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF >&2
      cmake --build "$B" --target llama-server -j"$(nproc)" >&2
    fi
    LLAMA_SERVER="$B/bin/llama-server"
    G="$WORK/v2lite6-bf16.gguf"
    if [[ ! -f "$G" ]]; then
      "$PYTHON" -c "import numpy, torch" 2>/dev/null || die "$PYTHON cannot import numpy and torch (scripts/install-deps.sh --bench)"
      log "converting to a BF16 GGUF with llama.cpp's convert_hf_to_gguf.py"
      "$PYTHON" "$ROOT/bench/llamacpp_convert.py" --llama-cpp "$LLAMA_SRC" --model "$M" --tokenizer "$TOKENIZER" \
        --outtype bf16 --out "$G.tmp" >"$WORK/runs/convert-bf16.log" 2>&1 || { tail -20 "$WORK/runs/convert-bf16.log" >&2; die "GGUF conversion failed"; }
      mv "$G.tmp" "$G"
    fi
  fi
fi

# --- runs --------------------------------------------------------------------------------------
if [[ "$SKIP_V2" != 1 ]]; then
  run_qiusuo "$S" v2lite
  if [[ -n "$LLAMA_SERVER" ]]; then
    port=$(free_port)
    llog="$WORK/runs/llama-server.log"
    # One slot per client; each slot's context holds the longest request.
    slot_ctx=$(( (INPUT + OUTPUT) * 2 + 64 ))
    log "llama-server, $THREADS threads, $MAX_LEVEL slots of $slot_ctx tokens, port $port"
    "$LLAMA_SERVER" -m "$G" --host 127.0.0.1 --port "$port" -t "$THREADS" -tb "$THREADS" -np "$MAX_LEVEL" \
      -c $(( slot_ctx * MAX_LEVEL )) -b 2048 -ub 512 --no-webui >"$llog" 2>&1 &
    lpid=$!
    wait_health "http://127.0.0.1:$port" "$lpid" "$llog"
    load "http://127.0.0.1:$port" llama-server-v2lite "$WORK/runs/llama-v2lite.json"
    kill -TERM "$lpid"
    wait "$lpid" || true
  fi
fi
if [[ "$SKIP_TINY" != 1 ]]; then
  run_qiusuo "$WORK/tiny-v3" tiny
fi

"$PYTHON" - "$WORK" "$THREADS" "$LEVELS" "$REQUESTS" "$INPUT" "$OUTPUT" <<'PY' | tee "$WORK/serve-report.json"
import json, os, platform, sys
work, threads, levels, requests, inp, out = sys.argv[1:7]
cpu = "?"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip(); break
def load(name):
    p = f"{work}/runs/{name}.json"
    return json.load(open(p)) if os.path.exists(p) else None
rep = {"machine": {"cpu": cpu, "logical_cpus": os.cpu_count(), "kernel": platform.release()},
       "threads": int(threads), "levels": levels, "requests_per_level": requests,
       "dataset": f"random token-id prompts, input {inp} and output {out} tokens ±50%, greedy, ignore_eos",
       "results": {}}
for key, name in (("qiusuo_v2lite", "qiusuo-v2lite"), ("llama_server_v2lite", "llama-v2lite"), ("qiusuo_tiny", "qiusuo-tiny")):
    r = load(name)
    if r: rep["results"][key] = r
def at(rows, c):
    return next((r for r in rows or [] if r["concurrency"] == c), None)
q = rep["results"].get("qiusuo_v2lite")
l = rep["results"].get("llama_server_v2lite")
summary = {}
if q and at(q, 1) and at(q, 16):
    summary["qiusuo_output_throughput_16_over_1"] = at(q, 16)["output_token_throughput"] / at(q, 1)["output_token_throughput"]
if q and l and at(q, 16) and at(l, 16):
    summary["output_throughput_qiusuo_over_llama_at_16"] = at(q, 16)["output_token_throughput"] / at(l, 16)["output_token_throughput"]
    summary["request_throughput_qiusuo_over_llama_at_16"] = at(q, 16)["request_throughput"] / at(l, 16)["request_throughput"]
    summary["p99_ttft_ms_at_16"] = {"qiusuo": at(q, 16)["ttft_ms"]["p99"], "llama_server": at(l, 16)["ttft_ms"]["p99"]}
rep["summary"] = summary
print(json.dumps(rep, indent=1))
PY

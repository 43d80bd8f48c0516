#!/usr/bin/env bash
# Inference benchmark: `qiusuo bench` on a DeepSeek-V2-Lite-shaped model (`qiusuo init --config
# v2-lite --layers N`, 6 layers unless --layers says otherwise; random weights, real widths) in
# BF16, FP8, INT8 and INT4 (`qiusuo quantize --to int8|int4` of the BF16 checkpoint; see --layers
# for runs without one), and, when a llama.cpp source tree is given, llama.cpp on the same
# checkpoint converted with its own converter (BF16 GGUF; Q8_0 as the 8-bit peer of FP8, since
# llama.cpp has no FP8 weights, and of INT8; Q4_0 and Q4_K_M, made by llama-quantize from the
# BF16 GGUF, as the peers of INT4), interleaved on the same machine and threads: round
# after round, qiusuo then llama.cpp for each format (the host's bandwidth moves between runs).
# Prints a JSON report (also written to WORK/report.json) with every round and the means. See
# docs/benchmarks.md.
#
#   scripts/bench-infer.sh                               qiusuo only
#   scripts/bench-infer.sh --llama-cpp ~/src/llama.cpp   with the llama.cpp peer
#   scripts/bench-infer.sh --fetch-llama-cpp             get llama.cpp's source from the npm registry
#                                                        (the git bundle inside node-llama-cpp) first
#
# Options (each also an environment variable):
#   --threads N        BENCH_THREADS     threads of both engines (default 2)
#   --dtypes "..."     BENCH_DTYPES      from bf16 fp8 int8 int4 int4h8 (default "bf16 fp8 int8 int4"; int4h8:
#                                        INT4 with an INT8 LM head, `--head-to int8`, against the
#                                        same Q4_0 / Q4_K_M files, which hold their head in Q6_K)
#   --rounds N         BENCH_ROUNDS      interleaved rounds (default 2)
#   --layers N         BENCH_LAYERS      depth of the V2-Lite-shaped model (default 6; 27 is the
#                                        real V2-Lite). Without bf16 in --dtypes the BF16
#                                        checkpoint is never made (31 GB at 27 layers): INT8/INT4 are
#                                        quantized from the FP8 one, the Q8_0 GGUF converted from
#                                        it (llama.cpp's converter dequantizes the FP8 blocks), and
#                                        Q4_0 / Q4_K_M requantized from Q8_0 (--allow-requantize;
#                                        the same speed, a little more error)
#   --work DIR         BENCH_WORK        models, GGUF files, llama.cpp build, report
#                                        (default /tmp/qiusuo-bench-infer)
#   --llama-cpp DIR    LLAMACPP_SRC      llama.cpp source tree (built into WORK/llama-build)
#   --fetch-llama-cpp                    npm pack node-llama-cpp@$LLAMACPP_NPM_VERSION (default 3.22.1)
#                                        and clone its llama.cpp bundle into WORK/llama.cpp
#   --tokenizer FILE   BENCH_TOKENIZER   tokenizer.json for the GGUF vocabulary (default: the
#                                        DeepSeek-V3 tokenizer of ../shared/fixtures, cut to the vocab)
#   --skip-install     BENCH_SKIP_INSTALL=1  do not call scripts/install-deps.sh --bench
#   --drop-caches      BENCH_DROP_CACHES=1   before every run (root only): sync, drop the page cache
#                                        and compact memory, so that no run inherits the previous
#                                        one's cached files and fragmented memory (at 27 layers on a
#                                        24 GB machine llama.cpp's Q4_0 decoded 11-15.5 tokens/s
#                                        without it, 15.4-18.3 with: docs/benchmarks.md)
#   QIUSUO_BIN         qiusuo binary (default build/qiusuo, built if missing)
#   PYTHON             Python with numpy and torch for llama.cpp's converter (default /usr/bin/python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
THREADS="${BENCH_THREADS:-2}"
DTYPES="${BENCH_DTYPES:-bf16 fp8 int8 int4}"
ROUNDS="${BENCH_ROUNDS:-2}"
LAYERS="${BENCH_LAYERS:-6}"
WORK="${BENCH_WORK:-/tmp/qiusuo-bench-infer}"
LLAMA_SRC="${LLAMACPP_SRC:-}"
FETCH=0
NPM_VERSION="${LLAMACPP_NPM_VERSION:-3.22.1}"
TOKENIZER="${BENCH_TOKENIZER:-}"
SKIP_INSTALL="${BENCH_SKIP_INSTALL:-0}"
DROP_CACHES="${BENCH_DROP_CACHES:-0}"
PYTHON="${PYTHON:-/usr/bin/python3}"

die() { echo "bench-infer: error: $*" >&2; exit 1; }
log() { echo "bench-infer: $*" >&2; }
need_value() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) need_value "$@"; THREADS="$2"; shift 2 ;;
    --dtypes|--dtype) need_value "$@"; DTYPES="$2"; shift 2 ;;
    --rounds) need_value "$@"; ROUNDS="$2"; shift 2 ;;
    --layers) need_value "$@"; LAYERS="$2"; shift 2 ;;
    --work) need_value "$@"; WORK="$2"; shift 2 ;;
    --llama-cpp) need_value "$@"; LLAMA_SRC="$2"; shift 2 ;;
    --fetch-llama-cpp) FETCH=1; shift ;;
    --tokenizer) need_value "$@"; TOKENIZER="$2"; shift 2 ;;
    --skip-install) SKIP_INSTALL=1; shift ;;
    --drop-caches) DROP_CACHES=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
DTYPES="${DTYPES//,/ }"
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer, got '$THREADS'"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer, got '$ROUNDS'"
[[ "$LAYERS" =~ ^[1-9][0-9]*$ ]] || die "--layers must be a positive integer, got '$LAYERS'"
# llama.cpp's peers of each of our formats (also the report's table).
peers_of() { case "$1" in bf16) echo bf16 ;; fp8|int8) echo q8_0 ;; int4|int4h8) echo "q4_0 q4_k_m" ;; esac; }
for d in $DTYPES; do [[ -n "$(peers_of "$d")" ]] || die "dtype '$d' is not bf16, fp8, int8, int4 or int4h8"; done

mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
if [[ "$SKIP_INSTALL" != 1 ]]; then "$ROOT/scripts/install-deps.sh" --bench >&2; fi
if [[ "$DROP_CACHES" == 1 && ! -w /proc/sys/vm/drop_caches ]]; then die "--drop-caches needs root (it writes /proc/sys/vm/drop_caches)"; fi
# Before each run with --drop-caches: nothing cached, memory compacted.
fresh_memory() {
  [[ "$DROP_CACHES" == 1 ]] || return 0
  sync
  echo 3 > /proc/sys/vm/drop_caches
  [[ -w /proc/sys/vm/compact_memory ]] && echo 1 > /proc/sys/vm/compact_memory
  return 0
}

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
  if [[ ! -x "$B/bin/llama-bench" || ! -x "$B/bin/llama-batched-bench" || ! -x "$B/bin/llama-quantize" ]]; then
    log "building llama.cpp (llama-bench, llama-batched-bench) in $B"
    cmake -S "$LLAMA_SRC" -B "$B" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
      -DCMAKE_C_FLAGS="$NOAMX" -DCMAKE_CXX_FLAGS="$NOAMX" \
      -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >&2
    cmake --build "$B" --target llama-bench llama-batched-bench llama-quantize -j"$(nproc)" >&2
  fi
  LLAMA_BENCH="$B/bin/llama-bench"
  LLAMA_BATCHED="$B/bin/llama-batched-bench"
  LLAMA_QUANTIZE="$B/bin/llama-quantize"
  if [[ -z "$TOKENIZER" ]]; then
    for d in "$ROOT/../shared/fixtures/tokenizer/deepseek-v3" /work/shared/fixtures/tokenizer/deepseek-v3; do
      [[ -f "$d/tokenizer.json" ]] && TOKENIZER="$d/tokenizer.json" && break
    done
  fi
  [[ -f "$TOKENIZER" ]] || die "no tokenizer.json for the GGUF vocabulary (give --tokenizer FILE)"
fi

# --- runs --------------------------------------------------------------------------------------
mkdir -p "$WORK/runs"
rm -f "$WORK"/runs/*-r[0-9]*.json "$WORK"/runs/*-r[0-9]*.jsonl
# The checkpoint the others derive from: bf16 when it is benchmarked or already there, else fp8.
source_dtype() {
  if [[ " $DTYPES " == *" bf16 "* || -f "$WORK/v2lite$LAYERS-bf16/config.json" ]]; then echo bf16; else echo fp8; fi
}
# WORK/v2liteN-DTYPE: bf16 and fp8 from `qiusuo init`, int8 and int4 quantized from the source
# one, int4h8 from int4 (its integer tensors pass through; the head is quantized to INT8).
model_dir() {
  local m="$WORK/v2lite$LAYERS-$1"
  if [[ ! -f "$m/config.json" ]]; then
    rm -rf "$m"
    if [[ "$1" == int8 || "$1" == int4 ]]; then
      local src
      src="$(model_dir "$(source_dtype)")"
      log "qiusuo quantize --to $1 (from $(source_dtype))"
      "$QS" quantize --model "$src" --to "$1" --out "$m" >&2
    elif [[ "$1" == int4h8 ]]; then
      local src
      src="$(model_dir int4)"
      log "qiusuo quantize --to int4 --head-to int8 (from int4)"
      "$QS" quantize --model "$src" --to int4 --head-to int8 --out "$m" >&2
    else
      log "qiusuo init --config v2-lite --layers $LAYERS --dtype $1"
      "$QS" init --config v2-lite --layers "$LAYERS" --dtype "$1" --seed 0 --out "$m" >&2
    fi
  fi
  echo "$m"
}
gguf_of() {  # WORK/v2liteN-OT.gguf, converted or quantized unless present
  local OT="$1" G="$WORK/v2lite$LAYERS-$1.gguf"
  if [[ ! -f "$G" ]]; then
    case "$OT" in
      bf16|q8_0)
        local from=bf16
        [[ "$OT" == q8_0 ]] && from="$(source_dtype)"
        log "converting the $from checkpoint to $OT GGUF with llama.cpp's convert_hf_to_gguf.py"
        "$PYTHON" "$ROOT/bench/llamacpp_convert.py" --llama-cpp "$LLAMA_SRC" --model "$(model_dir "$from")" \
          --tokenizer "$TOKENIZER" --outtype "$OT" --out "$G.tmp" > "$WORK/runs/convert-$OT.log" 2>&1 ||
          { tail -20 "$WORK/runs/convert-$OT.log" >&2; die "GGUF conversion failed (log: $WORK/runs/convert-$OT.log)"; }
        ;;
      *)
        local src requant=()
        if [[ "$(source_dtype)" == bf16 ]]; then src="$(gguf_of bf16)"; else src="$(gguf_of q8_0)"; requant=(--allow-requantize); fi
        log "llama-quantize $OT (from $(basename "$src"))"
        "$LLAMA_QUANTIZE" "${requant[@]}" "$src" "$G.tmp" "${OT^^}" "$THREADS" > "$WORK/runs/quantize-$OT.log" 2>&1 ||
          { tail -20 "$WORK/runs/quantize-$OT.log" >&2; die "llama-quantize failed (log: $WORK/runs/quantize-$OT.log)"; }
        ;;
    esac
    mv "$G.tmp" "$G"
  fi
  echo "$G"
}
# Models and GGUF files first, so the rounds measure only the runs.
for d in $DTYPES; do
  model_dir "$d" > /dev/null
  if [[ -n "$LLAMA_BENCH" ]]; then for OT in $(peers_of "$d"); do gguf_of "$OT" > /dev/null; done; fi
done
for r in $(seq 1 "$ROUNDS"); do
  ran=" "  # peers already run this round (fp8 and int8 share theirs, as do int4 and int4h8)
  for d in $DTYPES; do
    M="$(model_dir "$d")"
    log "round $r: qiusuo bench, $d, $THREADS threads"
    fresh_memory
    "$QS" bench --model "$M" --threads "$THREADS" --json > "$WORK/runs/qiusuo-$d-r$r.json"
    [[ -n "$LLAMA_BENCH" ]] || continue
    for OT in $(peers_of "$d"); do
      [[ "$ran" == *" $OT "* ]] && continue
      ran+="$OT "
      G="$(gguf_of "$OT")"
      log "round $r: llama-bench, $OT, $THREADS threads"
      fresh_memory
      # prefill of 512 tokens; 32 decode steps after a 128-token context (as qiusuo bench)
      "$LLAMA_BENCH" -m "$G" -t "$THREADS" -p 512 -n 0 -r 3 -o json > "$WORK/runs/llama-$OT-pp-r$r.json" \
        2> "$WORK/runs/llama-$OT-pp.log" || { log "llama-bench failed (log: $WORK/runs/llama-$OT-pp.log)"; rm -f "$WORK/runs/llama-$OT-pp-r$r.json"; }
      "$LLAMA_BENCH" -m "$G" -t "$THREADS" -p 0 -n 32 -d 128 -r 3 -o json > "$WORK/runs/llama-$OT-tg-r$r.json" \
        2> "$WORK/runs/llama-$OT-tg.log" || { log "llama-bench failed (log: $WORK/runs/llama-$OT-tg.log)"; rm -f "$WORK/runs/llama-$OT-tg-r$r.json"; }
      log "round $r: llama-batched-bench, $OT, 8 sequences"
      fresh_memory
      "$LLAMA_BATCHED" -m "$G" -t "$THREADS" -tb "$THREADS" -c 2048 -b 2048 -ub 512 -npp 128 -ntg 32 -npl 1,8 \
        --output-format jsonl > "$WORK/runs/llama-$OT-batched-r$r.jsonl" 2> "$WORK/runs/llama-$OT-batched.log" ||
        log "llama-batched-bench failed (log: $WORK/runs/llama-$OT-batched.log)"
    done
  done
done

PEERS=""  # "dtype=peer,peer ..." for the report
for d in $DTYPES; do PEERS+="$d=$(peers_of "$d" | tr ' ' ',') "; done
"$PYTHON" - "$WORK" "$DTYPES" "$THREADS" "$ROUNDS" "$LAYERS" "$PEERS" <<'PY' | tee "$WORK/report.json"
import json, os, platform, sys
work, dtypes, threads, rounds = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), int(sys.argv[4])
layers = int(sys.argv[5])
PEERS = {d: p.split(",") for d, p in (e.split("=") for e in sys.argv[6].split())}
cpu = "?"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip(); break
except OSError:
    pass
rep = {"machine": {"cpu": cpu, "logical_cpus": os.cpu_count(), "kernel": platform.release()},
       "model": f"qiusuo init --config v2-lite --layers {layers} (hidden 2048, 1 dense + {layers - 1} MoE layers, 64 routed top-6 + 2 shared, vocab 102400)",
       "threads": threads, "rounds": rounds, "results": {}}
KEYS = ("prefill_tokens_per_s", "decode_tokens_per_s", "decode_batch8_tokens_per_s")
mean = lambda v: sum(v) / len(v) if v else None

def llama_round(ot, r):
    pp, tg = f"{work}/runs/llama-{ot}-pp-r{r}.json", f"{work}/runs/llama-{ot}-tg-r{r}.json"
    if not (os.path.exists(pp) and os.path.exists(tg)):
        return None
    l = {}
    for f, key in ((pp, "prefill_tokens_per_s"), (tg, "decode_tokens_per_s")):
        rows = json.load(open(f))
        l[key] = rows[0]["avg_ts"]
        l["build"] = rows[0].get("build_commit")
        l["model_size_bytes"] = rows[0].get("model_size")
    bj = f"{work}/runs/llama-{ot}-batched-r{r}.jsonl"
    if os.path.exists(bj):
        for line in open(bj):
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if o.get("pl") == 8:
                l["decode_batch8_tokens_per_s"] = o.get("speed_tg")
    return l

for d in dtypes:
    qs = [json.load(open(f"{work}/runs/qiusuo-{d}-r{r}.json")) for r in range(1, rounds + 1)]
    res = {"qiusuo_rounds": qs, "qiusuo": {k: mean([q[k] for q in qs]) for k in KEYS + ("decode_bandwidth_fraction",)}}
    for ot in PEERS[d]:
        ls = [l for l in (llama_round(ot, r) for r in range(1, rounds + 1)) if l]
        if not ls:
            continue
        lm = {k: mean([l[k] for l in ls if l.get(k)]) for k in KEYS}
        lm["build"], lm["model_size_bytes"] = ls[0].get("build"), ls[0].get("model_size_bytes")
        res["llama_cpp_" + ot + "_rounds"] = ls
        res["llama_cpp_" + ot] = lm
        res["ratio_qiusuo_over_" + ot] = {k: res["qiusuo"][k] / lm[k] for k in KEYS if lm.get(k) and res["qiusuo"].get(k)}
    rep["results"][d] = res
print(json.dumps(rep, indent=1))
PY

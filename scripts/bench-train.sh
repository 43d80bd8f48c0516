#!/usr/bin/env bash
# Side-by-side training benchmark: `qiusuo train` against a PyTorch peer (bench/train_peer.py) on the
# same model config, dataset, tokens per step, step count, precision and thread count.
# Prints a JSON report (also written to WORK/report.json). See docs/bench-train.md.
#
#   scripts/bench-train.sh                     30 steps, fp32 and bf16, 2 threads
#   scripts/bench-train.sh --steps 6 --precisions bf16
#
# Options (each also an environment variable):
#   --steps N          BENCH_STEPS       optimizer steps per run (default 30)
#   --precisions "..." BENCH_PRECISIONS  space/comma separated, from fp32 bf16 (default "fp32 bf16")
#   --threads N        BENCH_THREADS     threads of both engines (default 2)
#   --warmup N         BENCH_WARMUP      learning-rate warmup steps of both (default 10)
#   --seed N           BENCH_SEED        seed of init and data order (default 0)
#   --eval-batches N   BENCH_EVAL_BATCHES  validation batches at the last step (default 2; 0 = none)
#   --batch N          BENCH_BATCH       sequences per step (default: the config's train.batch_size)
#   --seq-len N        BENCH_SEQ_LEN     tokens per sequence (default: the config's train.seq_len)
#   --config FILE      BENCH_CONFIG      model config (default ../shared/bench/train-small.json)
#   --work DIR         BENCH_WORK        tokenizer, dataset, runs, report (default /tmp/qiusuo-bench-train)
#   --nice N           BENCH_NICE        run both engines under `nice -n N` (e.g. -10 on a shared box)
#   --wait-idle S      BENCH_WAIT_IDLE   before each run wait up to S seconds for the CPUs to be idle
#                                        (< 10% busy over 2 s); default 0 = do not wait
#   --skip-install     BENCH_SKIP_INSTALL=1  do not call scripts/install-deps.sh --bench
#   QIUSUO_BIN         qiusuo binary (default build/qiusuo, built if missing)
#   PYTHON             Python with Debian's torch (default /usr/bin/python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STEPS="${BENCH_STEPS:-30}"
PRECISIONS="${BENCH_PRECISIONS:-fp32 bf16}"
THREADS="${BENCH_THREADS:-2}"
WARMUP="${BENCH_WARMUP:-10}"
SEED="${BENCH_SEED:-0}"
EVAL_BATCHES="${BENCH_EVAL_BATCHES:-2}"
BATCH="${BENCH_BATCH:-}"
SEQ_LEN="${BENCH_SEQ_LEN:-}"
CONFIG="${BENCH_CONFIG:-$ROOT/../shared/bench/train-small.json}"
WORK="${BENCH_WORK:-/tmp/qiusuo-bench-train}"
NICE="${BENCH_NICE:-}"
WAIT_IDLE="${BENCH_WAIT_IDLE:-0}"
SKIP_INSTALL="${BENCH_SKIP_INSTALL:-0}"
PYTHON="${PYTHON:-/usr/bin/python3}"
CORPUS="${BENCH_CORPUS:-/usr/lib/python3.11}"

die() { echo "bench-train: error: $*" >&2; exit 1; }
log() { echo "bench-train: $*" >&2; }
need_value() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --steps) need_value "$@"; STEPS="$2"; shift 2 ;;
    --precisions|--precision) need_value "$@"; PRECISIONS="$2"; shift 2 ;;
    --threads) need_value "$@"; THREADS="$2"; shift 2 ;;
    --warmup) need_value "$@"; WARMUP="$2"; shift 2 ;;
    --seed) need_value "$@"; SEED="$2"; shift 2 ;;
    --eval-batches) need_value "$@"; EVAL_BATCHES="$2"; shift 2 ;;
    --batch) need_value "$@"; BATCH="$2"; shift 2 ;;
    --seq-len) need_value "$@"; SEQ_LEN="$2"; shift 2 ;;
    --config) need_value "$@"; CONFIG="$2"; shift 2 ;;
    --work) need_value "$@"; WORK="$2"; shift 2 ;;
    --nice) need_value "$@"; NICE="$2"; shift 2 ;;
    --wait-idle) need_value "$@"; WAIT_IDLE="$2"; shift 2 ;;
    --skip-install) SKIP_INSTALL=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

PRECISIONS="${PRECISIONS//,/ }"
for n in STEPS THREADS WARMUP SEED EVAL_BATCHES WAIT_IDLE; do
  [[ "${!n}" =~ ^[0-9]+$ ]] || die "$n must be a non-negative integer, got '${!n}'"
done
((STEPS >= 1)) || die "--steps must be >= 1"
[[ -z "$BATCH" || "$BATCH" =~ ^[1-9][0-9]*$ ]] || die "--batch must be a positive integer, got '$BATCH'"
[[ -z "$SEQ_LEN" || "$SEQ_LEN" =~ ^[1-9][0-9]*$ ]] || die "--seq-len must be a positive integer, got '$SEQ_LEN'"
((THREADS >= 1)) || die "--threads must be >= 1"
for p in $PRECISIONS; do
  [[ "$p" == fp32 || "$p" == bf16 ]] || die "precision '$p' is not supported by both engines (fp32, bf16)"
done
[[ -n "${PRECISIONS// /}" ]] || die "no precision given"
[[ -z "$NICE" || "$NICE" =~ ^-?[0-9]+$ ]] || die "--nice must be an integer, got '$NICE'"
[[ -f "$CONFIG" ]] || die "model config $CONFIG not found (pass --config FILE)"
CONFIG="$(cd "$(dirname "$CONFIG")" && pwd)/$(basename "$CONFIG")"

# ---- dependencies ------------------------------------------------------------------------------
if [[ "$SKIP_INSTALL" != 1 ]]; then
  "$ROOT/scripts/install-deps.sh" --bench >&2 || die "scripts/install-deps.sh --bench failed"
fi
[[ -x "$PYTHON" ]] || die "$PYTHON not found: install Debian's python3 (scripts/install-deps.sh --bench)"
"$PYTHON" -c "import torch, numpy" 2>/dev/null ||
  die "$PYTHON cannot import torch and numpy: install python3-torch python3-numpy (scripts/install-deps.sh --bench); note that a pyenv 'python3' on PATH does not see Debian's packages"

JEMALLOC=""
for cand in /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/lib/aarch64-linux-gnu/libjemalloc.so.2; do
  [[ -f "$cand" ]] && { JEMALLOC="$cand"; break; }
done
[[ -n "$JEMALLOC" ]] || JEMALLOC="$(ldconfig -p 2>/dev/null | awk '/libjemalloc\.so\.2 /{print $NF; exit}')"
[[ -n "$JEMALLOC" && -f "$JEMALLOC" ]] || die "libjemalloc.so.2 not found: install libjemalloc2 (scripts/install-deps.sh --bench)"

# The BLAS libtorch links (libblas.so.3) must be the OpenMP build of OpenBLAS.
BLAS_ALT="$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/{print $2}')"
if [[ "$BLAS_ALT" != *openblas-openmp* ]]; then
  die "libblas.so.3 points to '${BLAS_ALT:-nothing}', not OpenBLAS (OpenMP build). Install libopenblas0-openmp and run:
  sudo update-alternatives --set libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3"
fi

# ---- qiusuo ------------------------------------------------------------------------------------
QS="${QIUSUO_BIN:-$ROOT/build/qiusuo}"
if [[ ! -x "$QS" ]]; then
  [[ -z "${QIUSUO_BIN:-}" ]] || die "QIUSUO_BIN=$QIUSUO_BIN is not an executable"
  log "building qiusuo into $ROOT/build"
  if [[ ! -f "$ROOT/build/CMakeCache.txt" ]]; then
    cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release -DQIUSUO_BUILD_TESTS=OFF -DQIUSUO_BUILD_BENCH=OFF >&2 ||
      die "cmake configure failed"
  fi
  cmake --build "$ROOT/build" -j"$(nproc)" --target qiusuo >&2 || die "building qiusuo failed"
  [[ -x "$QS" ]] || die "build finished but $QS is missing"
fi
"$QS" train --help >/dev/null 2>&1 || die "$QS does not run or has no 'train' command"

# ---- data --------------------------------------------------------------------------------------
mkdir -p "$WORK/runs" || die "cannot create $WORK"
if [[ -f "$WORK/data/meta.json" && -f "$WORK/data/train.bin" && -f "$WORK/data/val.bin" ]]; then
  log "reusing dataset $WORK/data"
else
  [[ -d "$CORPUS" ]] || die "corpus $CORPUS not found (set BENCH_CORPUS to a directory of text files)"
  if [[ ! -f "$WORK/tok/tokenizer.json" ]]; then
    log "training the tokenizer on $CORPUS/*.py"
    "$QS" tokenizer-train --input "$CORPUS" --include '*.py' --max-bytes 8M --vocab-size 8192 --out "$WORK/tok" >&2 ||
      die "qiusuo tokenizer-train failed"
  fi
  log "preparing the dataset"
  rm -rf "$WORK/data"
  "$QS" prepare --tokenizer "$WORK/tok" --input "$CORPUS" --include '*.py' --out "$WORK/data" >&2 ||
    die "qiusuo prepare failed"
fi

# ---- runs --------------------------------------------------------------------------------------
NICE_CMD=()
[[ -n "$NICE" ]] && NICE_CMD=(nice -n "$NICE")
SHAPE=()   # the same batch shape for both (default: the config's "train" section, read by both)
[[ -n "$BATCH" ]] && SHAPE+=(--batch "$BATCH")
[[ -n "$SEQ_LEN" ]] && SHAPE+=(--seq-len "$SEQ_LEN")

# Runs a command with stdout to $1, stderr to $2, and writes $3: wall time, this run's CPU time and
# the CPU time other processes took meanwhile (from /proc/stat), so a noisy machine shows.
measure() {
  local out="$1" err="$2" stats="$3"; shift 3
  "$PYTHON" - "$out" "$err" "$stats" "$@" <<'PY'
import json, os, resource, subprocess, sys, time
out, err, stats, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")   # all but idle and iowait
load0 = os.getloadavg()[0]
b0, r0, t0 = busy(), resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
with open(out, "w") as fo, open(err, "w") as fe:
    rc = subprocess.call(cmd, stdout=fo, stderr=fe)
t1, r1, b1 = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN), busy()
wall = t1 - t0
own = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
others = max(0.0, (b1 - b0) - own)
json.dump({"rc": rc, "wall_s": wall, "cpu_s": own, "others_cpu_s": others,
           "others_cpu_share": others / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0,
           "loadavg_before": load0, "loadavg_after": os.getloadavg()[0]}, open(stats, "w"))
sys.exit(rc)
PY
}

# Waits (up to WAIT_IDLE seconds) until the CPUs are idle, so the next run has the machine to itself.
wait_idle() {
  ((WAIT_IDLE > 0)) || return 0
  "$PYTHON" - "$WAIT_IDLE" <<'PY'
import sys, time
limit, t0 = float(sys.argv[1]), time.time()
def sample():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]) - v[3] - v[4], sum(v[:8])
while True:
    b0, a0 = sample()
    time.sleep(2)
    b1, a1 = sample()
    u = (b1 - b0) / max(1, a1 - a0)
    if u < 0.10:
        print(f"bench-train: CPUs idle ({100 * u:.0f}% busy) after {time.time() - t0:.0f} s", file=sys.stderr)
        break
    if time.time() - t0 >= limit:
        print(f"bench-train: warning: CPUs still {100 * u:.0f}% busy after {limit:.0f} s; running anyway", file=sys.stderr)
        break
PY
}

for p in $PRECISIONS; do
  qdir="$WORK/runs/qiusuo-$p" pdir="$WORK/runs/pytorch-$p"
  rm -rf "$qdir" "$pdir"
  mkdir -p "$pdir"
  wait_idle
  log "qiusuo train, $p, $STEPS steps, $THREADS threads"
  measure "$qdir.summary.json" "$qdir.log" "$qdir.stats.json" \
    env OMP_NUM_THREADS="$THREADS" "${NICE_CMD[@]}" "$QS" train --config "$CONFIG" --data "$WORK/data" --out "$qdir" \
      --steps "$STEPS" --precision "$p" --seed "$SEED" --warmup "$WARMUP" --threads "$THREADS" \
      --eval-every 0 --eval-batches "$((EVAL_BATCHES > 0 ? EVAL_BATCHES : 1))" "${SHAPE[@]}" --json --quiet ||
    die "qiusuo train ($p) failed; the end of $qdir.log:
$(tail -n 20 "$qdir.log")"
  wait_idle
  log "PyTorch peer, $p, $STEPS steps, $THREADS threads"
  measure "$pdir.summary.json" "$pdir.log" "$pdir.stats.json" \
    env OMP_NUM_THREADS="$THREADS" LD_PRELOAD="$JEMALLOC" "${NICE_CMD[@]}" "$PYTHON" "$ROOT/bench/train_peer.py" \
      --config "$CONFIG" --data "$WORK/data" --steps "$STEPS" --precision "$p" --seed "$SEED" --warmup "$WARMUP" \
      --threads "$THREADS" --eval-batches "$EVAL_BATCHES" "${SHAPE[@]}" --out "$pdir/metrics.jsonl" --quiet ||
    die "PyTorch peer ($p) failed; the end of $pdir.log:
$(tail -n 20 "$pdir.log")"
done

# ---- report ------------------------------------------------------------------------------------
CPU_MODEL="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)"
# shellcheck disable=SC2086  # one argument per precision
"$PYTHON" - "$WORK" "$STEPS" "$THREADS" "$WARMUP" "$SEED" "$CONFIG" "$CPU_MODEL" "$NICE" "$QS" "$BATCH" "$SEQ_LEN" \
    $PRECISIONS <<'PY'
import json, os, platform, sys
work, steps, threads, warmup, seed, config, cpu, nice, qs, batch, seq_len = sys.argv[1:12]
precisions = sys.argv[12:]
steps = int(steps)
SKIP = 2  # warm-up steps left out of tokens/s (allocation, first-touch, oneDNN primitive creation)

def read_jsonl(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]

def last_json(path):
    lines = [l for l in open(path).read().splitlines() if l.strip().startswith("{")]
    if not lines:
        sys.exit(f"bench-train: error: no JSON summary in {path}")
    return json.loads(lines[-1])

def step_times(m):
    t, prev = [], 0.0
    for r in m:
        t.append(r["time_s"] - prev)
        prev = r["time_s"]
    return t

def stats(m, tokens_per_step):
    if len(m) != steps:
        sys.exit(f"bench-train: error: expected {steps} metrics lines, got {len(m)}")
    times = step_times(m)
    skip = SKIP if len(times) > SKIP else 0
    timed = times[skip:]
    last = m[-5:]
    med = sorted(timed)[len(timed) // 2] if len(timed) % 2 else sum(sorted(timed)[len(timed) // 2 - 1:len(timed) // 2 + 1]) / 2
    out = {"tokens_per_s": tokens_per_step * len(timed) / sum(timed),
           "tokens_per_s_median_step": tokens_per_step / med,
           "steps_timed": len(timed), "step_s_min": min(timed), "step_s_max": max(timed),
           "loss_last": m[-1]["loss"], "loss_mean_last5": sum(r["loss"] for r in last) / len(last),
           "mtp_loss_last": m[-1].get("mtp_loss"), "val_loss": m[-1].get("val_loss"),
           "tokens_seen": tokens_per_step * len(m)}
    return out

cfg = json.load(open(config))
tr = cfg.get("train", {})
B = int(batch) if batch else tr.get("batch_size", 16)
T = int(seq_len) if seq_len else tr.get("seq_len", 512)
tokens_per_step = B * T
report = {"machine": {"cpu": cpu, "logical_cpus": os.cpu_count(), "kernel": platform.release()},
          "config": config, "steps": steps, "warmup": int(warmup), "seed": int(seed), "threads": int(threads),
          "batch": B, "seq_len": T, "tokens_per_step": tokens_per_step,
          "tokens_per_s_rule": f"tokens / time over steps {SKIP + 1}..{steps} (all steps when steps <= {SKIP}); "
                               "time = the step loop (data, forward, backward, clip, AdamW, bias update), "
                               "evaluation and checkpointing excluded",
          "nice": int(nice) if nice else 0, "qiusuo_bin": qs, "results": {}, "warnings": []}
# The GEMM peaks are a property of the machine; qiusuo measures them (0.5 s each) at the start of
# every run, and other load can only lower them, so MFU uses the highest value seen in this report.
summaries = {p: last_json(f"{work}/runs/qiusuo-{p}.summary.json") for p in precisions}
peak_bf16 = max(s["gemm_peak_bf16_gflops"] for s in summaries.values())
peak_f32 = max(s["gemm_peak_f32_gflops"] for s in summaries.values())
report["gemm_peak_bf16_gflops"], report["gemm_peak_f32_gflops"] = peak_bf16, peak_f32
report["mfu_rule"] = ("tokens_per_s x qiusuo's training FLOPs per token (PaLM convention, src/qiusuo/model/flops.h: "
                      "6 x the matmul weights a token meets, LM head and MTP modules included, + causal attention) / "
                      "GEMM peak (BF16 = AMX where present, else AVX-512 BF16; F32 = AVX-512 FMA; measured by qiusuo, "
                      "the highest of its runs here)")
for p in precisions:
    qdir, pdir = f"{work}/runs/qiusuo-{p}", f"{work}/runs/pytorch-{p}"
    qsum, psum = summaries[p], last_json(f"{pdir}.summary.json")
    q, t = stats(read_jsonl(f"{qdir}/metrics.jsonl"), tokens_per_step), stats(read_jsonl(f"{pdir}/metrics.jsonl"), tokens_per_step)
    if psum.get("tokens_per_step") != tokens_per_step:
        sys.exit(f"bench-train: error: the peer ran {psum.get('tokens_per_step')} tokens per step, qiusuo {tokens_per_step}")
    # qiusuo's training FLOPs per token (its summary; older builds: recovered from MFU = tok/s x FLOPs/token / peak)
    flops_tok = qsum.get("flops_per_token") or (qsum["mfu_bf16_peak"] * qsum["gemm_peak_bf16_gflops"] * 1e9 /
                                                qsum["tokens_per_s"] if qsum.get("tokens_per_s") else None)
    for s in (q, t):
        if flops_tok:
            s["mfu_bf16_peak"] = s["tokens_per_s"] * flops_tok / (peak_bf16 * 1e9)
            s["mfu_f32_peak"] = s["tokens_per_s"] * flops_tok / (peak_f32 * 1e9)
    q["reported_by_qiusuo"] = {k: qsum.get(k) for k in ("tokens_per_s", "mfu_bf16_peak", "mfu_f32_peak", "loss", "val_loss",
                                                       "gemm_peak_bf16_gflops", "gemm_peak_f32_gflops")}
    q["run"] = json.load(open(f"{qdir}.stats.json"))
    t["run"] = json.load(open(f"{pdir}.stats.json"))
    t["reported_by_peer"] = {"tokens_per_s": psum.get("tokens_per_s"), "loss": psum.get("loss")}
    for name, s in (("qiusuo", q), ("pytorch", t)):
        share = s["run"]["others_cpu_share"]
        if share > 0.05:
            report["warnings"].append(f"{p} {name}: other processes used {100 * share:.0f}% of the CPUs during the run "
                                      f"(load average {s['run']['loadavg_before']:.1f}); its tokens/s may be unreliable")
    report["results"][p] = {
        "qiusuo": q, "pytorch": t,
        "tokens_per_s_ratio_qiusuo_over_pytorch": q["tokens_per_s"] / t["tokens_per_s"],
        "median_step_ratio_qiusuo_over_pytorch": q["tokens_per_s_median_step"] / t["tokens_per_s_median_step"],
        "flops_per_token": flops_tok,
        "loss_last_diff_qiusuo_minus_pytorch": q["loss_last"] - t["loss_last"],
    }
    report.setdefault("peer", {k: psum.get(k) for k in (
        "torch", "numpy", "threads", "omp_num_threads", "blas", "openblas_core", "openblas_config",
        "libblas_resolves_to", "jemalloc", "mkldnn", "aten_cpu_capability", "libraries")})
    if not psum.get("jemalloc"):
        report["warnings"].append("jemalloc was not loaded into the PyTorch peer")
    if "openblas-openmp" not in " ".join(psum.get("libraries", [])):
        report["warnings"].append("the PyTorch peer did not map OpenBLAS (OpenMP build)")
    if psum.get("threads") != int(threads):
        report["warnings"].append(f"the PyTorch peer ran {psum.get('threads')} threads, not {threads}")
with open(f"{work}/report.json", "w") as f:
    json.dump(report, f, indent=2)
print(json.dumps(report, indent=2))
for p, r in report["results"].items():
    print(f"bench-train: {p}: qiusuo {r['qiusuo']['tokens_per_s']:.0f} tok/s, PyTorch {r['pytorch']['tokens_per_s']:.0f} tok/s "
          f"(x{r['tokens_per_s_ratio_qiusuo_over_pytorch']:.2f}); loss after {r['qiusuo']['tokens_seen']} tokens: "
          f"qiusuo {r['qiusuo']['loss_last']:.4f}, PyTorch {r['pytorch']['loss_last']:.4f}", file=sys.stderr)
for w in report["warnings"]:
    print(f"bench-train: warning: {w}", file=sys.stderr)
PY

#!/usr/bin/env bash
# Builds and runs the CUDA decode-GEMV test and benchmark (docs/cuda.md).
#
#   scripts/cuda-check.sh OUTDIR        on a machine with an NVIDIA GPU: build if needed, run
#                                       cuda_gemv_test and cuda_gemv_bench, write logs to OUTDIR
#   scripts/cuda-check.sh --build-only  build the binaries only (no GPU needed), e.g. on a dev
#                                       machine, to carry $BUILD/cuda to a GPU machine that lacks
#                                       the project's CPU build dependencies
#
# Only qs_core, qs_kernels, qs_cuda and the two CUDA executables are built (no CPU tests, no
# Google Benchmark, no oneDNN), so a 16-core machine builds them in about a minute.
# When $BUILD/cuda/cuda_gemv_test and cuda_gemv_bench already exist they are used as they are
# (set QS_CUDA_REBUILD=1 to rebuild).
#
# Environment: QS_CUDA_BUILD_DIR (default build-cuda), QS_CUDA_ARCH (default: the GPU's compute
# capability from nvidia-smi, else 90), QS_CUDA_REBUILD=1, QS_CUDA_QUICK=1 (bench --quick),
# JOBS (default: all cores).
#
# OUTDIR gets at most 7 files: env.txt, build.log (when it builds), test.log, test.json,
# bench.jsonl (one JSON line per case), bench.log (stderr), summary.txt (also printed last).
# Exit status: 0 when the test passed and the benchmark ran; 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${QS_CUDA_BUILD_DIR:-build-cuda}
BIN=$BUILD/cuda
JOBS=${JOBS:-$(nproc)}

build_only=0
if [ "${1:-}" = "--build-only" ]; then
  build_only=1
  OUT=
elif [ $# -eq 1 ] && [ -n "$1" ]; then
  OUT=$1
  mkdir -p "$OUT" || exit 1
  OUT=$(cd "$OUT" && pwd)
else
  echo "usage: scripts/cuda-check.sh OUTDIR | --build-only" >&2
  exit 2
fi
log() { echo "cuda-check: $*" >&2; }

# ---- toolchain and GPU ------------------------------------------------------------------------
NVCC=${CUDACXX:-$(command -v nvcc || true)}
[ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
ARCH=${QS_CUDA_ARCH:-}
if [ -z "$ARCH" ] && command -v nvidia-smi >/dev/null 2>&1; then
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .')
  [[ "$cc" =~ ^[0-9]+$ ]] && ARCH=$cc
fi
ARCH=${ARCH:-90}

if [ -n "$OUT" ]; then
  {
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(uname -srm)"
    echo "nvcc: ${NVCC:-none} $([ -n "$NVCC" ] && "$NVCC" --version 2>/dev/null | tail -n1)"
    echo "cmake: $(cmake --version 2>/dev/null | head -n1)"
    echo "arch: $ARCH"
    if command -v nvidia-smi >/dev/null 2>&1; then
      nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,clocks.max.sm,clocks.max.mem,power.limit \
        --format=csv 2>&1
      nvidia-smi 2>&1 | head -n 20
    else
      echo "nvidia-smi: not found"
    fi
  } >"$OUT/env.txt" 2>&1
fi

# ---- build (only what the CUDA targets need) ----------------------------------------------------
have_bins() { [ -x "$BIN/cuda_gemv_test" ] && [ -x "$BIN/cuda_gemv_bench" ]; }
if [ "$build_only" = 1 ] || [ "${QS_CUDA_REBUILD:-0}" = 1 ] || ! have_bins; then
  [ -z "$NVCC" ] && { log "nvcc not found (set CUDACXX)"; exit 1; }
  mkdir -p "$BUILD"
  BUILD_LOG=${OUT:+$OUT/build.log}
  BUILD_LOG=${BUILD_LOG:-$BUILD/cuda-check-build.log}
  gen=()
  command -v ninja >/dev/null 2>&1 && [ ! -f "$BUILD/Makefile" ] && gen=(-G Ninja)
  log "configuring $BUILD (sm_$ARCH, nvcc $NVCC); log: $BUILD_LOG"
  t0=$(date +%s)
  if ! cmake -S . -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DQIUSUO_CUDA=ON \
      -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
      -DQIUSUO_BUILD_TESTS=OFF -DQIUSUO_BUILD_BENCH=OFF -DQIUSUO_ONEDNN=OFF >"$BUILD_LOG" 2>&1; then
    tail -n 30 "$BUILD_LOG" >&2
    log "configure failed. The top-level CMakeLists.txt needs the CPU build dependencies"
    log "(OpenMP, nlohmann-json, pcre2 + pkg-config, CLI11; GoogleTest for the test). Where they"
    log "are missing, build on a machine that has them with 'scripts/cuda-check.sh --build-only'"
    log "and carry $BIN here (at run time they need libcuda.so.1, libgomp, libstdc++ and glibc >= 2.34)."
    exit 1
  fi
  if ! cmake --build "$BUILD" -j"$JOBS" --target qs_cuda cuda_gemv_test cuda_gemv_bench >>"$BUILD_LOG" 2>&1; then
    tail -n 40 "$BUILD_LOG" >&2
    log "build failed (full log: $BUILD_LOG)"
    exit 1
  fi
  log "built in $(($(date +%s) - t0)) s"
  # Run-time libraries a bare GPU machine might lack (used there only if ldd finds none).
  mkdir -p "$BIN/lib"
  for lib in libgomp.so.1 libstdc++.so.6 libgcc_s.so.1; do
    p=$(ldd "$BIN/cuda_gemv_test" | awk -v l="$lib" '$1 == l { print $3 }')
    [ -n "$p" ] && [ -f "$p" ] && cp -L "$p" "$BIN/lib/"
  done
else
  log "using the binaries in $BIN (QS_CUDA_REBUILD=1 rebuilds)"
fi
[ "$build_only" = 1 ] && { ls -la "$BIN"; exit 0; }

# ---- run ------------------------------------------------------------------------------------
if ldd "$BIN/cuda_gemv_test" "$BIN/cuda_gemv_bench" 2>/dev/null | grep -q "not found"; then
  export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$ROOT/$BIN/lib"
  log "using $BIN/lib for: $(ldd "$BIN/cuda_gemv_test" | grep 'not found' | awk '{print $1}' | tr '\n' ' ')"
fi

log "running cuda_gemv_test"
timeout 150 "$BIN/cuda_gemv_test" --gtest_output="json:$OUT/test.json" >"$OUT/test.log" 2>&1
test_rc=$?
if [ "$test_rc" = 0 ] && grep -q "no CUDA device" "$OUT/test.log"; then
  log "cuda_gemv_test skipped: the binary found no CUDA device or driver (counted as a failure here)"
  test_rc=1
fi
log "running cuda_gemv_bench"
bench_args=()
[ "${QS_CUDA_QUICK:-0}" = 1 ] && bench_args=(--quick)
timeout 150 "$BIN/cuda_gemv_bench" "${bench_args[@]}" >"$OUT/bench.jsonl" 2>"$OUT/bench.log"
bench_rc=$?

{
  echo "== $(grep -m1 -A1 '^name' "$OUT/env.txt" | tail -n1)"
  echo "== cuda_gemv_test: exit $test_rc"
  grep -E '^\[  (PASSED|FAILED|SKIPPED) |^\[==========\]|Failure|error' "$OUT/test.log" | head -n 40
  echo "== cuda_gemv_bench: exit $bench_rc"
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$OUT/bench.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for r in rows:
    if r.get("kind") == "device":
        print(f"{r['name']} (cc {r['cc']}, {r['sms']} SMs, L2 {r['l2_mb']:.0f} MB): probe {r['probe_gbps']:.0f} GB/s "
              f"= {r['probe_frac_of_peak']:.0%} of {r['peak_gbps']:.0f} GB/s datasheet")
    elif r.get("kind") == "error":
        print("error:", r.get("error"))
print(f"{'case':14} {'shape':>12} {'dtype':>7} {'M':>2} {'MB':>7} {'us':>8} {'GB/s':>7} {'probe':>6} "
      f"{'us_graph':>8} {'GB/s':>7} {'probe':>6}")
for r in rows:
    if r.get("kind") == "gemv":
        print(f"{r['case']:14} {str(r['rows'])+'x'+str(r['cols']):>12} {r['dtype']:>7} {r['M']:>2} "
              f"{r['bytes']/1e6:7.1f} {r['us_per_call']:8.2f} {r['gbps']:7.0f} {r['frac_of_probe']:6.0%} "
              f"{r['us_per_call_graph']:8.2f} {r['gbps_graph']:7.0f} {r['frac_of_probe_graph']:6.0%}")
EOF
  else
    cat "$OUT/bench.jsonl"
  fi
  [ -s "$OUT/bench.log" ] && { echo "-- bench stderr:"; tail -n 20 "$OUT/bench.log"; }
} >"$OUT/summary.txt" 2>&1
cat "$OUT/summary.txt"
[ "$test_rc" = 0 ] && [ "$bench_rc" = 0 ]

#!/usr/bin/env bash
# Data- and expert-parallel training on one machine (docs/dist.md, "Scaling"): the same
# `qiusuo train` run as 1 process x T threads, 1 process x 1 thread, N ranks x 1 thread (data
# parallel) and N ranks x 1 thread with --expert-parallel, interleaved, REPEAT rounds. Prints one
# JSON line per run: tokens/s and where the step time went (all-reduce wait and busy time,
# all-to-all, optimizer), from the command's --json summary.
#
#   scripts/bench-dist.sh DATA_DIR [CONFIG]
#
# DATA_DIR: a dataset from `qiusuo prepare` whose vocabulary fits CONFIG (default
# ../shared/bench/train-small.json, vocab 8192; scripts/bench-train.sh prepares one in
# /tmp/qiusuo-bench-train/data). Environment: QIUSUO_BIN (default build/qiusuo), STEPS (5),
# BATCH (4, the global micro-batch), SEQ_LEN (256), RANKS (2), THREADS (2, of the one-process
# run), REPEAT (2), WORK (/tmp/qiusuo-bench-dist), NICE (0).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
data=${1:?usage: scripts/bench-dist.sh DATA_DIR [CONFIG]}
config=${2:-$here/../shared/bench/train-small.json}
bin=${QIUSUO_BIN:-$here/build/qiusuo}
steps=${STEPS:-5} batch=${BATCH:-4} seq=${SEQ_LEN:-256} ranks=${RANKS:-2} threads=${THREADS:-2}
repeat=${REPEAT:-2} work=${WORK:-/tmp/qiusuo-bench-dist} nice_n=${NICE:-0}
[ -x "$bin" ] || { echo "bench-dist: no qiusuo binary at $bin (set QIUSUO_BIN)" >&2; exit 1; }
[ -f "$data/meta.json" ] || { echo "bench-dist: $data is not a prepared dataset (no meta.json)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "bench-dist: mpirun not found (scripts/install-deps.sh installs openmpi-bin)" >&2; exit 1; }
mpi=(mpirun -np "$ranks" --oversubscribe --bind-to none --mca btl self,vader,tcp --mca btl_tcp_if_include lo
     --mca oob_tcp_if_include lo -x OMP_NUM_THREADS=1 -x GOMP_SPINCOUNT=2000)
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)
mkdir -p "$work"
args=(train --config "$config" --data "$data" --steps "$steps" --batch "$batch" --seq-len "$seq" --accum 1
      --eval-every 1000000 --eval-batches 1 --save-every 1000000 --warmup 1 --quiet --json)
run() {  # name, command...
  local name=$1; shift
  rm -rf "$work/$name"
  local t0=$(date +%s.%N)
  nice -n "$nice_n" "$@" --out "$work/$name" >"$work/$name.json" 2>"$work/$name.err" ||
    { echo "bench-dist: $name failed:" >&2; tail -5 "$work/$name.err" >&2; exit 1; }
  python3 - "$name" "$work/$name.json" "$(echo "$(date +%s.%N) - $t0" | bc)" <<'EOF'
import json, sys
name, path, wall = sys.argv[1], sys.argv[2], float(sys.argv[3])
j = json.loads(open(path).read().strip().splitlines()[-1])
keys = ["world_size", "expert_parallel", "tokens_per_s", "step_s", "allreduce_s", "allreduce_busy_s", "overlap",
        "alltoall_s", "optimizer_s", "loss"]
print(json.dumps({"run": name, **{k: j.get(k) for k in keys}, "wall_s": round(wall, 2)}))
EOF
}
for r in $(seq 1 "$repeat"); do
  run "one-t$threads-$r" env OMP_NUM_THREADS="$threads" "$bin" "${args[@]}" --threads "$threads"
  run "dp$ranks-$r" "${mpi[@]}" "$bin" "${args[@]}" --threads 1
  run "ep$ranks-$r" "${mpi[@]}" "$bin" "${args[@]}" --threads 1 --expert-parallel
  run "one-t1-$r" env OMP_NUM_THREADS=1 "$bin" "${args[@]}" --threads 1
done

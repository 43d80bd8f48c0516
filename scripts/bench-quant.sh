#!/usr/bin/env bash
# The cost of `qiusuo quantize`, measured (docs/benchmarks.md, "Quantization"):
#  1. logits of every model fixture after quantizing to fp8, int8, int4 and int4 with an int8
#     LM head (int4+h8: --head-to int8) against the same checkpoint unquantized (both `qiusuo
#     logits --precision f32`, scripts/compare-logits.py): largest difference relative to the
#     position's largest |logit|, and argmax changes;
#  2. with a trained model and its prepared dataset (optional): validation perplexity through the
#     inference engine (`qiusuo score`, F32, windows of --seq tokens) before and after each format.
#
# Usage: scripts/bench-quant.sh [--qiusuo BIN] [--fixtures DIR] [--group G]
#                               [--trained MODEL_DIR DATA_DIR] [--seq N] [--windows N]
# Widths the group does not divide are kept unquantized (--keep); the script says which.
set -euo pipefail
cd "$(dirname "$0")/.."
Q=build/qiusuo
FIX=../shared/fixtures/model
[ -d "$FIX" ] || FIX=/work/shared/fixtures/model
GROUP=32
TRAINED=""
DATA=""
SEQ=256
WINDOWS=32
while [ $# -gt 0 ]; do
  case "$1" in
    --qiusuo) Q=$2; shift 2 ;;
    --fixtures) FIX=$2; shift 2 ;;
    --group) GROUP=$2; shift 2 ;;
    --trained) TRAINED=$2; DATA=$3; shift 3 ;;
    --seq) SEQ=$2; shift 2 ;;
    --windows) WINDOWS=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Quantize $1 to $2 (fp8, int8, int4, or int4+h8: int4 with --head-to int8) into $3, keeping
# the tensors whose width the group does not divide.
quantize() {
  local keep=() err head=()
  [ "${2#*+}" = h8 ] && head=(--head-to int8)
  for _ in 1 2 3 4 5 6; do
    rm -rf "$3"
    if err=$("$Q" quantize --model "$1" --to "${2%+*}" --group "$GROUP" "${head[@]}" "${keep[@]}" --out "$3" --json 2>&1 >/dev/null); then
      [ ${#keep[@]} -gt 0 ] && echo "    ($2: kept ${keep[*]})" >&2
      return 0
    fi
    # "tensor 'model.layers.1.mlp.experts.0.down_proj.weight' [128, 48]: the group size ..."
    local name
    name=$(sed -n "s/.*tensor '\([^']*\)'.*does not divide.*/\1/p" <<<"$err")
    [ -n "$name" ] || { echo "$err" >&2; return 1; }
    keep+=(--keep "*.$(sed 's/.*\.\([A-Za-z0-9_]*\.weight\)$/\1/' <<<"$name")")
  done
  echo "$err" >&2
  return 1
}

echo "== logits vs the unquantized checkpoint (F32 math), group $GROUP"
printf '%-14s %-7s %12s %12s %8s\n' fixture format max_abs max_rel argmax
for dir in "$FIX"/*/; do
  name=$(basename "$dir")
  [ -f "$dir/expected.safetensors" ] || continue
  ids=$(python3 - "$dir/expected.safetensors" <<'EOF'
import json, struct, sys
from array import array
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); t = h["input_ids"]
    b, e = t["data_offsets"]; f.seek(8 + n + b); a = array("q"); a.frombytes(f.read(e - b))
B, P = t["shape"]
print(";".join(",".join(str(a[r * P + i]) for i in range(P)) for r in range(B)))
EOF
)
  "$Q" logits --model "$dir" --ids "$ids" --out "$WORK/ref.safetensors" 2>/dev/null
  for to in fp8 int8 int4 int4+h8; do
    quantize "$dir" "$to" "$WORK/$name-$to" || continue
    "$Q" logits --model "$WORK/$name-$to" --ids "$ids" --out "$WORK/q.safetensors" 2>/dev/null
    scripts/compare-logits.py "$WORK/ref.safetensors" "$WORK/q.safetensors" --json | python3 -c "
import json, sys
j = json.load(sys.stdin)
print('%-14s %-7s %12.4g %12.4g %5d/%d' % ('$name', '$to', j['max_abs'], j['max_rel'], j['argmax_changes'], j['positions']))"
  done
done

[ -n "$TRAINED" ] || exit 0
echo "== validation perplexity through the engine (qiusuo score, F32), $WINDOWS windows of $SEQ tokens"
python3 - "$DATA/val.bin" "$SEQ" "$WINDOWS" >"$WORK/windows.jsonl" <<'EOF'
import json, sys
from array import array
raw = open(sys.argv[1], "rb").read()
a = array("I"); a.frombytes(raw[64:64 + (len(raw) - 64) // 4 * 4])  # 64-byte header (docs/data.md)
S, n = int(sys.argv[2]), int(sys.argv[3])
for w in range(min(n, len(a) // S)):
    ids = list(a[w * S:(w + 1) * S])
    print(json.dumps({"prompt_ids": ids[:1], "completion_ids": ids[1:]}))
EOF
ppl() {
  "$Q" score --model "$1" --jsonl "$WORK/windows.jsonl" --precision f32 --context $((SEQ + 64)) 2>/dev/null | python3 -c "
import json, math, sys
s = n = 0
for l in sys.stdin:
    lp = json.loads(l)['logprobs']; s -= sum(lp); n += len(lp)
print('%.5f' % math.exp(s / n))"
}
base=$(ppl "$TRAINED")
printf '%-7s perplexity %s\n' source "$base"
for to in fp8 int8 int4 int4+h8; do
  quantize "$TRAINED" "$to" "$WORK/trained-$to" || continue
  p=$(ppl "$WORK/trained-$to")
  python3 -c "print('%-7s perplexity %s (%+.2f%%)' % ('$to', '$p', 100 * ($p / $base - 1)))"
done

#!/usr/bin/env python3
"""Compare two `qiusuo logits` outputs (safetensors, tensor `logits` F32 [batch, seq, vocab]).

  scripts/compare-logits.py REFERENCE.safetensors CANDIDATE.safetensors [--json]

Prints, over every position (zero-padded positions skipped): the largest absolute difference,
the largest difference relative to that position's largest |reference logit|, and how many
positions change their argmax (the greedy token). Standard library only.
"""
import json
import struct
import sys
from array import array


def load_logits(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        t = header["logits"]
        if t["dtype"] != "F32":
            sys.exit(f"{path}: logits dtype {t['dtype']}, want F32")
        b, e = t["data_offsets"]
        f.seek(8 + n + b)
        a = array("f")
        a.frombytes(f.read(e - b))
        if sys.byteorder != "little":
            a.byteswap()
        return t["shape"], a


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        sys.exit(__doc__)
    shape_r, ref = load_logits(args[0])
    shape_c, cand = load_logits(args[1])
    if shape_r != shape_c:
        sys.exit(f"shapes differ: {shape_r} vs {shape_c}")
    batch, seq, vocab = shape_r
    max_abs = max_rel = 0.0
    positions = flips = 0
    for p in range(batch * seq):
        r = ref[p * vocab:(p + 1) * vocab]
        c = cand[p * vocab:(p + 1) * vocab]
        scale = max(abs(v) for v in r)
        if scale == 0.0:
            continue  # padding after a shorter sequence
        positions += 1
        d = max(abs(x - y) for x, y in zip(r, c))
        max_abs = max(max_abs, d)
        max_rel = max(max_rel, d / scale)
        if max(range(vocab), key=r.__getitem__) != max(range(vocab), key=c.__getitem__):
            flips += 1
    out = {"positions": positions, "max_abs": max_abs, "max_rel": max_rel, "argmax_changes": flips}
    if "--json" in sys.argv:
        print(json.dumps(out))
    else:
        print(f"positions {positions}  max|d| {max_abs:.3g}  max|d|/max|ref| {max_rel:.3g}  argmax changes {flips}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Convert a qiusuo/Hugging Face DeepSeek checkpoint to GGUF for the llama.cpp peer benchmark.

Runs llama.cpp's own converter (convert_hf_to_gguf.py from the llama.cpp source tree given with
--llama-cpp) on a staging directory that links the checkpoint's config.json and safetensors and
adds a byte-level BPE tokenizer cut to the model's vocab_size (random-weight benchmark models
have no tokenizer of their own). The converter reads the vocabulary through Hugging Face
transformers, which Debian 12 does not package; this script gives it the same list straight from
tokenizer.json (tokens by id, [PADi] for gaps, added tokens as CONTROL), which is all
llama-bench needs (it feeds token ids, not text), and stands in for the torch dtypes that
Debian's torch 1.13 lacks. For V2-Lite-shaped models of a depth other than 27 it also writes
q_lora_rank = 0 (see below). Everything else — tensor names, FP8
dequantization, the MLA split of kv_b, BF16 / Q8_0 output — is llama.cpp's code.

usage: llamacpp_convert.py --llama-cpp SRC --model DIR --tokenizer tokenizer.json
                           --outtype bf16|q8_0 --out FILE.gguf
"""
import argparse
import importlib
import json
import os
import sys
import tempfile
import types
from pathlib import Path


def e4m3_value(b: int) -> float:
    """The value of FP8 E4M3 (OCP 'fn': no infinities, S.1111.111 is NaN) byte b."""
    sign = -1.0 if b & 0x80 else 1.0
    e, m = (b >> 3) & 0xF, b & 0x7
    if e == 0xF and m == 0x7:
        return float("nan")
    if e == 0:
        return sign * (m / 8.0) * 2.0 ** -6
    return sign * (1.0 + m / 8.0) * 2.0 ** (e - 7)


def safetensors_tensors(path: Path) -> dict:
    """name -> (dtype, shape, absolute byte offset) of a safetensors file's tensors."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    return {k: (v["dtype"], tuple(v["shape"]), 8 + n + v["data_offsets"][0])
            for k, v in header.items() if k != "__metadata__"}


def fp8_scale_map(model: Path) -> dict:
    """(file, offset) of each E4M3 weight -> (file, offset, shape, dtype) of its weight_scale_inv."""
    where = {}
    for f in sorted(model.glob("*.safetensors")):
        real = os.path.realpath(f)
        for name, (dtype, shape, off) in safetensors_tensors(f).items():
            where[name] = (real, dtype, shape, off)
    scales = {}
    for name, (real, dtype, shape, off) in where.items():
        s = where.get(name + "_scale_inv")
        if dtype == "F8_E4M3" and len(shape) == 2 and s is not None:
            scales[(real, off)] = (s[0], s[3], s[2], s[1])
    return scales


def read_f32(path: str, offset: int, shape: tuple, dtype: str):
    """A small F32 or BF16 tensor of a safetensors file, as a torch F32 tensor."""
    import numpy as np
    import torch
    count = 1
    for d in shape:
        count *= d
    if dtype == "F32":
        a = np.fromfile(path, dtype=np.float32, count=count, offset=offset)
    elif dtype == "BF16":
        a = (np.fromfile(path, dtype=np.uint16, count=count, offset=offset).astype(np.uint32) << 16).view(np.float32)
    else:
        raise SystemExit(f"llamacpp_convert: unsupported weight_scale_inv dtype {dtype} in {path}")
    return torch.from_numpy(a.copy()).reshape(shape)


def converter_class(conv, name: str, module: str):
    """A class of llama.cpp's converter: at the top of convert_hf_to_gguf.py in older trees, in
    its conversion package (`module`) in newer ones."""
    for mod in (conv, getattr(conv, "conversion", None)):
        if mod is not None and hasattr(mod, name):
            return getattr(mod, name)
    return getattr(importlib.import_module(module), name)


def staged_model_dir(model: Path, tokenizer_json: Path, tmp: Path, drop_quantization: bool) -> Path:
    cfg = json.loads((model / "config.json").read_text())
    vocab_size = int(cfg["vocab_size"])
    stage = tmp / "model"
    stage.mkdir()
    for f in model.iterdir():
        if f.name.endswith(".safetensors") or f.name == "model.safetensors.index.json":
            os.symlink(f.resolve(), stage / f.name)
    staged_cfg = dict(cfg)
    if drop_quantization:  # the FP8 weights load dequantized (see main)
        staged_cfg.pop("quantization_config", None)
    (stage / "config.json").write_text(json.dumps(staged_cfg, indent=1))
    tok = json.loads(tokenizer_json.read_text())
    vocab = {t: i for t, i in tok["model"]["vocab"].items() if i < vocab_size}
    tok["model"]["vocab"] = vocab
    merges = []
    for m in tok["model"].get("merges", []):
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and (a + b) in vocab:
            merges.append(m)
    tok["model"]["merges"] = merges
    tok["added_tokens"] = [t for t in tok.get("added_tokens", []) if t["id"] < vocab_size]
    (stage / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    bos = cfg.get("bos_token_id")
    eos = cfg.get("eos_token_id")
    by_id = {t["id"]: t["content"] for t in tok["added_tokens"]}
    tc = {"add_bos_token": False}
    if bos in by_id:
        tc["bos_token"] = by_id[bos]
    if eos in by_id:
        tc["eos_token"] = by_id[eos]
    (stage / "tokenizer_config.json").write_text(json.dumps(tc))
    return stage


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", required=True, type=Path, help="llama.cpp source tree")
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--tokenizer", required=True, type=Path, help="a byte-level BPE tokenizer.json")
    ap.add_argument("--outtype", default="bf16", choices=["bf16", "q8_0", "f32", "f16"])
    ap.add_argument("--out", required=True, type=Path)
    a = ap.parse_args()

    src = a.llama_cpp.resolve()
    if not (src / "convert_hf_to_gguf.py").is_file():
        sys.exit(f"llamacpp_convert: {src} has no convert_hf_to_gguf.py")
    try:
        import transformers  # noqa: F401
    except ImportError:
        # The converter imports transformers at the top but falls back to config.json when
        # AutoConfig fails; the vocabulary comes from get_vocab_base below.
        stub = types.ModuleType("transformers")

        class Unavailable:
            @classmethod
            def from_pretrained(cls, *args, **kwargs):
                raise RuntimeError("transformers is not installed")

        stub.AutoConfig = stub.AutoTokenizer = Unavailable
        sys.modules["transformers"] = stub
    import numpy as np
    import torch
    # Debian 12's torch (1.13) predates these dtypes; the converter only names them as keys of
    # its dtype tables. Stand-ins that match no real tensor keep those tables importable.
    for name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "uint16", "uint32", "uint64"):
        if not hasattr(torch, name):
            setattr(torch, name, type("MissingTorchDtype_" + name, (), {"itemsize": 1})())
    sys.path.insert(0, str(src / "gguf-py"))
    sys.path.insert(0, str(src))
    import gguf  # noqa: E402  (llama.cpp's gguf-py)
    import convert_hf_to_gguf as conv  # noqa: E402

    text_model = converter_class(conv, "TextModel", "conversion.base")

    def get_vocab_base(self):
        tok = json.loads((Path(self.dir_model) / "tokenizer.json").read_text())
        n = int(self.hparams["vocab_size"])
        rev = {i: t for t, i in tok["model"]["vocab"].items()}
        added = {t["id"]: t for t in tok.get("added_tokens", [])}
        tokens, types = [], []
        for i in range(n):
            if i in added:
                tokens.append(added[i]["content"])
                types.append(gguf.TokenType.CONTROL if added[i].get("special") else gguf.TokenType.USER_DEFINED)
            elif i in rev:
                tokens.append(rev[i])
                types.append(gguf.TokenType.NORMAL)
            else:
                tokens.append(f"[PAD{i}]")
                types.append(gguf.TokenType.UNUSED)
        return tokens, types, "deepseek-v3"

    text_model.get_vocab_base = get_vocab_base

    # llama.cpp recognises a DeepSeek-V2 model without query compression by its layer count
    # (27 or 26, as V2-Lite) and otherwise requires the q_lora_rank key, which the converter only
    # writes when the config has one. Write 0 (= no query compression, the loader's own test) so
    # that V2-Lite-shaped models of other depths load.
    v2 = converter_class(conv, "DeepseekV2Model", "conversion.deepseek")
    original_params = v2.set_gguf_parameters

    def set_gguf_parameters(self):
        original_params(self)
        if self.hparams.get("q_lora_rank") is None:
            self.gguf_writer.add_q_lora_rank(0)

    v2.set_gguf_parameters = set_gguf_parameters

    # FP8 checkpoints (DeepSeek's E4M3 weights with 128x128 `weight_scale_inv`): the converter
    # would dequantize them itself, but it loads the bytes as torch.float8_e4m3fn, which torch
    # 1.13 lacks, and traces the dequantization on meta tensors, where 1.13's repeat_interleave
    # fails. Without float8, the staged config drops quantization_config and each E4M3 weight
    # loads (lazily, one at a time as the converter asks for it, as any other tensor) as F32:
    # its bytes through a 256-entry table of the E4M3 values, times its block scales widened to
    # 128x128 blocks — the converter's weight.float() * scale; the scale tensors are not passed on.
    fp8_scales = {}
    if type(torch.float8_e4m3fn).__name__.startswith("MissingTorchDtype"):
        fp8_scales = fp8_scale_map(a.model.resolve())
    if fp8_scales:
        lazy_cls = converter_class(conv, "LazyTorchTensor", "conversion.base")
        e4m3 = torch.tensor([e4m3_value(b) for b in range(256)], dtype=torch.float32)
        plain_from_local = lazy_cls.from_local_tensor.__func__

        def load_fp8(t, scale):
            rows, cols = t.shape
            raw = torch.from_numpy(np.asarray(t.mmap_bytes(), dtype=np.uint8)).long()
            w = e4m3[raw].reshape(rows, cols)
            s = read_f32(*scale)
            s = s.repeat_interleave(128, 0).repeat_interleave(128, 1)[:rows, :cols]
            return w * s

        def from_local_tensor(cls, t):
            key = (os.path.realpath(t.data_range.filename), t.data_range.offset)
            if t.dtype != "F8_E4M3" or key not in fp8_scales:
                return plain_from_local(cls, t)
            meta = cls.meta_with_dtype_and_shape(torch.float32, tuple(t.shape))
            return cls(meta=meta, args=(t, fp8_scales[key]), func=load_fp8)

        lazy_cls.from_local_tensor = classmethod(from_local_tensor)
        plain_filter = v2.filter_tensors.__func__

        def filter_tensors(cls, item):
            return None if item[0].endswith("weight_scale_inv") else plain_filter(cls, item)

        v2.filter_tensors = classmethod(filter_tensors)

    with tempfile.TemporaryDirectory(prefix="qs-gguf-") as tmp:
        stage = staged_model_dir(a.model.resolve(), a.tokenizer.resolve(), Path(tmp), bool(fp8_scales))
        sys.argv = ["convert_hf_to_gguf.py", str(stage), "--outtype", a.outtype, "--outfile", str(a.out)]
        conv.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())

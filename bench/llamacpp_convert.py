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
import json
import os
import sys
import tempfile
import types
from pathlib import Path


def staged_model_dir(model: Path, tokenizer_json: Path, tmp: Path) -> Path:
    cfg = json.loads((model / "config.json").read_text())
    vocab_size = int(cfg["vocab_size"])
    stage = tmp / "model"
    stage.mkdir()
    for f in model.iterdir():
        if f.name.endswith(".safetensors") or f.name in ("config.json", "model.safetensors.index.json"):
            os.symlink(f.resolve(), stage / f.name)
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

    text_model = None
    for mod in (conv, getattr(conv, "conversion", None)):
        if mod is not None and hasattr(mod, "TextModel"):
            text_model = mod.TextModel
            break
    if text_model is None:
        from conversion.base import TextModel as text_model  # noqa: E402

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
    v2 = getattr(conv, "DeepseekV2Model", None)
    if v2 is None:
        from conversion.deepseek import DeepseekV2Model as v2  # noqa: E402
    original_params = v2.set_gguf_parameters

    def set_gguf_parameters(self):
        original_params(self)
        if self.hparams.get("q_lora_rank") is None:
            self.gguf_writer.add_q_lora_rank(0)

    v2.set_gguf_parameters = set_gguf_parameters

    with tempfile.TemporaryDirectory(prefix="qs-gguf-") as tmp:
        stage = staged_model_dir(a.model.resolve(), a.tokenizer.resolve(), Path(tmp))
        sys.argv = ["convert_hf_to_gguf.py", str(stage), "--outtype", a.outtype, "--outfile", str(a.out)]
        conv.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())

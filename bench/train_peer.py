#!/usr/bin/python3
"""PyTorch peer of `qiusuo train`: the same DeepSeek-V3-style model, data, loader rule, losses and
optimizer, written the way an experienced PyTorch user would write it for a CPU, so that
scripts/bench-train.sh can compare tokens/s and loss side by side (see docs/bench-train.md).

Model (DeepSeek-V3 inference/model.py, reduced to what the config uses):
  embed → L × [x + MLA(RMSNorm(x)); h + FFN(RMSNorm(h))] → RMSNorm → lm_head (untied)
  MLA   q = q_b(RMSNorm(q_a(x))) split per head into nope | rope; kv_a(x) = [c | k_pe],
        c = RMSNorm(c), kv_b(c) = per head [k_nope | v]; interleaved RoPE on q_pe, k_pe;
        softmax((q_nope·k_nope + q_pe·k_pe)·qk_head_dim^-½ + causal mask) · v → o_proj
  FFN   layers < first_k_dense_replace: SwiGLU; others DeepSeekMoE: sigmoid router in F32,
        noaux_tc group-limited top-k with e_score_correction_bias (selection only), weights
        s/Σs·routed_scaling_factor, shared expert; sort tokens by expert, index_add_ combine
  MTP   h' = eh_proj([RMSNorm_e(Emb(t+1)) | RMSNorm_h(h_t)]) → block → RMSNorm → lm_head, predicts t+2
Losses: main CE + mtp_lambda·MTP CE + sequence-wise balance loss (alpha·Σ f_i P_i, mean over
sequences, every MoE layer including the MTP block). After each AdamW step the
auxiliary-loss-free bias moves by bias_speed·sign(mean load − load_i).

Data: token shards from `qiusuo prepare` (64-byte QSTOKENS header + uint32 ids). Windows of
T+1 tokens start at multiples of T; each epoch visits them in a permutation drawn from
numpy.random.default_rng((seed, epoch)) (`--order qiusuo` reproduces qiusuo's own xoshiro256**
Fisher-Yates order exactly, for step-by-step cross-checks); B windows per step.

Run with /usr/bin/python3 (Debian's python3-torch). Prints one JSON line per step (unless
--quiet) and a final JSON summary line ({"summary": true, ...}) on stdout; progress on stderr.
"""
import argparse
import contextlib
import json
import math
import os
import struct
import sys
import time


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def openblas_core_for_cpu():
    """OpenBLAS core type matching the CPU's ISA. Debian's OpenBLAS (DYNAMIC_ARCH) picks its kernel
    from the CPUID model number; on CPUs it does not know (virtual machines that report a generic
    "Intel Xeon Processor", newer models) it falls back to the SSE3 'Prescott' kernel, 4x slower
    in SGEMM here. A careful user forces the right one."""
    f = cpu_flags()
    if "avx512_bf16" in f and "avx512f" in f:
        return "Cooperlake"   # SkylakeX SGEMM kernels + AVX512-BF16 SBGEMM
    if "avx512f" in f and "avx512bw" in f and "avx512vl" in f:
        return "SkylakeX"
    if "avx2" in f and "fma" in f:
        return "Haswell"
    return None


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="model config.json (with an optional \"train\" section)")
    p.add_argument("--data", required=True, help="dataset directory from `qiusuo prepare` (train.bin, val.bin)")
    p.add_argument("--steps", type=int, default=30, help="optimizer steps")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="fp32, or bf16 = torch.autocast('cpu', bfloat16) with F32 master weights")
    p.add_argument("--seed", type=int, default=0, help="seed of initialization and data order")
    p.add_argument("--warmup", type=int, default=None, help="warmup steps (default: config / 100)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (torch.set_num_threads, OMP_NUM_THREADS)")
    p.add_argument("--out", default=None, help="write per-step metrics (JSON lines) here")
    p.add_argument("--batch", type=int, default=None, help="sequences per step (default: config / 16)")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (default: config / 512)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: config / 3e-4)")
    p.add_argument("--min-lr-ratio", type=float, default=0.1, help="final lr of the cosine schedule / peak")
    p.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay on matrices (default 0.1)")
    p.add_argument("--clip", type=float, default=None, help="max global gradient norm (default 1.0; 0 = off)")
    p.add_argument("--mtp-lambda", type=float, default=None, help="MTP loss weight (default: config / 0.3)")
    p.add_argument("--aux-alpha", type=float, default=None, help="sequence-wise balance loss weight (default 1e-4)")
    p.add_argument("--bias-speed", type=float, default=None, help="aux-loss-free bias speed (default: config / 1e-3)")
    p.add_argument("--eval-every", type=int, default=0, help="steps between validation evaluations (the last step "
                   "is always evaluated unless --eval-batches 0)")
    p.add_argument("--eval-batches", type=int, default=8, help="validation batches (fixed, unshuffled, as qiusuo)")
    p.add_argument("--order", default="numpy", choices=["numpy", "qiusuo"],
                   help="window order: numpy default_rng permutation, or qiusuo's exact order")
    p.add_argument("--init-from", default=None, help="load initial weights from a Hugging Face-layout checkpoint "
                   "directory (*.safetensors; e.g. from `qiusuo init --dtype f32`) instead of random init")
    p.add_argument("--openblas-core", default="auto",
                   help="OPENBLAS_CORETYPE to force: auto (from the CPU flags, unless the variable is already set), "
                        "none (OpenBLAS's own detection) or a core name")
    p.add_argument("--aten-capability", default="auto",
                   help="ATEN_CPU_CAPABILITY for PyTorch's own (non-GEMM) kernels: auto (avx512 when the CPU has it, "
                        "unless the variable is already set), default (PyTorch's choice) or a value (avx2, avx512)")
    p.add_argument("--quiet", action="store_true", help="stdout: only the summary line; no progress on stderr")
    return p.parse_args(argv)


# Environment that must be fixed before torch (and its OpenMP runtime / OpenBLAS) loads.
ARGS = parse_args(sys.argv[1:])
os.environ.setdefault("OMP_NUM_THREADS", str(ARGS.threads))
if ARGS.openblas_core == "auto":
    if "OPENBLAS_CORETYPE" not in os.environ and openblas_core_for_cpu():
        os.environ["OPENBLAS_CORETYPE"] = openblas_core_for_cpu()
elif ARGS.openblas_core != "none":
    os.environ["OPENBLAS_CORETYPE"] = ARGS.openblas_core
# Debian's torch 1.13 dispatches its elementwise/reduction kernels to AVX2 on this AVX-512 Xeon
# unless told otherwise; its AVX-512 kernels are built in and measured 10-18% faster per step here.
if ARGS.aten_capability == "auto":
    if "ATEN_CPU_CAPABILITY" not in os.environ and {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= cpu_flags():
        os.environ["ATEN_CPU_CAPABILITY"] = "avx512"
elif ARGS.aten_capability != "default":
    os.environ["ATEN_CPU_CAPABILITY"] = ARGS.aten_capability

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    sys.exit(f"train_peer.py: {e}. Install Debian's python3-torch and python3-numpy "
             f"(scripts/install-deps.sh --bench) and run with /usr/bin/python3, not {sys.executable}")


def die(msg):
    print(f"train_peer.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


# ---- configuration ---------------------------------------------------------------------------

class ModelArgs:
    """The config.json fields the model uses (Hugging Face DeepseekV3 names)."""

    def __init__(self, c):
        def need(k):
            if k not in c:
                die(f"config is missing \"{k}\"")
            return c[k]
        self.vocab_size = need("vocab_size")
        self.dim = need("hidden_size")
        self.n_layers = need("num_hidden_layers")
        self.n_dense_layers = c.get("first_k_dense_replace", 0)
        self.inter_dim = need("intermediate_size")           # dense SwiGLU width
        self.moe_inter_dim = need("moe_intermediate_size")   # routed / shared expert width
        self.n_routed_experts = need("n_routed_experts")
        self.n_activated_experts = need("num_experts_per_tok")
        self.n_shared_experts = c.get("n_shared_experts", 0) or 0
        self.n_groups = c.get("n_group", 1) or 1
        self.n_limited_groups = c.get("topk_group", 1) or 1
        self.topk_method = c.get("topk_method", "noaux_tc")
        self.score_func = c.get("scoring_func", "sigmoid")
        self.norm_topk_prob = c.get("norm_topk_prob", True)
        self.route_scale = c.get("routed_scaling_factor", 1.0)
        self.n_heads = need("num_attention_heads")
        self.q_lora_rank = c.get("q_lora_rank") or 0
        self.kv_lora_rank = need("kv_lora_rank")
        self.qk_nope_head_dim = need("qk_nope_head_dim")
        self.qk_rope_head_dim = need("qk_rope_head_dim")
        self.v_head_dim = need("v_head_dim")
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.rope_theta = c.get("rope_theta", 10000.0)
        self.n_mtp = c.get("num_nextn_predict_layers", 0) or 0
        self.init_std = c.get("initializer_range", 0.02)
        if c.get("tie_word_embeddings", False):
            die("tie_word_embeddings=true is not supported by the peer")
        if c.get("rope_scaling"):
            die("rope_scaling (YaRN) is not supported by the peer; the benchmark config has none")
        if self.topk_method != "noaux_tc" or self.score_func != "sigmoid":
            die(f"peer implements topk_method noaux_tc with sigmoid scoring (config: {self.topk_method}, "
                f"{self.score_func})")
        if self.n_mtp > 1:
            die("peer implements one MTP module (num_nextn_predict_layers <= 1)")
        if self.n_routed_experts % self.n_groups:
            die("n_routed_experts must be a multiple of n_group")

    @property
    def qk_head_dim(self):
        return self.qk_nope_head_dim + self.qk_rope_head_dim


# ---- model -----------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):  # in F32, as qiusuo's norms (and DeepSeek-V3 training) run
        x = x.float()
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def precompute_rope(args, seq_len):
    """cos, sin [S, d_rope/2]: angle = pos · theta^(-2i/d), F32 product as in the reference."""
    d = args.qk_rope_head_dim
    inv_freq = 1.0 / (args.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    ang = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq).double()
    return ang.cos().float(), ang.sin().float()


def apply_rotary_emb(x, cos, sin):
    """Interleaved pairs (x[2i], x[2i+1]) rotated like the official view_as_complex form.
    x [B, S, H, d]; cos/sin [S, d/2]."""
    x = x.float().unflatten(-1, (-1, 2))
    x0, x1 = x[..., 0], x[..., 1]
    c, s = cos[:, None, :], sin[:, None, :]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)


class MLA(nn.Module):
    """Multi-head latent attention (training form: k, v expanded from the latent per head)."""

    def __init__(self, a):
        super().__init__()
        self.a = a
        H = a.n_heads
        if a.q_lora_rank > 0:
            self.q_a_proj = nn.Linear(a.dim, a.q_lora_rank, bias=False)
            self.q_a_layernorm = RMSNorm(a.q_lora_rank, a.eps)
            self.q_b_proj = nn.Linear(a.q_lora_rank, H * a.qk_head_dim, bias=False)
        else:
            self.q_proj = nn.Linear(a.dim, H * a.qk_head_dim, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(a.dim, a.kv_lora_rank + a.qk_rope_head_dim, bias=False)
        self.kv_a_layernorm = RMSNorm(a.kv_lora_rank, a.eps)
        self.kv_b_proj = nn.Linear(a.kv_lora_rank, H * (a.qk_nope_head_dim + a.v_head_dim), bias=False)
        self.o_proj = nn.Linear(H * a.v_head_dim, a.dim, bias=False)
        self.softmax_scale = a.qk_head_dim ** -0.5

    def forward(self, x, cos, sin, mask):
        a = self.a
        B, S, _ = x.shape
        H = a.n_heads
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x))) if a.q_lora_rank > 0 else self.q_proj(x)
        q = q.view(B, S, H, a.qk_head_dim)
        q_nope, q_pe = torch.split(q, [a.qk_nope_head_dim, a.qk_rope_head_dim], dim=-1)
        q_pe = apply_rotary_emb(q_pe, cos, sin)
        kv = self.kv_a_proj_with_mqa(x)
        c, k_pe = torch.split(kv, [a.kv_lora_rank, a.qk_rope_head_dim], dim=-1)
        k_pe = apply_rotary_emb(k_pe.unsqueeze(2), cos, sin)                 # [B, S, 1, dr]
        kv = self.kv_b_proj(self.kv_a_layernorm(c)).view(B, S, H, a.qk_nope_head_dim + a.v_head_dim)
        k_nope, v = torch.split(kv, [a.qk_nope_head_dim, a.v_head_dim], dim=-1)
        # softmax scale folded into q (as F.scaled_dot_product_attention's math path does)
        q = (torch.cat([q_nope.to(q_pe.dtype), q_pe], dim=-1) * self.softmax_scale).transpose(1, 2)  # [B, H, S, dq]
        k = torch.cat([k_nope.to(k_pe.dtype), k_pe.expand(-1, -1, H, -1)], dim=-1).transpose(1, 2)
        v = v.transpose(1, 2)                                                 # [B, H, S, dv]
        # No F.scaled_dot_product_attention in torch 1.13: matmul + F32 softmax with a causal mask.
        scores = torch.matmul(q, k.transpose(-1, -2)) + mask
        p = scores.softmax(dim=-1, dtype=torch.float32)
        o = torch.matmul(p, v)                                                # [B, H, S, dv]
        return self.o_proj(o.transpose(1, 2).reshape(B, S, H * a.v_head_dim))


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) · up(x)); dense FFN, routed and shared experts."""

    def __init__(self, dim, inter_dim):
        super().__init__()
        self.gate_proj = nn.Linear(dim, inter_dim, bias=False)
        self.up_proj = nn.Linear(dim, inter_dim, bias=False)
        self.down_proj = nn.Linear(inter_dim, dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Gate(nn.Module):
    """Router: sigmoid scores in F32; noaux_tc group-limited top-k on scores + correction bias."""

    def __init__(self, a):
        super().__init__()
        self.a = a
        self.weight = nn.Parameter(torch.empty(a.n_routed_experts, a.dim))
        # Auxiliary-loss-free balancing bias: selection only, no gradient, updated by the trainer.
        self.register_buffer("e_score_correction_bias", torch.zeros(a.n_routed_experts))

    def forward(self, x):  # x [N, d] → weights [N, K] (F32), indices [N, K], scores [N, E]
        a = self.a
        N = x.shape[0]
        with torch.autocast("cpu", enabled=False):  # router in F32 (as qiusuo and DeepSeek-V3 keep it)
            scores = F.linear(x.float(), self.weight).sigmoid()
        sel = scores.detach() + self.e_score_correction_bias
        if self.a.n_groups > 1:
            g = sel.view(N, a.n_groups, -1)
            group_scores = g.topk(2, dim=-1)[0].sum(dim=-1)                   # [N, G]
            keep = group_scores.topk(a.n_limited_groups, dim=-1)[1]
            drop = torch.ones(N, a.n_groups, dtype=torch.bool).scatter_(1, keep, False)
            sel = g.masked_fill(drop.unsqueeze(-1), float("-inf")).flatten(1)
        indices = sel.topk(a.n_activated_experts, dim=-1)[1]
        weights = scores.gather(1, indices)
        if a.norm_topk_prob:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        return weights * a.route_scale, indices, scores


class MoE(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a
        self.gate = Gate(a)
        self.experts = nn.ModuleList([MLP(a.dim, a.moe_inter_dim) for _ in range(a.n_routed_experts)])
        self.shared_experts = MLP(a.dim, a.n_shared_experts * a.moe_inter_dim) if a.n_shared_experts else None
        self.aux_alpha = 0.0
        self.load = None       # tokens per expert of the last forward, for the bias update
        self.aux_loss = None   # sequence-wise balance loss of the last forward

    def forward(self, x):
        a = self.a
        B, S, d = x.shape
        E, K = a.n_routed_experts, a.n_activated_experts
        x = x.reshape(-1, d)
        weights, indices, scores = self.gate(x)
        flat = indices.flatten()
        counts = torch.bincount(flat, minlength=E)
        order = torch.sort(flat, stable=True).indices          # rows grouped by expert, tokens in order
        token_of = order // K
        xs = x.index_select(0, token_of)
        # Every expert runs, even on 0 rows, so that each gets a (zero) gradient as in qiusuo.
        ys = torch.cat([expert(chunk) for expert, chunk in zip(self.experts, xs.split(counts.tolist()))])
        y = self.shared_experts(x).float() if self.shared_experts is not None else x.new_zeros(x.shape, dtype=torch.float32)
        y = y.index_add(0, token_of, ys.float() * weights.flatten().index_select(0, order).unsqueeze(-1))
        self.load = counts
        if self.aux_alpha > 0 and self.training:
            # DeepSeek-V3 eq. 17-20 per sequence: f_i = E/(K·S)·count_i, P_i = mean_t s_i,t/Σ_j s_j,t.
            f = torch.zeros(B, E).scatter_add_(1, indices.view(B, S * K), torch.ones(B, S * K)) * (E / (K * S))
            P = (scores / scores.sum(dim=-1, keepdim=True)).view(B, S, E).mean(dim=1)
            self.aux_loss = self.aux_alpha * (f * P).sum(dim=-1).mean()
        else:
            self.aux_loss = None
        return y.view(B, S, d)


class Block(nn.Module):
    def __init__(self, layer_id, a):
        super().__init__()
        self.self_attn = MLA(a)
        self.mlp = MLP(a.dim, a.inter_dim) if layer_id < a.n_dense_layers else MoE(a)
        self.input_layernorm = RMSNorm(a.dim, a.eps)
        self.post_attention_layernorm = RMSNorm(a.dim, a.eps)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class SharedHead(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.norm = RMSNorm(a.dim, a.eps)


class MTPBlock(Block):
    """Multi-token prediction module (stored as layer L): eh_proj over [enorm(emb) | hnorm(h)], then a
    decoder block; shared_head.norm then the main model's lm_head (shared, as is the embedding)."""

    def __init__(self, layer_id, a):
        super().__init__(layer_id, a)
        self.enorm = RMSNorm(a.dim, a.eps)
        self.hnorm = RMSNorm(a.dim, a.eps)
        self.eh_proj = nn.Linear(2 * a.dim, a.dim, bias=False)
        self.shared_head = SharedHead(a)

    def forward(self, h, emb, cos, sin, mask):
        x = self.eh_proj(torch.cat([self.enorm(emb), self.hnorm(h)], dim=-1))
        return super().forward(x, cos, sin, mask)


class Inner(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed_tokens = nn.Embedding(a.vocab_size, a.dim)
        self.layers = nn.ModuleList([Block(i, a) for i in range(a.n_layers)] +
                                    [MTPBlock(a.n_layers + k, a) for k in range(a.n_mtp)])
        self.norm = RMSNorm(a.dim, a.eps)


class Transformer(nn.Module):
    """Parameter names are the Hugging Face DeepseekV3 names (model.layers.N.self_attn.q_a_proj.weight...)."""

    def __init__(self, a, seq_len):
        super().__init__()
        self.a = a
        self.model = Inner(a)
        self.lm_head = nn.Linear(a.dim, a.vocab_size, bias=False)
        cos, sin = precompute_rope(a, seq_len)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.register_buffer("mask", torch.full((seq_len, seq_len), float("-inf")).triu_(1), persistent=False)

    def moe_layers(self):
        return [m.mlp for m in self.model.layers if isinstance(m.mlp, MoE)]

    def forward(self, tokens, mtp_lambda):
        """tokens [B, S+1] windows → (objective, main CE, MTP CE, balance loss)."""
        a = self.a
        B, S1 = tokens.shape
        S = S1 - 1
        cos, sin, mask = self.rope_cos[:S], self.rope_sin[:S], self.mask[:S, :S]
        h = self.model.embed_tokens(tokens[:, :S])
        for layer in self.model.layers[:a.n_layers]:
            h = layer(h, cos, sin, mask)
        logits = self.lm_head(self.model.norm(h))
        main = F.cross_entropy(logits.float().view(-1, a.vocab_size), tokens[:, 1:].reshape(-1))
        objective = main
        mtp = torch.zeros(())
        if a.n_mtp:
            mod = self.model.layers[a.n_layers]
            # position t sees h_t (before the final norm) and token t+1, predicts token t+2
            m = mod(h, self.model.embed_tokens(tokens[:, 1:]), cos, sin, mask)
            mlogits = self.lm_head(mod.shared_head.norm(m[:, :S - 1]))
            mtp = F.cross_entropy(mlogits.float().reshape(-1, a.vocab_size), tokens[:, 2:].reshape(-1))
            objective = objective + mtp_lambda * mtp
        aux = torch.zeros(())
        for moe in self.moe_layers():
            if moe.aux_loss is not None:
                aux = aux + moe.aux_loss
        return objective + aux, main, mtp, aux


def init_weights(model, seed):
    """N(0, std) matrices, o_proj/down_proj N(0, std/√(2·(L+MTP))), norms 1, correction bias 0."""
    a = model.a
    g = torch.Generator().manual_seed(seed)
    out_std = a.init_std / math.sqrt(2.0 * (a.n_layers + a.n_mtp))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
                p.normal_(0.0, out_std, generator=g)
            else:
                p.normal_(0.0, a.init_std, generator=g)
        for moe in model.moe_layers():
            moe.gate.e_score_correction_bias.zero_()


def read_safetensors(path):
    """{name: F32 tensor} from one .safetensors file (F32, BF16 and F16 tensors)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, t in header.items():
            if name == "__metadata__":
                continue
            b, e = t["data_offsets"]
            f.seek(base + b)
            raw = f.read(e - b)
            if t["dtype"] == "F32":
                arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
            elif t["dtype"] == "BF16":
                arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            elif t["dtype"] == "F16":
                arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
            else:
                die(f"{path}: tensor {name} has dtype {t['dtype']}; use an F32/BF16 checkpoint "
                    "(qiusuo init --dtype f32)")
            out[name] = torch.from_numpy(arr.reshape(t["shape"]).copy())
        return out


def load_weights(model, directory):
    files = sorted(fn for fn in os.listdir(directory) if fn.endswith(".safetensors"))
    if not files:
        die(f"--init-from {directory}: no .safetensors files")
    tensors = {}
    for fn in files:
        tensors.update(read_safetensors(os.path.join(directory, fn)))
    state = model.state_dict()
    missing = [k for k in state if k not in tensors]
    if missing:
        die(f"--init-from {directory}: missing {len(missing)} tensors, e.g. {missing[:3]}")
    with torch.no_grad():
        for k, v in state.items():
            if tuple(tensors[k].shape) != tuple(v.shape):
                die(f"--init-from: {k} has shape {list(tensors[k].shape)}, model expects {list(v.shape)}")
            v.copy_(tensors[k])


# ---- data ------------------------------------------------------------------------------------

def open_shard(path, vocab):
    if not os.path.isfile(path):
        die(f"{path} not found (run `qiusuo prepare` first)")
    with open(path, "rb") as f:
        h = f.read(64)
    if len(h) < 64 or h[:8] != b"QSTOKENS":
        die(f"{path}: not a qiusuo token shard (magic is not QSTOKENS)")
    version, bpt, n_tokens, v = struct.unpack_from("<IIQI", h, 8)
    if version != 1 or bpt != 4:
        die(f"{path}: unsupported token shard version {version} / bytes_per_token {bpt}")
    if os.path.getsize(path) != 64 + 4 * n_tokens:
        die(f"{path}: size {os.path.getsize(path)} does not match the header's {n_tokens} tokens")
    if v > vocab:
        die(f"{path}: dataset vocabulary {v} is larger than the model's {vocab}")
    return np.memmap(path, dtype="<u4", mode="r", offset=64, shape=(n_tokens,))


M64 = (1 << 64) - 1


class QiusuoRng:
    """qs::Rng (SplitMix64-seeded xoshiro256**), for --order qiusuo."""

    def __init__(self, seed):
        z = seed & M64
        self.s = []
        for _ in range(4):
            z = (z + 0x9E3779B97F4A7C15) & M64
            r = z
            r = ((r ^ (r >> 30)) * 0xBF58476D1CE4E5B9) & M64
            r = ((r ^ (r >> 27)) * 0x94D049BB133111EB) & M64
            self.s.append(r ^ (r >> 31))

    @staticmethod
    def rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & M64

    def next_u64(self):
        s = self.s
        r = (self.rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t
        s[3] = self.rotl(s[3], 45)
        return r


def qiusuo_permutation(n, seed, epoch):
    rng = QiusuoRng(((seed * 0x9E3779B97F4A7C15) & M64) ^ (((epoch + 1) * 0xD1B54A32D192ED03) & M64))
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.next_u64() % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return np.array(perm, dtype=np.int64)


class Loader:
    """Windows of T+1 tokens at multiples of T (overlapping by one), a permutation per epoch."""

    def __init__(self, tokens, B, T, seed, order):
        self.tok, self.B, self.T, self.seed, self.order = tokens, B, T, seed, order
        self.W = (len(tokens) - 1) // T
        if self.W < 1:
            die(f"dataset has {len(tokens)} tokens, fewer than seq_len+1 = {T + 1}")
        self.epoch, self.index, self.perm, self.perm_epoch = 0, 0, None, -1

    def permutation(self, epoch):
        if self.perm_epoch != epoch:
            if self.order == "qiusuo":
                self.perm = qiusuo_permutation(self.W, self.seed, epoch)
            else:
                self.perm = np.random.default_rng((self.seed, epoch)).permutation(self.W)
            self.perm_epoch = epoch
        return self.perm

    def next(self):
        out = np.empty((self.B, self.T + 1), dtype=np.int64)
        for b in range(self.B):
            if self.index >= self.W:
                self.index, self.epoch = 0, self.epoch + 1
            w = int(self.permutation(self.epoch)[self.index])
            out[b] = self.tok[w * self.T: w * self.T + self.T + 1]
            self.index += 1
        return torch.from_numpy(out)


def val_batches(tokens, B, T, n):
    """qiusuo's fixed validation batches: windows k mod W for k = 0 .. n·B−1, in order."""
    W = (len(tokens) - 1) // T
    if W < 1:
        die(f"validation split has {len(tokens)} tokens, fewer than seq_len+1 = {T + 1}")
    n = max(1, min(n, W // B))
    out = []
    for i in range(n):
        ws = [(i * B + b) % W for b in range(B)]
        out.append(torch.from_numpy(np.stack([tokens[w * T: w * T + T + 1] for w in ws]).astype(np.int64)))
    return out


# ---- training --------------------------------------------------------------------------------

def lr_at(step, peak, warmup, total, min_ratio):
    """qiusuo's LrSchedule (cosine): linear warmup (step+1)/warmup, half-cosine to min_ratio·peak."""
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    lo = peak * min_ratio
    if step >= total:
        return lo
    t = (step - warmup) / max(1, total - warmup)
    return lo + 0.5 * (peak - lo) * (1.0 + math.cos(math.pi * t))


def backend_info(threads):
    """What this process really runs on: BLAS and allocator libraries mapped, OpenBLAS's core."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and any(s in parts[-1] for s in ("blas", "lapack", "dnnl", "jemalloc", "gomp", "mkl")):
                libs.add(parts[-1])
    info = {"torch": torch.__version__, "numpy": np.__version__, "threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "libraries": sorted(libs),
            "jemalloc": any("jemalloc" in s for s in libs),
            "mkldnn": torch.backends.mkldnn.is_available(), "mkl": torch.backends.mkl.is_available(),
            "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
            "aten_cpu_capability": torch.__config__.show().split("CPU capability usage:")[-1].split("\n")[0].strip()}
    blas = "unknown"
    try:
        import ctypes
        ob = ctypes.CDLL("libopenblas.so.0", mode=getattr(os, "RTLD_NOLOAD", 4))
        ob.openblas_get_config.restype = ctypes.c_char_p
        ob.openblas_get_corename.restype = ctypes.c_char_p
        info["openblas_config"] = ob.openblas_get_config().decode()
        info["openblas_core"] = ob.openblas_get_corename().decode()
        blas = f"OpenBLAS ({info['openblas_core']})"
    except (OSError, AttributeError):
        pass
    real = [os.path.realpath(s) for s in libs if "libblas" in s]
    info["libblas_resolves_to"] = real
    if blas == "unknown" and real:
        blas = real[0]
    info["blas"] = blas
    return info


def main():
    args = ARGS
    torch.set_num_threads(args.threads)
    with open(args.config) as f:
        cfg = json.load(f)
    a = ModelArgs(cfg)
    tr = cfg.get("train", {}) if isinstance(cfg.get("train"), dict) else {}
    B = args.batch or tr.get("batch_size", 16)
    T = args.seq_len or tr.get("seq_len", 512)
    peak = args.lr if args.lr is not None else tr.get("lr", 3e-4)
    warmup = args.warmup if args.warmup is not None else tr.get("warmup", 100)
    mtp_lambda = args.mtp_lambda if args.mtp_lambda is not None else tr.get("mtp_lambda", 0.3)
    aux_alpha = args.aux_alpha if args.aux_alpha is not None else tr.get("aux_alpha", 1e-4)
    bias_speed = args.bias_speed if args.bias_speed is not None else tr.get("bias_update_speed", 1e-3)
    wd = args.weight_decay if args.weight_decay is not None else tr.get("weight_decay", 0.1)
    clip = args.clip if args.clip is not None else tr.get("clip", 1.0)
    if args.steps < 1 or B < 1 or T < 2:
        die("steps and batch must be >= 1 and seq_len >= 2")

    train_tok = open_shard(os.path.join(args.data, "train.bin"), a.vocab_size)
    val_tok = open_shard(os.path.join(args.data, "val.bin"), a.vocab_size) if args.eval_batches > 0 else None
    loader = Loader(train_tok, B, T, args.seed, args.order)
    val = val_batches(val_tok, B, T, args.eval_batches) if val_tok is not None else []

    torch.manual_seed(args.seed)
    model = Transformer(a, T)
    if args.init_from:
        load_weights(model, args.init_from)
    else:
        init_weights(model, args.seed)
    for moe in model.moe_layers():
        moe.aux_alpha = aux_alpha
    decay = [p for p in model.parameters() if p.ndim == 2]
    no_decay = [p for p in model.parameters() if p.ndim != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=peak, betas=(0.9, 0.95), eps=1e-8)
    params = list(model.parameters())
    n_params = sum(p.numel() for p in params)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.precision == "bf16" \
        else contextlib.nullcontext
    info = backend_info(args.threads)
    if not args.quiet:
        print(f"peer: torch {info['torch']}, {info['threads']} threads, BLAS {info['blas']}, "
              f"jemalloc {'yes' if info['jemalloc'] else 'no'}, {n_params / 1e6:.1f}M parameters, "
              f"{args.precision}, batch {B}x{T}", file=sys.stderr)

    def evaluate():
        model.eval()
        s = n = 0
        with torch.no_grad(), autocast():
            for tok in val:
                _, main_loss, _, _ = model(tok, mtp_lambda)
                s += main_loss.item() * tok.shape[0] * T
                n += tok.shape[0] * T
        model.train()
        return s / n

    metrics = open(args.out, "w") if args.out else None
    tokens_per_step = B * T
    times, last = [], {}
    model.train()
    for step in range(args.steps):
        t0 = time.perf_counter()
        tok = loader.next()
        opt.zero_grad(set_to_none=True)
        with autocast():
            objective, main_loss, mtp_loss, aux_loss = model(tok, mtp_lambda)
        objective.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf")).item()
        lr = lr_at(step, peak, warmup, args.steps, args.min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        loads = []
        with torch.no_grad():  # auxiliary-loss-free balancing
            for moe in model.moe_layers():
                load = moe.load.float()
                moe.gate.e_score_correction_bias.add_(bias_speed * torch.sign(load.mean() - load))
                loads.append(load / load.mean())
        dt = time.perf_counter() - t0
        times.append(dt)
        loss_v = main_loss.item()
        if not math.isfinite(objective.item()):
            die(f"loss is not finite at step {step} ({objective.item()})")
        m = {"step": step + 1, "loss": loss_v, "objective": objective.item(), "mtp_loss": mtp_loss.item(),
             "aux_loss": aux_loss.item(), "lr": lr, "grad_norm": gnorm, "tokens_per_s": tokens_per_step / dt,
             "tokens": tokens_per_step * (step + 1), "time_s": sum(times),
             "expert_load_max": max(float(l.max()) for l in loads) if loads else 0.0,
             "expert_load_min": min(float(l.min()) for l in loads) if loads else 0.0}
        if val and ((args.eval_every > 0 and (step + 1) % args.eval_every == 0) or step + 1 == args.steps):
            m["val_loss"] = evaluate()
        last = m
        line = json.dumps(m)
        if metrics:
            metrics.write(line + "\n")
            metrics.flush()
        if not args.quiet:
            print(line, flush=True)
            print(f"peer step {step + 1}/{args.steps} | loss {loss_v:.4f} | {tokens_per_step / dt:.0f} tok/s",
                  file=sys.stderr, flush=True)
    if metrics:
        metrics.close()
    skip = 2 if len(times) > 2 else 0
    timed = times[skip:]
    summary = {"summary": True, "engine": "pytorch", "precision": args.precision, "steps": args.steps,
               "batch": B, "seq_len": T, "tokens_per_step": tokens_per_step,
               "tokens_per_s": tokens_per_step * len(timed) / sum(timed), "tokens_per_s_skipped_steps": skip,
               "loss": last.get("loss"), "mtp_loss": last.get("mtp_loss"), "val_loss": last.get("val_loss"),
               "params": n_params, "order": args.order, "init_from": args.init_from}
    summary.update(info)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()

// qiusuo info | logits | init
#include <unistd.h>
#include <cstdio>
#include <map>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "dist_cli.h"
#include "qiusuo/core/error.h"
#include "qiusuo/core/timer.h"
#include "qiusuo/quant/quantize.h"
#include "qiusuo/io/file.h"
#include "qiusuo/io/safetensors.h"
#include "qiusuo/model/init.h"
#include "qiusuo/model/presets.h"
#include "qiusuo/model/transformer.h"

namespace qs::cli {
namespace {

// "1,2,3;4,5" → {{1,2,3},{4,5}}
std::vector<std::vector<int32_t>> parse_id_lists(const std::string& s, int64_t vocab) {
  std::vector<std::vector<int32_t>> out(1);
  std::string num;
  auto flush = [&]() {
    if (num.empty()) return;
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(num, &used);
    } catch (...) {
      used = 0;
    }
    if (used != num.size()) fail("--ids: '", num, "' is not an integer");
    if (v < 0 || v >= vocab) fail("--ids: token id ", v, " is outside the vocabulary [0, ", vocab, ")");
    out.back().push_back(int32_t(v));
    num.clear();
  };
  for (char ch : s) {
    if (ch == ',') flush();
    else if (ch == ';') { flush(); out.emplace_back(); }
    else if (ch == ' ') continue;
    else num.push_back(ch);
  }
  flush();
  for (size_t i = 0; i < out.size(); ++i)
    if (out[i].empty()) fail("--ids: sequence ", i, " is empty");
  return out;
}

Compute parse_precision(const std::string& p) {
  if (p == "f32") return Compute::F32;
  if (p == "bf16") return Compute::BF16;
  fail("--precision must be f32 or bf16, got '", p, "'");
}

size_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? size_t(pages) * size_t(page) : 0;
}

nlohmann::json model_info(const Model& m) {
  const ModelConfig& c = m.config();
  std::map<std::string, size_t> by_dtype;
  size_t files_bytes = 0;
  if (m.store())
    for (const auto& n : m.store()->names()) {
      const TensorView& t = m.store()->get(n);
      by_dtype[std::string(dtype_name(t.dtype))] += t.nbytes;
      files_bytes += t.nbytes;
    }
  const int64_t L = c.num_hidden_layers;
  const size_t kv_latent = kv_row_bytes(KvDtype::F32, c.kv_lora_rank, c.qk_rope_head_dim) * size_t(L);
  const size_t kv_mha = size_t(c.num_attention_heads * (c.qk_head_dim() + c.v_head_dim)) * size_t(L) * sizeof(float);
  int64_t moe_layers = 0;
  for (int64_t l = 0; l < L; ++l) moe_layers += c.is_moe_layer(l);
  nlohmann::json j;
  j["model_type"] = c.model_type;
  j["layers"] = L;
  j["moe_layers"] = moe_layers;
  j["mtp_layers"] = c.num_nextn_predict_layers;
  j["hidden_size"] = c.hidden_size;
  j["vocab_size"] = c.vocab_size;
  j["total_params"] = c.total_params();
  j["active_params"] = c.active_params();
  j["mtp_params"] = c.mtp_params();
  j["weight_bytes"] = files_bytes;
  j["weight_bytes_by_dtype"] = by_dtype;
  j["decode_weight_bytes_per_token"] = m.decode_weight_bytes_per_token();
  j["kv_cache_bytes_per_token"] = kv_latent;
  j["kv_cache_dtype"] = "F32";
  j["mha_kv_bytes_per_token"] = kv_mha;
  j["kv_cache_reduction"] = double(kv_mha) / double(kv_latent);
  nlohmann::json by_kv;
  for (KvDtype d : {KvDtype::F32, KvDtype::BF16, KvDtype::FP8})
    by_kv[kv_dtype_name(d)] = kv_row_bytes(d, c.kv_lora_rank, c.qk_rope_head_dim) * size_t(L);
  j["kv_cache_bytes_per_token_by_dtype"] = by_kv;
  // Weights in memory per format (qiusuo quantize's defaults: embedding and head kept in BF16;
  // FP8 adds an F32 scale per 128x128 block, INT8/INT4 an F16 scale per group of --group auto's
  // size: the largest of 128, 64, 32 dividing every projection's input width).
  // The MTP modules count: Model::load keeps them (speculative decoding reads them).
  const double all = double(c.total_params() + c.mtp_params()), kept = double(2 * c.vocab_size * c.hidden_size);
  const int64_t widths[] = {c.hidden_size, c.intermediate_size, c.moe_intermediate_size, c.q_lora_rank,
                            c.kv_lora_rank, c.num_attention_heads * c.v_head_dim};
  const int64_t fitting = auto_group_size(widths), group = fitting ? fitting : 32;
  nlohmann::json fmt;
  fmt["bf16"] = 2.0 * all;
  fmt["fp8"] = 2.0 * kept + (all - kept) * (1.0 + 4.0 / (128.0 * 128.0));
  fmt["int8"] = 2.0 * kept + (all - kept) * (1.0 + 2.0 / double(group));
  fmt["int4"] = 2.0 * kept + (all - kept) * (0.5 + 2.0 / double(group));
  j["int_group"] = group;
  j["weight_bytes_by_format"] = fmt;
  j["memory_bytes"] = physical_memory_bytes();
  return j;
}

void run_info(const std::string& dir, bool json_out) {
  // Described, not loaded: info reads the headers, the config and a few small tensors (norms,
  // routers, GPTQ zeros); no weight is copied or repacked.
  auto m = Model::load(dir, true, {nullptr, false, /*mmap=*/true, /*describe=*/true});
  const ModelConfig& c = m->config();
  const auto j = model_info(*m);
  if (json_out) {
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("model        %s (%s)\n", dir.c_str(), c.model_type.c_str());
  std::printf("layers       %lld (%lld dense, %lld MoE) + %lld MTP module(s)\n", (long long)c.num_hidden_layers,
              (long long)(c.num_hidden_layers - j["moe_layers"].get<int64_t>()), (long long)j["moe_layers"].get<int64_t>(),
              (long long)c.num_nextn_predict_layers);
  std::printf("parameters   %s total, %s active per token (embedding row + dense parts + %lld routed experts), MTP %s\n",
              human_count(double(c.total_params())).c_str(), human_count(double(c.active_params())).c_str(),
              (long long)c.num_experts_per_tok, human_count(double(c.mtp_params())).c_str());
  std::string dt;
  for (const auto& [k, v] : j["weight_bytes_by_dtype"].items())
    dt += (dt.empty() ? "" : ", ") + k + " " + human_bytes(double(v.get<size_t>()));
  std::printf("weights      %s on disk (%s)\n", human_bytes(double(j["weight_bytes"].get<size_t>())).c_str(), dt.c_str());
  std::printf("attention    MLA: %lld heads, q_lora_rank %s, kv_lora_rank %lld, qk_nope %lld + rope %lld, v %lld, softmax scale %.6g\n",
              (long long)c.num_attention_heads, c.q_lora_rank ? std::to_string(c.q_lora_rank).c_str() : "none (q_proj)",
              (long long)c.kv_lora_rank, (long long)c.qk_nope_head_dim, (long long)c.qk_rope_head_dim,
              (long long)c.v_head_dim, c.softmax_scale());
  if (c.n_routed_experts > 0) {
    const char* tm = c.topk_method == TopkMethod::NoauxTc ? "noaux_tc"
                     : c.topk_method == TopkMethod::GroupLimitedGreedy ? "group_limited_greedy" : "greedy";
    std::printf("moe          %lld routed experts (width %lld), top-%lld, %s scoring, %s routing (%lld groups, top %lld), %lld shared, scale %.3g%s\n",
                (long long)c.n_routed_experts, (long long)c.moe_intermediate_size, (long long)c.num_experts_per_tok,
                c.scoring_func == ScoringFunc::Sigmoid ? "sigmoid" : "softmax", tm, (long long)c.n_group,
                (long long)c.topk_group, (long long)c.n_shared_experts, c.routed_scaling_factor,
                c.norm_topk_prob ? ", normalized" : "");
  }
  if (c.rope_scaling)
    std::printf("rope         theta %.6g, YaRN factor %.6g over %lld positions (mscale %.3g / %.3g)\n", c.rope_theta,
                c.rope_scaling->factor, (long long)c.rope_scaling->original_max_position_embeddings,
                c.rope_scaling->mscale, c.rope_scaling->mscale_all_dim);
  else
    std::printf("rope         theta %.6g, no scaling\n", c.rope_theta);
  std::printf("kv cache     %s per token (F32 latent %lld + rope key %lld per layer); standard MHA: %s per token (%.1fx more)\n",
              human_bytes(double(j["kv_cache_bytes_per_token"].get<size_t>())).c_str(), (long long)c.kv_lora_rank,
              (long long)c.qk_rope_head_dim, human_bytes(double(j["mha_kv_bytes_per_token"].get<size_t>())).c_str(),
              j["kv_cache_reduction"].get<double>());
  std::printf("kv by type   f32 %s, bf16 %s, fp8 %s per token (generate --kv-cache-dtype)\n",
              human_bytes(double(j["kv_cache_bytes_per_token_by_dtype"]["f32"].get<size_t>())).c_str(),
              human_bytes(double(j["kv_cache_bytes_per_token_by_dtype"]["bf16"].get<size_t>())).c_str(),
              human_bytes(double(j["kv_cache_bytes_per_token_by_dtype"]["fp8"].get<size_t>())).c_str());
  std::printf("decode reads %s of weights per token (batch 1)\n",
              human_bytes(double(j["decode_weight_bytes_per_token"].get<size_t>())).c_str());
  const double mem = double(j["memory_bytes"].get<size_t>());
  std::string fits;
  for (const char* f : {"bf16", "fp8", "int8", "int4"}) {
    const double b = j["weight_bytes_by_format"][f].get<double>();
    fits += std::string(fits.empty() ? "" : ", ") + f + " " + human_bytes(b) + (b < 0.9 * mem ? " (fits)" : " (too big)");
  }
  std::printf("in memory    %s (int groups of %lld); this machine has %s (qiusuo quantize --to fp8|int8|int4)\n",
              fits.c_str(), (long long)j["int_group"].get<int64_t>(), human_bytes(mem).c_str());
}

void run_logits(const std::string& dir, const std::string& ids_arg, const std::string& mode, const std::string& out,
                const std::string& precision, const std::string& attn, KvDtype kv, bool expert_parallel) {
  InferenceModel m("logits", dir, /*with_mtp=*/false, expert_parallel);
  if (m.serving_done()) return;  // a rank that served its experts to rank 0
  const int64_t V = m->config().vocab_size;
  const auto seqs = parse_id_lists(ids_arg, V);
  if (mode != "prefill" && mode != "decode") fail("--mode must be prefill or decode, got '", mode, "'");
  ForwardOptions opt;
  opt.compute = parse_precision(precision);
  if (attn == "absorb") opt.attn = AttnImpl::Absorb;
  else if (attn == "naive") opt.attn = AttnImpl::Naive;
  else if (attn != "auto") fail("--attn must be auto, absorb or naive, got '", attn, "'");
  const int64_t B = int64_t(seqs.size());
  int64_t S = 0, total = 0;
  for (const auto& s : seqs) { S = std::max<int64_t>(S, int64_t(s.size())); total += int64_t(s.size()); }
  std::vector<float> logits(size_t(B * S * V), 0.0f);  // padded positions stay zero
  KVCache cache(m->config(), total + B * 64, B, 64, -1, kv);
  for (int64_t b = 0; b < B; ++b) cache.add_sequence();
  if (mode == "prefill") {
    StepBatch batch;
    std::vector<int64_t> rows;
    for (int64_t b = 0; b < B; ++b) cache.append(batch, b, seqs[size_t(b)].data(), int64_t(seqs[size_t(b)].size()));
    for (int64_t i = 0; i < batch.size(); ++i) rows.push_back(i);
    std::vector<float> flat(size_t(batch.size() * V));
    m->forward(batch, cache.pool(), rows, flat.data(), opt);
    for (int64_t b = 0; b < B; ++b)
      std::copy_n(flat.data() + batch.offsets[size_t(b)] * V, seqs[size_t(b)].size() * size_t(V),
                  logits.data() + b * S * V);
  } else {
    Arena arena;
    for (int64_t p = 0; p < S; ++p) {
      StepBatch batch;
      std::vector<int64_t> who, rows;
      for (int64_t b = 0; b < B; ++b) {
        if (p >= int64_t(seqs[size_t(b)].size())) continue;
        cache.append(batch, b, &seqs[size_t(b)][size_t(p)], 1);
        rows.push_back(int64_t(who.size()));
        who.push_back(b);
      }
      std::vector<float> flat(who.size() * size_t(V));
      m->forward(batch, cache.pool(), rows, flat.data(), opt, arena);
      for (size_t i = 0; i < who.size(); ++i)
        std::copy_n(flat.data() + i * size_t(V), V, logits.data() + (who[i] * S + p) * V);
    }
  }
  SafetensorsWriter w;
  w.set_metadata("mode", mode);
  w.set_metadata("precision", precision);
  w.set_metadata("kv_cache", kv_dtype_name(kv));
  w.add("logits", DType::F32, {B, S, V}, logits.data());
  w.write(out);
  std::fprintf(stderr, "wrote logits [%lld, %lld, %lld] to %s (%s)\n", (long long)B, (long long)S, (long long)V,
               out.c_str(), m.fields().dump().c_str());
}

void run_init(const std::string& config, const std::string& out, const std::string& dtype, int layers, uint64_t seed,
              double shard_gb) {
  nlohmann::json j;
  if (file_exists(config) || is_directory(config)) {
    const std::string p = is_directory(config) ? path_join(config, "config.json") : config;
    try {
      j = nlohmann::json::parse(read_text_file(p));
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorKind::Format, p, ": invalid JSON (", e.what(), ")");
    }
  } else {
    j = preset_config(config);
  }
  if (layers > 0) {
    j["num_hidden_layers"] = layers;
    if (j.contains("first_k_dense_replace") && j["first_k_dense_replace"].is_number_integer() &&
        j["first_k_dense_replace"].get<int>() >= layers)
      j["first_k_dense_replace"] = std::max(0, layers - 1);
  } else if (layers < 0) {
    fail("--layers must be positive");
  }
  ModelConfig cfg = parse_model_config(j, config);
  InitOptions opt;
  if (dtype == "f32") opt.dtype = InitDType::F32;
  else if (dtype == "bf16") opt.dtype = InitDType::BF16;
  else if (dtype == "fp8") opt.dtype = InitDType::FP8;
  else fail("--dtype must be f32, bf16 or fp8, got '", dtype, "'");
  opt.seed = seed;
  opt.verbose = true;
  if (shard_gb > 0) opt.shard_bytes = size_t(shard_gb * 1e9);
  Stopwatch sw;
  const size_t bytes = write_random_checkpoint(cfg, out, opt);
  std::fprintf(stderr, "wrote %s random-weight checkpoint (%s params, %s) to %s in %.1f s\n", dtype.c_str(),
               human_count(double(cfg.total_params() + cfg.mtp_params())).c_str(), human_bytes(double(bytes)).c_str(),
               out.c_str(), sw.elapsed());
}

}  // namespace

void register_model_commands(CLI::App& app) {
  {
    struct Opts { std::string dir; bool json = false; int threads = 0; };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand("info", "Print a checkpoint's architecture, parameter counts, KV-cache size per token and "
                                      "which weight formats fit this machine's memory (reads the headers and a few small "
                                      "tensors; no weight is copied or repacked: a checkpoint larger than the memory is fine)");
    c->add_option("--model,-m", o->dir, "Checkpoint directory (config.json + *.safetensors)")->required();
    c->add_flag("--json", o->json, "Print one JSON object instead of text");
    c->add_option("--threads", o->threads, "Threads (0 = all cores)");
    c->callback([o] { apply_threads(o->threads); run_info(o->dir, o->json); });
  }
  {
    struct Opts { std::string dir, ids, mode = "prefill", out, precision = "f32", attn = "auto", kv = "f32"; int threads = 0; bool ep = false; };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand(
        "logits",
        "Write the float32 logits of every position, for verification against reference outputs.\n"
        "Output: safetensors with tensor `logits` F32 [batch, seq, vocab]; sequences shorter than the\n"
        "longest are padded with zeros after their last token.");
    c->add_option("--model,-m", o->dir, "Checkpoint directory")->required();
    c->add_option("--ids", o->ids, "Token ids: comma-separated, sequences separated by ';' (e.g. 1,2,3;4,5)")->required();
    c->add_option("--mode", o->mode,
                  "prefill: each sequence in one forward step (all sequences batched);\n"
                  "decode: one token per sequence per step through the latent KV cache and the\n"
                  "absorbed-weight decode path")
        ->capture_default_str();
    c->add_option("--out,-o", o->out, "Output .safetensors file")->required();
    c->add_option("--precision", o->precision,
                  "f32 (default): exact float32 math from the stored weights (FP8/BF16 dequantized\n"
                  "to f32); bf16: every matrix product with BF16-rounded activations and F32 accumulation,\n"
                  "as generation runs it (faster; logits within ~1e-2 of the largest, docs/benchmarks.md)")
        ->capture_default_str();
    c->add_option("--attn", o->attn, "Attention form: auto (by cost), absorb or naive")->capture_default_str();
    c->add_option("--kv-cache-dtype", o->kv,
                  "How the latent KV cache stores tokens: f32 (default, exact), bf16 or fp8 (as generate\n"
                  "--kv-cache-dtype; in prefill mode the cache is read back by attention, so it matters there too)")
        ->check(CLI::IsMember({"f32", "bf16", "fp8"}))
        ->capture_default_str();
    c->add_option("--threads", o->threads, "Threads (0 = all cores)");
    c->add_flag("--expert-parallel", o->ep,
                "Under mpirun: each rank maps only its share of the routed experts, rank 0 runs the\n"
                "model and exchanges the MoE rows with the others by all-to-all (docs/dist.md)");
    c->callback([o] {
      apply_threads(o->threads);
      run_logits(o->dir, o->ids, o->mode, o->out, o->precision, o->attn, parse_kv_dtype(o->kv), o->ep);
    });
  }
  {
    struct Opts { std::string config, out, dtype = "bf16"; int layers = 0; uint64_t seed = 0; double shard_gb = 4.0; int threads = 0; };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand(
        "init",
        "Write a random-weight checkpoint in the exact Hugging Face layout of the real models\n"
        "(tensor names, dtypes, FP8 weight_scale_inv blocks, shards + index, config.json)");
    c->add_option("--config,-c", o->config, "config.json file or directory, or a preset: v2-lite, v2, v3, r1")->required();
    c->add_option("--out,-o", o->out, "Output directory")->required();
    c->add_option("--dtype", o->dtype, "f32, bf16 or fp8 (E4M3 projections + 128x128 block scales)")->capture_default_str();
    c->add_option("--layers", o->layers, "Override num_hidden_layers (first_k_dense_replace is kept below it)");
    c->add_option("--seed", o->seed, "Random seed")->capture_default_str();
    c->add_option("--shard-gb", o->shard_gb, "Shard size in GB (several files + index above it)")->capture_default_str();
    c->add_option("--threads", o->threads, "Threads (0 = all cores)");
    c->callback([o] { apply_threads(o->threads); run_init(o->config, o->out, o->dtype, o->layers, o->seed, o->shard_gb); });
  }
}

}  // namespace qs::cli

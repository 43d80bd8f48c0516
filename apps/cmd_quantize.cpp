// qiusuo quantize
#include <cstdio>
#include <cstdlib>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "qiusuo/core/error.h"
#include "qiusuo/quant/quantize.h"

namespace qs::cli {

void register_quantize_command(CLI::App& app) {
  struct Opts {
    QuantizeOptions q;
    std::string to, group = "auto", head_to;
    int threads = 0;
    bool json = false, quiet = false;
  };
  auto o = std::make_shared<Opts>();
  auto* c = app.add_subcommand(
      "quantize",
      "Quantize a checkpoint's projection weights, tensor by tensor with bounded memory:\n"
      "  fp8   DeepSeek-V3's FP8 release layout (E4M3 + weight_scale_inv per 128x128 block)\n"
      "  int8, int4  group-wise symmetric integers in the GPTQ layout (qweight/scales/qzeros/g_idx,\n"
      "        sym, no act-order; round to nearest), run with int8 activations (docs/quantization.md)\n"
      "Embeddings, LM head (unless --quantize-head or --head-to), MoE router and norms stay as they are. The output\n"
      "directory appears complete or not at all (an error or Ctrl-C leaves nothing behind). A GPTQ input given its own\n"
      "format keeps every tensor as it is but the LM head(s) asked for (e.g. --head-to int8 on an int4 file)");
  c->add_option("--model,-m", o->q.model_dir,
                "Checkpoint directory (BF16, F16, F32 or FP8 weights; or GPTQ INT8/INT4 with --to its own format)")
      ->required();
  c->add_option("--to", o->to, "Format: fp8, int8 or int4")->required();
  c->add_option("--out,-o", o->q.out_dir, "Output directory (must not exist)")->required();
  c->add_option("--group", o->group,
                "int8/int4: columns per scale: 32, 64, 128, or auto (the largest of them dividing the width of\n"
                "every quantized tensor; DeepSeek-V2-Lite's dense FFN is 10944 wide, so 64 there)")
      ->capture_default_str();
  c->add_option("--keep", o->q.keep,
                "Tensor-name pattern (* and ?) to leave unquantized, repeatable; e.g.\n"
                "--keep 'model.layers.0.*' --keep '*.self_attn.kv_b_proj.weight'");
  c->add_flag("--quantize-head", o->q.quantize_head,
              "Quantize the LM head too (kept in its own precision by default, as DeepSeek's FP8 release\n"
              "does; llama.cpp's Q4 files store it in 6 bits): fewer bytes per decoded token, measured\n"
              "cost in docs/quantization.md");
  c->add_option("--head-to", o->head_to,
                "Quantize the LM head to this format instead: int8 or int4 in an int8/int4 file (an int4 file\n"
                "with an int8 head is declared in quantization_config.dynamic, as GPTQModel writes), fp8 in an\n"
                "fp8 file");
  c->add_option("--shard-gb", o->q.shard_gb, "Output shard size in GB")->capture_default_str();
  c->add_option("--threads", o->threads, "Threads (0 = all cores)");
  c->add_flag("--json", o->json, "Print one JSON summary instead of progress");
  c->callback([o] {
    apply_threads(o->threads);
    o->q.format = parse_quant_format(o->to);
    if (!o->head_to.empty()) o->q.head_format = parse_quant_format(o->head_to);
    if (o->group == "auto") {
      o->q.group = 0;
    } else {
      char* end = nullptr;
      const long g = std::strtol(o->group.c_str(), &end, 10);
      QS_CHECK(!o->group.empty() && *end == 0 && (g == 32 || g == 64 || g == 128), "quantize: --group '", o->group,
               "' is not supported (32, 64, 128 or auto)");
      o->q.group = g;
    }
    if (!o->json)
      o->q.progress = [](size_t done, size_t total, const std::string& name) {
        std::fprintf(stderr, "\r[%zu/%zu] %-70.70s", done, total, name.c_str());
        if (done == total) std::fprintf(stderr, "\n");
      };
    const QuantizeReport r = quantize_checkpoint(o->q);
    if (o->json) {
      const nlohmann::json j = {{"format", quant_format_name(o->q.format)},
                                {"head_format", r.head_format ? quant_format_name(*r.head_format) : "kept"},
                                {"group", r.group},
                                {"input_quantized", r.input_quantized},
                                {"tensors", r.tensors}, {"quantized", r.quantized}, {"kept", r.kept},
                                {"input_bytes", r.input_bytes}, {"output_bytes", r.output_bytes},
                                {"seconds", r.seconds}, {"peak_rss_mb", r.peak_rss_mb}, {"out", o->q.out_dir}};
      std::printf("%s\n", j.dump().c_str());
      return;
    }
    std::string fmt = o->q.format == QuantFormat::Fp8
                          ? std::string("fp8")
                          : std::string(quant_format_name(o->q.format)) + " g" + std::to_string(r.group);
    std::string what;
    if (r.input_quantized) {  // only heads were quantized; the rest is the input's
      if (r.head_format)
        what = std::string(" (LM head") + (r.quantized > 1 ? "s" : "") + " to " + quant_format_name(*r.head_format) + ")";
      what += "; " + std::to_string(r.kept) + " kept as the " + fmt + " input holds them";
    } else {
      if (r.head_format && *r.head_format != o->q.format) fmt += std::string(", head ") + quant_format_name(*r.head_format);
      what = " to " + fmt + " (" + std::to_string(r.kept) + " kept)";
    }
    std::printf("quantized %zu of %zu tensors%s: %s -> %s in %.1f s, peak RSS %.0f MB; wrote %s\n", r.quantized,
                r.tensors, what.c_str(), human_bytes(r.input_bytes).c_str(), human_bytes(r.output_bytes).c_str(),
                r.seconds, r.peak_rss_mb, o->q.out_dir.c_str());
  });
}

}  // namespace qs::cli

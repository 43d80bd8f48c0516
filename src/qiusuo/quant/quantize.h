// Checkpoint quantization (`qiusuo quantize`): a Hugging Face DeepSeek checkpoint directory
// (BF16 / F16 / F32, or FP8 with block scales) to
//   fp8   the official DeepSeek-V3 FP8 layout: each projection `X.weight` as F8_E4M3 plus
//         `X.weight_scale_inv` F32 per 128x128 block, config.json's quantization_config
//         {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
//          "weight_block_size": [128, 128]} (as DeepSeek-V3's release; the official
//         inference/model.py and vLLM load it);
//   int8 / int4  GPTQ (kernels/int_weights.h): `X.qweight`, `X.scales`, `X.qzeros`, `X.g_idx`,
//         quantization_config {"quant_method": "gptq", "bits": 8|4, "group_size": G,
//         "sym": true, "desc_act": false, "checkpoint_format": "gptq"}; round to nearest
//         (quant/formats.h), so a GPTQ-format checkpoint without GPTQ's error correction.
// The projections (attention, MLP and expert matrices: the tensors model/weights.h marks
// quantizable) are converted; embeddings, the LM head(s), the MoE router, norms and biases
// stay as they are, and so does every tensor matching a --keep pattern (an FP8 input kept
// becomes BF16). Other files (tokenizer, generation config) are copied.
// The LM head(s) may be quantized too (head_format): in the main format, or with an INT4 file
// in INT8 (llama.cpp's Q4 files keep their head in 6 bits for the same reason: the head is a
// large share of a decoded token's bytes, and its errors reach every logit). A head whose bits
// differ from the file's is declared in quantization_config's "dynamic" overrides
// ({"+:^lm_head$": {"bits": 8}}, the GPTQModel convention vLLM and SGLang read), and a
// quantized head sets "lm_head": true.
// A GPTQ input (already INT8/INT4) can be given the same format: its tensors pass through as
// they are, integer or wide (what it left unquantized it chose to), except the LM head(s) asked
// for (e.g. an INT8 head added to a downloaded INT4 checkpoint); re-quantizing integer weights
// to another format or group is an error (start from the BF16 or FP8 checkpoint).
//
// Memory: one tensor at a time — its input pages are released after use (madvise), its output
// written before the next is read — so the peak is about the largest tensor's input and output,
// never the model. Output: everything is written into "<out>.tmp-<pid>" beside OUT and renamed
// to OUT at the end; OUT must not exist. An error or an interruption (SIGINT / SIGTERM between
// tensors) removes the temporary directory: OUT is either complete or absent.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace qs {

enum class QuantFormat { Fp8, Int8, Int4 };
// "fp8", "int8", "int4" (qs::Error naming the alternatives otherwise).
QuantFormat parse_quant_format(const std::string& s);
const char* quant_format_name(QuantFormat f);

struct QuantizeOptions {
  std::string model_dir, out_dir;
  QuantFormat format = QuantFormat::Fp8;
  int64_t group = 0;                  // int8 / int4: columns per scale (32, 64 or 128); 0 = auto:
                                      // the largest dividing every quantized width
  std::vector<std::string> keep;      // glob patterns (* and ?) of tensor names to leave as they are
  bool quantize_head = false;         // the LM head too (kept in its own precision by default),
                                      // in `format`
  std::optional<QuantFormat> head_format;  // the LM head in this format (implies quantize_head):
                                           // fp8 with fp8; int8 or int4 with int8 / int4
  double shard_gb = 4.0;              // output shard size
  // Called after each tensor: (tensors done, tensors total, name).
  std::function<void(size_t, size_t, const std::string&)> progress;
};

struct QuantizeReport {
  size_t tensors = 0, quantized = 0, kept = 0;
  double input_bytes = 0, output_bytes = 0, seconds = 0;
  double peak_rss_mb = 0;
  int64_t group = 0;  // int8 / int4: the group size used (128 for fp8: its blocks)
  std::optional<QuantFormat> head_format;  // the LM head(s)' format when quantized (none: kept)
  bool input_quantized = false;  // the input was GPTQ in the output's format: its tensors passed
                                 // through (counted in `kept`) but the LM heads asked for
};

QuantizeReport quantize_checkpoint(const QuantizeOptions& opt);

// --group auto's choice: the largest of 128, 64 and 32 that divides every width (the input
// widths of the tensors to quantize); 0 when none does.
int64_t auto_group_size(std::span<const int64_t> widths);

// Glob match of `name` against `pattern` (* any run, ? one character).
bool glob_match(const std::string& pattern, const std::string& name);

}  // namespace qs

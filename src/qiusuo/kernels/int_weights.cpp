// int_weights_from_gptq (see int_weights.h).
#include "qiusuo/kernels/int_weights.h"

#include <algorithm>
#include <cstring>

#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"

namespace qs {

namespace {
// The packed zeros (symmetric: every one z - 1, "gptq", or z, "gptq_v2") and g_idx (c / G).
void check_gptq_values(const std::string& name, const GptqTensors& t, const WeightMatrix& W) {
  const bool four = W.dtype == DType::I4;
  const uint32_t z = four ? 8 : 128;
  const uint32_t v1 = four ? 0x77777777u : 0x7F7F7F7Fu, v2 = four ? 0x88888888u : 0x80808080u;
  const auto* zw = t.qzeros->as<uint32_t>();
  const int64_t nz = t.qzeros->numel();
  QS_CHECK(nz > 0 && (zw[0] == v1 || zw[0] == v2), "GPTQ weight '", name,
           ".qzeros': zero points are not the symmetric ", z, " (asymmetric GPTQ weights are not supported)");
  for (int64_t i = 1; i < nz; ++i)
    QS_CHECK(zw[i] == zw[0], "GPTQ weight '", name, ".qzeros': zero points differ (asymmetric GPTQ weights are not supported)");
  if (t.g_idx) {
    const auto* g = t.g_idx->as<int32_t>();
    for (int64_t c = 0; c < W.cols; ++c)
      QS_CHECK(g[c] == c / W.group, "GPTQ weight '", name, ".g_idx': column ", c, " is in group ", g[c],
               ", not ", c / W.group, " (act-order / desc_act GPTQ weights are not supported)");
  }
}

// `alloc(bytes)`: 64-byte aligned memory for the repacked words and scales, untouched so far.
template <typename Alloc>
WeightMatrix repack_gptq(const std::string& name, const GptqTensors& t, int64_t rows, int64_t cols, Alloc&& alloc) {
  WeightMatrix W = gptq_described(name, t, rows, cols);
  const int64_t per = W.dtype == DType::I8 ? 4 : 8, ngroups = cols / W.group;
  const int64_t tiles = W.int_tiles(), T = WeightMatrix::kIntTile, words = cols / per;
  const size_t data_words = size_t(tiles * T * words), scale_halves = size_t(tiles * T * ngroups);
  auto* data = static_cast<uint32_t*>(alloc(data_words * 4 + scale_halves * 2));
  auto* scales = reinterpret_cast<uint16_t*>(data + data_words);
  const auto* src = t.qweight->as<uint32_t>();
  const auto* ssrc = t.scales->as<uint16_t>();
  const uint32_t zero_word = W.dtype == DType::I4 ? 0x88888888u : 0x80808080u;  // value 0 in padded rows
  // A tile's word w is the 16 consecutive words src[w * rows + 16 tt ...] (one 64-byte line), its
  // group g's scales 16 consecutive halves: each is one copy. The tiles are split among the
  // threads, and so is the first touch of the fresh pages, which the kernel zeroes at the fault
  // (a full-depth V2-Lite INT4 load spent ~30% of its time there).
  parallel_for(tiles, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t tt = t0; tt < t1; ++tt) {
      const int64_t n0 = tt * T, nv = std::min<int64_t>(T, rows - n0);  // rows of this tile
      for (int64_t w = 0; w < words; ++w) {
        uint32_t* d = data + (tt * words + w) * T;
        std::memcpy(d, src + w * rows + n0, size_t(nv) * 4);
        std::fill(d + nv, d + T, zero_word);
      }
      for (int64_t g = 0; g < ngroups; ++g) {
        uint16_t* d = scales + (tt * ngroups + g) * T;
        std::memcpy(d, ssrc + g * rows + n0, size_t(nv) * 2);
        std::fill(d + nv, d + T, uint16_t(0));
      }
    }
  });
  // "gptq_v2" stores u with zero z, as the kernels read it; "gptq" stores the same u (only the
  // zeros are written minus one), so the words are used as they are in both.
  W.data = data;
  W.group_scales = scales;
  return W;
}

}  // namespace

WeightMatrix gptq_layout(const std::string& name, const GptqTensors& t, int64_t rows, int64_t cols) {
  QS_CHECK(t.qweight && t.scales && t.qzeros, "GPTQ weight '", name, "': needs .qweight, .scales and .qzeros");
  const TensorView &qw = *t.qweight, &sc = *t.scales, &qz = *t.qzeros;
  QS_CHECK(qw.dtype == DType::I32 && qw.shape.size() == 2 && qw.shape[1] == rows && qw.shape[0] > 0 &&
               cols % qw.shape[0] == 0,
           "GPTQ weight '", name, ".qweight': want I32 [in / (32 / bits), ", rows, "] for in = ", cols, ", got ",
           dtype_name(qw.dtype), " ", shape_str(qw.shape));
  const int64_t per = cols / qw.shape[0];
  QS_CHECK(per == 8 || per == 4, "GPTQ weight '", name, ".qweight': ", per,
           " values per word (", 32 / per, " bits); only 4 and 8 bits are supported");
  QS_CHECK(sc.dtype == DType::F16 && sc.shape.size() == 2 && sc.shape[1] == rows && sc.shape[0] > 0 &&
               cols % sc.shape[0] == 0,
           "GPTQ weight '", name, ".scales': want F16 [in / group, ", rows, "], got ", dtype_name(sc.dtype), " ",
           shape_str(sc.shape));
  const int64_t ngroups = sc.shape[0], group = cols / ngroups;
  QS_CHECK(group % 32 == 0, "GPTQ weight '", name, "': group size ", group,
           " is not a multiple of 32 (32, 64, 128 or the whole row are supported)");
  QS_CHECK(qz.dtype == DType::I32 && qz.shape.size() == 2 && qz.shape[0] == ngroups && rows % per == 0 &&
               qz.shape[1] == rows / per,
           "GPTQ weight '", name, ".qzeros': want I32 [", ngroups, ", ", rows, " / ", per, "], got ",
           dtype_name(qz.dtype), " ", shape_str(qz.shape));
  QS_CHECK(!t.g_idx || (t.g_idx->dtype == DType::I32 && t.g_idx->numel() == cols), "GPTQ weight '", name,
           ".g_idx': want I32 [", cols, "]");
  WeightMatrix W;
  W.dtype = per == 4 ? DType::I8 : DType::I4;
  W.rows = rows;
  W.cols = cols;
  W.group = group;
  return W;
}

WeightMatrix gptq_described(const std::string& name, const GptqTensors& t, int64_t rows, int64_t cols) {
  WeightMatrix W = gptq_layout(name, t, rows, cols);
  check_gptq_values(name, t, W);
  return W;
}

WeightMatrix int_weights_from_gptq(const std::string& name, const GptqTensors& t, int64_t rows, int64_t cols,
                                   Buffer<float>& storage) {
  return repack_gptq(name, t, rows, cols, [&](size_t bytes) {
    storage.resize((bytes + 3) / 4, false);
    advise_huge_pages(storage.data(), bytes);  // before the first touch
    return static_cast<void*>(storage.data());
  });
}

WeightMatrix int_weights_from_gptq(const std::string& name, const GptqTensors& t, int64_t rows, int64_t cols,
                                   HugePageArena& storage) {
  return repack_gptq(name, t, rows, cols, [&](size_t bytes) { return storage.alloc(bytes); });
}

}  // namespace qs

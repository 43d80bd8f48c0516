// Weight quantizers (see formats.h).
#include "qiusuo/quant/formats.h"

#include <algorithm>
#include <cmath>

#include "qiusuo/core/dtype.h"
#include "qiusuo/core/error.h"

namespace qs {

void check_gptq_shape(const std::string& name, int64_t rows, int64_t cols, int bits, int64_t group) {
  QS_CHECK(bits == 4 || bits == 8, "quantize: ", bits, " bits is not supported (4 or 8)");
  QS_CHECK(group > 0 && group % 32 == 0, "quantize: group size ", group, " is not a multiple of 32 (32, 64 or 128)");
  QS_CHECK(cols % group == 0, "quantize: tensor '", name, "' [", rows, ", ", cols, "]: the group size ", group,
           " does not divide its width ", cols, " (choose another --group, or --keep it)");
  const int64_t per = 32 / bits;
  QS_CHECK(rows % per == 0, "quantize: tensor '", name, "' [", rows, ", ", cols, "]: GPTQ packs the zero points of ",
           per, " outputs per word, and ", rows, " outputs are not a multiple of ", per, " (--keep it)");
}

void init_gptq_output(int64_t rows, int64_t cols, int bits, int64_t group, GptqOutput* out) {
  const int64_t per = 32 / bits, ngroups = cols / group;
  out->qweight.assign(size_t(cols / per * rows), 0);
  out->scales.assign(size_t(ngroups * rows), 0);
  out->qzeros.assign(size_t(ngroups * (rows / per)), bits == 4 ? 0x77777777u : 0x7F7F7F7Fu);
  out->g_idx.resize(size_t(cols));
  for (int64_t c = 0; c < cols; ++c) out->g_idx[size_t(c)] = int32_t(c / group);
}

void quantize_gptq_rows(const float* w, int64_t r0, int64_t r1, int64_t rows, int64_t cols, int bits, int64_t group,
                        GptqOutput* out) {
  const int64_t per = 32 / bits, ngroups = cols / group;
  const int qmax = bits == 4 ? 7 : 127, z = bits == 4 ? 8 : 128;
  for (int64_t n = r0; n < r1; ++n) {
    const float* row = w + (n - r0) * cols;
    for (int64_t g = 0; g < ngroups; ++g) {
      float amax = 0;
      for (int64_t c = g * group; c < (g + 1) * group; ++c) amax = std::max(amax, std::fabs(row[c]));
      const uint16_t s16 = f32_to_f16(std::min(amax / float(qmax), 65504.0f));
      const float s = f16_to_f32(s16);
      out->scales[size_t(g * rows + n)] = s16;
      for (int64_t c = g * group; c < (g + 1) * group; ++c) {
        const float q = s > 0 ? std::clamp(std::nearbyint(row[c] / s), float(-qmax), float(qmax)) : 0.0f;
        const uint32_t u = uint32_t(int32_t(q) + z);
        out->qweight[size_t((c / per) * rows + n)] |= u << (bits * (c % per));
      }
    }
  }
}

}  // namespace qs

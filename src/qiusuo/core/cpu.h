// What the CPU can do, read once from CPUID (and XCR0 for OS support of the wide registers).
// QIUSUO_ISA=scalar|avx2|avx512 in the environment caps what the kernels use (for tests and
// for measuring the fallbacks); avx2-novnni caps at AVX2 and hides AVX-VNNI too (Zen 2/3, Intel
// cores before Alder Lake).
#pragma once
#include <string>

namespace qs {

enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false, avxvnni = false;  // avxvnni: the VEX (ymm) form
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512bf16 = false, avx512fp16 = false, avx512vnni = false, avx512vbmi = false;
  bool amx_tile = false, amx_bf16 = false, amx_int8 = false;
  std::string brand;
};

const CpuFeatures& cpu_features();
Isa best_isa();            // highest ISA the CPU supports, the build includes and QIUSUO_ISA allows
const char* isa_name(Isa);
std::string cpu_summary();  // "Intel Xeon ... (avx512, amx-bf16)"

}  // namespace qs

#include "qiusuo/core/cpu.h"

#include <cpuid.h>

#include <cstdlib>
#include <cstring>
#include <string_view>

namespace qs {
namespace {
uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

// QIUSUO_ISA (cpu.h), "" when unset.
std::string_view isa_env() {
  const char* env = std::getenv("QIUSUO_ISA");
  return env ? env : "";
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool ymm_ok = (xcr0 & 0x6) == 0x6, zmm_ok = (xcr0 & 0xe6) == 0xe6;
  const bool amx_ok = (xcr0 & 0x60000) == 0x60000;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    f.avx2 = ymm_ok && (b & (1u << 5));
    f.avx512f = zmm_ok && (b & (1u << 16));
    f.avx512dq = zmm_ok && (b & (1u << 17));
    f.avx512bw = zmm_ok && (b & (1u << 30));
    f.avx512vl = zmm_ok && (b & (1u << 31));
    f.avx512vnni = zmm_ok && (c & (1u << 11));
    f.avx512vbmi = zmm_ok && (c & (1u << 1));
    f.avx512fp16 = zmm_ok && (d & (1u << 23));
    f.amx_bf16 = amx_ok && (d & (1u << 22));
    f.amx_tile = amx_ok && (d & (1u << 24));
    f.amx_int8 = amx_ok && (d & (1u << 25));
    unsigned a1, b1, c1, d1;
    if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) {
      f.avx512bf16 = zmm_ok && (a1 & (1u << 5));
      f.avxvnni = ymm_ok && (a1 & (1u << 4));
    }
  }
  if (isa_env() == "avx2-novnni") f.avxvnni = false;
  f.fma = f.fma && ymm_ok;
  f.f16c = f.f16c && ymm_ok;
  char brand[49] = {0};
  unsigned* p = reinterpret_cast<unsigned*>(brand);
  if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
    for (unsigned i = 0; i < 3; ++i) __get_cpuid(0x80000002 + i, p + 4 * i, p + 4 * i + 1, p + 4 * i + 2, p + 4 * i + 3);
  }
  f.brand = brand;
  while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
  while (!f.brand.empty() && f.brand.front() == ' ') f.brand.erase(f.brand.begin());
  return f;
}
}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

Isa best_isa() {
  static const Isa isa = [] {
    Isa best = Isa::Scalar;
#ifdef QIUSUO_SIMD
    const auto& f = cpu_features();
    if (f.avx2 && f.fma && f.f16c) best = Isa::Avx2;
    if (best == Isa::Avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq) best = Isa::Avx512;
#endif
    if (const std::string_view e = isa_env(); !e.empty()) {
      Isa cap = e == "scalar" ? Isa::Scalar : e == "avx2" || e == "avx2-novnni" ? Isa::Avx2 : Isa::Avx512;
      if (int(cap) < int(best)) best = cap;
    }
    return best;
  }();
  return isa;
}

const char* isa_name(Isa i) {
  switch (i) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

std::string cpu_summary() {
  const auto& f = cpu_features();
  std::string s = f.brand.empty() ? "unknown CPU" : f.brand;
  s += " (kernels: ";
  s += isa_name(best_isa());
  if (best_isa() == Isa::Avx2 && f.avxvnni) s += ", avx-vnni";
  if (best_isa() == Isa::Avx512) {  // the extensions the kernels use (not under QIUSUO_ISA=avx2)
    if (f.avx512bf16) s += ", avx512-bf16";
    if (f.avx512vbmi) s += ", avx512-vbmi";
    if (f.avx512fp16) s += ", avx512-fp16";
    if (f.amx_bf16) s += ", amx-bf16";
  }
  s += ")";
  return s;
}

}  // namespace qs

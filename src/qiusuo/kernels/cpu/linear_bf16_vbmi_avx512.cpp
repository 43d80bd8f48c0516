// linear_bf16_avx512.cpp for CPUs with AVX512_VBMI (Zen 4/5, Ice Lake and later; not Cooper
// Lake): FP8 codes widened by byte-table lookups. Same bits (tests/kernels/linear_bf16_test.cpp).
#define QS_FP8_VBMI 1
#include "linear_bf16_avx512.cpp"

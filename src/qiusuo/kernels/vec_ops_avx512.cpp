// GCC 12 warns about the deliberately undefined vectors inside its own AVX-512 intrinsics
// (_mm512_undefined_*, GCC PR105593); the warnings point into immintrin.h, not at this code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define QS_VEC_NS avx512
#include "qiusuo/kernels/vec_ops_impl.inc"

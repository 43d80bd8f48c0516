#define QS_VEC_NS avx512
#include "qiusuo/kernels/vec_ops_impl.inc"

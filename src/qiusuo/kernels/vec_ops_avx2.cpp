#define QS_VEC_NS avx2
#include "qiusuo/kernels/vec_ops_impl.inc"

#define QS_TRAIN_VEC_NS train_avx512
#include "qiusuo/kernels/train_vec_impl.inc"

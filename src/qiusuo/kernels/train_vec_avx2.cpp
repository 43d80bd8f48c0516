#define QS_TRAIN_VEC_NS train_avx2
#include "qiusuo/kernels/train_vec_impl.inc"

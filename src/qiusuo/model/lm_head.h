// The ends of the model for training: token embedding (forward = row gather, backward = row
// scatter-add) and final RMSNorm + LM head + the per-position objective, fused so that the
// [N, vocab] logits are never held for more than a chunk of rows, and only for the rows that
// have a target.
//
// Per position t with a target y_t (targets < 0 are not counted), logits z = head·RMSNorm(h_t),
// log p = log_softmax(z), and the position's objective by kind:
//   CrossEntropy  w_t · CE_t = −w_t · log p(y_t)
//   LogProbCoef   c_t · log p(y_t)                      (caller-given ∂objective/∂log p)
//   Distill       w_t · KL(q_t ‖ p̃_t) over a set S_t of token ids (a teacher's top-K, or the
//                 whole vocabulary): q_t = softmax over S_t of the teacher's log-probabilities,
//                 p̃_t = softmax over S_t of the student's log-probabilities (= of z restricted
//                 to S_t). KL = Σ_{i∈S, q_i>0} q_i (log q_i − log p̃_i); ∂KL/∂z_i = p̃_i − q_i on
//                 S_t, 0 elsewhere. With S_t = the vocabulary it is the plain KL(q ‖ p).
// In float the row's log-sum-exp is F32 (vectorized exp) and everything after it — log p of
// the target, the top-K log-probabilities, the distillation terms — is computed in double from
// the F32 logits, by one function for the student and the teacher side: a teacher that is the
// student (its own log-probabilities fed back) gives exactly zero loss and gradient.
#pragma once
#include <cstdint>

#include "qiusuo/model/train_ops.h"

namespace qs {

// h[t] = E[tokens[t]]  (E [V, d])
template <typename T>
void embed_forward(const T* E, int64_t d, const int32_t* tokens, int64_t N, T* h);
// dE[tokens[t]] += dh[t]  (serial in token order: deterministic)
template <typename T>
void embed_backward(const int32_t* tokens, int64_t N, int64_t d, const T* dh, T* dE);

enum class HeadObjective { CrossEntropy, LogProbCoef, Distill };

// A teacher's next-token distribution per position (HeadObjective::Distill).
struct HeadTeacher {
  int64_t k = 0;                     // entries per position; 0 = the whole vocabulary
  const int32_t* ids = nullptr;      // [N, k] distinct token ids per position (k > 0)
  const double* logprobs = nullptr;  // [N, k] (k > 0) or [N, V] (k = 0) teacher log-probabilities
};

struct HeadRequest {
  const int32_t* targets = nullptr;  // [N] next-token ids; < 0: position not counted
  const double* weights = nullptr;   // [N] w_t (nullptr: 1)
  HeadObjective objective = HeadObjective::CrossEntropy;
  const double* coef = nullptr;      // [N] c_t (LogProbCoef)
  HeadTeacher teacher;               // (Distill)
  double scale = 1.0;                // the backward adds the gradient of scale·objective
  // Optional outputs over the counted positions (others are left untouched):
  double* logprobs = nullptr;        // [N] log p(y_t)
  double* entropy = nullptr;         // [N] −Σ_v p_v log p_v
  int64_t top_k = 0;                 // [N, top_k] most likely ids (descending, ties by lower id)
  int32_t* top_ids = nullptr;        //   and their log-probabilities
  double* top_logprobs = nullptr;
};

struct HeadLoss {
  double objective = 0;   // Σ over counted positions of the objective above
  double ce = 0;          // Σ w_t · CE_t (every kind: the weighted next-token cross-entropy)
  double weight_sum = 0;  // Σ w_t
  int64_t count = 0;      // counted positions
};

// Scratch of the head over chunks of up to `rows` counted rows (reusable by every head call of
// a step).
template <typename T>
struct HeadScratch {
  int64_t rows = 0;
  T *hx = nullptr, *hn = nullptr, *dhn = nullptr, *dhx = nullptr;  // [rows, d]
  T* rstd = nullptr;                                                // [rows]
  T* logits = nullptr;                                              // [rows, V]
};
// The arena buffers of the head scratch for N rows, and their allocation.
void head_train_plan(int64_t N, int64_t d, int64_t V, ArenaPlan& plan);
template <typename T>
HeadScratch<T> head_alloc_scratch(TrainArena<T>& arena, int64_t N, int64_t d, int64_t V);

// Forward of the counted rows; with dh != nullptr also the backward of scale·objective:
// dh += ∂/∂h, dnorm += ∂/∂norm_w, dhead += ∂/∂head.
template <typename T>
HeadLoss head_forward_backward(const T* h, int64_t N, int64_t d, const T* norm_w, T eps, const T* head, int64_t V,
                               const HeadRequest& req, T* dh, T* dnorm, T* dhead, const HeadScratch<T>& scratch,
                               const MatmulPolicy& pol);

}  // namespace qs

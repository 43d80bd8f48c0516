// What runs in the next step. Every step has a token budget (max_step_tokens) shared by
// decode tokens and prompt chunks (chunked prefill, mixed with decode):
//   1. running sequences, oldest first: a decoding sequence takes 1 token, one still in its
//      prompt takes a chunk of what is left of the budget. Blocks are allocated as sequences
//      grow; when the pool has no block left for one, the newest running sequence is
//      preempted (its blocks released, back to the front of the waiting queue) until there is
//      — preemption by recompute: its tokens and sampler state are kept, so it later continues
//      with exactly the tokens it would have produced (the model is batch-invariant, mla.h),
//      usually finding its own published blocks still in the prefix cache.
//   2. then waiting sequences, first come first served, while the budget, max_seqs and the
//      pool allow: each first takes what the prefix cache holds of its tokens.
// Not thread-safe: the engine's step owns it.
#pragma once
#include <cstdint>
#include <deque>
#include <vector>

#include "qiusuo/infer/block_manager.h"
#include "qiusuo/infer/sequence.h"

namespace qs {

struct SchedulerOptions {
  int64_t max_seqs = 64;          // sequences running at once
  int64_t max_step_tokens = 512;  // tokens computed per step (decode + prefill chunks)
  // Speculative decoding keeps MTP latents (which depend on the next token): a prefix taken
  // from the cache recomputes its last position.
  bool mtp = false;
};

struct StepWork {
  Sequence* seq = nullptr;
  int64_t n = 0;  // compute tokens [seq->n_computed, seq->n_computed + n)
};

struct Schedule {
  std::vector<StepWork> work;
  std::vector<Sequence*> preempted;  // this step (they are waiting again)
  int64_t tokens = 0;
};

class Scheduler {
 public:
  Scheduler(BlockManager& blocks, SchedulerOptions opt);

  const SchedulerOptions& options() const { return opt_; }
  void add(Sequence* s);        // to the back of the waiting queue
  void add_front(Sequence* s);  // to the front (forked siblings)
  Schedule schedule();
  // Removes a sequence (finished or cancelled) from the queues and releases its blocks.
  void remove(Sequence* s);
  bool empty() const { return waiting_.empty() && running_.empty(); }
  size_t num_waiting() const { return waiting_.size(); }
  size_t num_running() const { return running_.size(); }
  int64_t preemptions() const { return preemptions_; }

 private:
  void preempt(Sequence* s);
  // Prefix-cache lookup for a sequence without blocks; returns tokens found.
  int64_t take_prefix(Sequence& s);

  BlockManager& bm_;
  SchedulerOptions opt_;
  std::deque<Sequence*> waiting_;
  std::vector<Sequence*> running_;  // oldest first
  int64_t preemptions_ = 0;
};

}  // namespace qs

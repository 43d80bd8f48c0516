#include "qiusuo/infer/scheduler.h"

#include <algorithm>

#include "qiusuo/core/error.h"

namespace qs {

Scheduler::Scheduler(BlockManager& blocks, SchedulerOptions opt) : bm_(blocks), opt_(opt) {
  QS_CHECK(opt.max_seqs > 0 && opt.max_step_tokens > 0, "scheduler: max_seqs and max_step_tokens must be positive");
}

void Scheduler::add(Sequence* s) {
  s->status = SeqStatus::Waiting;
  waiting_.push_back(s);
}

void Scheduler::add_front(Sequence* s) {
  s->status = SeqStatus::Waiting;
  waiting_.push_front(s);
}

void Scheduler::remove(Sequence* s) {
  running_.erase(std::remove(running_.begin(), running_.end(), s), running_.end());
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), s), waiting_.end());
  bm_.release(s->blocks, s->hashes);
  s->status = SeqStatus::Finished;
}

void Scheduler::preempt(Sequence* s) {
  running_.erase(std::remove(running_.begin(), running_.end(), s), running_.end());
  bm_.release(s->blocks, s->hashes);
  s->n_computed = 0;
  s->mtp_computed = 0;
  s->draft = -1;
  s->preemptions++;
  preemptions_++;
  add_front(s);
}

int64_t Scheduler::take_prefix(Sequence& s) {
  // Scoring needs the logits of every position from n_prompt - 1 on, so those are computed;
  // generation needs at least its last token computed (for the next token's logits): a fully
  // cached sequence recomputes its last token into a private copy of the last block.
  const int64_t limit = s.score ? std::max<int64_t>(0, s.n_prompt - 1) : s.n_tokens();
  const int64_t hit = bm_.acquire_prefix(s.tokens, limit, s.blocks, s.hashes);
  s.n_computed = std::min(hit, s.n_tokens() - 1);
  if (s.n_computed < hit) s.hashes.resize(size_t(s.n_computed / bm_.block_size()));
  // MTP latents depend on the token after their position: the last cached position's were
  // computed for whatever followed it in the sequence that published the block.
  s.mtp_computed = std::max<int64_t>(0, std::min(hit - 1, s.n_computed));
  if (opt_.mtp) s.n_computed = s.mtp_computed;
  return hit;
}

Schedule Scheduler::schedule() {
  Schedule out;
  int64_t budget = opt_.max_step_tokens;
  // 1. Running sequences, oldest first.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Sequence* s = running_[i];
    const int64_t n = std::min(s->todo(), budget);
    QS_ASSERT(n > 0);
    bool self_preempted = false;
    while (!bm_.prepare_write(s->blocks, s->n_computed, s->n_computed + n)) {
      Sequence* victim = running_.back();
      out.preempted.push_back(victim);
      preempt(victim);
      if (victim == s) {
        self_preempted = true;
        break;
      }
    }
    if (self_preempted) break;  // s was the newest: nothing after it
    out.work.push_back({s, n});
    budget -= n;
    ++i;
  }
  // 2. Waiting sequences, unless this step had to preempt (the pool is full).
  while (out.preempted.empty() && budget > 0 && !waiting_.empty() &&
         int64_t(running_.size()) < opt_.max_seqs) {
    Sequence* s = waiting_.front();
    const bool fresh = s->blocks.empty();
    const int64_t hit = fresh ? take_prefix(*s) : 0;
    const int64_t n = std::min(s->todo(), budget);
    bool ok = bm_.prepare_write(s->blocks, s->n_computed, s->n_computed + n);
    if (!ok && running_.empty() && out.work.empty()) {
      // Nothing runs, yet no room: waiting sequences that hold blocks (forked siblings) give
      // them back, so that waiters can never hold the pool.
      for (Sequence* w : waiting_)
        if (w != s) {
          bm_.release(w->blocks, w->hashes);
          w->n_computed = w->mtp_computed = 0;
          w->draft = -1;
        }
      ok = bm_.prepare_write(s->blocks, s->n_computed, s->n_computed + n);
      QS_CHECK(ok, "scheduler: sequence ", s->id, " needs ", bm_.blocks_for(s->n_computed + n),
               " blocks, the pool has ", bm_.num_blocks(), " (", bm_.num_free(), " free)");
    }
    if (!ok) {
      if (fresh) {  // give the prefix back until it is admitted
        bm_.release(s->blocks, s->hashes);
        s->n_computed = s->mtp_computed = 0;
      }
      break;
    }
    if (s->cached_tokens < 0) s->cached_tokens = hit;
    waiting_.pop_front();
    s->status = SeqStatus::Running;
    running_.push_back(s);
    out.work.push_back({s, n});
    budget -= n;
  }
  out.tokens = opt_.max_step_tokens - budget;
  return out;
}

}  // namespace qs

#include "qiusuo/infer/engine.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "qiusuo/core/error.h"
#include "qiusuo/io/safetensors.h"
#include "qiusuo/model/config.h"
#include "qiusuo/model/weights.h"

namespace qs {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
    default: return "none";
  }
}

SpeculativeMode speculative_mode_of(const std::string& name) {
  if (name == "none") return SpeculativeMode::None;
  if (name == "mtp") return SpeculativeMode::Mtp;
  if (name == "auto") return SpeculativeMode::Auto;
  fail(ErrorKind::Invalid, "--speculative must be none, mtp or auto, got '", name, "'");
}

SpeculationChoice choose_speculation(const std::string& model_dir) {
  const ModelConfig cfg = load_model_config(model_dir);
  SpeculationChoice c;
  if (cfg.num_nextn_predict_layers == 0) {
    c.why = "the model has no MTP module";
    return c;
  }
  const TensorStore store = TensorStore::open_dir(model_dir);
  const DecodeReadBytes b = checkpoint_decode_bytes(cfg, store);
  if (b.mtp == 0) {
    c.why = "the checkpoint has no MTP weights";
    return c;
  }
  const double k_of_e = cfg.n_routed_experts > 0 ? double(cfg.num_experts_per_tok) / double(cfg.n_routed_experts) : 0;
  const double b2 = b.main + b.routed * (1 - k_of_e);
  c.speedup = (1 + kExpectedAcceptance) * b.main / (b2 + b.mtp);
  c.on = c.speedup >= kMinSpeedup;
  char line[256], off[48] = "";
  if (!c.on) std::snprintf(off, sizeof off, ": below %.1fx, off", kMinSpeedup);
  std::snprintf(line, sizeof line,
                "expected batch-1 speed-up %.2fx at %.0f%% acceptance (a step reads %.0f MB plain, %.0f MB "
                "speculative, %.0f of them the MTP module's)%s",
                c.speedup, 100 * kExpectedAcceptance, b.main / 1e6, (b2 + b.mtp) / 1e6, b.mtp / 1e6, off);
  c.why = line;
  return c;
}

SpeculationChoice resolve_speculation(SpeculativeMode mode, const std::string& model_dir) {
  if (mode == SpeculativeMode::Auto) return choose_speculation(model_dir);
  SpeculationChoice c;
  c.on = mode == SpeculativeMode::Mtp;
  c.why = c.on ? "--speculative mtp" : "--speculative none";
  return c;
}

// A submitted request on its way from submit() (any thread) to the engine thread.
struct Engine::Pending {
  std::unique_ptr<Sequence> seq;
  Callbacks cb;
};

Engine::Engine(const Model& model, const Tokenizer* tokenizer, EngineOptions opt)
    : model_(model), tok_(tokenizer), opt_(opt) {
  QS_CHECK(opt.block_size > 0 && opt.block_size <= 4096, "block_size must be in [1, 4096], got ", opt.block_size);
  QS_CHECK(opt.cache_tokens >= opt.block_size, "the KV cache (", opt.cache_tokens,
           " tokens) must hold at least one block of ", opt.block_size);
  const int64_t blocks = (opt.cache_tokens + opt.block_size - 1) / opt.block_size;
  if (opt.speculative)
    QS_CHECK(model.has_mtp(), "speculative decoding needs the model's MTP module (num_nextn_predict_layers > 0 and its "
                              "weights in the checkpoint; load it with MTP)");
  // A speculative engine keeps the MTP module's latents as one more layer of every block.
  pool_ = std::make_unique<KVPool>(model.config(), blocks, opt.block_size, kv_pool_layers(model.config(), opt),
                                   kv_dtype_of(opt));
  bm_ = std::make_unique<BlockManager>(*pool_, opt.prefix_caching);
  sched_ = std::make_unique<Scheduler>(*bm_, SchedulerOptions{opt.max_seqs, opt.max_step_tokens, opt.speculative});
  runner_ = std::make_unique<ModelRunner>(model, *pool_, opt.compute);
  max_len_ = pool_->capacity_tokens();
  if (model.config().max_position_embeddings > 0) max_len_ = std::min(max_len_, model.config().max_position_embeddings);
  if (opt.max_model_len > 0) max_len_ = std::min(max_len_, opt.max_model_len);
  for (int64_t e : model.config().eos_token_ids) eos_.push_back(int32_t(e));
  if (tok_ && tok_->eos_id() >= 0) eos_.push_back(int32_t(tok_->eos_id()));
  stats_.blocks_total = bm_->num_blocks();
  stats_.blocks_free = bm_->num_free();
  stats_.block_size = opt.block_size;
}

Engine::~Engine() = default;

// ---- submission (any thread) ----------------------------------------------------------------

int64_t Engine::submit(GenerationRequest req) {
  const int64_t V = model_.config().vocab_size;
  QS_CHECK(!req.prompt.empty(), "prompt is empty");
  for (int32_t t : req.prompt) QS_CHECK(t >= 0 && t < V, "prompt token id ", t, " is outside the vocabulary [0, ", V, ")");
  req.params.validate();
  QS_CHECK(req.n >= 1 && req.n <= 4096, "n (samples per prompt) must be in [1, 4096], got ", req.n);
  QS_CHECK(req.top_logprobs >= 0 && req.top_logprobs <= V, "top_logprobs must be in [0, ", V, "], got ",
           req.top_logprobs);
  const int64_t need = int64_t(req.prompt.size()) + std::max<int64_t>(req.params.max_tokens, 1);
  QS_CHECK(need <= max_len_, "prompt (", req.prompt.size(), " tokens) + max_tokens (", req.params.max_tokens,
           ") exceeds the context of ", max_len_, " tokens");
  auto p = std::make_unique<Pending>();
  auto& s = p->seq;
  s = std::make_unique<Sequence>();
  s->id = next_id_.fetch_add(req.n);
  s->tokens = std::move(req.prompt);
  s->n_prompt = s->n_tokens();
  s->params = req.params;
  s->top_logprobs = req.top_logprobs;
  s->processor = std::move(req.processor);
  s->forks = req.n - 1;
  s->sampler.emplace(s->params, V);
  s->sampler->observe_prompt(s->tokens);
  s->detok.emplace(tok_, s->params.stop);
  p->cb.on_event = std::move(req.on_event);
  p->cb.on_finish = std::move(req.on_finish);
  const int64_t id = s->id;
  {
    std::lock_guard<std::mutex> lk(mu_);
    inbox_.push_back(std::move(p));
    stats_.requests += req.n;
  }
  cv_.notify_all();
  return id;
}

int64_t Engine::submit_score(ScoreRequest req, std::function<void(ScoreResult&&)> on_done) {
  const int64_t V = model_.config().vocab_size;
  QS_CHECK(!req.prompt.empty(), "score: the prompt is empty (the first completion token needs a token before it)");
  for (const auto* v : {&req.prompt, &req.completion})
    for (int32_t t : *v) QS_CHECK(t >= 0 && t < V, "token id ", t, " is outside the vocabulary [0, ", V, ")");
  QS_CHECK(req.top_logprobs >= 0 && req.top_logprobs <= V, "top_logprobs must be in [0, ", V, "], got ",
           req.top_logprobs);
  const int64_t len = int64_t(req.prompt.size() + req.completion.size());
  QS_CHECK(len <= max_len_, "prompt + completion (", len, " tokens) exceed the context of ", max_len_, " tokens");
  auto p = std::make_unique<Pending>();
  auto& s = p->seq;
  s = std::make_unique<Sequence>();
  s->score = true;
  s->id = next_id_.fetch_add(1);
  s->n_prompt = int64_t(req.prompt.size());
  s->tokens = std::move(req.prompt);
  s->tokens.insert(s->tokens.end(), req.completion.begin(), req.completion.end());
  s->top_logprobs = req.top_logprobs;
  p->cb.on_score = std::move(on_done);
  const int64_t id = s->id;
  {
    std::lock_guard<std::mutex> lk(mu_);
    inbox_.push_back(std::move(p));
    stats_.requests++;
  }
  cv_.notify_all();
  return id;
}

void Engine::cancel(int64_t request) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    cancels_.push_back(request);
  }
  cv_.notify_all();
}

void Engine::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    tasks_.push_back(std::move(task));
  }
  cv_.notify_all();
}

void Engine::notify() { cv_.notify_all(); }

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

bool Engine::idle() const {
  std::lock_guard<std::mutex> lk(mu_);
  return seqs_.empty() && inbox_.empty() && tasks_.empty();
}

// ---- the engine thread ----------------------------------------------------------------------

void Engine::drain_inbox() {
  std::deque<std::unique_ptr<Pending>> in;
  std::vector<int64_t> cancels;
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lk(mu_);
    in.swap(inbox_);
    cancels.swap(cancels_);
    tasks.swap(tasks_);
  }
  for (auto& t : tasks) t();
  for (auto& p : in) {
    Sequence* s = p->seq.get();
    for (int64_t k = 0; k <= s->forks; ++k) callbacks_[s->id + k] = p->cb;
    sched_->add(s);
    seqs_.emplace(s->id, std::move(p->seq));
  }
  for (int64_t id : cancels) {
    auto it = seqs_.find(id);
    if (it != seqs_.end()) it->second->cancelled = true;
  }
}

void Engine::finish(Sequence& s, FinishReason r, const std::string& error) {
  if (s.reason != FinishReason::None) return;
  s.reason = r;
  s.error = error;
  Callbacks cb;
  if (auto it = callbacks_.find(s.id); it != callbacks_.end()) cb = std::move(it->second);
  // What it computed stays in the prefix cache (the same prompt again, the next turn of a chat):
  // its full blocks are published before they are released, those its last step filled too. In
  // a speculative engine the last computed position may hold a draft that was not kept: left out.
  if (r != FinishReason::Error && !s.blocks.empty()) {
    const int64_t n = std::min(s.n_tokens(), opt_.speculative ? s.n_computed - 1 : s.n_computed);
    if (n > 0) bm_->publish(s.tokens, n, s.blocks, s.hashes);
  }
  sched_->remove(&s);
  count_finished(s.n_prompt, std::max<int64_t>(0, s.cached_tokens));
  if (s.score) {
    ScoreResult res;
    res.logprobs = std::move(s.logprobs);
    res.top_logprobs = std::move(s.top);
    res.cached_tokens = std::max<int64_t>(0, s.cached_tokens);
    if (r == FinishReason::Error) res.logprobs.clear();
    if (cb.on_score) cb.on_score(std::move(res));
    return;
  }
  std::string tail;
  if (s.detok && r != FinishReason::Error) {
    tail = s.detok->finish().text;
    s.text += tail;
  }
  if (cb.on_event) {
    TokenEvent ev;
    ev.request = s.id;
    ev.text = tail;
    ev.finished = true;
    ev.reason = r;
    cb.on_event(ev);
  }
  // Siblings that will never be forked (the parent ended before its first token) end the same way.
  if (s.n_generated() == 0) {
    for (int64_t k = 1; k <= s.forks; ++k) {
      auto it = callbacks_.find(s.id + k);
      if (it == callbacks_.end()) continue;
      Callbacks scb = std::move(it->second);
      callbacks_.erase(it);
      GenerationResult sib;
      sib.request = s.id + k;
      sib.reason = r;
      sib.error = error;
      sib.prompt_tokens = s.n_prompt;
      count_finished(sib.prompt_tokens, 0);
      if (scb.on_finish) scb.on_finish(std::move(sib));
    }
    s.forks = 0;
  }
  GenerationResult res;
  res.request = s.id;
  res.tokens.assign(s.tokens.begin() + s.n_prompt, s.tokens.end());
  res.text = std::move(s.text);
  res.logprobs = std::move(s.logprobs);
  res.top_logprobs = std::move(s.top);
  res.reason = r;
  res.error = error;
  res.prompt_tokens = s.n_prompt;
  res.cached_tokens = std::max<int64_t>(0, s.cached_tokens);
  res.preemptions = s.preemptions;
  res.draft_tokens = s.drafts;
  res.accepted_draft_tokens = s.accepted;
  res.ttft_s = s.ttft_s;
  res.total_s = s.clock.elapsed();
  if (cb.on_finish) cb.on_finish(std::move(res));
}

void Engine::count_finished(int64_t prompt, int64_t cached) {
  std::lock_guard<std::mutex> lk(mu_);
  stats_.finished++;
  stats_.prompt_tokens += prompt;
  stats_.cached_tokens += cached;
}

void Engine::emit(Sequence& s, int32_t tok, const SampleInfo& info) {
  s.tokens.push_back(tok);
  s.logprobs.push_back(info.logprob);
  if (s.top_logprobs > 0) s.top.push_back(info.top);
  if (s.n_generated() == 1) s.ttft_s = s.clock.elapsed();
  const SamplingParams& p = s.params;
  bool eos = false;
  if (!p.ignore_eos) eos = std::find(eos_.begin(), eos_.end(), tok) != eos_.end();
  eos |= std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), tok) != p.stop_token_ids.end();
  TokenEvent ev;
  ev.request = s.id;
  ev.token = tok;
  ev.logprob = info.logprob;
  ev.top = info.top;
  bool stop_hit = false;
  if (s.detok && !eos) {
    auto out = s.detok->push(tok);
    stop_hit = out.stopped;
    s.text += out.text;
    ev.text = std::move(out.text);
  }
  auto it = callbacks_.find(s.id);
  if (it != callbacks_.end() && it->second.on_event && !it->second.on_event(ev)) s.cancelled = true;
  if (eos || stop_hit) finish(s, FinishReason::Stop);
  else if (s.n_generated() >= p.max_tokens) finish(s, FinishReason::Length);
}

void Engine::sample(Sequence& s, const float* logits) {
  const int64_t V = model_.config().vocab_size;
  if (s.params.max_tokens == 0) {
    finish(s, FinishReason::Length);
    return;
  }
  row_.assign(logits, logits + V);
  if (s.processor) s.processor(s.generated(), row_.data(), V);
  SampleInfo info;
  const int32_t tok = s.sampler->sample(row_.data(), &info, s.top_logprobs);
  emit(s, tok, info);
}

void Engine::fork(Sequence& parent) {
  // The parent's prompt is computed: each sibling shares its blocks and samples its own first
  // token from the same logits (prepare_write copies a shared block before anyone writes it).
  // With speculative decoding every sample recomputes the prompt's last position, whose MTP
  // latent depends on the sample's first token. A parent that already finished (its first
  // token ended it) has released its blocks: the siblings then start from the prefix cache.
  const int64_t V = model_.config().vocab_size;
  const bool alive = parent.reason == FinishReason::None;
  const int64_t resume = !alive ? 0 : opt_.speculative ? parent.n_prompt - 1 : parent.n_computed;
  for (int64_t k = 1; k <= parent.forks; ++k) {
    auto c = std::make_unique<Sequence>();
    c->id = parent.id + k;
    c->tokens.assign(parent.tokens.begin(), parent.tokens.begin() + parent.n_prompt);
    c->n_prompt = parent.n_prompt;
    if (alive) {
      c->blocks = parent.blocks;
      c->hashes = parent.hashes;
      c->hashes.resize(std::min<size_t>(c->hashes.size(), size_t(resume / bm_->block_size())));
      bm_->share(c->blocks);
      c->n_computed = c->mtp_computed = resume;
      c->cached_tokens = parent.n_prompt;  // the prompt was computed once, by the first sample
    }
    c->params = parent.params;
    c->params.seed = parent.params.seed + uint64_t(k);
    c->top_logprobs = parent.top_logprobs;
    c->processor = parent.processor;
    c->sampler.emplace(c->params, V);
    c->sampler->observe_prompt(c->tokens);
    c->detok.emplace(tok_, c->params.stop);
    c->clock = parent.clock;
    sched_->add_front(c.get());
    seqs_.emplace(c->id, std::move(c));
  }
  parent.forks = 0;
  if (alive && opt_.speculative) parent.n_computed = parent.mtp_computed = resume;
}

void Engine::score_rows(Sequence& s, int64_t first_pos, int64_t n, const float* logits) {
  const int64_t V = model_.config().vocab_size;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits + i * V;
    const int32_t target = s.tokens[size_t(first_pos + i + 1)];
    s.logprobs.push_back(Sampler::log_softmax_at(row, V, target));
    if (s.top_logprobs > 0) s.top.push_back(Sampler::top_log_softmax(row, V, s.top_logprobs));
  }
}

bool Engine::can_draft(const Sequence& s) const {
  return opt_.speculative && !s.score && s.draft >= 0 && s.status == SeqStatus::Running && s.todo() == 1 &&
         s.reason == FinishReason::None && !s.cancelled && s.forks == 0 &&
         s.n_generated() + 2 <= s.params.max_tokens && s.n_tokens() + 1 <= max_len_;
}

bool Engine::step() {
  drain_inbox();
  // Cancelled requests end before the step.
  for (auto& [id, s] : seqs_)
    if (s->cancelled) finish(*s, FinishReason::Cancelled);
  auto sweep = [&] {
    for (auto it = seqs_.begin(); it != seqs_.end();) {
      if (it->second->reason != FinishReason::None) {
        callbacks_.erase(it->first);
        it = seqs_.erase(it);
      } else {
        ++it;
      }
    }
  };
  auto report_blocks = [&] {
    stats_.waiting = int64_t(sched_->num_waiting());
    stats_.running = int64_t(sched_->num_running());
    stats_.blocks_used = bm_->num_used();
    stats_.blocks_cached = bm_->num_cached();
    stats_.blocks_free = bm_->num_free();
  };
  sweep();
  // Speculative decoding: a decoding sequence with a draft computes [its last token, the draft]
  // in one step; the draft is verified against the logits of the last token.
  std::vector<Sequence*> drafted;
  for (auto& [id, s] : seqs_)
    if (can_draft(*s)) {
      s->tokens.push_back(s->draft);
      drafted.push_back(s.get());
    }
  Schedule sch = sched_->schedule();
  for (Sequence* s : drafted) {  // drafts not scheduled whole are taken back
    int64_t n = 0;
    for (const StepWork& w : sch.work)
      if (w.seq == s) n = w.n;
    if (n < 2) {
      s->tokens.pop_back();
      if (n == 1) s->draft = -1;  // stale once its position is computed
    }
  }
  if (sch.work.empty()) {
    // Cancelled or finished sequences may have released blocks without a computed step.
    std::lock_guard<std::mutex> lk(mu_);
    report_blocks();
    return !seqs_.empty();
  }
  // Logit rows: the last token of a sequence that then samples (both tokens of a verified
  // draft); every scored position.
  enum class Kind { Score, Sample, Verify };
  struct Use { Sequence* s; Kind kind; int64_t first_row, n_rows, first_pos; };
  std::vector<int64_t> rows;
  std::vector<Use> uses;
  std::vector<int64_t> start(sch.work.size()), flat(sch.work.size());
  int64_t off = 0;
  for (size_t i = 0; i < sch.work.size(); ++i) {
    const StepWork& w = sch.work[i];
    Sequence& s = *w.seq;
    start[i] = s.n_computed;
    flat[i] = off;
    if (s.score) {
      const int64_t next = s.n_prompt - 1 + int64_t(s.logprobs.size());  // first position not yet scored
      const int64_t p0 = std::max(s.n_computed, next), p1 = std::min(s.n_computed + w.n, s.n_tokens() - 1);
      if (p1 > p0) {
        uses.push_back({&s, Kind::Score, int64_t(rows.size()), p1 - p0, p0});
        for (int64_t p = p0; p < p1; ++p) rows.push_back(off + p - s.n_computed);
      }
    } else if (w.n == 2 && s.draft >= 0 && s.n_computed + 2 == s.n_tokens() && s.tokens.back() == s.draft &&
               std::find(drafted.begin(), drafted.end(), &s) != drafted.end()) {
      uses.push_back({&s, Kind::Verify, int64_t(rows.size()), 2, s.n_computed});
      rows.push_back(off);
      rows.push_back(off + 1);
    } else if (s.n_computed + w.n == s.n_tokens()) {
      uses.push_back({&s, Kind::Sample, int64_t(rows.size()), 1, s.n_tokens() - 1});
      rows.push_back(off + w.n - 1);
    }
    off += w.n;
  }
  const float* logits = nullptr;
  try {
    logits = runner_->run(sch.work, rows, opt_.speculative);
  } catch (const std::exception& e) {
    // The step's sequences fail; the engine (and everything else queued) goes on.
    for (const StepWork& w : sch.work) {
      if (w.seq->draft >= 0 && w.n == 2) w.seq->tokens.pop_back();
      finish(*w.seq, FinishReason::Error, e.what());
    }
    sweep();
    return true;
  }
  for (const StepWork& w : sch.work) w.seq->n_computed += w.n;
  int64_t generated = 0, drafts = 0, accepted = 0;
  const int64_t V = model_.config().vocab_size;
  std::vector<std::pair<Sequence*, std::vector<float>>> to_fork;
  for (const Use& u : uses) {
    Sequence& s = *u.s;
    const float* row = logits + u.first_row * V;
    if (u.kind == Kind::Score) {
      score_rows(s, u.first_pos, u.n_rows, row);
      continue;
    }
    if (u.kind == Kind::Verify) {
      const int32_t draft = s.tokens.back();
      s.tokens.pop_back();
      s.draft = -1;
      bool ok = false;
      if (s.cancelled) {  // the draft's position is not kept
        s.n_computed--;
        continue;
      }
      row_.assign(row, row + V);
      if (s.processor) s.processor(s.generated(), row_.data(), V);
      SampleInfo info;
      const int32_t y1 = s.sampler->verify_draft(row_.data(), draft, &ok, &info, s.top_logprobs);
      s.drafts++;
      drafts++;
      if (ok) {
        s.accepted++;
        accepted++;
      }
      emit(s, y1, info);
      generated++;
      if (s.reason != FinishReason::None) continue;  // finished: its blocks are gone
      if (ok && !s.cancelled) {
        sample(s, row + V);  // the token after the accepted draft
        generated++;
      } else {
        // Rejected (or cancelled): the draft's position is not part of the sequence.
        s.n_computed--;
        bm_->truncate(s.blocks, s.hashes, s.n_computed);
      }
      continue;
    }
    if (s.cancelled) continue;
    if (s.forks > 0) to_fork.push_back({&s, std::vector<float>(row, row + V)});
    sample(s, row);
    generated++;
  }
  if (opt_.speculative) mtp_pass(sch, start, flat);
  for (const StepWork& w : sch.work) {
    Sequence& s = *w.seq;
    if (s.reason == FinishReason::None) bm_->publish(s.tokens, s.n_computed, s.blocks, s.hashes);
    if (s.score && s.n_computed == s.n_tokens() && s.reason == FinishReason::None) finish(s, FinishReason::Stop);
  }
  // n samples of one prompt: the siblings share the computed prompt and sample their first
  // token from the same logits.
  for (auto& [parent, row] : to_fork) {
    const int64_t nf = parent->forks, id = parent->id;
    fork(*parent);
    for (int64_t k = 1; k <= nf; ++k) {
      auto it = seqs_.find(id + k);
      if (it == seqs_.end()) continue;
      sample(*it->second, row.data());
      generated++;
    }
  }
  sweep();
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.steps++;
    stats_.step_tokens += sch.tokens;
    stats_.generated_tokens += generated;
    stats_.draft_tokens += drafts;
    stats_.accepted_draft_tokens += accepted;
    stats_.preemptions = sched_->preemptions();
    report_blocks();
  }
  return true;
}

void Engine::mtp_pass(const Schedule& sch, const std::vector<int64_t>& start, const std::vector<int64_t>& flat) {
  // The MTP module runs over the positions this step computed whose next token is now known
  // (a speculative engine keeps mtp_computed == n_computed between steps, so these are exactly
  // the step's positions, in blocks the main pass already made private); a sequence that
  // just sampled gets a draft from its last one. A prompt about to be forked stops before its
  // last position, whose MTP latent depends on each sample's own first token.
  std::vector<ModelRunner::MtpWork> work;
  std::vector<int64_t> rows;
  std::vector<Sequence*> drafting;
  int64_t off = 0;
  for (size_t i = 0; i < sch.work.size(); ++i) {
    Sequence& s = *sch.work[i].seq;
    if (s.reason != FinishReason::None || s.mtp_computed != start[i]) continue;
    int64_t end = std::min(s.n_computed, s.n_tokens() - 1);
    if (s.forks > 0) end = std::min(end, s.n_prompt - 1);
    if (end <= start[i]) continue;
    work.push_back({&s, start[i], end - start[i], flat[i]});
    if (end == s.n_computed && s.n_tokens() == s.n_computed + 1 && !s.score) {
      rows.push_back(off + end - start[i] - 1);
      drafting.push_back(&s);
    }
    off += end - start[i];
  }
  if (work.empty()) return;
  const float* logits = runner_->run_mtp(work, rows);
  for (const auto& w : work) const_cast<Sequence*>(w.seq)->mtp_computed = w.p0 + w.n;
  const int64_t V = model_.config().vocab_size;
  for (size_t i = 0; i < drafting.size(); ++i) drafting[i]->draft = Sampler::argmax(logits + int64_t(i) * V, V);
}

void Engine::run(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    if (step()) continue;
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, std::chrono::milliseconds(50),
                 [&] { return stop.load() || !inbox_.empty() || !cancels_.empty() || !tasks_.empty(); });
  }
}

std::vector<GenerationResult> Engine::generate(std::vector<GenerationRequest> reqs) {
  std::vector<int64_t> first;
  std::vector<int64_t> counts;
  std::unordered_map<int64_t, GenerationResult> done;
  int64_t expected = 0;
  for (auto& r : reqs) {
    auto user = std::move(r.on_finish);
    r.on_finish = [&done, user](GenerationResult&& res) {
      if (user) {
        GenerationResult copy = res;
        user(std::move(copy));
      }
      const int64_t id = res.request;
      done.emplace(id, std::move(res));
    };
    counts.push_back(r.n);
    expected += r.n;
    first.push_back(submit(std::move(r)));
  }
  while (int64_t(done.size()) < expected) {
    if (!step() && int64_t(done.size()) < expected) fail(ErrorKind::Internal, "engine went idle with requests pending");
  }
  std::vector<GenerationResult> out;
  for (size_t i = 0; i < first.size(); ++i)
    for (int64_t k = 0; k < counts[i]; ++k) out.push_back(std::move(done.at(first[i] + k)));
  return out;
}

std::vector<ScoreResult> Engine::score(std::vector<ScoreRequest> reqs) {
  std::vector<ScoreResult> out(reqs.size());
  size_t done = 0;
  for (size_t i = 0; i < reqs.size(); ++i)
    submit_score(std::move(reqs[i]), [&out, &done, i](ScoreResult&& r) {
      out[i] = std::move(r);
      ++done;
    });
  while (done < out.size())
    if (!step() && done < out.size()) fail(ErrorKind::Internal, "engine went idle with score requests pending");
  return out;
}

void Engine::clear_prefix_cache() { bm_->clear_cache(); }

}  // namespace qs

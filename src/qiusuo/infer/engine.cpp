#include "qiusuo/infer/engine.h"

#include <algorithm>

#include "qiusuo/core/error.h"

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

struct Engine::Seq {
  int64_t id = 0;
  GenerationRequest req;
  int64_t slot = -1;
  std::vector<int32_t> tokens;  // prompt + generated
  int64_t n_prompt = 0;
  int64_t cached = 0;  // tokens in the KV cache
  Sampler sampler;
  std::optional<StreamDecoder> dec;
  std::string held;  // text held back: could be the start of a stop string
  GenerationResult result;
  Stopwatch clock;
  bool cancelled = false;

  Seq(GenerationRequest r, int64_t vocab) : req(std::move(r)), sampler(req.params, vocab) {}
  int64_t generated() const { return int64_t(tokens.size()) - n_prompt; }
};

Engine::Engine(Model& model, const Tokenizer* tokenizer, EngineOptions opt)
    : model_(model), tok_(tokenizer), opt_(opt) {
  cache_ = std::make_unique<KVCache>(model.config(), opt.cache_tokens, opt.max_batch, opt.block_size);
}

Engine::~Engine() = default;

int64_t Engine::submit(GenerationRequest req) {
  const int64_t V = model_.config().vocab_size;
  QS_CHECK(!req.prompt.empty(), "prompt is empty");
  for (int32_t t : req.prompt) QS_CHECK(t >= 0 && t < V, "prompt token id ", t, " is outside the vocabulary [0, ", V, ")");
  req.params.validate();
  const int64_t need = int64_t(req.prompt.size()) + std::max<int64_t>(req.params.max_tokens, 1);
  QS_CHECK(need <= cache_->capacity_tokens(), "prompt (", req.prompt.size(), " tokens) + max_tokens (",
           req.params.max_tokens, ") exceeds the KV cache capacity of ", cache_->capacity_tokens(), " tokens");
  auto s = std::make_unique<Seq>(std::move(req), V);
  s->id = next_id_++;
  s->tokens = s->req.prompt;
  s->n_prompt = int64_t(s->tokens.size());
  s->sampler.observe_prompt(s->req.prompt);
  s->result.request = s->id;
  s->result.prompt_tokens = s->n_prompt;
  if (tok_) s->dec.emplace(*tok_);
  const int64_t id = s->id;
  waiting_.push_back(std::move(s));
  return id;
}

void Engine::cancel(int64_t request) {
  for (auto& s : running_)
    if (s->id == request) s->cancelled = true;
  for (auto& s : waiting_)
    if (s->id == request) s->cancelled = true;
}

bool Engine::idle() const { return waiting_.empty() && running_.empty(); }

void Engine::admit() {
  // Reserve the whole request (prompt + max_tokens) up front: no preemption needed later.
  const int64_t B = cache_->block_size();
  auto blocks = [&](int64_t tokens) { return (tokens + B - 1) / B; };
  int64_t reserved = 0;  // blocks running sequences may still take
  for (const auto& s : running_)
    reserved += std::max<int64_t>(0, blocks(s->n_prompt + s->req.params.max_tokens) - blocks(s->cached));
  while (!waiting_.empty() && int64_t(running_.size()) < opt_.max_batch) {
    auto& s = waiting_.front();
    if (s->cancelled) {
      s->result.reason = FinishReason::Cancelled;
      done_.push_back(std::move(s->result));
      waiting_.pop_front();
      continue;
    }
    const int64_t need = blocks(s->n_prompt + s->req.params.max_tokens);
    if (need + reserved > cache_->free_tokens() / B) break;
    reserved += need;
    s->slot = cache_->add_sequence();
    running_.push_back(std::move(s));
    waiting_.pop_front();
  }
}

void Engine::finish(Seq& s, FinishReason r, const std::string& error) {
  if (s.result.reason != FinishReason::None) return;
  std::string tail;
  if (s.dec && r != FinishReason::Error) {
    tail = s.held + s.dec->flush();
    // A stop string may complete only with the flushed bytes.
    for (const auto& st : s.req.params.stop) {
      auto p = tail.find(st);
      if (p != std::string::npos) tail.resize(p);
    }
    s.result.text += tail;
    s.held.clear();
  }
  s.result.reason = r;
  s.result.error = error;
  s.result.total_s = s.clock.elapsed();
  if (s.req.on_event) {
    TokenEvent ev;
    ev.request = s.id;
    ev.text = tail;
    ev.finished = true;
    ev.reason = r;
    s.req.on_event(ev);
  }
  if (s.slot >= 0) {
    cache_->remove_sequence(s.slot);
    s.slot = -1;
  }
}

void Engine::emit_token(Seq& s, int32_t tok) {
  s.tokens.push_back(tok);
  s.result.tokens.push_back(tok);
  if (s.generated() == 1) s.result.ttft_s = s.clock.elapsed();
  const auto& p = s.req.params;
  bool eos = false;
  if (!p.ignore_eos) {
    for (int64_t e : model_.config().eos_token_ids) eos |= (tok == e);
    if (tok_ && tok_->eos_id() >= 0) eos |= (tok == tok_->eos_id());
  }
  for (int32_t e : p.stop_token_ids) eos |= (tok == e);

  TokenEvent ev;
  ev.request = s.id;
  ev.token = tok;
  bool stop_hit = false;
  if (s.dec && !eos) {
    std::string text = s.held + s.dec->push(tok);
    s.held.clear();
    size_t cut = std::string::npos;
    for (const auto& st : p.stop) {
      const size_t at = text.find(st);
      if (at != std::string::npos && (cut == std::string::npos || at < cut)) cut = at;
    }
    if (cut != std::string::npos) {
      text.resize(cut);
      stop_hit = true;
    } else {
      // Hold back the longest suffix that could begin a stop string.
      size_t hold = 0;
      for (const auto& st : p.stop)
        for (size_t k = std::min(st.size() - 1, text.size()); k > hold; --k)
          if (text.compare(text.size() - k, k, st, 0, k) == 0) { hold = k; break; }
      s.held = text.substr(text.size() - hold);
      text.resize(text.size() - hold);
    }
    ev.text = text;
    s.result.text += text;
  }
  bool keep = true;
  if (s.req.on_event) keep = s.req.on_event(ev);
  if (!keep) s.cancelled = true;
  if (eos || stop_hit) finish(s, FinishReason::Stop);
  else if (s.generated() >= p.max_tokens) finish(s, FinishReason::Length);
}

bool Engine::step() {
  admit();
  // Drop finished / cancelled sequences.
  auto sweep = [&] {
    for (auto it = running_.begin(); it != running_.end();) {
      Seq& s = **it;
      if (s.cancelled && s.result.reason == FinishReason::None) finish(s, FinishReason::Cancelled);
      if (s.result.reason != FinishReason::None) {
        done_.push_back(std::move(s.result));
        it = running_.erase(it);
      } else {
        ++it;
      }
    }
  };
  sweep();
  if (running_.empty()) return !waiting_.empty();
  // Build the ragged batch: decode tokens first, then prompt chunks within the budget.
  StepBatch batch;
  std::vector<int64_t> rows;
  std::vector<Seq*> sampled, owner;
  int64_t budget = opt_.prefill_chunk;
  for (auto& sp : running_) {
    Seq& s = *sp;
    const int64_t todo = int64_t(s.tokens.size()) - s.cached;
    if (todo <= 0) continue;
    const bool decode = s.cached >= s.n_prompt;
    int64_t n = decode ? todo : std::min(todo, budget);
    if (n <= 0) continue;
    if (!decode) budget -= n;
    batch.add(s.slot, s.cached, s.tokens.data() + s.cached, n);
    owner.push_back(&s);
    if (s.cached + n == int64_t(s.tokens.size())) {
      rows.push_back(batch.size() - 1);
      sampled.push_back(&s);
    }
  }
  if (batch.size() == 0) return true;
  const int64_t V = model_.config().vocab_size;
  logits_.resize(rows.size() * size_t(V));
  ForwardOptions fo;
  fo.compute = opt_.compute;
  try {
    model_.forward(batch, *cache_, rows, logits_.data(), fo);
  } catch (const Error& e) {
    for (auto& sp : running_) finish(*sp, FinishReason::Error, e.what());
    sweep();
    throw;
  }
  ++steps_;
  for (size_t i = 0; i < batch.chunks.size(); ++i) owner[i]->cached += batch.chunks[i].n_tokens;
  for (size_t i = 0; i < sampled.size(); ++i) {
    Seq& s = *sampled[i];
    if (s.req.params.max_tokens == 0) {
      finish(s, FinishReason::Length);
      continue;
    }
    const int32_t tok = s.sampler.sample(logits_.data() + i * size_t(V));
    emit_token(s, tok);
  }
  sweep();
  return true;
}

std::optional<GenerationResult> Engine::take_result(int64_t request) {
  for (auto it = done_.begin(); it != done_.end(); ++it)
    if (it->request == request) {
      GenerationResult r = std::move(*it);
      done_.erase(it);
      return r;
    }
  return std::nullopt;
}

std::vector<GenerationResult> Engine::generate(std::vector<GenerationRequest> reqs) {
  std::vector<int64_t> ids;
  for (auto& r : reqs) ids.push_back(submit(std::move(r)));
  while (!idle()) step();
  std::vector<GenerationResult> out;
  for (int64_t id : ids) {
    auto r = take_result(id);
    QS_ASSERT(r.has_value());
    out.push_back(std::move(*r));
  }
  return out;
}

}  // namespace qs

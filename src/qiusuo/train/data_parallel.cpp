#include "qiusuo/train/data_parallel.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <map>
#include <exception>
#include <mutex>
#include <thread>

#include "qiusuo/core/error.h"
#include "qiusuo/core/profile.h"
#include "qiusuo/model/weights.h"

namespace qs {

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

// The communication thread of overlapped reduction: buckets are queued in the order the
// backward pass finishes them (the same on every rank) and summed on a communicator of its own.
struct DataParallel::Reducer {
  std::unique_ptr<Comm> comm;
  float* data = nullptr;
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Bucket> queue;
  int64_t pending = 0;
  bool stop = false;
  std::exception_ptr error;
  double busy_s = 0;

  explicit Reducer(Comm& world) : comm(world.duplicate()) {
    thread = std::thread([this] { loop(); });
  }
  ~Reducer() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
    }
    cv.notify_all();
    thread.join();
  }
  void push(Bucket b) {
    {
      std::lock_guard<std::mutex> lk(mu);
      queue.push_back(b);
      ++pending;
    }
    cv.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return pending == 0 || error; });
    if (error) std::rethrow_exception(error);
  }
  void loop() {
    for (;;) {
      Bucket b;
      {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return stop || !queue.empty(); });
        if (queue.empty()) return;
        b = queue.front();
        queue.pop_front();
      }
      const double t0 = now_s();
      try {
        comm->allreduce_sum(std::span<float>(data + b.begin, size_t(b.end - b.begin)));
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu);
        error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lk(mu);
        busy_s += now_s() - t0;
        --pending;
      }
      cv.notify_all();
    }
  }
};

DataParallel::DataParallel(Comm& comm, TrainModel<float>& model, AdamW& opt, DataParallelOptions o)
    : comm_(comm), model_(model), opt_(opt), o_(o) {
  const ModelConfig& c = model.config();
  const int N = comm.size();
  if (o_.expert_parallel && N > 1) {
    QS_CHECK(c.n_routed_experts >= N, "--expert-parallel over ", N, " ranks needs at least ", N,
             " routed experts per MoE layer (the model has ", c.n_routed_experts, ")");
    QS_CHECK(!o_.shard_optimizer, "--shard-optimizer with --expert-parallel is not supported: expert parallelism "
             "already keeps each expert's optimizer state on its rank; drop one of the two");
    ep_ = std::make_unique<ExpertParallel>(comm, c.n_routed_experts, /*leader_follower=*/false);
    model.set_expert_parallel(ep_.get());
  }
  // Buckets: the layout's tensors grouped by the point of the backward pass that finishes them,
  // in contiguous runs (with expert parallelism the routed experts are left out), cut to size.
  const int64_t L = c.num_hidden_layers;
  const ExpertPlacement* pl = ep_ ? &ep_->placement : nullptr;
  groups_.assign(size_t(L + 2), {});
  std::map<int64_t, std::vector<std::vector<Bucket>>> blocks;  // layer -> rank -> expert tensor ranges
  std::vector<std::vector<Bucket>> runs(size_t(L + 2));
  for (const ParamInfo& p : model.layout()) {
    int64_t g = L + 1;  // final norm, head, MTP modules
    int64_t layer = -1;
    if (p.name == "model.embed_tokens.weight") {
      g = 0;
    } else if (p.name.rfind("model.layers.", 0) == 0) {
      layer = std::stoll(p.name.substr(13));
      if (layer < L) g = layer + 1;
    }
    const int64_t b = int64_t(p.offset), e = int64_t(p.offset + p.numel);
    const int64_t expert = routed_expert_of(p.name);
    if (pl && expert >= 0) {
      const int r = pl->owner(expert);
      auto& per = blocks[layer];
      per.resize(size_t(N));
      per[size_t(r)].push_back({b, e});
      if (r == comm.rank()) ep_layout_.push_back(p);
      continue;
    }
    if (pl) ep_layout_.push_back(p);
    auto& rs = runs[size_t(g)];
    if (!rs.empty() && b <= rs.back().end + 16 && b >= rs.back().end) rs.back().end = e;  // 64-byte alignment gaps
    else rs.push_back({b, e});
  }
  for (size_t g = 0; g < runs.size(); ++g)
    for (const Bucket& r : runs[g])
      for (int64_t b = r.begin; b < r.end; b += o_.bucket_elems)
        groups_[g].push_back({b, std::min(r.end, b + o_.bucket_elems)});
  // Each rank's experts of a layer form one range (experts are consecutive in the layout).
  for (auto& [layer, per] : blocks) {
    std::vector<Bucket> ranges(static_cast<size_t>(N));
    for (int r = 0; r < N; ++r) {
      auto& v = per[size_t(r)];
      QS_ASSERT(!v.empty());
      std::sort(v.begin(), v.end(), [](const Bucket& x, const Bucket& y) { return x.begin < y.begin; });
      ranges[size_t(r)] = {v.front().begin, v.back().end};
      if (r > 0) QS_ASSERT(ranges[size_t(r)].begin >= ranges[size_t(r - 1)].end);
    }
    expert_blocks_.push_back(std::move(ranges));
  }
  if (ep_) {
    ep_opt_ = std::make_unique<AdamW>(ep_layout_, model.params().size(), opt.config());
    ep_opt_->set_steps(opt.steps());
    release_optimizer();
  }
  if (N > 1 && o_.overlap && !o_.shard_optimizer && comm.is_mpi() && mpi_thread_multiple()) {
    reducer_ = std::make_unique<Reducer>(comm);
    reducer_->data = model.grads().data();
  }
  if (o_.shard_optimizer) {
    const int64_t n = int64_t(model.params().size());
    shard_begin_ = comm.shard_begin(n, comm.rank());
    shard_end_ = comm.shard_begin(n, comm.rank() + 1);
    for (const ParamInfo& p : model.layout()) {
      const int64_t b = std::max<int64_t>(int64_t(p.offset), shard_begin_);
      const int64_t e = std::min<int64_t>(int64_t(p.offset + p.numel), shard_end_);
      if (b >= e) continue;
      ParamInfo q = p;
      q.offset = size_t(b - shard_begin_);
      q.numel = size_t(e - b);
      shard_layout_.push_back(std::move(q));
    }
    shard_opt_ = std::make_unique<AdamW>(shard_layout_, size_t(shard_end_ - shard_begin_), opt.config());
    shard_opt_->set_steps(opt.steps());
    shard_grads_.assign(size_t(shard_end_ - shard_begin_), 0.0f);
    release_optimizer();
  }
}

DataParallel::~DataParallel() {
  reducer_.reset();
  if (ep_) model_.set_expert_parallel(nullptr);
}

nlohmann::json DataParallel::fields() const {
  return {{"world_size", size()}, {"expert_parallel", expert_parallel()}};
}

DataParallel::Share DataParallel::share(int64_t rows, const char* what) const {
  const int N = size();
  QS_CHECK(rows % N == 0, what, " ", rows, " is the global batch and must divide among the ", N,
           " ranks (each rank takes rows / ranks sequences of every micro-batch): pick a multiple of ", N);
  return {rows / N * rank(), rows / N};
}

std::function<void(int64_t)> DataParallel::grads_ready_hook() {
  if (!reducer_) return {};
  hook_used_ = true;
  const int64_t L = model_.config().num_hidden_layers;
  // Layer l done (0..L-1), L: head and MTP done, -1: embedding done.
  return [this, L](int64_t l) {
    const int64_t g = l < 0 ? 0 : l >= L ? L + 1 : l + 1;
    for (const Bucket& b : groups_[size_t(g)]) reducer_->push(b);
  };
}

void DataParallel::reduce_range(int64_t begin, int64_t end) {
  comm_.allreduce_sum(std::span<float>(model_.grads().data() + begin, size_t(end - begin)));
}

void DataParallel::reduce_gradients() {
  QS_PROFILE("dist.reduce_gradients");
  const double t0 = now_s();
  if (size() > 1) {
    if (o_.shard_optimizer) {
      comm_.reduce_scatter_sum(model_.grads(), shard_grads_);
    } else if (reducer_ && hook_used_) {
      reducer_->wait();
    } else {
      for (size_t g = groups_.size(); g-- > 0;)
        for (const Bucket& b : groups_[g]) reduce_range(b.begin, b.end);
    }
  }
  hook_used_ = false;
  const double dt = now_s() - t0;
  t_.allreduce_s += dt;
  if (!reducer_) t_.allreduce_busy_s += dt;
}

double DataParallel::clip_and_step(double clip, double lr) {
  QS_PROFILE("trainer.optimizer");
  const double t0 = now_s();
  double norm = 0;
  if (ep_) {
    // Σ g² over the replicated parameters (the same on every rank) + every rank's own experts.
    double ss[2] = {0, 0};
    for (const ParamInfo& p : ep_layout_) {
      if (!p.optimize) continue;
      const float* g = model_.grads().data() + p.offset;
      double s = 0;
      for (size_t i = 0; i < p.numel; ++i) s += double(g[i]) * g[i];
      ss[routed_expert_of(p.name) >= 0] += s;
    }
    comm_.allreduce_sum(std::span<double>(ss + 1, 1));
    norm = std::sqrt(ss[0] + ss[1]);
    if (clip > 0 && norm > clip && std::isfinite(norm)) {
      const float k = float(clip / norm);
      for (const ParamInfo& p : ep_layout_) {
        if (!p.optimize) continue;
        float* g = model_.grads().data() + p.offset;
        for (size_t i = 0; i < p.numel; ++i) g[i] *= k;
      }
    }
    ep_opt_->step(model_.params().data(), model_.grads().data(), lr);
    opt_.set_steps(ep_opt_->steps());
  } else if (!o_.shard_optimizer) {
    norm = clip_grad_norm(model_.layout(), model_.grads().data(), clip);
    opt_.step(model_.params().data(), model_.grads().data(), lr);
  } else {
    double ss = 0;
    for (const ParamInfo& p : shard_layout_) {
      if (!p.optimize) continue;
      const float* g = shard_grads_.data() + p.offset;
      double s = 0;
      for (size_t i = 0; i < p.numel; ++i) s += double(g[i]) * g[i];
      ss += s;
    }
    comm_.allreduce_sum(std::span<double>(&ss, 1));
    norm = std::sqrt(ss);
    if (clip > 0 && norm > clip && std::isfinite(norm)) {
      const float k = float(clip / norm);
      for (const ParamInfo& p : shard_layout_) {
        if (!p.optimize) continue;
        float* g = shard_grads_.data() + p.offset;
        for (size_t i = 0; i < p.numel; ++i) g[i] *= k;
      }
    }
    shard_opt_->step(model_.params().data() + shard_begin_, shard_grads_.data(), lr);
    opt_.set_steps(shard_opt_->steps());
    comm_.allgather_shards(model_.params());
  }
  t_.optimizer_s += now_s() - t0;
  return norm;
}

void DataParallel::sum(std::span<double> v) {
  if (size() > 1) comm_.allreduce_sum(v);
}

void DataParallel::sum(ExpertLoad& load) {
  if (size() == 1) return;
  // Every rank has the same layer structure (the same model and step): flatten, sum, unflatten.
  std::vector<int64_t> flat;
  for (const auto& l : load) flat.insert(flat.end(), l.begin(), l.end());
  int64_t n = int64_t(flat.size()), mx = n, mn = n;
  std::vector<int64_t> chk = {n, n};
  comm_.allreduce(std::span<int64_t>(chk.data(), 1), ReduceOp::Max);
  comm_.allreduce(std::span<int64_t>(chk.data() + 1, 1), ReduceOp::Min);
  mx = chk[0];
  mn = chk[1];
  QS_CHECK(mx == mn, "expert loads of different shapes on different ranks (", mn, " vs ", mx, " counts)");
  comm_.allreduce(flat, ReduceOp::Sum);
  size_t at = 0;
  for (auto& l : load)
    for (auto& x : l) x = flat[at++];
}

void DataParallel::broadcast_parameters() {
  if (size() == 1) return;
  comm_.broadcast(model_.params().data(), model_.params().size() * sizeof(float), 0);
}

void DataParallel::broadcast_checkpoint(TrainerState& st) {
  if (size() == 1) return;
  if (ep_) {  // rank 0's (full) optimizer state goes out in full below
    opt_.exp_avg().resize(model_.params().size());
    opt_.exp_avg_sq().resize(model_.params().size());
  }
  broadcast_parameters();
  int64_t steps = opt_.steps();
  comm_.broadcast_value(steps, 0);
  opt_.set_steps(steps);
  const size_t total = model_.params().size();
  for (auto* v : {&opt_.exp_avg(), &opt_.exp_avg_sq()}) {
    v->resize(total);
    comm_.broadcast(v->data(), total * sizeof(float), 0);
  }
  struct Pod {
    int64_t step, tokens_seen;
    DataLoader::State data;
    Rng::State rng;
    double elapsed_s;
  } pod{st.step, st.tokens_seen, st.data, st.rng, st.elapsed_s};
  comm_.broadcast_value(pod, 0);
  st.step = pod.step;
  st.tokens_seen = pod.tokens_seen;
  st.data = pod.data;
  st.rng = pod.rng;
  st.elapsed_s = pod.elapsed_s;
  std::string settings = st.settings.dump();
  comm_.broadcast_string(settings, 0);
  st.settings = nlohmann::json::parse(settings);
  if (o_.shard_optimizer) {
    const int64_t n = shard_end_ - shard_begin_;
    std::copy_n(opt_.exp_avg().data() + shard_begin_, n, shard_opt_->exp_avg().data());
    std::copy_n(opt_.exp_avg_sq().data() + shard_begin_, n, shard_opt_->exp_avg_sq().data());
    shard_opt_->set_steps(steps);
    release_optimizer();
  }
  if (ep_) {
    ep_opt_->exp_avg() = opt_.exp_avg();
    ep_opt_->exp_avg_sq() = opt_.exp_avg_sq();
    ep_opt_->set_steps(steps);
    release_optimizer();
  }
}

void DataParallel::gather_experts(std::vector<float>& buf) {
  const int N = size();
  std::vector<int64_t> counts(static_cast<size_t>(N)), displs(static_cast<size_t>(N));
  for (const auto& ranges : expert_blocks_) {
    const int64_t base = ranges[0].begin;
    for (int r = 0; r < N; ++r) {
      displs[size_t(r)] = ranges[size_t(r)].begin - base;
      counts[size_t(r)] = ranges[size_t(r)].end - ranges[size_t(r)].begin;
    }
    comm_.allgatherv(nullptr, counts[size_t(rank())], buf.data() + base, counts, displs, sizeof(float));
  }
}

void DataParallel::gather_optimizer() {
  if (ep_) {  // every expert's parameters and moments from its owner
    opt_.exp_avg() = ep_opt_->exp_avg();
    opt_.exp_avg_sq() = ep_opt_->exp_avg_sq();
    opt_.set_steps(ep_opt_->steps());
    gather_experts(model_.params());
    gather_experts(opt_.exp_avg());
    gather_experts(opt_.exp_avg_sq());
    return;
  }
  if (!o_.shard_optimizer) return;
  const size_t total = model_.params().size();
  const int64_t n = shard_end_ - shard_begin_;
  std::vector<float>* full[2] = {&opt_.exp_avg(), &opt_.exp_avg_sq()};
  std::vector<float>* part[2] = {&shard_opt_->exp_avg(), &shard_opt_->exp_avg_sq()};
  for (int i = 0; i < 2; ++i) {
    full[i]->assign(total, 0.0f);
    std::copy_n(part[i]->data(), n, full[i]->data() + shard_begin_);
    comm_.allgather_shards(*full[i]);
  }
  opt_.set_steps(shard_opt_->steps());
}

void DataParallel::release_optimizer() {
  if (!o_.shard_optimizer && !ep_) return;
  for (auto* v : {&opt_.exp_avg(), &opt_.exp_avg_sq()}) {
    v->clear();
    v->shrink_to_fit();
  }
}

DistTimes DataParallel::times() const {
  DistTimes t = t_;
  if (reducer_) t.allreduce_busy_s = reducer_->busy_s;
  if (ep_) t.alltoall_s = ep_->stats.seconds;
  return t;
}

}  // namespace qs

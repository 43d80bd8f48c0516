#include "qiusuo/dist/expert_parallel.h"

#include <chrono>
#include <cstring>

#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"

namespace qs {

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

int ExpertPlacement::owner(int64_t e) const {
  QS_ASSERT(e >= 0 && e < experts);
  int r = int(e * ranks / experts);  // the first guess is at most one off
  while (r > 0 && begin(r) > e) --r;
  while (r + 1 < ranks && begin(r + 1) <= e) ++r;
  return r;
}

void announce_expert_call(const ExpertParallel& ep, const ExpertCall& call) {
  if (!ep.leader_follower || ep.comm->size() == 1) return;
  QS_ASSERT(ep.comm->rank() == 0);
  ExpertCall c = call;
  ep.comm->broadcast(&c, sizeof c, 0);
}

ExpertCall next_expert_call(const ExpertParallel& ep) {
  ExpertCall c;
  ep.comm->broadcast(&c, sizeof c, 0);
  return c;
}

void ExpertExchange::plan(const ExpertParallel& ep, std::span<const int32_t> pair_expert,
                          const std::function<int64_t(int64_t)>& pad) {
  ep_ = &ep;
  Comm& comm = *ep.comm;
  const ExpertPlacement& pl = ep.placement;
  const int N = comm.size(), me = comm.rank();
  QS_CHECK(pl.ranks == N && pl.rank == me && pl.experts >= N, "expert parallelism over ", N,
           " ranks needs at least one routed expert per rank (the model has ", pl.experts, ")");
  const int64_t E = pl.experts, n = int64_t(pair_expert.size());
  // Send order: by expert (so by owner), pairs in order within an expert (counting sort).
  std::vector<int64_t> cnt(size_t(E), 0), at(size_t(E) + 1, 0);
  for (int32_t e : pair_expert) {
    QS_CHECK(e >= 0 && e < E, "expert id ", e, " outside [0, ", E, ")");
    cnt[size_t(e)]++;
  }
  for (int64_t e = 0; e < E; ++e) at[size_t(e + 1)] = at[size_t(e)] + cnt[size_t(e)];
  send_pair_.assign(size_t(n), 0);
  {
    std::vector<int64_t> fill(at.begin(), at.end() - 1);
    for (int64_t p = 0; p < n; ++p) send_pair_[size_t(fill[size_t(pair_expert[size_t(p)])]++)] = int32_t(p);
  }
  const size_t NN = static_cast<size_t>(N);
  sc_.assign(NN, 0);
  sd_.assign(NN, 0);
  rc_.assign(NN, 0);
  rd_.assign(NN, 0);
  for (int r = 0; r < N; ++r) {
    sd_[size_t(r)] = at[size_t(pl.begin(r))];
    sc_[size_t(r)] = at[size_t(pl.end(r))] - sd_[size_t(r)];
  }
  // Counts per (source, local expert): rank r gets our counts of its experts.
  const int64_t J = pl.local_count();
  std::vector<int64_t> ccount(NN), cdispl(NN), rcount(NN, J), rdispl(NN);
  for (int r = 0; r < N; ++r) {
    ccount[size_t(r)] = pl.end(r) - pl.begin(r);
    cdispl[size_t(r)] = pl.begin(r);
    rdispl[size_t(r)] = int64_t(r) * J;
  }
  std::vector<int64_t> from(size_t(int64_t(N) * J));  // [source][j]
  const double t0 = now_s();
  comm.alltoallv(cnt.data(), ccount, cdispl, from.data(), rcount, rdispl, sizeof(int64_t));
  ep.stats.seconds += now_s() - t0;
  count_.assign(size_t(J), 0);
  for (int s = 0; s < N; ++s) {
    int64_t rows = 0;
    for (int64_t j = 0; j < J; ++j) {
      const int64_t c = from[size_t(s * J + j)];
      QS_CHECK(c >= 0, "expert exchange: rank ", s, " announced ", c, " rows");
      rows += c;
      count_[size_t(j)] += c;
    }
    rc_[size_t(s)] = rows;
    rd_[size_t(s)] = s == 0 ? 0 : rd_[size_t(s - 1)] + rc_[size_t(s - 1)];
  }
  offset_.assign(size_t(J) + 1, 0);
  for (int64_t j = 0; j < J; ++j) {
    const int64_t rows = pad ? pad(count_[size_t(j)]) : count_[size_t(j)];
    QS_ASSERT(rows >= count_[size_t(j)]);
    offset_[size_t(j + 1)] = offset_[size_t(j)] + rows;
  }
  // Arrival order (source, expert, sender's order) → expert-major row (expert, source, ...).
  const int64_t arrivals = N ? rd_[NN - 1] + rc_[NN - 1] : 0;
  slot_.assign(size_t(arrivals), 0);
  std::vector<int64_t> before(size_t(J), 0);  // rows of expert j from earlier sources
  int64_t a = 0;
  for (int s = 0; s < N; ++s)
    for (int64_t j = 0; j < J; ++j) {
      const int64_t c = from[size_t(s * J + j)];
      for (int64_t i = 0; i < c; ++i) slot_[size_t(a++)] = offset_[size_t(j)] + before[size_t(j)] + i;
      before[size_t(j)] += c;
    }
}

void ExpertExchange::exchange(const void* send, void* recv, size_t row_bytes, bool back) {
  const double t0 = now_s();
  if (back) ep_->comm->alltoallv(send, rc_, rd_, recv, sc_, sd_, row_bytes);
  else ep_->comm->alltoallv(send, sc_, sd_, recv, rc_, rd_, row_bytes);
  ExchangeStats& st = ep_->stats;
  st.seconds += now_s() - t0;
  st.calls++;
  const int me = ep_->comm->rank();
  const auto& counts = back ? rc_ : sc_;
  for (int r = 0; r < int(counts.size()); ++r)
    if (r != me) {
      st.rows_sent += counts[size_t(r)];
      st.bytes_sent += counts[size_t(r)] * int64_t(row_bytes);
    }
}

template <typename T>
void ExpertExchange::dispatch(const T* rows, std::span<const int32_t> pair_row, int64_t d, T* recv) {
  QS_ASSERT(int64_t(pair_row.size()) == pairs());
  const size_t rb = size_t(d) * sizeof(T);
  const int64_t n = pairs(), arrivals = int64_t(slot_.size());
  sbuf_.resize(size_t(n) * rb);
  rbuf_.resize(size_t(arrivals) * rb);
  parallel_for(n, 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      std::memcpy(sbuf_.data() + size_t(i) * rb, rows + int64_t(pair_row[size_t(send_pair_[size_t(i)])]) * d, rb);
  });
  exchange(sbuf_.data(), rbuf_.data(), rb, false);
  for (int64_t j = 0; j < local_experts(); ++j) {
    const int64_t pad0 = offset_[size_t(j)] + count_[size_t(j)], pad1 = offset_[size_t(j + 1)];
    if (pad1 > pad0) std::memset(static_cast<void*>(recv + pad0 * d), 0, size_t(pad1 - pad0) * rb);
  }
  parallel_for(arrivals, 64, [&](int64_t b, int64_t e) {
    for (int64_t a = b; a < e; ++a) std::memcpy(recv + slot_[size_t(a)] * d, rbuf_.data() + size_t(a) * rb, rb);
  });
}

template <typename T>
void ExpertExchange::combine(const T* recv, int64_t d, T* out) {
  const size_t rb = size_t(d) * sizeof(T);
  const int64_t n = pairs(), arrivals = int64_t(slot_.size());
  rbuf_.resize(size_t(arrivals) * rb);
  sbuf_.resize(size_t(n) * rb);
  parallel_for(arrivals, 64, [&](int64_t b, int64_t e) {
    for (int64_t a = b; a < e; ++a) std::memcpy(rbuf_.data() + size_t(a) * rb, recv + slot_[size_t(a)] * d, rb);
  });
  exchange(rbuf_.data(), sbuf_.data(), rb, true);
  parallel_for(n, 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) std::memcpy(out + int64_t(send_pair_[size_t(i)]) * d, sbuf_.data() + size_t(i) * rb, rb);
  });
}

template void ExpertExchange::dispatch<float>(const float*, std::span<const int32_t>, int64_t, float*);
template void ExpertExchange::dispatch<double>(const double*, std::span<const int32_t>, int64_t, double*);
template void ExpertExchange::combine<float>(const float*, int64_t, float*);
template void ExpertExchange::combine<double>(const double*, int64_t, double*);

}  // namespace qs

// Expert parallelism: the routed experts of every MoE layer divided among the ranks, tokens
// sent to the ranks that hold their selected experts and the results sent back, by all-to-all
// (MPI_Alltoallv) — the one dispatch/combine that the MoE's training forward, its backward and
// inference all use (model/moe.cpp).
//
// Placement: rank r holds experts [E·r/N, E·(r+1)/N) of every MoE layer (contiguous blocks; a
// rank count that does not divide E gives some ranks one expert more).
//
// One exchange, for the (token, expert) pairs of one MoE layer call:
//   plan       each rank lists the expert of each of its pairs; the counts per (rank, expert)
//              are exchanged (all-to-all), so every rank knows what it will receive
//   dispatch   the row of each pair (its token's hidden state, or a gradient) goes to the
//              expert's owner, which receives its experts' rows expert-major: expert by expert,
//              within an expert by source rank, within a source in the sender's pair order —
//              when the ranks hold consecutive shares of a batch, exactly the order one process
//              gives the rows of the whole batch, so each expert's products see the same rows
//              in the same order as on one process
//   combine    the reverse: the owner's expert-major rows back to the senders, in pair order
// Padding (BF16 training rounds each expert's rows up, moe_padded_rows) is applied on the
// owner; padding rows are zero and never sent.
//
// Inference (leader/follower): only rank 0 runs the model (the scheduler, attention, router,
// shared experts and the head); the other ranks run serve loops that take part in every MoE
// layer's exchange with no tokens of their own and compute their experts for rank 0's rows.
// Rank 0 announces each layer call (or the end) with a small broadcast.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "qiusuo/dist/comm.h"

namespace qs {

struct ExpertPlacement {
  int64_t experts = 0;  // routed experts per MoE layer
  int ranks = 1;
  int rank = 0;
  int64_t begin(int r) const { return experts * r / ranks; }
  int64_t end(int r) const { return begin(r + 1); }
  int64_t local_begin() const { return begin(rank); }
  int64_t local_count() const { return end(rank) - begin(rank); }
  int owner(int64_t e) const;
  bool owns(int64_t e) const { return e >= begin(rank) && e < end(rank); }
};

// Time and volume of the exchanges (benchmarks: the all-to-all share of a step).
struct ExchangeStats {
  double seconds = 0;       // inside MPI_Alltoallv (counts included)
  int64_t rows_sent = 0;    // rows sent to other ranks
  int64_t bytes_sent = 0;
  int64_t calls = 0;
};

// A process's part in expert parallelism: the communicator and the placement (set on the MoE
// weights, model/weights.h and model/train_params.h). `leader_follower` for inference.
struct ExpertParallel {
  Comm* comm = nullptr;
  ExpertPlacement placement;
  bool leader_follower = false;
  mutable ExchangeStats stats;

  ExpertParallel() = default;
  ExpertParallel(Comm& c, int64_t experts, bool leader_follower_mode)
      : comm(&c), placement{experts, c.size(), c.rank()}, leader_follower(leader_follower_mode) {}
};

// The leader/follower protocol of inference (see the top): what rank 0 announces.
struct ExpertCall {
  int32_t op = 0;      // 0 = end of the run, 1 = an MoE layer
  int32_t compute = 0; // the leader's Compute (kernels/linear.h) as an int
  int64_t layer = 0;   // pool/weight layer index (decoder layers, then MTP blocks)
};
// Rank 0: announces a layer call / the end (no-op unless leader_follower with several ranks).
void announce_expert_call(const ExpertParallel& ep, const ExpertCall& call);
// Followers: waits for the leader's next announcement.
ExpertCall next_expert_call(const ExpertParallel& ep);

class ExpertExchange {
 public:
  // pair_expert[p] = the expert of local pair p. pad(n) = rows an expert with n received rows
  // takes in the expert-major buffer (empty: n). A collective: every rank calls it.
  void plan(const ExpertParallel& ep, std::span<const int32_t> pair_expert,
            const std::function<int64_t(int64_t)>& pad = {});

  int64_t pairs() const { return int64_t(send_pair_.size()); }
  // Rows of this rank's expert-major buffer (padding included), and of local expert j (global
  // id placement.local_begin() + j): rows [offset(j), offset(j + 1)), of which the first
  // real_rows(j) carry pairs.
  int64_t recv_rows() const { return offset_.empty() ? 0 : offset_.back(); }
  int64_t offset(int64_t j) const { return offset_[size_t(j)]; }
  int64_t real_rows(int64_t j) const { return count_[size_t(j)]; }
  int64_t local_experts() const { return int64_t(count_.size()); }

  // rows [*, d]: pair p carries row pair_row[p] of `rows`. recv [recv_rows(), d] expert-major
  // (padding rows zeroed). A collective.
  template <typename T>
  void dispatch(const T* rows, std::span<const int32_t> pair_row, int64_t d, T* recv);
  // recv [recv_rows(), d] expert-major → out [pairs(), d] in pair order. A collective.
  template <typename T>
  void combine(const T* recv, int64_t d, T* out);

 private:
  void exchange(const void* send, void* recv, size_t row_bytes, bool back);
  const ExpertParallel* ep_ = nullptr;
  std::vector<int32_t> send_pair_;           // [pairs] pair at each send position (owner, expert, p order)
  std::vector<int64_t> sc_, sd_, rc_, rd_;   // rows per rank sent / received, and displacements
  std::vector<int64_t> slot_;                // [received rows, arrival order] → expert-major row
  std::vector<int64_t> count_, offset_;      // per local expert: real rows; first row (+ end)
  std::vector<unsigned char> sbuf_, rbuf_;   // packed rows (kept between calls)
};

}  // namespace qs

// Data parallelism for the training loops (pretraining, SFT, GRPO, distillation; docs/dist.md):
// N ranks train one model on one global batch. The loops keep their meaning — --batch and
// --accum give the global batch, so the same command under `mpirun -np N` trains the same model:
//   - every rank reads the same global micro-batches (the data order is global, so a run
//     resumes with any number of ranks) and computes its contiguous share of their rows
//     (rows [B·r/N, B·(r+1)/N)), gradients scaled by 1/N so that their sum is the gradient of
//     the global mean;
//   - the gradients are summed over the ranks over the flat gradient buffer in buckets (a
//     decoder layer each, larger ones cut), in rank order (dist/comm.h: the same bits on every
//     rank); with overlap on, a communication thread starts a layer's bucket as soon as the
//     backward pass has finished that layer (StepRequest::on_grads_ready);
//   - the optimizer either runs replicated (every rank the same AdamW over all parameters), or
//     sharded (ZeRO-1, --shard-optimizer): the gradients are reduce-scattered, each rank keeps the
//     AdamW moments of its 1/N of the flat buffer and updates it, and the parameters are
//     all-gathered; the clipping norm is the global one either way;
//   - the expert loads of every MoE layer are summed, so the auxiliary-loss-free bias update
//     sees the global load and moves the same on every rank;
//   - expert parallelism (--expert-parallel): the routed experts are divided among the ranks
//     (dist/expert_parallel.h; tokens travel by all-to-all inside the MoE layers); everything
//     else stays data parallel. A routed expert's gradient is complete on its owner (every token
//     that chose it came there), so the experts are left out of the reduction: each rank
//     updates the non-expert parameters (replicated) and its own experts; the clipping norm adds
//     every rank's expert part. The experts of other ranks are not kept current on a rank (it
//     never computes them): before a checkpoint each expert's parameters and moments are
//     gathered from its owner.
// Rank 0 prints, logs and writes checkpoints (atomically, as one process does: the checkpoint
// holds the full optimizer state, gathered from the shards); a resume loads on rank 0 and
// broadcasts, so the ranks need no shared file system.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "qiusuo/dist/comm.h"
#include "qiusuo/dist/expert_parallel.h"
#include "qiusuo/train/balance.h"
#include "qiusuo/train/checkpoint.h"
#include "qiusuo/train/optimizer.h"
#include "qiusuo/train/train_model.h"

namespace qs {

struct DataParallelOptions {
  bool shard_optimizer = false;  // ZeRO-1
  bool expert_parallel = false;
  bool overlap = true;           // reduce finished layers' gradients during the backward pass
  int64_t bucket_elems = int64_t(1) << 22;  // largest bucket (16 MB of F32)
};

// Where a step's time went (seconds, this rank, since the start).
struct DistTimes {
  double allreduce_s = 0;     // gradient reduction the loop waited for (all of it without overlap)
  double allreduce_busy_s = 0;  // time the reduction ran (on the communication thread with overlap)
  double alltoall_s = 0;      // expert-parallel exchanges (inside the forward and backward)
  double optimizer_s = 0;     // clip + AdamW + parameter all-gather
};

class DataParallel {
 public:
  // `opt` is the loop's AdamW over the whole buffer; sharded, its moments are kept only while a
  // checkpoint is loaded or saved (load_shard() / gather_optimizer()).
  DataParallel(Comm& comm, TrainModel<float>& model, AdamW& opt, DataParallelOptions o);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  Comm& comm() { return comm_; }
  int rank() const { return comm_.rank(); }
  int size() const { return comm_.size(); }
  bool leader() const { return comm_.rank() == 0; }
  bool expert_parallel() const { return ep_ != nullptr; }
  // True when the gradient reduction runs on a communication thread during the backward pass
  // (several ranks, overlap on, no ZeRO-1, MPI_THREAD_MULTIPLE).
  bool overlapped() const { return reducer_ != nullptr; }
  const DataParallelOptions& options() const { return o_; }
  // {"world_size": N, "expert_parallel": bool}
  nlohmann::json fields() const;

  // This rank's rows [first, first + count) of a global batch of `rows` sequences. qs::Error
  // naming the flag when rows is not a multiple of the ranks.
  struct Share {
    int64_t first = 0, count = 0;
  };
  Share share(int64_t rows, const char* what = "--batch") const;
  // Scale of a rank's share of a mean (1/N).
  double mean_scale() const { return 1.0 / double(size()); }

  // For StepRequest::on_grads_ready of the last micro-batch of an optimizer step (empty when the
  // reduction does not overlap the backward pass).
  std::function<void(int64_t)> grads_ready_hook();
  // After the last micro-batch: the gradients summed over the ranks (the rest of the buckets, or
  // all of them; sharded: this rank's shard).
  void reduce_gradients();
  // Clip by the global norm (clip > 0) and update the parameters with learning rate lr; returns
  // the norm before clipping. Every rank ends with the same parameters.
  double clip_and_step(double clip, double lr);

  // Sums over the ranks (in place).
  void sum(std::span<double> v);
  void sum(ExpertLoad& load);
  // A decision of rank 0 (stop, a new step count) made everyone's.
  template <typename T>
  T from_leader(T v) {
    comm_.broadcast_value(v, 0);
    return v;
  }

  // Resume: rank 0 has loaded a checkpoint into the model and the optimizer (and `st`); every
  // rank gets the parameters, the optimizer state (its shard) and the state.
  void broadcast_checkpoint(TrainerState& st);
  // A fresh run: every rank starts from rank 0's initial parameters.
  void broadcast_parameters();
  // Before rank 0 saves: the loop's AdamW holds the full moments (sharded: gathered). After the
  // save, release_optimizer() frees them again (sharded only).
  void gather_optimizer();
  void release_optimizer();

  DistTimes times() const;

 private:
  struct Bucket {
    int64_t begin = 0, end = 0;
  };
  struct Reducer;  // the communication thread
  void reduce_range(int64_t begin, int64_t end);

  Comm& comm_;
  TrainModel<float>& model_;
  AdamW& opt_;
  DataParallelOptions o_;
  std::unique_ptr<ExpertParallel> ep_;
  std::vector<std::vector<Bucket>> groups_;  // [L + 2]: embed (index 0), layers 0..L-1, head + MTP (L + 1)
  std::unique_ptr<Reducer> reducer_;
  bool hook_used_ = false;
  void gather_experts(std::vector<float>& buf);  // each expert block from its owner, in place
  // Expert parallelism: per MoE layer, the element range of each rank's experts.
  std::vector<std::vector<Bucket>> expert_blocks_;
  std::vector<ParamInfo> ep_layout_;  // the layout without the other ranks' experts
  std::unique_ptr<AdamW> ep_opt_;     // AdamW over ep_layout_ (full-size moments)
  // ZeRO-1
  int64_t shard_begin_ = 0, shard_end_ = 0;
  std::unique_ptr<AdamW> shard_opt_;
  std::vector<ParamInfo> shard_layout_;
  std::vector<float> shard_grads_;
  DistTimes t_;
};

}  // namespace qs

// How a command runs under mpirun (docs/dist.md): which commands run distributed, the
// expert-parallel model of an inference command (rank 0 leads, the other ranks serve their
// experts), and the "world_size" / "expert_parallel" fields every distributed-capable command
// reports.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "qiusuo/dist/comm.h"
#include "qiusuo/dist/expert_parallel.h"
#include "qiusuo/model/moe.h"
#include "qiusuo/model/transformer.h"

namespace qs::cli {

// Before the command line is parsed: joins the MPI world when mpirun started this process, and
// refuses (qs::Error) a command that does not run distributed when there are several ranks.
void init_distributed(int argc, char** argv);

// {"world_size": N, "expert_parallel": bool} of this run.
nlohmann::json dist_fields(bool expert_parallel);

// The model of an inference command (generate, chat, score, logits, bench, serve).
// Under mpirun with several ranks it needs --expert-parallel: rank 0 maps everything but the
// other ranks' routed experts and gets the model; every other rank maps only its experts, serves
// rank 0's MoE layer calls until rank 0 is done, and gets null (the command then returns).
// Rank 0 says on stderr how the experts are spread. Without mpirun: the plain model.
class InferenceModel {
 public:
  // `mmap`: the kernels read the weights in the files' mapping instead of a copy (WeightPlacement).
  InferenceModel(const std::string& command, const std::string& dir, bool with_mtp, bool expert_parallel,
                 bool mmap = false);
  ~InferenceModel();  // rank 0: tells the serving ranks that the run is over
  InferenceModel(const InferenceModel&) = delete;
  InferenceModel& operator=(const InferenceModel&) = delete;

  bool serving_done() const { return !model_; }  // a follower rank that has served to the end
  Model& operator*() { return *model_; }
  Model* operator->() { return model_.get(); }
  Model* get() { return model_.get(); }
  std::unique_ptr<Model>& ptr() { return model_; }
  bool expert_parallel() const { return ep_ != nullptr && ep_->comm->size() > 1; }
  nlohmann::json fields() const { return dist_fields(expert_parallel()); }
  const ExpertParallel* ep() const { return ep_.get(); }

 private:
  std::unique_ptr<ExpertParallel> ep_;
  std::unique_ptr<Model> model_;
};

}  // namespace qs::cli

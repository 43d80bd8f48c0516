#include "dist_cli.h"

#include <cstdio>
#include <cstring>
#include <set>

#include "commands.h"
#include "qiusuo/core/error.h"

namespace qs::cli {

void init_distributed(int argc, char** argv) {
  init_world();
  Comm& w = world();
  if (w.size() == 1) return;
  // The commands that run as one job over several ranks; any other would run N copies.
  // (sft, grpo and distill do not divide their batches among ranks yet: they refuse.)
  static const std::set<std::string> distributed = {"train", "generate", "chat", "score", "logits", "bench", "serve"};
  std::string cmd;
  for (int i = 1; i < argc; ++i)
    if (argv[i][0] != '-') {
      cmd = argv[i];
      break;
    }
  if (!cmd.empty() && !distributed.count(cmd))
    fail(ErrorKind::Unsupported, "qiusuo ", cmd, " does not run distributed, but mpirun started it as ", w.size(),
         " ranks: run it without mpirun (distributed commands: train, grpo, sft, distill with data/expert "
         "parallelism; generate, chat, score, logits, bench, serve with --expert-parallel)");
}

nlohmann::json dist_fields(bool expert_parallel) {
  return {{"world_size", world().size()}, {"expert_parallel", expert_parallel && world().size() > 1}};
}

InferenceModel::InferenceModel(const std::string& command, const std::string& dir, bool with_mtp,
                               bool expert_parallel, bool mmap) {
  Comm& w = world();
  if (w.size() > 1 && !expert_parallel)
    fail(ErrorKind::Unsupported, "qiusuo ", command, " was started by mpirun as ", w.size(),
         " ranks: inference runs distributed only with --expert-parallel (each rank maps its share of the "
         "routed experts); or run it without mpirun");
  if (w.size() == 1) {
    model_ = Model::load(dir, with_mtp, {nullptr, false, mmap});
    return;
  }
  const ModelConfig cfg = load_model_config(dir);
  QS_CHECK(cfg.n_routed_experts >= w.size(), "--expert-parallel over ", w.size(), " ranks: ", dir, " has ",
           cfg.n_routed_experts, " routed experts per MoE layer, fewer than the ranks");
  ep_ = std::make_unique<ExpertParallel>(w, cfg.n_routed_experts, /*leader_follower=*/true);
  if (w.rank() != 0) {
    auto m = Model::load(dir, with_mtp, {ep_.get(), /*experts_only=*/true, mmap});
    serve_experts(m->config(), m->weights(), *ep_);
    return;
  }
  model_ = Model::load(dir, with_mtp, {ep_.get(), false, mmap});
  const ExpertPlacement& pl = ep_->placement;
  std::string spread;
  for (int r = 0; r < pl.ranks; ++r)
    spread += (r ? ", " : "") + std::string("rank ") + std::to_string(r) + " [" + std::to_string(pl.begin(r)) + ", " +
              std::to_string(pl.end(r)) + ")";
  std::fprintf(stderr, "qiusuo %s: expert parallel over %d ranks (%s): routed experts of each MoE layer: %s\n",
               command.c_str(), w.size(), world_description().c_str(), spread.c_str());
}

InferenceModel::~InferenceModel() {
  if (ep_ && model_) {
    try {
      announce_expert_call(*ep_, {0, 0, 0});
    } catch (...) {
    }
  }
}

}  // namespace qs::cli

#include "qiusuo/rl/loop.h"

#include <cmath>
#include <cstdio>

#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"

namespace qs::rl {

nlohmann::json loop_settings() { return {{"threads", num_threads()}}; }

TrainLoop::TrainLoop(std::string what, TrainModel<float>& model, LoopOptions options)
    : what_(std::move(what)),
      model_(model),
      o_(std::move(options)),
      opt_(model.layout(), model.params().size(), o_.adam),
      progress_(o_.progress && !o_.quiet),
      budget_(o_.time_limit_s) {
  QS_CHECK(o_.steps >= 1, what_, ": the number of steps must be at least 1, not ", o_.steps);
  QS_CHECK(o_.save_every >= 1, what_, ": --save-every must be at least 1");
  QS_CHECK(o_.clip >= 0, what_, ": --clip must be >= 0");
  QS_CHECK(o_.lr.peak > 0 && std::isfinite(o_.lr.peak), what_, ": --lr must be positive, not ", o_.lr.peak);
  o_.lr.total = o_.steps;
  run_ = std::make_unique<RunDirectory>(o_.out_dir, o_.tokenizer_dir, o_.keep_last);
  const std::string from = run_->resume_source(o_.resume, o_.resume_from);
  const nlohmann::json common = loop_settings();
  for (const auto& [k, v] : common.items()) o_.settings[k] = v;
  if (!from.empty()) {
    st_ = run_->load(from, model_, opt_);
    resumed_ = true;
    for (const std::string& k : o_.must_match) {
      const nlohmann::json a = st_.settings.value(k, nlohmann::json()), b = o_.settings.value(k, nlohmann::json());
      if (a != b)
        fail(what_, ": cannot resume from ", from, ": it was run with ", k, " = ", a.dump(), ", this run has ",
             b.dump(), "; pass the same value (or start a fresh run in another directory)");
    }
    // A step count planned to fit a time budget stays as planned.
    if (st_.settings.contains("planned_steps") && st_.settings["planned_steps"].is_number_integer()) {
      o_.steps = st_.settings["planned_steps"].get<int64_t>();
      o_.lr.total = o_.steps;
      o_.settings["planned_steps"] = o_.steps;
    }
    if (!o_.quiet) progress_.note(str(what_, ": resumed from ", from, " at step ", st_.step));
  }
  st_.settings = o_.settings;
  first_step_ = st_.step;
  metrics_ = std::make_unique<MetricsLog>(run_->metrics_path(), resumed_ ? st_.step : -1);
}

TrainLoop::~TrainLoop() = default;

void TrainLoop::save() {
  st_.elapsed_s += unsaved_;
  unsaved_ = 0;
  if (before_save) before_save();
  checkpoint_ = run_->save(model_, opt_, st_, *metrics_);
  if (on_save) on_save();
}

double TrainLoop::update(const ExpertLoad& load) {
  const double lr = o_.lr.at(st_.step);
  const double grad_norm = clip_grad_norm(model_.layout(), model_.grads().data(), o_.clip);
  if (!std::isfinite(grad_norm))
    fail(ErrorKind::Internal, what_, ": the gradient is not finite at step ", st_.step + 1, "; lower --lr");
  opt_.step(model_.params().data(), model_.grads().data(), lr);
  if (o_.bias_speed > 0 && model_.config().topk_method == TopkMethod::NoauxTc)
    update_correction_bias(model_, load, o_.bias_speed);
  return grad_norm;
}

void TrainLoop::finish_step(StepReport r, double seconds) {
  const double grad_norm = update(r.load);
  end_step(std::move(r), seconds, grad_norm);
}

void TrainLoop::end_step(StepReport r, double seconds, double grad_norm) {
  const double lr = o_.lr.at(st_.step);
  ++st_.step;
  st_.tokens_seen += r.tokens;
  session_time_ += seconds;
  unsaved_ += seconds;

  nlohmann::json m = {{"step", st_.step}, {"lr", lr}, {"grad_norm", grad_norm}};
  for (const auto& [k, v] : r.metrics.items()) m[k] = v;
  m["tokens"] = st_.tokens_seen;
  m["time_s"] = elapsed();
  if (!r.load.empty()) {
    const ExpertLoadSummary s = summarize_expert_load(r.load);
    m["expert_load"] = s.fractions;
    m["expert_load_max"] = s.max_ratio;
  }
  const int64_t session_steps = st_.step - first_step_;
  if (progress_.enabled()) {
    const double eta = double(o_.steps - st_.step) * session_time_ / double(session_steps);
    char head[96], tail[96];
    std::snprintf(head, sizeof head, "%s step %lld/%lld | ", what_.c_str(), (long long)st_.step, (long long)o_.steps);
    std::snprintf(tail, sizeof tail, " | lr %.2e | ETA %s", lr, format_duration(eta).c_str());
    progress_.update(head + r.progress + tail,
                     st_.step % std::max<int64_t>(1, o_.steps / 20) == 0 || st_.step == o_.steps);
  }
  const int64_t fit = budget_.replan(st_.step, session_steps, session_time_, elapsed(), o_.steps);
  if (fit >= 0) {
    o_.steps = fit;
    o_.lr.total = fit;
    st_.settings["planned_steps"] = fit;
    if (!o_.quiet) {
      char note[200];
      std::snprintf(note, sizeof note, "%s: %.2f s per step: planning %lld steps to fit the %.1f-minute budget",
                    what_.c_str(), budget_.seconds_per_step(), (long long)fit, o_.time_limit_s / 60);
      progress_.note(note);
    }
  }
  stopped_ = interrupt_.raised() || budget_.out_of_time(elapsed());
  metrics_->append(m);
  if (st_.step % o_.save_every == 0 || st_.step >= o_.steps || stopped_) save();
  if (stopped_ && !o_.quiet && interrupt_.raised())
    progress_.note(str(what_, ": interrupted: checkpoint saved at step ", st_.step, " (continue with --resume)"));
}

}  // namespace qs::rl

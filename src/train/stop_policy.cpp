#include "mpitrain/train/stop_policy.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "mpitrain/core/number_text.hpp"

namespace mpitrain {

StopPolicy::StopPolicy(const StopOptions& o, std::optional<Target> target, bool track_best, TrainProgress& progress)
    : o_(o), target_(std::move(target)), pr_(progress) {
  if (o.early_stop_patience > 0) {
    early_.emplace(o.early_stop_metric, o.early_stop_patience, o.early_stop_min_delta);
    if (pr_.best_epoch > 0) early_->restore(pr_.best_epoch, pr_.best_value);
  }
  // The best model is kept by the validation metric (the early-stopping one if set).
  best_metric_ = early_ ? early_->metric() : "val_loss";
  if (track_best) best_.emplace(best_metric_, 0, 0.0);
  if (best_ && pr_.best_ckpt_epoch > 0) best_->restore(pr_.best_ckpt_epoch, pr_.best_ckpt_value);
  if (pr_.global_step == 0) pr_.first_loss = std::numeric_limits<double>::quiet_NaN();
}

std::string StopPolicy::divergence(long long global_step, double step_loss, double grad_norm) {
  if (global_step == 0) pr_.first_loss = step_loss;
  if (!std::isfinite(step_loss) || !std::isfinite(grad_norm)) return "the loss or gradient is not finite";
  if (o_.divergence_factor > 0 && pr_.first_loss > 0 && step_loss > o_.divergence_factor * pr_.first_loss)
    return "the loss " + format_number("%.4g", step_loss) + " exceeds " + format_number("%g", o_.divergence_factor) +
           " x the first step's " + format_number("%.4g", pr_.first_loss);
  return "";
}

bool StopPolicy::check_target(const EpochMetrics& m, long long epoch, double time_s, double train_time_s) {
  if (!target_ || pr_.target_epoch != 0) return false;
  const auto it = m.find(target_->metric);
  if (it == m.end() || !target_->reached(it->second)) {
    pr_.target_streak = 0;  // --target-hold: the run of evaluations is broken
    return false;
  }
  if (pr_.target_streak++ == 0) {  // the first evaluation of a run: where the crossing is
    pr_.target_first_epoch = epoch + 1;
    pr_.target_first_step = pr_.global_step;
    pr_.target_first_samples = pr_.samples;
    pr_.target_first_time_s = time_s;
    pr_.target_first_train_time_s = train_time_s;
  }
  if (pr_.target_streak < std::max(o_.target_hold, 1LL)) return false;
  pr_.target_epoch = pr_.target_first_epoch;
  pr_.target_step = pr_.target_first_step;
  pr_.target_samples = pr_.target_first_samples;
  pr_.target_time_s = pr_.target_first_time_s;
  pr_.target_train_time_s = pr_.target_first_train_time_s;
  return true;
}

StopPolicy::EpochVerdict StopPolicy::end_epoch(long long epoch, const EpochMetrics& m) {
  // A metric that was not measured reads as 0, as std::map::operator[] gave before.
  const auto value = [&m](const std::string& k) { const auto it = m.find(k); return it == m.end() ? 0.0 : it->second; };
  EpochVerdict v;
  v.stop_early = early_ && early_->update(epoch + 1, value(early_->metric()));
  if (early_) {
    pr_.best_epoch = early_->best_epoch();
    pr_.best_value = early_->best_value();
  }
  if (best_) best_->update(epoch + 1, value(best_metric_));
  v.new_best = best_ && best_->best_epoch() == epoch + 1;
  return v;
}

void StopPolicy::save() const {
  if (!best_) return;
  pr_.best_ckpt_epoch = best_->best_epoch();
  pr_.best_ckpt_value = best_->best_value();
}

}  // namespace mpitrain

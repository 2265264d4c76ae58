// AdaScale's gain and its scale-invariant schedule (adascale.hpp).
#include "mpitrain/optim/adascale.hpp"

#include <algorithm>
#include <cmath>

#include "mpitrain/core/epoch_steps.hpp"
#include "mpitrain/core/errors.hpp"

namespace mpitrain {

double adascale_gain(double trace_s, double g2, double global_batch, double ref_batch) {
  const double scale = global_batch / ref_batch;
  if (!std::isfinite(trace_s) || !std::isfinite(g2)) return 1.0;
  const double var = std::max(trace_s, 0.0), sqr = std::max(g2, 0.0);
  const double den = var / global_batch + sqr;
  if (!(den > 0)) return 1.0;
  const double gain = (var / ref_batch + sqr) / den;
  return std::clamp(gain, std::min(1.0, scale), std::max(1.0, scale));
}

namespace {

ScheduleOptions reference_options(ScheduleOptions o) {
  o.scaling = LrScaling::kNone;  // base_lr is the rate at ref_batch; the gain does the rest
  o.hold_lr_on_batch_change = false;
  return o;
}

}  // namespace

AdaScaleSchedule::AdaScaleSchedule(const ScheduleOptions& options, long long train_rows, bool drop_last)
    : train_rows_(train_rows), drop_last_(drop_last) {
  if (options.ref_batch > train_rows)
    throw UserError("--lr-scaling adascale: --ref-batch " + std::to_string(options.ref_batch) +
                    " is larger than the training set (" + std::to_string(train_rows) +
                    " rows): the reference run must have steps; lower --ref-batch");
  reference_ = std::make_unique<LrSchedule>(reference_options(options),
                                            std::vector<BatchPhase>{{0, options.ref_batch}}, train_rows, drop_last);
}

long long AdaScaleSchedule::reference_steps_per_epoch() const { return reference_->steps_in_epoch(0); }

double AdaScaleSchedule::total_iterations() const { return static_cast<double>(reference_->total_steps()); }

double AdaScaleSchedule::lr_at(double tau) const {
  const long long n = reference_steps_per_epoch();
  const auto total = reference_->total_steps();
  const long long step = std::clamp(static_cast<long long>(std::floor(tau)), 0LL, total - 1);
  StepPosition p = reference_->position(step / n, step % n);
  p.epoch_pos = std::min(tau, static_cast<double>(total)) / static_cast<double>(n);  // decay follows tau smoothly
  return reference_->lr_at(p);
}

long long AdaScaleSchedule::max_epochs(long long global_batch) const {
  const double min_gain = std::min(1.0, static_cast<double>(global_batch) / static_cast<double>(reference_->options().ref_batch));
  const double steps = std::ceil(total_iterations() / min_gain);
  const long long per_epoch = steps_per_epoch(train_rows_, global_batch, drop_last_);
  return std::max(1LL, static_cast<long long>(std::ceil(steps / static_cast<double>(per_epoch))));
}

}  // namespace mpitrain

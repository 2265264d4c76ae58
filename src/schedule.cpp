#include "mpitrain/schedule.hpp"

#include <cmath>

#include "mpitrain/errors.hpp"

namespace mpitrain {

LrScaling parse_lr_scaling(const std::string& name) {
  if (name == "none") return LrScaling::kNone;
  if (name == "linear") return LrScaling::kLinear;
  if (name == "sqrt") return LrScaling::kSqrt;
  throw UserError("unknown --lr-scaling '" + name + "': use none, linear or sqrt");
}

const char* lr_scaling_name(LrScaling s) {
  switch (s) {
    case LrScaling::kNone: return "none";
    case LrScaling::kLinear: return "linear";
    case LrScaling::kSqrt: return "sqrt";
  }
  return "?";
}

double scaled_lr(double base_lr, long long ref_batch, long long global_batch, LrScaling rule) {
  const double k = static_cast<double>(global_batch) / static_cast<double>(ref_batch);
  switch (rule) {
    case LrScaling::kNone: return base_lr;
    case LrScaling::kLinear: return base_lr * k;
    case LrScaling::kSqrt: return base_lr * std::sqrt(k);
  }
  return base_lr;
}

double LrSchedule::warmup_start_lr() const { return target_lr > base_lr ? base_lr : 0.0; }

double LrSchedule::lr_at(long long global_step) const {
  if (global_step >= warmup_steps) return target_lr;
  const double start = warmup_start_lr();
  const double frac = static_cast<double>(global_step + 1) / static_cast<double>(warmup_steps);
  return start + (target_lr - start) * frac;
}

}  // namespace mpitrain

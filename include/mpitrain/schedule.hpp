// The learning rate as a pure function of the step. `--lr` is the base rate
// tuned at `--ref-batch`; the scaling rule turns it into the effective rate
// for the global batch B:
//   none:   lr
//   linear: lr * B / ref            (Goyal et al. 2017, arXiv:1706.02677)
//   sqrt:   lr * sqrt(B / ref)      (Krizhevsky 2014; Hoffer et al. 2017)
// Warmup ramps linearly per step over the first W steps (Goyal et al. 2.2).
#pragma once
#include <string>

namespace mpitrain {

enum class LrScaling { kNone, kLinear, kSqrt };
LrScaling parse_lr_scaling(const std::string& name);  // UserError if unknown
const char* lr_scaling_name(LrScaling s);

double scaled_lr(double base_lr, long long ref_batch, long long global_batch, LrScaling rule);

struct LrSchedule {
  double base_lr = 0.1;       // the rate at the reference batch
  double target_lr = 0.1;     // the scaled (effective) rate
  long long warmup_steps = 0;

  // Warmup starts from the reference-batch rate when the rule raised the
  // rate (Goyal et al.), else from 0; it reaches target_lr at step W-1.
  double warmup_start_lr() const;
  double lr_at(long long global_step) const;
};

}  // namespace mpitrain

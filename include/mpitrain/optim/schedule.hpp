// The learning rate as a pure function of where a step sits in training.
//
// lr(step) = scaled_rate(B of the step) * warmup_factor(step) * decay_factor(step)
//
// Scaling turns `--lr`, the base rate tuned at `--ref-batch`, into the rate
// for the global batch B:
//   none:   lr
//   linear: lr * B / ref            (Goyal et al. 2017, arXiv:1706.02677)
//   sqrt:   lr * sqrt(B / ref)      (Krizhevsky 2014; Hoffer et al. 2017)
//   adascale: lr x a gain measured every step (adascale.hpp), on a schedule
//           counted in scale-invariant iterations; this class then only
//           counts the steps of the real batch.
// Warmup ramps linearly per step over the first W steps (Goyal et al. 2.2),
// as a factor of the final rate, so a resumed run gets the same value:
//   warmup_factor(s) = f0 + (1 - f0) * min(1, (s + 1) / W)
// Decay runs after warmup; its progress t in [0, 1] is measured in epochs
// from the end of warmup to the end of training. A batch-size schedule
// (Smith, Kindermans & Le 2017, arXiv:1711.00489) changes B at epoch
// boundaries; steps per epoch follow the current B.
#pragma once
#include <string>
#include <vector>

namespace mpitrain {

enum class LrScaling { kNone, kLinear, kSqrt, kAdaScale };
LrScaling parse_lr_scaling(const std::string& name);  // UserError if unknown
const char* lr_scaling_name(LrScaling s);

double scaled_lr(double base_lr, long long ref_batch, long long global_batch, LrScaling rule);

enum class LrDecay { kNone, kStep, kCosine, kPoly, kExponential };
LrDecay parse_lr_decay(const std::string& name);  // UserError if unknown
const char* lr_decay_name(LrDecay d);

// From epoch index `from_epoch` on (0-based: after that many completed
// epochs), the global batch is `global_batch`.
struct BatchPhase {
  long long from_epoch = 0;
  long long global_batch = 0;
};

// Parses "EPOCH:B,EPOCH:B,..." (e.g. "5:512,10:1024"); the result starts with
// {0, initial_batch}. Epochs must be > 0 and strictly increasing, B >= 1.
// An empty text gives just the initial phase. UserError on malformed text.
std::vector<BatchPhase> parse_batch_schedule(const std::string& text, long long initial_batch);
long long batch_at_epoch(const std::vector<BatchPhase>& phases, long long epoch);

// Parses "30,60,80" into epochs (non-negative, strictly increasing).
std::vector<double> parse_milestones(const std::string& text);

struct ScheduleOptions {
  double base_lr = 0.1;
  long long ref_batch = 256;
  LrScaling scaling = LrScaling::kLinear;
  // true: when the batch schedule raises B, keep the rate of the first B
  // (Smith et al.'s "increase the batch instead of decaying the rate").
  bool hold_lr_on_batch_change = false;
  double warmup_epochs = 0.0;    // at most one of these two is > 0
  long long warmup_steps = 0;
  // f0, the fraction of the final rate warmup starts from. < 0 means auto:
  // the reference-batch rate (base_lr / scaled rate of the first B) when the
  // rule raises the rate, else 0.
  double warmup_start_factor = -1.0;
  LrDecay decay = LrDecay::kNone;
  std::vector<double> milestones;  // step decay: x gamma at each epoch milestone reached (absolute epochs)
  double gamma = 0.1;              // step: per milestone; exponential: per epoch after warmup
  double final_fraction = 0.0;     // cosine and poly end at this fraction of the rate
  double poly_power = 2.0;         // poly: (1 - t)^power, as LARS uses
  long long epochs = 1;
};

// The one check of the schedule options (run by the config before training
// and by LrSchedule): UserError naming the option and its valid range.
// `epochs` is checked by LrSchedule (the config checks --epochs itself).
void check_schedule_options(const ScheduleOptions& options);

// Where a step sits in training.
struct StepPosition {
  long long epoch = 0;          // 0-based
  long long step_in_epoch = 0;  // 0-based
  long long global_step = 0;    // optimizer steps done before this one
  double epoch_pos = 0.0;       // epoch + step_in_epoch / steps in that epoch
  long long global_batch = 0;   // B of this step's epoch
};

class LrSchedule {
 public:
  LrSchedule(const ScheduleOptions& options, std::vector<BatchPhase> phases, long long train_rows,
             bool drop_last);

  long long steps_in_epoch(long long epoch) const;
  long long total_steps() const;
  StepPosition position(long long epoch, long long step_in_epoch) const;

  double scaled_rate(long long global_batch) const;  // honours hold_lr_on_batch_change
  double warmup_start_factor() const;                // f0 after resolving "auto"
  long long warmup_total_steps() const;              // W in steps (warmup_epochs converted through the phases)
  double warmup_factor(const StepPosition& p) const;
  double decay_factor(const StepPosition& p) const;
  double lr_at(const StepPosition& p) const;

  // The whole plan for the run header: start, end of warmup, each decay
  // milestone and batch change, and the end (the last step).
  struct PlanRow {
    std::string what;
    long long global_step = 0;
    double epoch_pos = 0.0;
    long long global_batch = 0;
    double lr = 0.0;
  };
  std::vector<PlanRow> plan() const;

  const ScheduleOptions& options() const { return options_; }
  const std::vector<BatchPhase>& phases() const { return phases_; }

 private:
  ScheduleOptions options_;
  std::vector<BatchPhase> phases_;
  long long train_rows_;
  bool drop_last_;
  long long warmup_steps_ = 0;
  double decay_start_epoch_ = 0.0;  // epoch_pos where warmup ends
};

}  // namespace mpitrain

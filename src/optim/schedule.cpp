// The learning rate as a pure function of a step's position (schedule.hpp):
// option parsing, the batch-size schedule's step arithmetic, and the product
// scaled_rate * warmup_factor * decay_factor.
#include "mpitrain/optim/schedule.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numbers>
#include <sstream>
#include <utility>

#include "mpitrain/core/epoch_steps.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/list_text.hpp"
#include "mpitrain/core/number_text.hpp"

namespace mpitrain {
namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw UserError(message);
}

std::string text(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

// Steps of all epochs before `epoch`, one multiplication per batch phase.
long long steps_before_epoch(const std::vector<BatchPhase>& phases, long long rows, bool drop_last,
                             long long epoch) {
  long long steps = 0;
  for (std::size_t i = 0; i < phases.size() && phases[i].from_epoch < epoch; ++i) {
    const long long end = i + 1 < phases.size() ? std::min(phases[i + 1].from_epoch, epoch) : epoch;
    steps += (end - phases[i].from_epoch) * steps_per_epoch(rows, phases[i].global_batch, drop_last);
  }
  return steps;
}

// Position of global step `step` (< total_steps()): walk the epochs.
StepPosition position_of_step(const LrSchedule& s, long long step) {
  for (long long epoch = 0;; ++epoch) {
    const long long n = s.steps_in_epoch(epoch);
    if (step < n) return s.position(epoch, step);
    step -= n;
  }
}

}  // namespace

LrScaling parse_lr_scaling(const std::string& name) {
  if (name == "none") return LrScaling::kNone;
  if (name == "linear") return LrScaling::kLinear;
  if (name == "sqrt") return LrScaling::kSqrt;
  if (name == "adascale") return LrScaling::kAdaScale;
  throw UserError("unknown --lr-scaling '" + name + "': use none, linear, sqrt or adascale");
}

const char* lr_scaling_name(LrScaling s) {
  switch (s) {
    case LrScaling::kNone: return "none";
    case LrScaling::kLinear: return "linear";
    case LrScaling::kSqrt: return "sqrt";
    case LrScaling::kAdaScale: return "adascale";
  }
  return "?";
}

double scaled_lr(double base_lr, long long ref_batch, long long global_batch, LrScaling rule) {
  const double k = static_cast<double>(global_batch) / static_cast<double>(ref_batch);
  switch (rule) {
    case LrScaling::kNone: return base_lr;
    case LrScaling::kLinear: return base_lr * k;
    case LrScaling::kSqrt: return base_lr * std::sqrt(k);
    case LrScaling::kAdaScale: return base_lr;  // times the step's gain (adascale.hpp)
  }
  return base_lr;
}

constexpr const char* kDecayNames[] = {"none", "step", "cosine", "poly", "exponential"};  // LrDecay order

LrDecay parse_lr_decay(const std::string& name) {
  for (int d = 0; d < 5; ++d)
    if (name == kDecayNames[d]) return static_cast<LrDecay>(d);
  throw UserError("unknown --lr-decay '" + name + "': use none, step, cosine, poly or exponential");
}

const char* lr_decay_name(LrDecay d) { return kDecayNames[static_cast<int>(d)]; }

std::vector<BatchPhase> parse_batch_schedule(const std::string& text_in, long long initial_batch) {
  std::vector<BatchPhase> phases{{0, initial_batch}};
  for (const auto& item : split_items(text_in)) {
    const auto check = [&](bool ok, const std::string& why) {
      require(ok, "--batch-schedule '" + text_in + "': '" + item + "' " + why +
                      ": write EPOCH:BATCH pairs like 5:512,10:1024");
    };
    BatchPhase p;
    check(parse_integer_pair(item, p.from_epoch, p.global_batch), "is not two integers EPOCH:BATCH");
    check(p.from_epoch > 0, "has an epoch <= 0 (epoch 0 runs at --global-batch)");
    check(p.from_epoch > phases.back().from_epoch, "is not after the previous epoch (epochs must increase)");
    check(p.global_batch >= 1, "has a global batch < 1");
    phases.push_back(p);
  }
  return phases;
}

long long batch_at_epoch(const std::vector<BatchPhase>& phases, long long epoch) {
  long long batch = phases.empty() ? 0 : phases.front().global_batch;
  for (const auto& p : phases)
    if (p.from_epoch <= epoch) batch = p.global_batch;
  return batch;
}

std::vector<double> parse_milestones(const std::string& text_in) {
  std::vector<double> epochs;
  for (const auto& item : split_items(text_in)) {
    double e = 0.0;
    require(parse_number(item, e) && std::isfinite(e) && e >= 0 && (epochs.empty() || e > epochs.back()),
            "--lr-milestones '" + text_in + "': '" + item +
                "' is not an epoch >= 0 after the previous one: write increasing epochs like 30,60,80");
    epochs.push_back(e);
  }
  return epochs;
}

void check_schedule_options(const ScheduleOptions& s) {
  // Every check also refuses NaN.
  require(std::isfinite(s.base_lr) && s.base_lr > 0,
          "--lr must be a finite number > 0 (got " + shortest_text(s.base_lr) + ")");
  require(s.ref_batch >= 1, "--ref-batch must be at least 1 (got " + std::to_string(s.ref_batch) + ")");
  require(std::isfinite(s.warmup_epochs) && s.warmup_epochs >= 0,
          "--warmup-epochs must be a finite number >= 0 (got " + shortest_text(s.warmup_epochs) + ")");
  require(s.warmup_steps >= 0, "--warmup-steps must be >= 0");
  require(!(s.warmup_epochs > 0 && s.warmup_steps > 0), "give --warmup-epochs or --warmup-steps, not both");
  require(std::isfinite(s.warmup_start_factor) && s.warmup_start_factor <= 1,
          "--warmup-start-factor must be in [0, 1] (or negative for automatic)");
  require(s.decay != LrDecay::kStep || !s.milestones.empty(),
          "--lr-decay step needs --lr-milestones, e.g. --lr-milestones 10,20");
  require(std::isfinite(s.gamma) && s.gamma > 0, "--lr-gamma must be a finite number > 0");
  require(std::isfinite(s.final_fraction) && s.final_fraction >= 0 && s.final_fraction <= 1,
          "--lr-final-fraction must be in [0, 1]");
  require(std::isfinite(s.poly_power) && s.poly_power > 0, "--lr-poly-power must be > 0");
}

LrSchedule::LrSchedule(const ScheduleOptions& options, std::vector<BatchPhase> phases, long long train_rows,
                       bool drop_last)
    : options_(options), phases_(std::move(phases)), train_rows_(train_rows), drop_last_(drop_last) {
  const ScheduleOptions& o = options_;
  require(o.epochs >= 1, "--epochs must be at least 1 (got " + std::to_string(o.epochs) + ")");
  check_schedule_options(o);
  require(std::is_sorted(o.milestones.begin(), o.milestones.end()) && (o.milestones.empty() || o.milestones[0] >= 0),
          "--lr-milestones must be epochs >= 0 in increasing order, like 30,60,80");
  require(!phases_.empty() && phases_.front().from_epoch == 0, "--batch-schedule: the first phase must start at epoch 0");
  require(train_rows_ >= 1, "the training set has no rows: use a dataset with training data");
  for (std::size_t i = 0; i < phases_.size(); ++i) {
    const BatchPhase& p = phases_[i];
    require(p.global_batch >= 1 && (i == 0 || p.from_epoch > phases_[i - 1].from_epoch),
            "--batch-schedule: epochs must increase and every global batch must be >= 1");
    require(p.from_epoch >= o.epochs || steps_per_epoch(train_rows_, p.global_batch, drop_last_) >= 1,
            "--drop-last with global batch " + std::to_string(p.global_batch) + " > " +
                std::to_string(train_rows_) + " training rows leaves no steps: lower the batch or drop --drop-last");
  }

  if (o.warmup_steps > 0) {
    warmup_steps_ = o.warmup_steps;
  } else if (o.warmup_epochs > 0) {
    // Whole epochs count their actual steps (B may change); the fraction is of the next epoch.
    const double whole = std::floor(o.warmup_epochs);
    const auto epoch = static_cast<long long>(whole);
    warmup_steps_ = position(epoch, 0).global_step +
                    std::llround((o.warmup_epochs - whole) * static_cast<double>(steps_in_epoch(epoch)));
  }
  // Warmup longer than training: decay never starts.
  decay_start_epoch_ = warmup_steps_ >= total_steps() ? static_cast<double>(o.epochs)
                                                      : position_of_step(*this, warmup_steps_).epoch_pos;
}

long long LrSchedule::steps_in_epoch(long long epoch) const {
  return steps_per_epoch(train_rows_, batch_at_epoch(phases_, epoch), drop_last_);
}

long long LrSchedule::total_steps() const {
  return steps_before_epoch(phases_, train_rows_, drop_last_, options_.epochs);
}

StepPosition LrSchedule::position(long long epoch, long long step_in_epoch) const {
  const long long n = steps_in_epoch(epoch);
  StepPosition p;
  p.epoch = epoch;
  p.step_in_epoch = step_in_epoch;
  p.global_step = steps_before_epoch(phases_, train_rows_, drop_last_, epoch) + step_in_epoch;
  p.epoch_pos = static_cast<double>(epoch) +
                (n > 0 ? static_cast<double>(step_in_epoch) / static_cast<double>(n) : 0.0);
  p.global_batch = batch_at_epoch(phases_, epoch);
  return p;
}

double LrSchedule::scaled_rate(long long global_batch) const {
  const long long b = options_.hold_lr_on_batch_change ? phases_.front().global_batch : global_batch;
  return scaled_lr(options_.base_lr, options_.ref_batch, b, options_.scaling);
}

double LrSchedule::warmup_start_factor() const {
  if (options_.warmup_start_factor >= 0) return options_.warmup_start_factor;
  // Auto: start from the rate tuned at the reference batch when the rule raises it.
  const double r = options_.base_lr / scaled_rate(phases_.front().global_batch);
  return r < 1 ? r : 0.0;
}

long long LrSchedule::warmup_total_steps() const { return warmup_steps_; }

double LrSchedule::warmup_factor(const StepPosition& p) const {
  if (p.global_step >= warmup_steps_) return 1.0;
  const double f0 = warmup_start_factor();
  const double ramp = static_cast<double>(p.global_step + 1) / static_cast<double>(warmup_steps_);
  return f0 + (1.0 - f0) * std::min(1.0, ramp);
}

double LrSchedule::decay_factor(const StepPosition& p) const {
  const ScheduleOptions& o = options_;
  if (o.decay == LrDecay::kStep) {  // absolute epochs, warmup or not
    const auto reached = std::count_if(o.milestones.begin(), o.milestones.end(),
                                       [&](double m) { return p.epoch_pos >= m; });
    return std::pow(o.gamma, static_cast<double>(reached));
  }
  if (o.decay == LrDecay::kNone || p.global_step < warmup_steps_) return 1.0;
  const double span = static_cast<double>(o.epochs) - decay_start_epoch_;
  const double t = span > 0 ? std::clamp((p.epoch_pos - decay_start_epoch_) / span, 0.0, 1.0) : 1.0;
  const double ff = o.final_fraction;
  switch (o.decay) {
    case LrDecay::kCosine: return ff + (1 - ff) * 0.5 * (1 + std::cos(std::numbers::pi * t));
    case LrDecay::kPoly: return ff + (1 - ff) * std::pow(1 - t, o.poly_power);
    case LrDecay::kExponential: return std::pow(o.gamma, std::max(0.0, p.epoch_pos - decay_start_epoch_));
    default: return 1.0;
  }
}

double LrSchedule::lr_at(const StepPosition& p) const {
  return scaled_rate(p.global_batch) * warmup_factor(p) * decay_factor(p);
}

std::vector<LrSchedule::PlanRow> LrSchedule::plan() const {
  std::vector<PlanRow> rows;
  const auto add = [&](std::string what, const StepPosition& p) {
    rows.push_back({std::move(what), p.global_step, p.epoch_pos, p.global_batch, lr_at(p)});
  };
  const long long total = total_steps();
  const long long epochs = options_.epochs;
  add("start", position(0, 0));
  if (warmup_steps_ > 0 && warmup_steps_ < total) add("end of warmup", position_of_step(*this, warmup_steps_));
  if (options_.decay == LrDecay::kStep) {
    for (double m : options_.milestones) {
      if (m >= static_cast<double>(epochs)) continue;  // no step of training reaches it
      auto epoch = static_cast<long long>(m);  // the first step with epoch_pos >= m
      long long s = 0;
      while (s < steps_in_epoch(epoch) && position(epoch, s).epoch_pos < m) ++s;
      if (s == steps_in_epoch(epoch)) { ++epoch; s = 0; }
      if (epoch < epochs) add("milestone " + text(m), position(epoch, s));
    }
  }
  for (std::size_t i = 1; i < phases_.size(); ++i)
    if (phases_[i].from_epoch < epochs)
      add("batch " + std::to_string(phases_[i].global_batch), position(phases_[i].from_epoch, 0));
  add("end", position_of_step(*this, total - 1));
  std::stable_sort(rows.begin(), rows.end(),
                   [](const PlanRow& a, const PlanRow& b) { return a.global_step < b.global_step; });
  return rows;
}

}  // namespace mpitrain

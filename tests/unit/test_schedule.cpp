// Tests of the learning-rate schedule (schedule.hpp) against values computed
// by hand in the comments, never by calling the code under test.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "mpitrain/core/epoch_steps.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/optim/schedule.hpp"

using namespace mpitrain;

namespace {

constexpr double kTol = 1e-12;

// base 0.1 tuned at ref 100, rule none, 10 epochs, no warmup, no decay.
ScheduleOptions options() {
  ScheduleOptions o;
  o.base_lr = 0.1;
  o.ref_batch = 100;
  o.scaling = LrScaling::kNone;
  o.epochs = 10;
  return o;
}

std::vector<BatchPhase> single(long long global_batch) { return {{0, global_batch}}; }

double lr(const LrSchedule& s, long long epoch, long long step_in_epoch) {
  return s.lr_at(s.position(epoch, step_in_epoch));
}

// `make` must throw a UserError whose message contains every one of `needles`.
void expect_user_error(const std::function<void()>& make, const std::vector<std::string>& needles,
                       const std::string& label) {
  try {
    make();
    ADD_FAILURE() << "no UserError for " << label;
  } catch (const UserError& e) {
    for (const auto& needle : needles)
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
          << label << ": '" << e.what() << "' lacks '" << needle << "'";
  }
}

}  // namespace

TEST(Schedule, ScaledLrHandValues) {
  // base 0.1 tuned at 256, run at 1024 (k = 4).
  EXPECT_DOUBLE_EQ(scaled_lr(0.1, 256, 1024, LrScaling::kNone), 0.1);
  EXPECT_DOUBLE_EQ(scaled_lr(0.1, 256, 1024, LrScaling::kLinear), 0.4);
  EXPECT_DOUBLE_EQ(scaled_lr(0.1, 256, 1024, LrScaling::kSqrt), 0.2);
  // Smaller than the reference batch lowers the rate (k = 1/4).
  EXPECT_DOUBLE_EQ(scaled_lr(0.1, 256, 64, LrScaling::kLinear), 0.025);
  EXPECT_DOUBLE_EQ(scaled_lr(0.1, 256, 64, LrScaling::kSqrt), 0.05);
  EXPECT_DOUBLE_EQ(scaled_lr(0.1, 256, 64, LrScaling::kNone), 0.1);
  // At the reference batch every rule gives the base rate.
  for (auto rule : {LrScaling::kNone, LrScaling::kLinear, LrScaling::kSqrt})
    EXPECT_DOUBLE_EQ(scaled_lr(0.05, 128, 128, rule), 0.05) << lr_scaling_name(rule);
  // Ratios that are not powers of two: no integer division of B by ref.
  EXPECT_DOUBLE_EQ(scaled_lr(0.1, 256, 384, LrScaling::kLinear), 0.15);
  EXPECT_NEAR(scaled_lr(0.1, 256, 100, LrScaling::kSqrt), 0.0625, kTol);  // 0.1 * sqrt(100/256) = 0.1 * 10/16
}

// The schedule counts steps with the sampler's function (core/epoch_steps.hpp),
// so the rate plan and the batches can never disagree on an epoch's length.
TEST(Schedule, StepsInEpochAreTheSamplersStepsPerEpoch) {
  EXPECT_EQ(steps_per_epoch(10000, 32, false), 313);  // DESIGN.md's example
  EXPECT_EQ(steps_per_epoch(10000, 32, true), 312);
  ScheduleOptions o = options();
  o.epochs = 3;
  for (const bool drop_last : {false, true}) {
    const LrSchedule s(o, {{0, 32}, {1, 100}, {2, 10000}}, 10000, drop_last);
    EXPECT_EQ(s.steps_in_epoch(0), drop_last ? 312 : 313);
    EXPECT_EQ(s.steps_in_epoch(1), 100);
    EXPECT_EQ(s.steps_in_epoch(2), 1);
    for (long long e = 0; e < 3; ++e)
      EXPECT_EQ(s.steps_in_epoch(e), steps_per_epoch(10000, batch_at_epoch(s.phases(), e), drop_last));
    EXPECT_EQ(s.total_steps(), (drop_last ? 312 : 313) + 100 + 1);
  }
}

TEST(Schedule, ParseLrScaling) {
  EXPECT_EQ(parse_lr_scaling("none"), LrScaling::kNone);
  EXPECT_EQ(parse_lr_scaling("linear"), LrScaling::kLinear);
  EXPECT_EQ(parse_lr_scaling("sqrt"), LrScaling::kSqrt);
  for (auto rule : {LrScaling::kNone, LrScaling::kLinear, LrScaling::kSqrt})
    EXPECT_EQ(parse_lr_scaling(lr_scaling_name(rule)), rule);
  for (const char* bad : {"cubic", "", "Linear", "linear "})
    expect_user_error([&] { parse_lr_scaling(bad); }, {"--lr-scaling", "sqrt"}, bad);
}

TEST(Schedule, ParseLrDecay) {
  EXPECT_EQ(parse_lr_decay("none"), LrDecay::kNone);
  EXPECT_EQ(parse_lr_decay("step"), LrDecay::kStep);
  EXPECT_EQ(parse_lr_decay("cosine"), LrDecay::kCosine);
  EXPECT_EQ(parse_lr_decay("poly"), LrDecay::kPoly);
  EXPECT_EQ(parse_lr_decay("exponential"), LrDecay::kExponential);
  EXPECT_STREQ(lr_decay_name(LrDecay::kExponential), "exponential");
  EXPECT_STREQ(lr_decay_name(LrDecay::kPoly), "poly");
  for (const char* bad : {"Cosine", "", "linear", "exp", "step "})
    expect_user_error([&] { parse_lr_decay(bad); }, {"--lr-decay", "cosine", "exponential"}, bad);
}

TEST(Schedule, WarmupFromAutoStartWhenTheRuleRaisesTheRate) {
  // base 0.1 at ref 256, linear, B 1024: full rate 0.4. Auto f0 = 0.1 / 0.4 = 0.25
  // (start at the rate tuned at the reference batch). W = 4, 10 steps per epoch.
  ScheduleOptions o = options();
  o.ref_batch = 256;
  o.scaling = LrScaling::kLinear;
  o.warmup_steps = 4;
  o.epochs = 2;
  LrSchedule s(o, single(1024), 10240, false);
  EXPECT_EQ(s.warmup_total_steps(), 4);
  EXPECT_DOUBLE_EQ(s.scaled_rate(1024), 0.4);
  EXPECT_DOUBLE_EQ(s.warmup_start_factor(), 0.25);
  // lr(s) = 0.4 * (0.25 + 0.75 * (s + 1) / 4)
  EXPECT_NEAR(s.warmup_factor(s.position(0, 0)), 0.4375, kTol);  // 0.25 + 0.75/4
  EXPECT_NEAR(lr(s, 0, 0), 0.175, kTol);                           // 0.4 * 0.4375
  EXPECT_NEAR(lr(s, 0, 1), 0.25, kTol);                            // 0.4 * 0.625
  EXPECT_NEAR(lr(s, 0, 2), 0.325, kTol);                           // 0.4 * 0.8125
  EXPECT_NEAR(lr(s, 0, 3), 0.4, kTol);                             // step W-1 reaches the full rate
  EXPECT_NEAR(lr(s, 0, 4), 0.4, kTol);
  EXPECT_NEAR(lr(s, 1, 9), 0.4, kTol);
}

TEST(Schedule, WarmupFromZeroWhenTheRuleDoesNotRaiseTheRate) {
  // Rule none, base 0.2: full rate == base, so f0 = 0. W = 10: lr = 0.2 * (s + 1) / 10.
  ScheduleOptions o = options();
  o.base_lr = 0.2;
  o.warmup_steps = 10;
  LrSchedule same(o, single(100), 1000, false);
  EXPECT_DOUBLE_EQ(same.warmup_start_factor(), 0.0);
  EXPECT_NEAR(lr(same, 0, 0), 0.02, kTol);
  EXPECT_NEAR(lr(same, 0, 4), 0.1, kTol);
  EXPECT_NEAR(lr(same, 0, 9), 0.2, kTol);
  EXPECT_NEAR(lr(same, 1, 0), 0.2, kTol);
  // Linear below the reference batch: base 0.1 at ref 256, B 64 -> 0.025 < base, so f0 = 0.
  // W = 5: lr = 0.025 * (s + 1) / 5.
  o = options();
  o.ref_batch = 256;
  o.scaling = LrScaling::kLinear;
  o.warmup_steps = 5;
  LrSchedule lower(o, single(64), 640, false);
  EXPECT_DOUBLE_EQ(lower.warmup_start_factor(), 0.0);
  EXPECT_NEAR(lr(lower, 0, 0), 0.005, kTol);
  EXPECT_NEAR(lr(lower, 0, 2), 0.015, kTol);
  EXPECT_NEAR(lr(lower, 0, 4), 0.025, kTol);
  EXPECT_NEAR(lr(lower, 0, 7), 0.025, kTol);
}

TEST(Schedule, WarmupFromAnExplicitStartFactor) {
  // base 0.1 at ref 100, linear, B 200: full rate 0.2. f0 = 0.5, W = 4:
  // lr = 0.2 * (0.5 + 0.5 * (s + 1) / 4).
  ScheduleOptions o = options();
  o.scaling = LrScaling::kLinear;
  o.warmup_steps = 4;
  o.warmup_start_factor = 0.5;
  LrSchedule half(o, single(200), 1000, false);
  EXPECT_DOUBLE_EQ(half.warmup_start_factor(), 0.5);
  EXPECT_NEAR(lr(half, 0, 0), 0.125, kTol);  // 0.2 * 0.625
  EXPECT_NEAR(lr(half, 0, 1), 0.15, kTol);   // 0.2 * 0.75
  EXPECT_NEAR(lr(half, 0, 2), 0.175, kTol);  // 0.2 * 0.875
  EXPECT_NEAR(lr(half, 0, 3), 0.2, kTol);
  // An explicit 0 overrides the auto start (which would be 0.1 / 0.2 = 0.5): 0.2 * 1/4.
  o.warmup_start_factor = 0.0;
  LrSchedule zero(o, single(200), 1000, false);
  EXPECT_DOUBLE_EQ(zero.warmup_start_factor(), 0.0);
  EXPECT_NEAR(lr(zero, 0, 0), 0.05, kTol);
  EXPECT_NEAR(lr(zero, 0, 2), 0.15, kTol);  // 0.2 * 3/4
}

TEST(Schedule, WarmupRisesInEqualStepsAndNeverOvershoots) {
  // base 0.05 at ref 256, linear, B 4096: full rate 0.8, auto f0 = 0.05/0.8 = 1/16, W = 37.
  ScheduleOptions o = options();
  o.base_lr = 0.05;
  o.ref_batch = 256;
  o.scaling = LrScaling::kLinear;
  o.warmup_steps = 37;
  LrSchedule s(o, single(4096), 4096 * 100, false);  // 100 steps per epoch
  // Each step adds (0.8 - 0.05) / 37; step 0 already adds one increment above the base.
  EXPECT_NEAR(lr(s, 0, 10) - lr(s, 0, 9), 0.75 / 37, kTol);
  EXPECT_NEAR(lr(s, 0, 0), 0.05 + 0.75 / 37, kTol);
  double prev = 0.0;
  for (long long step = 0; step < 100; ++step) {
    const double rate = lr(s, 0, step);
    EXPECT_GT(rate, prev - 1e-15) << "step " << step;
    EXPECT_LE(rate, 0.8 + 1e-15) << "step " << step;
    EXPECT_GT(rate, 0.05) << "step " << step;  // above the rate tuned at the reference batch
    prev = rate;
  }
}

TEST(Schedule, ZeroWarmupMeansTheFullRateFromStepZero) {
  ScheduleOptions o = options();
  o.scaling = LrScaling::kLinear;
  LrSchedule none(o, single(400), 4000, false);  // 0.1 * 400/100 = 0.4
  EXPECT_EQ(none.warmup_total_steps(), 0);
  EXPECT_NEAR(lr(none, 0, 0), 0.4, kTol);
  EXPECT_NEAR(lr(none, 9, 9), 0.4, kTol);
  o.warmup_steps = 1;  // one warmup step already ends at the full rate
  LrSchedule one(o, single(400), 4000, false);
  EXPECT_NEAR(lr(one, 0, 0), 0.4, kTol);
}

TEST(Schedule, WarmupEpochsAreConvertedToStepsThroughThePhases) {
  ScheduleOptions o = options();
  o.warmup_epochs = 1.5;  // N 1000, B 100: 10 steps per epoch -> 10 + round(0.5 * 10) = 15
  EXPECT_EQ(LrSchedule(o, single(100), 1000, false).warmup_total_steps(), 15);
  o.warmup_epochs = 0.25;  // round(0.25 * 10) = round(2.5) = 3, half away from zero
  EXPECT_EQ(LrSchedule(o, single(100), 1000, false).warmup_total_steps(), 3);
  // B 100 for epochs 0-1 (10 steps each), then B 250 (ceil(1000/250) = 4 steps each).
  const std::vector<BatchPhase> phases{{0, 100}, {2, 250}};
  o.warmup_epochs = 2.5;  // 10 + 10 + round(0.5 * 4) = 22, not 2.5 * 10 = 25
  EXPECT_EQ(LrSchedule(o, phases, 1000, false).warmup_total_steps(), 22);
  o.warmup_epochs = 2.3;  // 20 + round(0.3 * 4) = 20 + round(1.2) = 21
  EXPECT_EQ(LrSchedule(o, phases, 1000, false).warmup_total_steps(), 21);
  o.warmup_epochs = 3;  // 10 + 10 + 4 = 24
  EXPECT_EQ(LrSchedule(o, phases, 1000, false).warmup_total_steps(), 24);
  // drop_last: B 300 gives floor(1000/300) = 3 steps per epoch, not 4.
  o.warmup_epochs = 1;
  EXPECT_EQ(LrSchedule(o, single(300), 1000, true).warmup_total_steps(), 3);
  EXPECT_EQ(LrSchedule(o, single(300), 1000, false).warmup_total_steps(), 4);
}

TEST(Schedule, WarmupLongerThanTrainingNeverReachesTheFullRate) {
  // 2 epochs of 10 steps, warmup 3 epochs = 30 steps: the last step (19) is at 20/30.
  ScheduleOptions o = options();
  o.epochs = 2;
  o.warmup_epochs = 3;
  o.decay = LrDecay::kCosine;
  LrSchedule s(o, single(100), 1000, false);
  EXPECT_EQ(s.warmup_total_steps(), 30);
  EXPECT_NEAR(lr(s, 1, 9), 0.1 * 20.0 / 30.0, kTol);
  EXPECT_DOUBLE_EQ(s.decay_factor(s.position(1, 9)), 1.0);  // decay never started
}

TEST(Schedule, WarmupThenCosineDecay) {
  // base 0.05 at ref 50, linear, B 100: full rate 0.1, auto f0 = 0.5.
  // N 1000: 10 steps per epoch, 10 epochs, 100 steps. Warmup 1 epoch = 10 steps,
  // so decay starts at epoch_pos 1.0 and t = (epoch_pos - 1) / 9.
  ScheduleOptions o = options();
  o.base_lr = 0.05;
  o.ref_batch = 50;
  o.scaling = LrScaling::kLinear;
  o.warmup_epochs = 1;
  o.decay = LrDecay::kCosine;
  LrSchedule s(o, single(100), 1000, false);
  EXPECT_EQ(s.total_steps(), 100);
  EXPECT_EQ(s.warmup_total_steps(), 10);
  EXPECT_NEAR(lr(s, 0, 0), 0.055, kTol);  // 0.1 * (0.5 + 0.5 * 1/10)
  EXPECT_NEAR(lr(s, 0, 4), 0.075, kTol);  // 0.1 * (0.5 + 0.5 * 5/10)
  EXPECT_DOUBLE_EQ(s.decay_factor(s.position(0, 9)), 1.0);  // no decay during warmup
  EXPECT_NEAR(lr(s, 0, 9), 0.1, kTol);
  EXPECT_NEAR(lr(s, 1, 0), 0.1, kTol);    // end of warmup: t = 0
  EXPECT_NEAR(lr(s, 4, 0), 0.075, kTol);  // t = 3/9: 0.5 * (1 + cos(pi/3)) = 0.75
  EXPECT_NEAR(lr(s, 5, 5), 0.05, kTol);   // t = 4.5/9 = 0.5: 0.5 * (1 + 0) = 0.5
  // Last step 99, epoch_pos 9.9, t = 8.9/9: 0.5 * (1 + cos(pi * 8.9/9)) = 0.5 * (1 - cos(2 deg))
  // = 0.5 * (1 - 0.99939082701909573) = 3.0458649045e-4; lr = 3.0458649045e-5 (not yet 0).
  EXPECT_NEAR(lr(s, 9, 9), 3.0458649045e-5, 1e-15);
  // A final fraction of 0.2 lifts the floor: middle = 0.2 + 0.8 * 0.5 = 0.6.
  o.final_fraction = 0.2;
  LrSchedule floor(o, single(100), 1000, false);
  EXPECT_NEAR(lr(floor, 5, 5), 0.06, kTol);
  EXPECT_NEAR(lr(floor, 4, 0), 0.08, kTol);  // 0.2 + 0.8 * 0.75 = 0.8
}

TEST(Schedule, StepDecayAtMilestones) {
  // base 0.1, rule none, 10 steps per epoch, milestones 3 and 6.5, gamma 0.1.
  ScheduleOptions o = options();
  o.decay = LrDecay::kStep;
  o.milestones = {3, 6.5};
  o.gamma = 0.1;
  LrSchedule s(o, single(100), 1000, false);
  EXPECT_NEAR(lr(s, 2, 9), 0.1, kTol);    // epoch_pos 2.9 < 3
  EXPECT_NEAR(lr(s, 3, 0), 0.01, kTol);   // 3.0 reaches the first milestone
  EXPECT_NEAR(lr(s, 6, 4), 0.01, kTol);   // 6.4 < 6.5
  EXPECT_NEAR(lr(s, 6, 5), 0.001, kTol);  // 6.5: x 0.1 again
  EXPECT_NEAR(lr(s, 9, 9), 0.001, kTol);
  // Milestones are absolute epochs and apply during warmup too: warmup 2 epochs
  // (W = 20, f0 = 0), milestone 1: step 15 = 0.1 * 16/20 * 0.1 = 0.008.
  o.milestones = {1};
  o.warmup_epochs = 2;
  LrSchedule warm(o, single(100), 1000, false);
  EXPECT_NEAR(lr(warm, 0, 9), 0.05, kTol);  // 0.1 * 10/20, before the milestone
  EXPECT_NEAR(lr(warm, 1, 5), 0.008, kTol);
  EXPECT_NEAR(lr(warm, 2, 0), 0.01, kTol);  // full warmup, one milestone
}

TEST(Schedule, PolyDecayPowerTwoWithFinalFraction) {
  // base 0.1, 10 steps per epoch, 10 epochs, warmup 20 steps (f0 = 0): decay starts at
  // epoch_pos 2, t = (epoch_pos - 2) / 8. factor = 0.1 + 0.9 * (1 - t)^2.
  ScheduleOptions o = options();
  o.warmup_steps = 20;
  o.decay = LrDecay::kPoly;
  o.poly_power = 2;
  o.final_fraction = 0.1;
  LrSchedule s(o, single(100), 1000, false);
  EXPECT_NEAR(lr(s, 1, 0), 0.055, kTol);     // warmup 11/20, no decay yet
  EXPECT_NEAR(lr(s, 2, 0), 0.1, kTol);       // t = 0
  EXPECT_NEAR(lr(s, 4, 0), 0.060625, kTol);  // t = 1/4: 0.1 + 0.9 * 0.5625 = 0.60625
  EXPECT_NEAR(lr(s, 6, 0), 0.0325, kTol);    // t = 1/2: 0.1 + 0.9 * 0.25 = 0.325
  // Last step: epoch_pos 9.9, t = 7.9/8, (1 - t)^2 = 0.0125^2 = 0.00015625 -> 0.100140625.
  EXPECT_NEAR(lr(s, 9, 9), 0.0100140625, kTol);
}

TEST(Schedule, ExponentialDecayPerEpochAfterWarmup) {
  // base 0.1, 10 steps per epoch, 5 epochs, warmup 1 epoch (W = 10, f0 = 0), gamma 0.5:
  // factor = 0.5^(epoch_pos - 1) after warmup.
  ScheduleOptions o = options();
  o.epochs = 5;
  o.warmup_epochs = 1;
  o.decay = LrDecay::kExponential;
  o.gamma = 0.5;
  LrSchedule s(o, single(100), 1000, false);
  EXPECT_NEAR(lr(s, 0, 5), 0.06, kTol);                  // warmup 6/10
  EXPECT_NEAR(lr(s, 1, 0), 0.1, kTol);                   // 0.5^0
  EXPECT_NEAR(lr(s, 2, 0), 0.05, kTol);                  // 0.5^1
  EXPECT_NEAR(lr(s, 2, 5), 0.035355339059327, 1e-14);    // 0.5^1.5 = 0.35355339059327
  EXPECT_NEAR(lr(s, 4, 9), 0.0066985841408518, 1e-15);   // 0.5^3.9 = 2^-4 * 2^0.1 = 0.0625 * 1.0717734625363
}

TEST(Schedule, BatchScheduleStepCounts) {
  // N 1000: B 100 in epochs 0-1 (10 steps), B 250 from epoch 2 (ceil(1000/250) = 4 steps).
  ScheduleOptions o = options();
  o.epochs = 5;
  LrSchedule s(o, {{0, 100}, {2, 250}}, 1000, false);
  EXPECT_EQ(s.steps_in_epoch(0), 10);
  EXPECT_EQ(s.steps_in_epoch(1), 10);
  EXPECT_EQ(s.steps_in_epoch(2), 4);
  EXPECT_EQ(s.steps_in_epoch(4), 4);
  EXPECT_EQ(s.total_steps(), 32);  // 10 + 10 + 4 + 4 + 4
  const StepPosition p = s.position(3, 1);
  EXPECT_EQ(p.epoch, 3);
  EXPECT_EQ(p.step_in_epoch, 1);
  EXPECT_EQ(p.global_step, 25);  // 10 + 10 + 4 + 1
  EXPECT_DOUBLE_EQ(p.epoch_pos, 3.25);
  EXPECT_EQ(p.global_batch, 250);
  EXPECT_EQ(s.position(2, 0).global_step, 20);
  EXPECT_EQ(s.position(1, 9).global_step, 19);
  EXPECT_DOUBLE_EQ(s.position(1, 9).epoch_pos, 1.9);
  EXPECT_EQ(s.position(1, 9).global_batch, 100);
  // B 300 from epoch 2: 4 steps per epoch (the last one partial), or 3 with drop_last.
  const std::vector<BatchPhase> phases{{0, 100}, {2, 300}};
  LrSchedule keep(o, phases, 1000, false);
  LrSchedule drop(o, phases, 1000, true);
  EXPECT_EQ(keep.total_steps(), 32);  // 10 + 10 + 3 * 4
  EXPECT_EQ(drop.total_steps(), 29);  // 10 + 10 + 3 * 3
  EXPECT_EQ(drop.position(4, 2).global_step, 28);  // 10 + 10 + 3 + 3 + 2
  EXPECT_NEAR(drop.position(4, 2).epoch_pos, 4.0 + 2.0 / 3.0, kTol);
}

TEST(Schedule, BatchScheduleScaledAndHeldRates) {
  // base 0.1 at ref 100, linear: B 100 -> 0.1, B 250 -> 0.25.
  ScheduleOptions o = options();
  o.scaling = LrScaling::kLinear;
  o.epochs = 5;
  const std::vector<BatchPhase> phases{{0, 100}, {2, 250}};
  LrSchedule scaled(o, phases, 1000, false);
  EXPECT_NEAR(lr(scaled, 1, 9), 0.1, kTol);
  EXPECT_NEAR(lr(scaled, 3, 1), 0.25, kTol);
  o.hold_lr_on_batch_change = true;  // keep the first B's rate
  LrSchedule held(o, phases, 1000, false);
  EXPECT_NEAR(held.scaled_rate(250), 0.1, kTol);
  EXPECT_NEAR(lr(held, 3, 1), 0.1, kTol);
  o.hold_lr_on_batch_change = false;
  o.scaling = LrScaling::kSqrt;  // 0.1 * sqrt(2.5) = 0.158113883008419
  EXPECT_NEAR(lr(LrSchedule(o, phases, 1000, false), 3, 1), 0.158113883008419, 1e-14);

  // Warmup across a batch change: B 200 (5 steps) then B 400 from epoch 1 (3 steps).
  // f0 comes from the first phase: 0.1 / 0.2 = 0.5. W = 8; step 6 = position(1, 1)
  // runs at B 400 (rate 0.4): 0.4 * (0.5 + 0.5 * 7/8) = 0.4 * 0.9375 = 0.375.
  o.scaling = LrScaling::kLinear;
  o.warmup_steps = 8;
  LrSchedule warm(o, {{0, 200}, {1, 400}}, 1000, false);
  EXPECT_DOUBLE_EQ(warm.warmup_start_factor(), 0.5);
  EXPECT_NEAR(lr(warm, 0, 0), 0.1125, kTol);  // 0.2 * (0.5 + 0.5/8) = 0.2 * 0.5625
  EXPECT_NEAR(lr(warm, 1, 1), 0.375, kTol);
  EXPECT_NEAR(lr(warm, 2, 0), 0.4, kTol);
}

TEST(Schedule, PlanRowsForWarmupStepDecayAndBatchSchedule) {
  // N 1000, B 200 (5 steps per epoch) then B 500 from epoch 2 (2 steps): 5, 5, 2, 2, 2 = 16 steps.
  // base 0.1 at ref 100, linear: rates 0.2 and 0.5. Warmup 1 epoch: W = 5, f0 = 0.1/0.2 = 0.5.
  // Step decay x 0.5 at epochs 1.5, 2, 3.5 (9 is past the end: no row).
  ScheduleOptions o = options();
  o.scaling = LrScaling::kLinear;
  o.epochs = 5;
  o.warmup_epochs = 1;
  o.decay = LrDecay::kStep;
  o.milestones = {1.5, 2, 3.5, 9};
  o.gamma = 0.5;
  LrSchedule s(o, {{0, 200}, {2, 500}}, 1000, false);
  struct Row {
    const char* what;
    long long step;
    double epoch_pos;
    long long batch;
    double lr;
  };
  const std::vector<Row> want{
      {"start", 0, 0.0, 200, 0.12},          // 0.2 * (0.5 + 0.5 * 1/5)
      {"end of warmup", 5, 1.0, 200, 0.2},   // first step after warmup
      {"milestone 1.5", 8, 1.6, 200, 0.1},   // epoch 1: step 2 is 1.4, step 3 is 1.6; 0.2 * 0.5
      {"milestone 2", 10, 2.0, 500, 0.125},  // 0.5 * 0.5^2
      {"batch 500", 10, 2.0, 500, 0.125},    // same step: after the milestone row
      {"milestone 3.5", 13, 3.5, 500, 0.0625},  // 5 + 5 + 2 + 1; 0.5 * 0.5^3
      {"end", 15, 4.5, 500, 0.0625},            // last step, epoch 4 step 1
  };
  const auto rows = s.plan();
  ASSERT_EQ(rows.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(rows[i].what, want[i].what) << "row " << i;
    EXPECT_EQ(rows[i].global_step, want[i].step) << want[i].what;
    EXPECT_NEAR(rows[i].epoch_pos, want[i].epoch_pos, kTol) << want[i].what;
    EXPECT_EQ(rows[i].global_batch, want[i].batch) << want[i].what;
    EXPECT_NEAR(rows[i].lr, want[i].lr, kTol) << want[i].what;
  }
}

TEST(Schedule, PlanWithoutWarmupOrDecayIsStartAndEnd) {
  ScheduleOptions o = options();
  o.epochs = 3;
  o.milestones = {1};  // ignored: decay is not "step"
  const auto rows = LrSchedule(o, single(100), 950, false).plan();  // ceil(950/100) = 10 steps per epoch
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].what, "start");
  EXPECT_EQ(rows[1].what, "end");
  EXPECT_EQ(rows[1].global_step, 29);
  EXPECT_NEAR(rows[1].epoch_pos, 2.9, kTol);
  // Warmup past the end of training: no "end of warmup" row; the end is at 30/40 of 0.1.
  o.warmup_steps = 40;
  const auto warm = LrSchedule(o, single(100), 950, false).plan();
  ASSERT_EQ(warm.size(), 2u);
  EXPECT_EQ(warm[1].what, "end");
  EXPECT_NEAR(warm[1].lr, 0.075, kTol);
}

TEST(Schedule, ParseBatchSchedule) {
  const auto phases = parse_batch_schedule("5:512,10:1024", 256);
  ASSERT_EQ(phases.size(), 3u);
  EXPECT_EQ(phases[0].from_epoch, 0);
  EXPECT_EQ(phases[0].global_batch, 256);
  EXPECT_EQ(phases[1].from_epoch, 5);
  EXPECT_EQ(phases[1].global_batch, 512);
  EXPECT_EQ(phases[2].from_epoch, 10);
  EXPECT_EQ(phases[2].global_batch, 1024);
  const auto spaced = parse_batch_schedule(" 3:64 ,\t7:32 ", 128);  // B may also go down
  ASSERT_EQ(spaced.size(), 3u);
  EXPECT_EQ(spaced[1].from_epoch, 3);
  EXPECT_EQ(spaced[2].global_batch, 32);
  for (const char* empty : {"", "  "}) {
    const auto just = parse_batch_schedule(empty, 128);
    ASSERT_EQ(just.size(), 1u) << "'" << empty << "'";
    EXPECT_EQ(just[0].global_batch, 128);
  }
  // batch_at_epoch: the last phase that has started.
  EXPECT_EQ(batch_at_epoch(phases, 0), 256);
  EXPECT_EQ(batch_at_epoch(phases, 4), 256);
  EXPECT_EQ(batch_at_epoch(phases, 5), 512);
  EXPECT_EQ(batch_at_epoch(phases, 9), 512);
  EXPECT_EQ(batch_at_epoch(phases, 10), 1024);
  EXPECT_EQ(batch_at_epoch(phases, 99), 1024);
}

TEST(Schedule, ParseBatchScheduleErrors) {
  for (const char* bad : {"5-512",         // missing colon
                          "5:abc", "x:512", "5.5:512", "5:512:3", "5:",  // not integers
                          "0:512", "-2:512",                            // epoch <= 0
                          "5:512,5:1024", "10:512,5:1024",              // not strictly increasing
                          "5:0", "5:-4",                                // B < 1
                          "5:512,", ",5:512", "5:512,,10:1024"})        // empty items
    expect_user_error([&] { parse_batch_schedule(bad, 256); }, {"--batch-schedule", "5:512,10:1024", bad}, bad);
}

TEST(Schedule, ParseMilestones) {
  EXPECT_EQ(parse_milestones("30,60,80"), (std::vector<double>{30, 60, 80}));
  EXPECT_EQ(parse_milestones(" 2.5 , 7 "), (std::vector<double>{2.5, 7}));
  EXPECT_EQ(parse_milestones("0"), (std::vector<double>{0}));
  EXPECT_TRUE(parse_milestones("").empty());
  EXPECT_TRUE(parse_milestones(" ").empty());
  for (const char* bad : {"30,x", "thirty", "-1", "30,30", "60,30", "30,,60", "30,", "nan", "inf"})
    expect_user_error([&] { parse_milestones(bad); }, {"--lr-milestones", "30,60,80"}, bad);
}

// check_schedule_options is the one check (config's validate() and the
// LrSchedule constructor call it); the e2e tests and users read these lines.
TEST(Schedule, CheckScheduleOptionsExactMessages) {
  const auto message = [](const std::function<void(ScheduleOptions&)>& change) {
    ScheduleOptions o = options();
    change(o);
    try {
      check_schedule_options(o);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_EQ(message([](ScheduleOptions& o) { o.base_lr = 0; }), "--lr must be a finite number > 0 (got 0)");
  EXPECT_EQ(message([](ScheduleOptions& o) { o.base_lr = std::nan(""); }),
            "--lr must be a finite number > 0 (got nan)");
  EXPECT_EQ(message([](ScheduleOptions& o) { o.ref_batch = 0; }), "--ref-batch must be at least 1 (got 0)");
  EXPECT_EQ(message([](ScheduleOptions& o) { o.warmup_epochs = -0.5; }),
            "--warmup-epochs must be a finite number >= 0 (got -0.5)");
  EXPECT_EQ(message([](ScheduleOptions& o) { o.warmup_steps = -1; }), "--warmup-steps must be >= 0");
  EXPECT_EQ(message([](ScheduleOptions& o) {
              o.warmup_epochs = 1;
              o.warmup_steps = 5;
            }),
            "give --warmup-epochs or --warmup-steps, not both");
  EXPECT_EQ(message([](ScheduleOptions& o) { o.warmup_start_factor = 2; }),
            "--warmup-start-factor must be in [0, 1] (or negative for automatic)");
  EXPECT_EQ(message([](ScheduleOptions& o) { o.decay = LrDecay::kStep; }),
            "--lr-decay step needs --lr-milestones, e.g. --lr-milestones 10,20");
  EXPECT_EQ(message([](ScheduleOptions& o) { o.gamma = 0; }), "--lr-gamma must be a finite number > 0");
  EXPECT_EQ(message([](ScheduleOptions& o) { o.final_fraction = 2; }), "--lr-final-fraction must be in [0, 1]");
  EXPECT_EQ(message([](ScheduleOptions& o) { o.poly_power = 0; }), "--lr-poly-power must be > 0");
  EXPECT_EQ(message([](ScheduleOptions&) {}), "(accepted)");
}

TEST(Schedule, ConstructorRefusesBadOptions) {
  struct Case {
    const char* label;
    std::function<void(ScheduleOptions&)> change;
    const char* option;
  };
  const std::vector<Case> cases{
      {"warmup_epochs -1", [](ScheduleOptions& o) { o.warmup_epochs = -1; }, "--warmup-epochs"},
      {"warmup_steps -1", [](ScheduleOptions& o) { o.warmup_steps = -1; }, "--warmup-steps"},
      {"both warmups",
       [](ScheduleOptions& o) {
         o.warmup_epochs = 1;
         o.warmup_steps = 5;
       },
       "give --warmup-epochs or --warmup-steps, not both"},
      {"start factor 1.5", [](ScheduleOptions& o) { o.warmup_start_factor = 1.5; }, "--warmup-start-factor"},
      {"epochs 0", [](ScheduleOptions& o) { o.epochs = 0; }, "--epochs"},
      {"gamma 0", [](ScheduleOptions& o) { o.gamma = 0; }, "gamma"},
      {"gamma -0.1", [](ScheduleOptions& o) { o.gamma = -0.1; }, "gamma"},
      {"final fraction -0.1", [](ScheduleOptions& o) { o.final_fraction = -0.1; }, "final-fraction"},
      {"final fraction 1.5", [](ScheduleOptions& o) { o.final_fraction = 1.5; }, "final-fraction"},
      {"poly power 0", [](ScheduleOptions& o) { o.poly_power = 0; }, "poly-power"},
  };
  for (const auto& c : cases) {
    ScheduleOptions o = options();
    c.change(o);
    expect_user_error([&] { LrSchedule(o, single(100), 1000, false); }, {c.option}, c.label);
  }
  // The edges themselves are allowed: f0 = 1 (no ramp), final fraction 0 and 1.
  ScheduleOptions edge = options();
  edge.warmup_start_factor = 1;
  edge.warmup_steps = 5;
  edge.final_fraction = 1;
  EXPECT_NEAR(lr(LrSchedule(edge, single(100), 1000, false), 0, 0), 0.1, kTol);
  // Phases must be non-empty and start at epoch 0.
  expect_user_error([] { LrSchedule(options(), {}, 1000, false); }, {"--batch-schedule"}, "no phases");
  expect_user_error([] { LrSchedule(options(), {{1, 100}}, 1000, false); }, {"epoch 0"}, "phase from 1");
  // drop_last with B larger than the training set leaves epochs without steps.
  expect_user_error([] { LrSchedule(options(), single(2000), 1000, true); }, {"--drop-last"}, "B > N");
  // ... but a phase that starts only after the last epoch never runs, so it is not refused.
  ScheduleOptions two = options();
  two.epochs = 2;
  EXPECT_EQ(LrSchedule(two, {{0, 100}, {2, 2000}}, 1000, true).total_steps(), 20);
}

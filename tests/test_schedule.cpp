// Tests of the learning-rate rules (schedule.hpp) against hand values.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "mpitrain/errors.hpp"
#include "mpitrain/schedule.hpp"

using namespace mpitrain;

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
  EXPECT_NEAR(scaled_lr(0.1, 256, 100, LrScaling::kSqrt), 0.1 * std::sqrt(100.0 / 256.0), 1e-15);
}

TEST(Schedule, WarmupFromBaseWhenTheRuleRaisesTheRate) {
  // base 0.1, target 0.4, W = 4: lr = start + (target - start) * (step + 1) / W.
  LrSchedule s{0.1, 0.4, 4};
  EXPECT_DOUBLE_EQ(s.warmup_start_lr(), 0.1);
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.175);
  EXPECT_DOUBLE_EQ(s.lr_at(1), 0.25);
  EXPECT_DOUBLE_EQ(s.lr_at(2), 0.325);
  EXPECT_DOUBLE_EQ(s.lr_at(3), 0.4);  // step W-1 reaches the target
  EXPECT_DOUBLE_EQ(s.lr_at(4), 0.4);
  EXPECT_DOUBLE_EQ(s.lr_at(5), 0.4);
  EXPECT_DOUBLE_EQ(s.lr_at(1000000), 0.4);
}

TEST(Schedule, WarmupFromZeroWhenTheRuleDoesNotRaiseTheRate) {
  // Rule "none": target == base, ramp from 0. W = 10.
  LrSchedule same{0.2, 0.2, 10};
  EXPECT_DOUBLE_EQ(same.warmup_start_lr(), 0.0);
  EXPECT_DOUBLE_EQ(same.lr_at(0), 0.02);
  EXPECT_DOUBLE_EQ(same.lr_at(4), 0.1);
  EXPECT_DOUBLE_EQ(same.lr_at(9), 0.2);
  EXPECT_DOUBLE_EQ(same.lr_at(10), 0.2);
  EXPECT_DOUBLE_EQ(same.lr_at(11), 0.2);
  // Linear rule below the reference batch: target 0.025 < base 0.1, ramp from 0.
  LrSchedule lower{0.1, 0.025, 5};
  EXPECT_DOUBLE_EQ(lower.warmup_start_lr(), 0.0);
  EXPECT_DOUBLE_EQ(lower.lr_at(0), 0.005);
  EXPECT_DOUBLE_EQ(lower.lr_at(2), 0.015);
  EXPECT_DOUBLE_EQ(lower.lr_at(4), 0.025);
  EXPECT_DOUBLE_EQ(lower.lr_at(7), 0.025);
}

TEST(Schedule, WarmupIsMonotoneAndNeverOvershoots) {
  LrSchedule s{0.05, scaled_lr(0.05, 256, 4096, LrScaling::kLinear), 37};
  ASSERT_DOUBLE_EQ(s.target_lr, 0.8);
  double prev = 0.0;
  for (long long step = 0; step < 100; ++step) {
    const double lr = s.lr_at(step);
    EXPECT_GT(lr, prev - 1e-15) << "step " << step;
    EXPECT_LE(lr, s.target_lr + 1e-15) << "step " << step;
    EXPECT_GE(lr, s.base_lr) << "step " << step;  // never below the rate tuned at ref batch
    prev = lr;
  }
  // Equal increments during warmup.
  EXPECT_NEAR(s.lr_at(10) - s.lr_at(9), (0.8 - 0.05) / 37, 1e-15);
}

TEST(Schedule, ZeroWarmupStepsMeansTargetFromStepZero) {
  LrSchedule s{0.1, 0.4, 0};
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.4);
  EXPECT_DOUBLE_EQ(s.lr_at(1), 0.4);
  EXPECT_DOUBLE_EQ(s.lr_at(12345), 0.4);
  LrSchedule one{0.1, 0.4, 1};  // one warmup step already ends at the target
  EXPECT_DOUBLE_EQ(one.lr_at(0), 0.4);
}

TEST(Schedule, ParseLrScaling) {
  EXPECT_EQ(parse_lr_scaling("none"), LrScaling::kNone);
  EXPECT_EQ(parse_lr_scaling("linear"), LrScaling::kLinear);
  EXPECT_EQ(parse_lr_scaling("sqrt"), LrScaling::kSqrt);
  for (auto rule : {LrScaling::kNone, LrScaling::kLinear, LrScaling::kSqrt})
    EXPECT_EQ(parse_lr_scaling(lr_scaling_name(rule)), rule);
  for (const char* bad : {"cubic", "", "Linear", "linear "}) {
    try {
      parse_lr_scaling(bad);
      ADD_FAILURE() << "no UserError for '" << bad << "'";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("lr-scaling"), std::string::npos) << e.what();
    }
  }
}

// --global-batch auto's pieces (train/goodput.hpp): the candidates, the
// statistical efficiency, the step-time fit and the choice, on synthetic
// throughput and noise whose best batch is known by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/train/goodput.hpp"

namespace mpitrain {
namespace {

TEST(Goodput, CandidatesAreGeometricWithBothEnds) {
  const auto c = batch_candidates({64, 8192});
  ASSERT_GE(c.size(), 40u);
  EXPECT_EQ(c.front(), 64);
  EXPECT_EQ(c.back(), 8192);
  for (size_t i = 1; i < c.size(); ++i) {
    EXPECT_GT(c[i], c[i - 1]);
    EXPECT_NEAR(static_cast<double>(c[i]) / static_cast<double>(c[i - 1]), std::pow(128.0, 1.0 / 49), 0.02);
  }
  EXPECT_EQ(batch_candidates({100, 100}), std::vector<long long>{100});
  EXPECT_EQ(batch_candidates({3, 5}), (std::vector<long long>{3, 4, 5}));
}

TEST(Goodput, ParsesRangeAndChanges) {
  const BatchRange r = parse_batch_range("128:4096");
  EXPECT_EQ(r.min, 128);
  EXPECT_EQ(r.max, 4096);
  for (const char* bad : {"", "128", "0:64", "64:32", "a:b", "64:128:256"})
    EXPECT_THROW(parse_batch_range(bad), UserError) << bad;
  const auto ch = parse_batch_changes("20:512, 45:1024");
  ASSERT_EQ(ch.size(), 2u);
  EXPECT_EQ(ch[1].at_step, 45);
  EXPECT_EQ(ch[1].global_batch, 1024);
  EXPECT_EQ(batch_changes_text(ch), "20:512,45:1024");
  EXPECT_TRUE(parse_batch_changes("").empty());
  for (const char* bad : {"0:512", "20:0", "20:512,20:1024", "30:512,20:64", "20", "x:5"})
    EXPECT_THROW(parse_batch_changes(bad), UserError) << bad;
}

TEST(Goodput, EfficiencyIsGainOverScale) {
  // Pure noise: every sample counts fully. Noise-free: a batch of B is worth one reference step.
  EXPECT_DOUBLE_EQ(statistical_efficiency(1.0, 0.0, 1024, 256), 1.0);
  EXPECT_DOUBLE_EQ(statistical_efficiency(0.0, 1.0, 1024, 256), 0.25);
  // tr(S) = 512 |G|^2 (noise scale 512): r(1024) = (2 + 1) / (0.5 + 1) = 2, efficiency 2 / 4.
  EXPECT_NEAR(statistical_efficiency(512.0, 1.0, 1024, 256), 0.5, 1e-12);
  // No estimate yet: AdaScale's gain 1, so efficiency ref / B (the controller does not choose then).
  EXPECT_DOUBLE_EQ(statistical_efficiency(std::nan(""), std::nan(""), 4096, 256), 0.0625);
}

TEST(Goodput, FitRecoversALineAndIsOptimisticFromOnePoint) {
  StepTimeModel m;
  for (long long rows : {128, 512, 2048})
    for (int k = 0; k < 3; ++k) m.add(rows, 0.010 + 2e-5 * static_cast<double>(rows), 0.004);
  const auto f = m.fit();
  EXPECT_NEAR(f.alpha, 0.010, 1e-9);
  EXPECT_NEAR(f.beta, 2e-5, 1e-12);
  EXPECT_NEAR(f.comm, 0.004, 1e-12);
  EXPECT_NEAR(f.predict(1024), 0.010 + 2e-5 * 1024 + 0.004, 1e-9);

  StepTimeModel one;
  one.add(256, 0.020, 0.001);
  one.add(256, 0.040, 0.003);
  const auto g = one.fit();  // AdaptDL's prior: half the compute fixed, half per row
  EXPECT_NEAR(g.alpha, 0.015, 1e-12);
  EXPECT_NEAR(g.beta, 0.015 / 256, 1e-12);
  EXPECT_NEAR(g.comm, 0.002, 1e-12);

  StepTimeModel noisy;  // medians: one slow step (an evaluation, another job) moves nothing
  for (int k = 0; k < 9; ++k) noisy.add(256, k == 4 ? 0.5 : 0.01, 0);
  EXPECT_NEAR(noisy.fit().alpha, 0.005, 1e-12);

  StepTimeModel aging(100);  // a batch left 100 steps ago is forgotten
  for (long long s = 1; s <= 10; ++s) aging.add(512, 0.020, 0, s);
  for (long long s = 11; s <= 40; ++s) aging.add(128, 0.008, 0, s);
  EXPECT_GT(aging.fit(40).beta, 0.0);  // two points: the line through them
  EXPECT_NEAR(aging.fit(40).predict(512), 0.020, 1e-9);
  EXPECT_NEAR(aging.fit(111).alpha, 0.004, 1e-12);  // only 128 left: the one-point prior

  StepTimeModel flat;  // slower per step at fewer rows (noise): no negative cost per row
  flat.add(100, 0.05, 0);
  flat.add(200, 0.04, 0);
  EXPECT_EQ(flat.fit().beta, 0.0);
  EXPECT_NEAR(flat.fit().alpha, 0.045, 1e-12);
}

// Synthetic throughput: T(B) = alpha + beta B/P + comm on P ranks.
StepTimeModel::Fit synthetic(double alpha, double beta, double comm) {
  StepTimeModel::Fit f;
  f.alpha = alpha;
  f.beta = beta;
  f.comm = comm;
  return f;
}

TEST(Goodput, PureNoiseChoosesTheLargestBatchNoiseFreeTheSmallest) {
  const auto candidates = batch_candidates({64, 4096});
  const auto fit = synthetic(0.01, 1e-5, 0.005);
  // All noise: efficiency 1, goodput = throughput, rising with B.
  GoodputChoice c = choose_batch(fit, {candidates, 256, 2, 0, 1.0, 0.0, 256});
  EXPECT_TRUE(c.change);
  EXPECT_EQ(c.batch, 4096);
  // No noise: goodput = ref / T(B), falling with B.
  c = choose_batch(fit, {candidates, 256, 2, 0, 0.0, 1.0, 256});
  EXPECT_EQ(c.batch, 64);
}

TEST(Goodput, ChoosesTheHandComputedOptimum) {
  // goodput(B) = ref r(B) / T(B); with tr(S)/|G|^2 = phi, r(B) = (phi/ref + 1)/(phi/B + 1),
  // T(B) = a + b B (one rank, no comm): d/dB [B/(phi + B) / (a + b B)] = 0 at B* = sqrt(a phi / b).
  const double a = 0.02, b = 2e-5, phi = 1000;
  const double best = std::sqrt(a * phi / b);  // 1000
  const auto candidates = batch_candidates({16, 16384});
  const GoodputChoice c = choose_batch(synthetic(a, b, 0), {candidates, 256, 1, 0, phi, 1.0, 256});
  EXPECT_TRUE(c.change);
  EXPECT_NEAR(static_cast<double>(c.batch) / best, 1.0, 0.08);  // the nearest of 50 geometric candidates
  EXPECT_NEAR(c.goodput, 256 * (phi / 256 + 1) / (phi / static_cast<double>(c.batch) + 1) /
                             (a + b * static_cast<double>(c.batch)),
              1e-9);
}

TEST(Goodput, MovesOnlyForMoreThanTheHysteresis) {
  const double a = 0.02, b = 2e-5, phi = 1000;
  const auto candidates = batch_candidates({16, 16384});
  // Near the optimum (1000) the best candidate gains < 5%: stay.
  GoodputChoice c = choose_batch(synthetic(a, b, 0), {candidates, 900, 1, 0, phi, 1.0, 256});
  EXPECT_FALSE(c.change);
  EXPECT_EQ(c.batch, 900);
  EXPECT_GT(c.best_goodput, c.current_goodput);
  EXPECT_LT(c.best_goodput, 1.05 * c.current_goodput);
  // Without hysteresis it would move.
  c = choose_batch(synthetic(a, b, 0), {candidates, 900, 1, 0, phi, 1.0, 256, 1.0});
  EXPECT_TRUE(c.change);
}

TEST(Goodput, MoreRanksChooseALargerBatch) {
  // The fixed all-reduce is paid per step: on more ranks each row is cheaper, so the optimum grows.
  const auto candidates = batch_candidates({64, 16384});
  const auto fit = synthetic(0.002, 4e-5, 0.02);
  const GoodputChoice one = choose_batch(fit, {candidates, 256, 1, 0, 2000, 1.0, 256});
  const GoodputChoice eight = choose_batch(fit, {candidates, 256, 8, 0, 2000, 1.0, 256});
  EXPECT_GT(eight.batch, one.batch);
}

}  // namespace
}  // namespace mpitrain

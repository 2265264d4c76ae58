// AdaScale (optim/adascale.hpp): the gain against hand-computed values and
// its bounds, the gain from the online noise-scale estimator on a synthetic
// gradient stream with known noise, and the schedule in scale-invariant
// iterations (warmup and decay in reference epochs, the end, the epoch bound).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/rng.hpp"
#include "mpitrain/optim/adascale.hpp"
#include "mpitrain/train/noise_scale.hpp"

using namespace mpitrain;

TEST(AdaScaleGain, HandComputedValues) {
  // tr(S) = 1000, |G|^2 = 1, B = 1024, ref = 256: (1000/256 + 1) / (1000/1024 + 1).
  EXPECT_NEAR(adascale_gain(1000, 1, 1024, 256), 4.90625 / 1.9765625, 1e-12);
  // B_simple = tr/|G|^2 = 256 = ref, S = 4: (1 + 1) / (1/4 + 1) = 1.6.
  EXPECT_NEAR(adascale_gain(256, 1, 1024, 256), 1.6, 1e-12);
  // At the reference batch the gain is 1 whatever the noise.
  EXPECT_DOUBLE_EQ(adascale_gain(5000, 0.1, 256, 256), 1.0);
}

TEST(AdaScaleGain, LimitsAndBounds) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_DOUBLE_EQ(adascale_gain(100, 0, 1024, 256), 4.0);     // pure noise: S
  EXPECT_DOUBLE_EQ(adascale_gain(100, -0.5, 1024, 256), 4.0);  // a negative |G|^2 estimate counts as 0
  EXPECT_DOUBLE_EQ(adascale_gain(0, 2, 1024, 256), 1.0);       // no noise: a bigger batch is worth nothing more
  EXPECT_DOUBLE_EQ(adascale_gain(-10, 2, 1024, 256), 1.0);
  EXPECT_DOUBLE_EQ(adascale_gain(0, 0, 1024, 256), 1.0);       // nothing measured
  EXPECT_DOUBLE_EQ(adascale_gain(nan, 1, 1024, 256), 1.0);     // before the first estimate
  EXPECT_DOUBLE_EQ(adascale_gain(1, nan, 1024, 256), 1.0);
  // Below the reference batch (S = 1/4) the gain is in [S, 1].
  const double g = adascale_gain(1000, 1, 64, 256);
  EXPECT_NEAR(g, (1000.0 / 256 + 1) / (1000.0 / 64 + 1), 1e-12);
  EXPECT_GT(g, 0.25);
  EXPECT_LT(g, 1.0);
  for (double tr : {0.0, 1.0, 1e3, 1e9})
    for (double g2 : {0.0, 1e-6, 1.0, 1e3}) {
      const double r = adascale_gain(tr, g2, 8192, 256);
      EXPECT_GE(r, 1.0);
      EXPECT_LE(r, 32.0);
    }
}

// Per-sample gradients g_i = G + e_i, e_i ~ N(0, I_d): tr(S) = d, and the
// estimator fed by 4 small batches of 32 rows and their mean (B = 128) must
// give a gain within 10% of the true one.
TEST(AdaScaleGain, FromTheNoiseEstimatorOnAKnownStream) {
  constexpr int kDim = 64, kSmall = 32, kParts = 4, kB = kSmall * kParts;
  const double g2_true = 0.5, tr_true = kDim;
  std::vector<double> mean(kDim, std::sqrt(g2_true / kDim));
  NoiseScaleEstimator est(0.0, /*window_samples=*/25600);
  Rng rng(7);
  std::vector<double> big(kDim), part(kDim);
  for (int step = 0; step < 2000; ++step) {
    std::fill(big.begin(), big.end(), 0.0);
    double small_sq = 0;
    for (int p = 0; p < kParts; ++p) {
      std::fill(part.begin(), part.end(), 0.0);
      for (int i = 0; i < kSmall; ++i)
        for (int k = 0; k < kDim; ++k) part[k] += mean[k] + rng.normal();
      double sq = 0;
      for (int k = 0; k < kDim; ++k) {
        sq += (part[k] / kSmall) * (part[k] / kSmall);
        big[k] += part[k];
      }
      small_sq += sq / kParts;
    }
    double big_sq = 0;
    for (int k = 0; k < kDim; ++k) big_sq += (big[k] / kB) * (big[k] / kB);
    est.update(small_sq, 1.0 / kSmall, kB, big_sq);
  }
  const double ref = 32;
  const double truth = (tr_true / ref + g2_true) / (tr_true / kB + g2_true);  // 2.5 / 1.0
  EXPECT_NEAR(truth, 2.5, 1e-12);
  EXPECT_NEAR(adascale_gain(est.trace_s(), est.g2(), kB, ref), truth, 0.1 * truth);
}

namespace {

ScheduleOptions reference(double warmup_epochs, LrDecay decay) {
  ScheduleOptions o;
  o.base_lr = 0.1;
  o.ref_batch = 100;
  o.scaling = LrScaling::kAdaScale;
  o.warmup_epochs = warmup_epochs;
  o.decay = decay;
  o.epochs = 10;
  return o;
}

}  // namespace

TEST(AdaScaleSchedule, IterationsAreReferenceSteps) {
  // 1000 rows at ref 100: 10 steps per reference epoch, 10 epochs = 100 iterations.
  const AdaScaleSchedule s(reference(0, LrDecay::kNone), 1000, false);
  EXPECT_EQ(s.reference_steps_per_epoch(), 10);
  EXPECT_DOUBLE_EQ(s.total_iterations(), 100.0);
  EXPECT_FALSE(s.done(99.9));
  EXPECT_TRUE(s.done(100.0));
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.1);   // the base rate, no scaling: the gain multiplies it
  EXPECT_DOUBLE_EQ(s.lr_at(57.3), 0.1);
  // B = 400 (S = 4, 3 steps per epoch): every gain >= 1, so at most 100 steps = 34 epochs;
  // B = 50 (S = 1/2, 20 steps per epoch): gains >= 1/2, at most 200 steps = 10 epochs.
  EXPECT_EQ(s.max_epochs(400), 34);
  EXPECT_EQ(s.max_epochs(50), 10);
}

TEST(AdaScaleSchedule, WarmupAndDecayCountIterations) {
  // Warmup over 2 reference epochs = 20 iterations from 0, then cosine to 0 at iteration 100.
  const AdaScaleSchedule s(reference(2, LrDecay::kCosine), 1000, false);
  EXPECT_NEAR(s.lr_at(0.0), 0.1 * 1 / 20, 1e-12);
  EXPECT_NEAR(s.lr_at(9.7), 0.1 * 10 / 20, 1e-12);  // iteration 9 of the ramp
  const double t = (55.0 / 10 - 2) / (10 - 2);     // decay progress at tau = 55
  EXPECT_NEAR(s.lr_at(55.0), 0.1 * 0.5 * (1 + std::cos(M_PI * t)), 1e-12);
  EXPECT_NEAR(s.lr_at(100.0), 0.0, 1e-12);
  // The same tau gives the same rate whatever the batch: the schedule does not know B.
  EXPECT_DOUBLE_EQ(s.lr_at(33.25), s.lr_at(33.25));
}

TEST(AdaScaleSchedule, RefusesAReferenceBatchLargerThanTheData) {
  ScheduleOptions o = reference(0, LrDecay::kNone);
  o.ref_batch = 5000;
  try {
    AdaScaleSchedule s(o, 1000, false);
    FAIL() << "accepted --ref-batch 5000 with 1000 rows";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("--ref-batch 5000 is larger than the training set"), std::string::npos)
        << e.what();
  }
}

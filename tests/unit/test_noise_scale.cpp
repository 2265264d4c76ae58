// The online noise-scale estimator on a synthetic problem with a known
// gradient covariance: per-sample gradients g_i = G + sigma * e_i with
// e_i ~ N(0, I_d), so tr(S) = d sigma^2 and the true B_simple = d sigma^2 / |G|^2.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "mpitrain/core/rng.hpp"
#include "mpitrain/train/noise_scale.hpp"

using namespace mpitrain;

namespace {

constexpr int kDim = 40;

// Feeds `steps` synthetic steps whose global batch is split into `shards`
// (the trainer's small batches) and returns the estimator.
NoiseScaleEstimator run(const std::vector<int>& shards, double sigma, int steps, double decay, Rng& rng) {
  std::vector<double> g(kDim);
  for (int k = 0; k < kDim; ++k) g[k] = (k % 2 ? 0.5 : -0.25);
  NoiseScaleEstimator est(decay);
  std::vector<double> big(kDim), part(kDim);
  for (int s = 0; s < steps; ++s) {
    std::fill(big.begin(), big.end(), 0.0);
    double small_sq = 0, inv_small = 0;
    int b = 0, contributors = 0;
    for (int rows : shards) {
      std::fill(part.begin(), part.end(), 0.0);
      for (int i = 0; i < rows; ++i)
        for (int k = 0; k < kDim; ++k) part[k] += g[k] + sigma * rng.normal();
      for (int k = 0; k < kDim; ++k) big[k] += part[k];
      b += rows;
      if (rows == 0) continue;
      double sq = 0;
      for (int k = 0; k < kDim; ++k) sq += (part[k] / rows) * (part[k] / rows);
      small_sq += sq;
      inv_small += 1.0 / rows;
      ++contributors;
    }
    double big_sq = 0;
    for (int k = 0; k < kDim; ++k) big_sq += (big[k] / b) * (big[k] / b);
    est.update(small_sq / contributors, inv_small / contributors, b, big_sq);
  }
  return est;
}

double true_g2() {
  double s = 0;
  for (int k = 0; k < kDim; ++k) s += (k % 2 ? 0.25 : 0.0625);
  return s;  // 20 * 0.25 + 20 * 0.0625 = 6.25
}

}  // namespace

TEST(NoiseScale, ConvergesToTheTrueValueWithEvenShards) {
  Rng rng(1);
  const double sigma = 2.0;  // tr(S) = 40 * 4 = 160, B_simple = 160 / 6.25 = 25.6
  const NoiseScaleEstimator est = run({16, 16, 16, 16}, sigma, 4000, 0.999, rng);
  EXPECT_NEAR(true_g2(), 6.25, 1e-12);
  // Tolerance: after 4000 steps at decay 0.999 the EMA averages ~1000 steps;
  // the per-step estimates have a relative spread of order 1, so 10% is ~3 sigma.
  EXPECT_NEAR(est.trace_s(), 160.0, 16.0);
  EXPECT_NEAR(est.g2(), 6.25, 0.625);
  EXPECT_NEAR(est.b_simple(), 25.6, 2.56);
}

TEST(NoiseScale, UnevenAndEmptyShardsAreWeightedCorrectly) {
  // Shards of 4, 20, 40 rows and an empty one (a rank with no rows): using a
  // plain mean shard size instead of the mean of 1/b_r would bias tr(S) by ~2x.
  Rng rng(2);
  const NoiseScaleEstimator est = run({4, 20, 40, 0}, 1.0, 4000, 0.999, rng);  // tr(S) = 40, B_simple = 6.4
  EXPECT_NEAR(est.trace_s(), 40.0, 4.0);
  EXPECT_NEAR(est.b_simple(), 6.4, 0.64);
}

TEST(NoiseScale, OneRankUsesTwoHalves) {
  // On one rank the trainer measures the first half of the batch as the small batch.
  Rng rng(3);
  const NoiseScaleEstimator est = run({32, 32}, 2.0, 4000, 0.999, rng);
  EXPECT_NEAR(est.b_simple(), 25.6, 2.56);
}

TEST(NoiseScale, BiasCorrectedEmaAndDegenerateSteps) {
  NoiseScaleEstimator est(0.9);
  EXPECT_TRUE(std::isnan(est.b_simple()));
  // B_small = B_big carries no information: skipped.
  est.update(5.0, 1.0 / 64, 64, 4.0);
  EXPECT_EQ(est.updates(), 0);
  // One step, B_small = 10, B_big = 40, |G_small|^2 = 3, |G_big|^2 = 1.5:
  // tr(S) = (3 - 1.5) / (0.1 - 0.025) = 20; |G|^2 = (40*1.5 - 10*3) / 30 = 1.
  // Bias correction makes the first EMA value the sample itself.
  est.update(3.0, 0.1, 40, 1.5);
  EXPECT_EQ(est.updates(), 1);
  EXPECT_NEAR(est.trace_s(), 20.0, 1e-12);
  EXPECT_NEAR(est.g2(), 1.0, 1e-12);
  EXPECT_NEAR(est.b_simple(), 20.0, 1e-12);
  // Second step tr(S) = 40, |G|^2 = 1: EMA = (0.9*0.1*20 + 0.1*40) / (1 - 0.81) = 30.526...
  est.update(3.0 + 1.0 / 0.075 * 0.075 * 0 + (40.0 - 20.0) * 0.075, 0.1, 40, 1.0 + 40.0 * 0.025 - 0.5);
  EXPECT_NEAR(est.trace_s(), (0.9 * 0.1 * 20.0 + 0.1 * 40.0) / (1 - 0.81), 1e-9);
}

TEST(NoiseScale, RestoredStateContinuesExactlyAsTheUninterruptedEstimator) {
  // Step i's inputs, varied so every EMA term matters; step 7 is degenerate (skipped).
  auto feed = [](NoiseScaleEstimator& est, int from, int to) {
    for (int i = from; i < to; ++i) {
      const double inv_small = i == 7 ? 1.0 / 64 : 1.0 / (8 + i % 5);
      est.update(3.0 + 0.37 * i, inv_small, 64, 1.0 + 0.011 * i * i);
    }
  };
  NoiseScaleEstimator whole(0.97), first(0.97);
  feed(whole, 0, 60);
  feed(first, 0, 25);
  const NoiseScaleEstimator::State saved = first.state();
  EXPECT_EQ(saved.updates, 24);  // step 7 skipped
  NoiseScaleEstimator resumed(0.97);
  // A fresh estimator's state is the State defaults (what an old checkpoint restores).
  const NoiseScaleEstimator::State fresh = resumed.state(), defaults{};
  EXPECT_EQ(std::tie(fresh.updates, fresh.ema_g2, fresh.ema_s, fresh.decay_pow),
            std::tie(defaults.updates, defaults.ema_g2, defaults.ema_s, defaults.decay_pow));
  resumed.restore(saved);
  EXPECT_EQ(resumed.updates(), first.updates());
  EXPECT_EQ(resumed.b_simple(), first.b_simple());
  feed(resumed, 25, 60);
  EXPECT_EQ(resumed.updates(), whole.updates());
  EXPECT_EQ(resumed.b_simple(), whole.b_simple());
  EXPECT_EQ(resumed.g2(), whole.g2());
  EXPECT_EQ(resumed.trace_s(), whole.trace_s());
  const NoiseScaleEstimator::State a = resumed.state(), b = whole.state();
  EXPECT_EQ(std::tie(a.updates, a.ema_g2, a.ema_s, a.decay_pow), std::tie(b.updates, b.ema_g2, b.ema_s, b.decay_pow));
}

// A gradient stream whose |G|^2 decays 10x over training (tr S fixed): an
// average over a fixed number of *steps* lags by B times more samples at
// large B; a window in *samples* lags the same at every B. Fed the expected
// statistics (no sampling noise), the only error left is the lag.
double lag_bias(double global_batch, double window_samples, double per_step_decay) {
  const double total = 900000;  // 15 epochs of 60,000 samples
  const double trace_s = 50.0, g0 = 10.0, b_small = global_batch / 8;
  const auto g2_at = [&](double samples) { return g0 * std::pow(10.0, -samples / total); };
  NoiseScaleEstimator est(per_step_decay, window_samples);
  double worst = 0;
  for (double seen = 0; seen + global_batch <= total; seen += global_batch) {
    const double g2 = g2_at(seen);
    est.update(g2 + trace_s / b_small, 1.0 / b_small, global_batch, g2 + trace_s / global_batch);
    const double done = seen + global_batch;
    if (done < 0.2 * total) continue;  // read after the first fifth of training
    worst = std::max(worst, std::fabs(est.b_simple() / (trace_s / g2) - 1.0));
  }
  return worst;
}

TEST(NoiseScale, PerSampleWindowLagsUnderTenPercentAtEveryBatchSize) {
  for (double b : {64.0, 256.0, 1024.0, 4096.0, 8192.0}) {
    SCOPED_TRACE(b);
    EXPECT_LT(lag_bias(b, 25600, 0.99), 0.10);
  }
}

TEST(NoiseScale, PerStepDecayLagsFarMoreAtLargeBatches) {
  EXPECT_LT(lag_bias(64, 0, 0.99), 0.10);   // 100 steps = 6,400 samples
  EXPECT_GT(lag_bias(4096, 0, 0.99), 0.50);  // 100 steps = 409,600 samples: the bias the issue measured
}

TEST(NoiseScale, WindowInSamplesDecaysByExpOfBatchOverWindow) {
  NoiseScaleEstimator est(0.5, 1000);  // the per-step decay is ignored with a window
  est.update(3.0, 1.0 / 10, 100, 2.0);  // one step: the bias-corrected EMA is the step's estimate
  const double g2_first = est.g2();
  est.update(5.0, 1.0 / 10, 100, 4.0);
  const double d = std::exp(-0.1);
  // g2 estimates: (100*2 - 10*3)/90 and (100*4 - 10*5)/90
  const double e1 = (200.0 - 30.0) / 90.0, e2 = (400.0 - 50.0) / 90.0;
  EXPECT_DOUBLE_EQ(g2_first, e1);
  EXPECT_NEAR(est.g2(), (d * (1 - d) * e1 + (1 - d) * e2) / (1 - d * d), 1e-12);
}

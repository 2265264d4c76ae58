// Tests of nn/dropout and nn/batch_norm: dropout masks keyed by (seed, step,
// global row), so any split of the rows gives the same result; batch norm
// synchronized over two simulated ranks equal to batch norm over the union of
// their rows, its running statistics and parameter flags; finite-difference
// gradient checks through the shared checker.
#include <gtest/gtest.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "gradient_check.hpp"
#include "mpitrain/core/arena.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/rng.hpp"
#include "mpitrain/nn/batch_norm.hpp"
#include "mpitrain/nn/conv2d.hpp"
#include "mpitrain/nn/dropout.hpp"
#include "mpitrain/nn/pass.hpp"
#include "mpitrain/nn/pooling.hpp"

using namespace mpitrain;
using gradcheck::random_floats;


namespace {

std::vector<long long> chw(Shape s) { return {s.c, s.h, s.w}; }

struct BatchNormUnderTest {
  Arena arena;
  BatchNorm bn;
  explicit BatchNormUnderTest(Shape in) : bn("bn", in) {
    gradcheck::bind_to_own_arena(bn, arena, 1);
    for (int ch = 0; ch < in.c; ++ch) {
      gamma()[ch] = static_cast<float>(0.6 + 0.3 * ch);
      beta()[ch] = static_cast<float>(0.2 - 0.15 * ch);
    }
  }
  float* tensor(const std::string& name) {
    for (const ParamView& v : arena.views())
      if (v.name == "bn/" + name) return arena.params() + v.offset;
    ADD_FAILURE() << "no tensor bn/" << name;
    return nullptr;
  }
  float* gamma() { return tensor("gamma"); }
  float* beta() { return tensor("beta"); }
  float* running_mean() { return tensor("running_mean"); }
  float* running_var() { return tensor("running_var"); }
  std::vector<float> grads() const { return {arena.grads(), arena.grads() + arena.param_count()}; }
};

// Inputs per channel with different means and scales (x ~ N(mu_ch, s_ch)).
std::vector<float> bn_input(int rows, Shape s, std::uint64_t seed) {
  auto x = random_floats(static_cast<size_t>(rows) * s.size(), seed);
  for (size_t i = 0; i < x.size(); ++i) {
    const int ch = static_cast<int>(i % s.c);
    x[i] = static_cast<float>(x[i] * (0.5 + 0.5 * ch) + (ch - 1) * 0.7);
  }
  return x;
}

// Two ranks in two threads: each sum() adds the other rank's values, as the
// trainer's MPI all-reduce does. Both ranks must call it in the same order.
class TwoRankSum {
 public:
  class Rank final : public BatchSum {
   public:
    Rank(TwoRankSum& shared, int me) : shared_(shared), me_(me) {}
    void sum(double* data, int count, int units) override {
      ++calls;
      for (int u = 1; u < units; ++u)  // this rank's units first (one outside --deterministic)
        for (int i = 0; i < count; ++i) data[i] += data[u * count + i];
      shared_.data_[me_] = data;
      shared_.counts_[me_] = count;
      shared_.barrier_.arrive_and_wait();
      std::vector<double> total(static_cast<size_t>(count));
      const bool same_count = shared_.counts_[0] == shared_.counts_[1];
      for (int i = 0; i < count && same_count; ++i) total[i] = shared_.data_[0][i] + shared_.data_[1][i];
      shared_.barrier_.arrive_and_wait();
      if (same_count) std::copy(total.begin(), total.end(), data);
      else mismatched = true;
    }
    int calls = 0;
    bool mismatched = false;

   private:
    TwoRankSum& shared_;
    int me_;
  };
  Rank rank0{*this, 0}, rank1{*this, 1};

 private:
  std::barrier<> barrier_{2};
  double* data_[2] = {nullptr, nullptr};
  int counts_[2] = {0, 0};
};

}  // namespace

// ---------------------------------------------------------------- dropout

TEST(Dropout, GradientsMatchFiniteDifferencesForAFixedPass) {
  const Shape in{3, 2, 4};
  Dropout d("dropout0", in, 0.3, 7);
  Pass p;
  p.training = true;
  p.seed = 11;
  p.step = 5;
  p.first_row = 40;
  d.set_pass(&p);
  const int rows = 4;
  const auto x = random_floats(static_cast<size_t>(rows) * in.size(), 71);
  std::vector<float> y(x.size());
  d.forward(x.data(), y.data(), rows);
  EXPECT_GT(std::count(y.begin(), y.end(), 0.0f), 0);  // the check sees dropped values too
  const gradcheck::Report report =
      gradcheck::check_layer(d, nullptr, x, random_floats(x.size(), 72), rows, {}, chw(in));
  EXPECT_TRUE(report.passed()) << report;
}

// The rank-count rule: a row's mask depends on (seed, step, first_row + r, j)
// only, so 10 rows as one pass, or as 4 rows at first_row 0 and 6 at
// first_row 4, give the same output and input gradient bitwise.
TEST(Dropout, MaskDependsOnGlobalRowNotOnTheSplit) {
  const Shape in{2, 3, 3};
  const int rows = 10;
  const long long w = in.size();
  Dropout d("dropout0", in, 0.3, 2);
  Pass p;
  p.seed = 99;
  p.step = 17;
  d.set_pass(&p);
  const auto x = random_floats(static_cast<size_t>(rows) * w, 73);
  const auto g = random_floats(x.size(), 74);
  std::vector<float> whole(x.size()), split(x.size()), dwhole(x.size()), dsplit(x.size()), dy;
  p.first_row = 0;
  d.forward(x.data(), whole.data(), rows);
  dy = g;
  d.backward(x.data(), whole.data(), dy.data(), dwhole.data(), rows);
  for (auto [first, n] : {std::pair{0, 4}, std::pair{4, 6}}) {
    p.first_row = first;
    d.forward(x.data() + first * w, split.data() + first * w, n);
    dy.assign(g.begin() + first * w, g.begin() + (first + n) * w);
    d.backward(x.data() + first * w, split.data() + first * w, dy.data(), dsplit.data() + first * w, n);
  }
  EXPECT_EQ(split, whole);
  EXPECT_EQ(dsplit, dwhole);
  // Not the trivial case: some values dropped, and the rows differ in their masks.
  EXPECT_GT(std::count(whole.begin(), whole.end(), 0.0f), 0);
  std::vector<float> shifted(x.size());
  p.first_row = 1;  // the same rows one place later in the global batch
  d.forward(x.data(), shifted.data(), rows);
  EXPECT_NE(shifted, whole);
}

TEST(Dropout, MaskChangesWithStepSeedAndLayer) {
  const Shape in{50, 1, 1};
  const int rows = 4;
  const std::vector<float> x(static_cast<size_t>(rows) * 50, 1.0f);
  auto kept = [&](std::uint64_t seed, long long step, std::uint64_t salt) {
    Dropout d("dropout0", in, 0.5, salt);
    Pass p;
    p.seed = seed;
    p.step = step;
    p.first_row = 3;
    d.set_pass(&p);
    std::vector<float> y(x.size());
    d.forward(x.data(), y.data(), rows);
    std::vector<bool> mask(y.size());
    for (size_t i = 0; i < y.size(); ++i) mask[i] = y[i] != 0.0f;
    return mask;
  };
  const auto base = kept(1, 10, 0);
  EXPECT_EQ(kept(1, 10, 0), base);
  EXPECT_NE(kept(1, 11, 0), base);  // the next step
  EXPECT_NE(kept(2, 10, 0), base);  // another seed
  EXPECT_NE(kept(1, 10, 1), base);  // another dropout layer of the model
}

TEST(Dropout, EvaluationAndRateZeroAreTheIdentity) {
  const Shape in{4, 2, 2};
  const int rows = 3;
  const auto x = random_floats(static_cast<size_t>(rows) * in.size(), 75);
  Pass p;
  p.training = false;
  p.seed = 3;
  p.step = 2;
  Dropout d("dropout0", in, 0.5, 0);
  d.set_pass(&p);
  std::vector<float> y(x.size()), dx(x.size()), dy = x;
  d.forward(x.data(), y.data(), rows);
  EXPECT_EQ(y, x);
  d.backward(x.data(), y.data(), dy.data(), dx.data(), rows);
  EXPECT_EQ(dx, x);
  p.training = true;
  Dropout none("dropout1", in, 0.0, 1);
  none.set_pass(&p);
  none.forward(x.data(), y.data(), rows);
  EXPECT_EQ(y, x);
  EXPECT_THROW(Dropout("d", in, 1.0, 0), UserError);
  EXPECT_THROW(Dropout("d", in, -0.1, 0), UserError);
}

// Inverted dropout: about 1 - p of the values kept, each scaled by 1/(1-p);
// backward applies the same mask and scale.
TEST(Dropout, KeepsAboutOneMinusPAndScalesKeptValues) {
  for (double rate : {0.3, 0.8}) {
    SCOPED_TRACE("rate " + std::to_string(rate));
    const Shape in{500, 1, 1};
    const int rows = 200;  // 1e5 values: the kept fraction's sd is about 0.0015
    Dropout d("dropout0", in, rate, 4);
    Pass p;
    p.seed = 8;
    p.step = 1;
    d.set_pass(&p);
    std::vector<float> x(static_cast<size_t>(rows) * in.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = 0.5f + static_cast<float>(i % 7);
    std::vector<float> y(x.size()), dy(x.size(), 2.0f), dx(x.size());
    d.forward(x.data(), y.data(), rows);
    d.backward(x.data(), y.data(), dy.data(), dx.data(), rows);
    const double scale = 1.0 / (1.0 - rate);
    size_t kept = 0, wrong = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const bool k = y[i] != 0.0f;
      kept += k;
      const bool ok = k ? std::abs(y[i] - x[i] * scale) <= 1e-6 * x[i] * scale && std::abs(dx[i] - 2.0 * scale) <= 1e-6 * scale
                        : dx[i] == 0.0f;
      wrong += !ok;
    }
    EXPECT_EQ(wrong, 0u);
    EXPECT_NEAR(static_cast<double>(kept) / static_cast<double>(x.size()), 1.0 - rate, 0.006);
  }
}

// ---------------------------------------------------------------- batch norm

TEST(BatchNorm, TrainingGradientsMatchFiniteDifferences) {
  for (Shape in : {Shape{3, 2, 2}, Shape{3, 1, 1}}) {
    for (int rows : {3, 5}) {
      SCOPED_TRACE(in.text() + ", rows " + std::to_string(rows));
      BatchNormUnderTest t(in);
      const auto x = bn_input(rows, in, 81 + rows);
      const auto dy = random_floats(x.size(), 82);
      const gradcheck::Report report = gradcheck::check_layer(t.bn, &t.arena, x, dy, rows, {}, chw(in));
      EXPECT_TRUE(report.passed()) << report;
      ASSERT_EQ(report.tensors.size(), 5u);  // dx, gamma, beta and the running statistics (no gradient)
      EXPECT_GT(report["dx"].largest_numeric, 0.2);
      EXPECT_GT(report["bn/gamma"].largest_numeric, 0.2);
      EXPECT_EQ(report["bn/running_mean"].largest_numeric, 0.0);  // training output ignores them
    }
  }
}

// Evaluation normalizes with the running statistics: y = (x - mean) /
// sqrt(var + eps) * gamma + beta, an affine map whose gradients the checker
// sees too (running statistics are constants, not checked as gradients).
TEST(BatchNorm, EvaluationUsesRunningStatistics) {
  const Shape in{3, 2, 2};
  const int rows = 3;
  BatchNormUnderTest t(in);
  const float mean[] = {0.2f, -0.1f, 0.3f}, var[] = {0.5f, 1.5f, 2.0f};
  std::copy(mean, mean + 3, t.running_mean());
  std::copy(var, var + 3, t.running_var());
  Pass p;
  p.training = false;
  t.bn.set_pass(&p);
  const auto x = bn_input(rows, in, 83);
  std::vector<float> y(x.size());
  t.bn.forward(x.data(), y.data(), rows);
  for (size_t i = 0; i < x.size(); ++i) {
    const int ch = static_cast<int>(i % 3);
    const double ref = (x[i] - mean[ch]) / std::sqrt(var[ch] + BatchNorm::kEps) * t.gamma()[ch] + t.beta()[ch];
    EXPECT_NEAR(y[i], ref, 1e-5) << i;
  }
  // Evaluation leaves the running statistics alone.
  EXPECT_EQ(std::vector<float>(t.running_mean(), t.running_mean() + 3), std::vector<float>(mean, mean + 3));
  EXPECT_EQ(std::vector<float>(t.running_var(), t.running_var() + 3), std::vector<float>(var, var + 3));
  const gradcheck::Report report = gradcheck::check_layer(t.bn, &t.arena, x, random_floats(x.size(), 84), rows, {}, chw(in));
  EXPECT_TRUE(report["dx"].passed()) << report;
  EXPECT_TRUE(report["bn/gamma"].passed()) << report;
  EXPECT_TRUE(report["bn/beta"].passed()) << report;
  EXPECT_GT(report["dx"].largest_numeric, 0.2);
}

// Synchronized batch norm: two ranks (threads) holding rows A and B, their
// sums exchanged through Pass::batch_sum, compute on their rows what one
// process computes over A u B: the same outputs and input gradients, the
// same running statistics, and parameter gradients that add up (the
// gradient all-reduce adds them) to the union's. Also with a rank that holds
// no rows of the batch.
TEST(BatchNorm, SynchronizedOverTwoRanksEqualsTheUnion) {
  for (Shape in : {Shape{3, 2, 2}, Shape{3, 1, 1}}) {
    for (auto [rows_a, rows_b] : {std::pair{3, 4}, std::pair{5, 0}}) {
      SCOPED_TRACE(in.text() + ", rows " + std::to_string(rows_a) + " + " + std::to_string(rows_b));
      const int rows = rows_a + rows_b;
      const long long w = in.size();
      const auto x = bn_input(rows, in, 85);
      const auto g = random_floats(x.size(), 86);

      BatchNormUnderTest whole(in);
      std::vector<float> y(x.size()), dx(x.size()), dy = g;
      whole.arena.zero_grads();
      whole.bn.forward(x.data(), y.data(), rows);
      whole.bn.backward(x.data(), y.data(), dy.data(), dx.data(), rows);

      BatchNormUnderTest part0(in), part1(in);
      BatchNormUnderTest* part[2] = {&part0, &part1};
      TwoRankSum sum;
      Pass pass[2];
      pass[0].batch_sum = &sum.rank0;
      pass[1].batch_sum = &sum.rank1;
      std::vector<float> ys(x.size(), -7.0f), dxs(x.size(), -7.0f);
      auto run = [&](int k) {
        const long long first = k == 0 ? 0 : rows_a * w;
        const int n = k == 0 ? rows_a : rows_b;
        part[k]->bn.set_pass(&pass[k]);
        part[k]->arena.zero_grads();
        std::vector<float> dyk(g.begin() + first, g.begin() + first + n * w);
        part[k]->bn.forward(x.data() + first, ys.data() + first, n);
        // Both halves explicitly: Layer::backward skips backward_input when dx is null (a 0-row vector's data()).
        part[k]->bn.backward_params(x.data() + first, ys.data() + first, dyk.data(), n);
        part[k]->bn.backward_input(x.data() + first, ys.data() + first, dyk.data(), dxs.data() + first, n);
      };
      std::thread other(run, 1);
      run(0);
      other.join();

      EXPECT_EQ(sum.rank0.calls, 2);  // one sum in forward, one in backward
      EXPECT_EQ(sum.rank1.calls, 2);
      EXPECT_FALSE(sum.rank0.mismatched || sum.rank1.mismatched) << "the ranks summed different counts";
      for (size_t i = 0; i < x.size(); ++i) {
        EXPECT_NEAR(ys[i], y[i], 1e-5 * (1 + std::abs(y[i]))) << "y " << i;
        EXPECT_NEAR(dxs[i], dx[i], 1e-5 * (1 + std::abs(dx[i]))) << "dx " << i;
      }
      const auto gw = whole.grads(), g0 = part0.grads(), g1 = part1.grads();
      for (const char* name : {"gamma", "beta"}) {
        for (const ParamView& v : whole.arena.views()) {
          if (v.name != std::string("bn/") + name) continue;
          for (long long i = v.offset; i < v.offset + v.size; ++i)
            EXPECT_NEAR(g0[i] + g1[i], gw[i], 1e-4 * (1 + std::abs(gw[i]))) << v.name << " " << i - v.offset;
        }
      }
      for (int k = 0; k < 2; ++k)
        for (int ch = 0; ch < 3; ++ch) {
          EXPECT_FLOAT_EQ(part[k]->running_mean()[ch], whole.running_mean()[ch]) << "rank " << k << " ch " << ch;
          EXPECT_FLOAT_EQ(part[k]->running_var()[ch], whole.running_var()[ch]) << "rank " << k << " ch " << ch;
        }
    }
  }
}

// PyTorch's rule: running = 0.9 * running + 0.1 * batch statistic, with the
// unbiased (n - 1) variance; starting from mean 0 and variance 1.
TEST(BatchNorm, RunningStatisticsUseMomentumAndUnbiasedVariance) {
  const Shape in{3, 2, 2};
  const int rows = 3;  // 12 values per channel
  BatchNormUnderTest t(in);
  EXPECT_EQ(std::vector<float>(t.running_mean(), t.running_mean() + 3), std::vector<float>(3, 0.0f));
  EXPECT_EQ(std::vector<float>(t.running_var(), t.running_var() + 3), std::vector<float>(3, 1.0f));
  const auto x1 = bn_input(rows, in, 87), x2 = bn_input(rows, in, 88);
  std::vector<float> y(x1.size());
  double rm[3] = {0, 0, 0}, rv[3] = {1, 1, 1};
  for (const auto* x : {&x1, &x2}) {
    t.bn.forward(x->data(), y.data(), rows);
    for (int ch = 0; ch < 3; ++ch) {
      double s = 0, ss = 0;
      const int n = 12;
      for (int i = 0; i < n; ++i) s += (*x)[static_cast<size_t>(i) * 3 + ch];
      const double mean = s / n;
      for (int i = 0; i < n; ++i) ss += std::pow((*x)[static_cast<size_t>(i) * 3 + ch] - mean, 2);
      rm[ch] = 0.9 * rm[ch] + 0.1 * mean;
      rv[ch] = 0.9 * rv[ch] + 0.1 * ss / (n - 1);
      EXPECT_NEAR(t.running_mean()[ch], rm[ch], 1e-6) << ch;
      EXPECT_NEAR(t.running_var()[ch], rv[ch], 1e-6) << ch;
    }
  }
  // The batch's own output is normalized with the biased variance: per
  // channel, (y - beta) / gamma has mean 0 and mean square var / (var + eps).
  for (int ch = 0; ch < 3; ++ch) {
    double s = 0, ss = 0;
    for (int i = 0; i < 12; ++i) {
      const double v = (y[static_cast<size_t>(i) * 3 + ch] - t.beta()[ch]) / t.gamma()[ch];
      s += v;
      ss += v * v;
    }
    EXPECT_NEAR(s / 12, 0.0, 1e-5);
    EXPECT_NEAR(ss / 12, 1.0, 1e-3);
  }
}

TEST(BatchNorm, ParamsRegisteredWithFlags) {
  BatchNormUnderTest t(Shape{4, 3, 3});
  const auto& v = t.arena.views();
  ASSERT_EQ(v.size(), 4u);
  const std::vector<std::string> names = {"bn/gamma", "bn/beta", "bn/running_mean", "bn/running_var"};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(v[i].name, names[i]);
    EXPECT_EQ(v[i].shape, (std::vector<long long>{4}));
    EXPECT_EQ(v[i].flags.trainable, i < 2) << v[i].name;  // gamma, beta trainable (kNoDecayParam); stats kStateParam
    EXPECT_FALSE(v[i].flags.decay) << v[i].name;
    EXPECT_FALSE(v[i].flags.trust_ratio) << v[i].name;
  }
  EXPECT_EQ(t.bn.param_count(), 8.0);  // gamma and beta only
  EXPECT_TRUE(t.bn.uses_batch_statistics());
  // Backward leaves the running statistics' gradients at zero.
  const auto x = bn_input(2, Shape{4, 3, 3}, 89);
  std::vector<float> y(x.size()), dy = random_floats(x.size(), 90), dx(x.size());
  t.arena.zero_grads();
  t.bn.forward(x.data(), y.data(), 2);
  t.bn.backward(x.data(), y.data(), dy.data(), dx.data(), 2);
  for (size_t i = 2; i < 4; ++i)
    for (long long j = 0; j < v[i].size; ++j) EXPECT_EQ(t.arena.grads()[v[i].offset + j], 0.0f) << v[i].name;
}

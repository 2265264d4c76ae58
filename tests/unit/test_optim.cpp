// Tests of the optimizers (optim.hpp) against the published update rules,
// with hand-computed values for a tiny arena:
//   "dense0/W" (2, 2) at floats 0..3, padding 4..15, "dense0/b" (2) at 16..17.
// The gradient padding holds garbage (100) in every test: it must never reach
// a parameter, a state buffer or a trust-ratio norm.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "mpitrain/core/arena.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/vector_math.hpp"
#include "mpitrain/optim/optimizer.hpp"

using namespace mpitrain;

namespace {

// Float results: 1e-6 relative, or 1e-6 absolute for values below 1 (many
// expected values come from cancellation, where float rounding of the
// ~1-sized inputs dominates).
#define EXPECT_CLOSE(actual, expected) \
  EXPECT_NEAR((actual), (expected), 1e-6 * std::max(1.0, std::fabs(static_cast<double>(expected))))

constexpr long long kBias = 16;  // offset of dense0/b

struct Problem {
  Arena arena;
  Problem(std::array<float, 4> w, std::array<float, 2> b) {
    arena.add("dense0/W", {2, 2});
    arena.add("dense0/b", {2}, kNoDecayParam);  // as Dense registers it
    arena.allocate();
    for (int i = 0; i < 4; ++i) arena.params()[i] = w[i];
    for (int i = 0; i < 2; ++i) arena.params()[kBias + i] = b[i];
    for (long long i = 4; i < kBias; ++i) arena.grads()[i] = 100.0f;
  }
  void set_grads(std::array<float, 4> gw, std::array<float, 2> gb) {
    for (int i = 0; i < 4; ++i) arena.grads()[i] = gw[i];
    for (int i = 0; i < 2; ++i) arena.grads()[kBias + i] = gb[i];
  }
  float W(int i) const { return arena.params()[i]; }
  float b(int i) const { return arena.params()[kBias + i]; }
};

OptimizerOptions options(OptimizerKind kind, double momentum = 0.0, double weight_decay = 0.0) {
  OptimizerOptions o;
  o.kind = kind;
  o.momentum = momentum;
  o.weight_decay = weight_decay;
  return o;
}

float* state(Optimizer& opt, size_t i) { return opt.state_buffers().at(i).second; }

}  // namespace

TEST(Optim, ArenaLayoutAssumedByTheseTests) {
  Problem p({1, 2, 3, 4}, {5, 6});
  ASSERT_EQ(p.arena.views().size(), 2u);
  ASSERT_EQ(p.arena.views()[1].offset, kBias);
  ASSERT_EQ(p.arena.param_count(), 18);
}

// ---------------------------------------------------------------- SGD

TEST(Sgd, PlainStepIsLrTimesGradient) {
  Problem p({1, -2, 0.5f, 3}, {0.5f, -1});
  auto opt = make_optimizer(options(OptimizerKind::kSgd), p.arena);  // momentum 0
  p.set_grads({0.1f, 0.2f, -0.3f, 0.4f}, {1, -0.5f});
  opt->step(p.arena, 0.1);
  EXPECT_CLOSE(p.W(0), 0.99);   // 1 - 0.1*0.1
  EXPECT_CLOSE(p.W(1), -2.02);  // -2 - 0.1*0.2
  EXPECT_CLOSE(p.W(2), 0.53);   // 0.5 + 0.1*0.3
  EXPECT_CLOSE(p.W(3), 2.96);   // 3 - 0.1*0.4
  EXPECT_CLOSE(p.b(0), 0.4);    // 0.5 - 0.1*1
  EXPECT_CLOSE(p.b(1), -0.95);  // -1 + 0.1*0.5
  p.set_grads({1, -1, 0.5f, 0}, {0.25f, 0.5f});
  opt->step(p.arena, 0.2);  // a rate change: no effect without momentum
  EXPECT_CLOSE(p.W(0), 0.79);   // 0.99 - 0.2*1
  EXPECT_CLOSE(p.W(1), -1.82);  // -2.02 + 0.2*1
  EXPECT_CLOSE(p.W(2), 0.43);   // 0.53 - 0.2*0.5
  EXPECT_CLOSE(p.W(3), 2.96);   // g = 0
  EXPECT_CLOSE(p.b(0), 0.35);   // 0.4 - 0.2*0.25
  EXPECT_CLOSE(p.b(1), -1.05);  // -0.95 - 0.2*0.5
}

TEST(Sgd, MomentumVelocityIncludesTheRate) {
  Problem p({1, 0, 0, 0}, {0.5f, 0});
  auto opt = make_optimizer(options(OptimizerKind::kSgd, 0.9), p.arena);
  const float* v = state(*opt, 0);
  // v = 0.9*v + 0.1*g; w -= v.   W[0]: g = 1, 2, -1.   b[0]: g = 0.5 each step.
  p.set_grads({1, 0, 0, 0}, {0.5f, 0});
  opt->step(p.arena, 0.1);
  EXPECT_CLOSE(v[0], 0.1);      // 0.1*1
  EXPECT_CLOSE(p.W(0), 0.9);    // 1 - 0.1
  EXPECT_CLOSE(v[kBias], 0.05); // 0.1*0.5
  EXPECT_CLOSE(p.b(0), 0.45);   // 0.5 - 0.05
  p.set_grads({2, 0, 0, 0}, {0.5f, 0});
  opt->step(p.arena, 0.1);
  EXPECT_CLOSE(v[0], 0.29);      // 0.9*0.1 + 0.1*2
  EXPECT_CLOSE(p.W(0), 0.61);    // 0.9 - 0.29
  EXPECT_CLOSE(v[kBias], 0.095); // 0.9*0.05 + 0.05
  EXPECT_CLOSE(p.b(0), 0.355);   // 0.45 - 0.095
  p.set_grads({-1, 0, 0, 0}, {0.5f, 0});
  opt->step(p.arena, 0.1);
  EXPECT_CLOSE(v[0], 0.161);       // 0.9*0.29 - 0.1
  EXPECT_CLOSE(p.W(0), 0.449);     // 0.61 - 0.161
  EXPECT_CLOSE(v[kBias], 0.1355);  // 0.9*0.095 + 0.05
  EXPECT_CLOSE(p.b(0), 0.2195);    // 0.355 - 0.1355
}

TEST(Sgd, NesterovStepsByMomentumTimesVelocityPlusGradient) {
  Problem p({1, 0, 0, 0}, {0.5f, 0});
  auto o = options(OptimizerKind::kSgd, 0.9);
  o.nesterov = true;
  auto opt = make_optimizer(o, p.arena);
  const float* v = state(*opt, 0);
  // v = 0.9*v + 0.1*g; w -= 0.9*v + 0.1*g.
  p.set_grads({1, 0, 0, 0}, {0.5f, 0});
  opt->step(p.arena, 0.1);
  EXPECT_CLOSE(v[0], 0.1);
  EXPECT_CLOSE(p.W(0), 0.81);   // 1 - (0.9*0.1 + 0.1)
  EXPECT_CLOSE(p.b(0), 0.405);  // 0.5 - (0.9*0.05 + 0.05)
  p.set_grads({2, 0, 0, 0}, {0.5f, 0});
  opt->step(p.arena, 0.1);
  EXPECT_CLOSE(v[0], 0.29);      // 0.9*0.1 + 0.2
  EXPECT_CLOSE(p.W(0), 0.349);   // 0.81 - (0.9*0.29 + 0.2) = 0.81 - 0.461
  EXPECT_CLOSE(p.b(0), 0.2695);  // v = 0.095; 0.405 - (0.0855 + 0.05)
  p.set_grads({-1, 0, 0, 0}, {0.5f, 0});
  opt->step(p.arena, 0.1);
  EXPECT_CLOSE(v[0], 0.161);     // 0.9*0.29 - 0.1
  EXPECT_CLOSE(p.W(0), 0.3041);  // 0.349 - (0.9*0.161 - 0.1) = 0.349 - 0.0449
}

TEST(Sgd, L2AndDecoupledWeightDecayDifferWithMomentum) {
  // momentum 0.9, wd 0.1, lr 0.1, g = 1 on W[0] and b[0], both starting at 1.
  // SGD decays every tensor, biases included (exclude_bias is LARS/LAMB only).
  Problem l2p({1, 0, 0, 0}, {1, 0});
  Problem dcp({1, 0, 0, 0}, {1, 0});
  auto o = options(OptimizerKind::kSgd, 0.9, 0.1);
  auto l2 = make_optimizer(o, l2p.arena);
  o.weight_decay_mode = WeightDecayMode::kDecoupled;
  auto dc = make_optimizer(o, dcp.arena);
  l2p.set_grads({1, 0, 0, 0}, {1, 0});
  dcp.set_grads({1, 0, 0, 0}, {1, 0});

  l2->step(l2p.arena, 0.1);
  dc->step(dcp.arena, 0.1);
  EXPECT_CLOSE(state(*l2, 0)[0], 0.11);  // L2: g' = 1 + 0.1*1; v = 0.1*1.1
  EXPECT_CLOSE(l2p.W(0), 0.89);          // 1 - 0.11
  EXPECT_CLOSE(l2p.b(0), 0.89);
  EXPECT_CLOSE(state(*dc, 0)[0], 0.1);   // decoupled: v = 0.1*1
  EXPECT_CLOSE(dcp.W(0), 0.89);          // 1 - 0.1 - 0.1*0.1*1
  EXPECT_CLOSE(dcp.b(0), 0.89);

  l2->step(l2p.arena, 0.1);
  dc->step(dcp.arena, 0.1);
  EXPECT_CLOSE(state(*l2, 0)[0], 0.2079);  // g' = 1 + 0.1*0.89 = 1.089; v = 0.099 + 0.1089
  EXPECT_CLOSE(l2p.W(0), 0.6821);          // 0.89 - 0.2079
  EXPECT_CLOSE(l2p.b(0), 0.6821);
  EXPECT_CLOSE(state(*dc, 0)[0], 0.19);    // v = 0.09 + 0.1
  EXPECT_CLOSE(dcp.W(0), 0.6911);          // 0.89 - 0.19 - 0.1*0.1*0.89 = 0.7 - 0.0089
  EXPECT_CLOSE(dcp.b(0), 0.6911);
}

TEST(Sgd, L2AndDecoupledWeightDecayAgreeWithoutMomentum) {
  // momentum 0, wd 0.5, lr 0.1, w = 2, g = 1.
  for (auto mode : {WeightDecayMode::kL2, WeightDecayMode::kDecoupled}) {
    Problem p({2, 0, 0, 0}, {2, 0});
    auto o = options(OptimizerKind::kSgd, 0.0, 0.5);
    o.weight_decay_mode = mode;
    auto opt = make_optimizer(o, p.arena);
    p.set_grads({1, 0, 0, 0}, {1, 0});
    opt->step(p.arena, 0.1);
    EXPECT_CLOSE(p.W(0), 1.8);  // 2 - 0.1*(1 + 0.5*2)
    EXPECT_CLOSE(p.b(0), 1.8);
    opt->step(p.arena, 0.1);
    EXPECT_CLOSE(p.W(0), 1.61);  // 1.8 - 0.1*(1 + 0.5*1.8)
    EXPECT_CLOSE(p.b(0), 1.61);
  }
}

TEST(Sgd, MomentumCorrectionRescalesVelocityOnRateChange) {
  // momentum 0.9, w = 1, g = 1, lr 0.1, 0.2, 0.05.
  auto run = [](bool correction, bool nesterov, std::vector<double>* w, std::vector<double>* v) {
    Problem p({1, 0, 0, 0}, {0, 0});
    auto o = options(OptimizerKind::kSgd, 0.9);
    o.momentum_correction = correction;
    o.nesterov = nesterov;
    auto opt = make_optimizer(o, p.arena);
    p.set_grads({1, 0, 0, 0}, {0, 0});
    for (double lr : {0.1, 0.2, 0.05}) {
      opt->step(p.arena, lr);
      w->push_back(p.W(0));
      v->push_back(state(*opt, 0)[0]);
    }
  };
  std::vector<double> w, v;
  run(true, false, &w, &v);
  EXPECT_CLOSE(v[0], 0.1);     // first step: previous lr 0, no correction
  EXPECT_CLOSE(w[0], 0.9);
  EXPECT_CLOSE(v[1], 0.38);    // c = 0.2/0.1 = 2: 0.9*2*0.1 + 0.2*1
  EXPECT_CLOSE(w[1], 0.52);    // 0.9 - 0.38
  EXPECT_CLOSE(v[2], 0.1355);  // c = 0.05/0.2 = 0.25: 0.9*0.25*0.38 + 0.05
  EXPECT_CLOSE(w[2], 0.3845);  // 0.52 - 0.1355

  w.clear(), v.clear();
  run(false, false, &w, &v);
  EXPECT_CLOSE(v[1], 0.29);   // 0.9*0.1 + 0.2
  EXPECT_CLOSE(w[1], 0.61);   // 0.9 - 0.29
  EXPECT_CLOSE(v[2], 0.311);  // 0.9*0.29 + 0.05
  EXPECT_CLOSE(w[2], 0.299);  // 0.61 - 0.311

  w.clear(), v.clear();
  run(true, true, &w, &v);
  EXPECT_CLOSE(w[0], 0.81);   // 1 - (0.9*0.1 + 0.1)
  EXPECT_CLOSE(v[1], 0.38);   // as above
  EXPECT_CLOSE(w[1], 0.268);  // 0.81 - (0.9*0.38 + 0.2) = 0.81 - 0.542
}

TEST(Sgd, ResumedCountersDriveTheCorrection) {
  // A checkpoint restored v = 0.1 after 5 steps at lr 0.1; the next step is at 0.2.
  Problem p({1, 0, 0, 0}, {0, 0});
  auto opt = make_optimizer(options(OptimizerKind::kSgd, 0.9), p.arena);
  state(*opt, 0)[0] = 0.1f;
  opt->set_counters(5, 0.1);
  p.set_grads({1, 0, 0, 0}, {0, 0});
  opt->step(p.arena, 0.2);
  EXPECT_CLOSE(state(*opt, 0)[0], 0.38);  // 0.9*(0.2/0.1)*0.1 + 0.2*1
  EXPECT_CLOSE(p.W(0), 0.62);             // 1 - 0.38
  EXPECT_EQ(opt->step_count(), 6);
  EXPECT_DOUBLE_EQ(opt->previous_lr(), 0.2);
}

TEST(Sgd, EqualsPyTorchFormAtConstantRate) {
  // PyTorch SGD (dampening 0): g' = g + wd*p; buf = m*buf + g';
  // p -= lr*buf, or lr*(g' + m*buf) with Nesterov. At a constant rate the
  // Goyal form (with correction, c = 1) has v = lr*buf. Reference in double.
  const double m = 0.9, wd = 0.01, lr = 0.05;
  for (bool nesterov : {false, true}) {
    Problem p({1, -2, 0.5f, 3}, {0.25f, -0.75f});
    auto o = options(OptimizerKind::kSgd, m, wd);
    o.nesterov = nesterov;
    auto opt = make_optimizer(o, p.arena);
    const std::array<long long, 6> idx = {0, 1, 2, 3, kBias, kBias + 1};
    std::array<double, 6> w{}, buf{};
    for (int j = 0; j < 6; ++j) w[j] = p.arena.params()[idx[j]];
    for (int s = 0; s < 6; ++s) {
      std::array<float, 6> g{};
      for (int j = 0; j < 6; ++j) g[j] = static_cast<float>(std::sin(1.0 + s * 6 + j));
      p.set_grads({g[0], g[1], g[2], g[3]}, {g[4], g[5]});
      opt->step(p.arena, lr);
      for (int j = 0; j < 6; ++j) {
        const double gj = g[j] + wd * w[j];
        buf[j] = m * buf[j] + gj;
        w[j] -= lr * (nesterov ? gj + m * buf[j] : buf[j]);
        EXPECT_CLOSE(p.arena.params()[idx[j]], w[j]) << "step " << s << " index " << idx[j];
        EXPECT_CLOSE(state(*opt, 0)[idx[j]], lr * buf[j]) << "step " << s << " index " << idx[j];
      }
    }
  }
}

// ---------------------------------------------------------------- AdamW

TEST(AdamW, BiasCorrectedStepsWithDecoupledDecay) {
  // lr 0.01, wd 0.1, beta1 0.9, beta2 0.999, eps 1e-8.
  // W[0] = 1 with g = 2 then 1; W[1] = -2 with g = 0; b[0] = 0.5 with g = -1 twice.
  Problem p({1, -2, 0, 0}, {0.5f, 0});
  auto opt = make_optimizer(options(OptimizerKind::kAdamW, 0.0, 0.1), p.arena);
  const float* m = state(*opt, 0);
  const float* v = state(*opt, 1);

  p.set_grads({2, 0, 0, 0}, {-1, 0});
  opt->step(p.arena, 0.01);
  // t = 1: m = 0.1*2 = 0.2, v = 0.001*4 = 0.004; mhat = 0.2/0.1 = 2,
  // vhat = 0.004/0.001 = 4; r = 2/(2 + 1e-8) ~ 1 (uncorrected it would be
  // 0.2/sqrt(0.004) = 3.16).
  EXPECT_CLOSE(m[0], 0.2);
  EXPECT_CLOSE(v[0], 0.004);
  EXPECT_CLOSE(p.W(0), 0.989);   // 1 - 0.01*(1 + 0.1*1)
  EXPECT_CLOSE(p.W(1), -1.998);  // g = 0, r = 0: -2 - 0.01*0.1*(-2)
  EXPECT_CLOSE(p.b(0), 0.5095);  // biases decay too: 0.5 - 0.01*(-1 + 0.1*0.5)

  p.set_grads({1, 0, 0, 0}, {-1, 0});
  opt->step(p.arena, 0.01);
  // t = 2: m = 0.9*0.2 + 0.1*1 = 0.28; v = 0.999*0.004 + 0.001*1 = 0.004996;
  // mhat = 0.28/(1 - 0.81) = 1.47368421; vhat = 0.004996/(1 - 0.998001) = 2.49924962,
  // sqrt = 1.58090152; r = 1.47368421/1.58090152 = 0.93217963.
  EXPECT_CLOSE(m[0], 0.28);
  EXPECT_CLOSE(v[0], 0.004996);
  EXPECT_CLOSE(p.W(0), 0.9786892037);  // 0.989 - 0.01*(0.93217963 + 0.1*0.989)
  EXPECT_CLOSE(p.W(1), -1.996002);     // -1.998 - 0.01*0.1*(-1.998)
  // b[0]: m = -0.19, v = 0.001999: mhat = -1, vhat = 1, r = -1.
  EXPECT_CLOSE(m[kBias], -0.19);
  EXPECT_CLOSE(v[kBias], 0.001999);
  EXPECT_CLOSE(p.b(0), 0.5189905);  // 0.5095 - 0.01*(-1 + 0.1*0.5095)
}

TEST(AdamW, EpsIsAddedOutsideTheSquareRoot) {
  Problem p({1, 0, 0, 0}, {0, 0});
  auto o = options(OptimizerKind::kAdamW);
  o.eps = 0.1;
  auto opt = make_optimizer(o, p.arena);
  p.set_grads({2, 0, 0, 0}, {0, 0});
  opt->step(p.arena, 0.01);
  // mhat = 2, vhat = 4: r = 2/(2 + 0.1) = 0.95238095 (inside: 2/sqrt(4.1) = 0.9877).
  EXPECT_CLOSE(p.W(0), 0.99047619);  // 1 - 0.01*0.95238095
}

// ---------------------------------------------------------------- LARS

namespace {
// eta 0.1, wd 0.1, momentum 0.9; used with lr 0.2.
OptimizerOptions lars(bool exclude_bias = true, double trust_clip = 0.0) {
  auto o = options(OptimizerKind::kLars, 0.9, 0.1);
  o.lars_eta = 0.1;
  o.exclude_bias = exclude_bias;
  o.trust_clip = trust_clip;
  return o;
}
}  // namespace

TEST(Lars, TrustRatioPerTensorAndExcludedBias) {
  // W = [3, 0, 0, 4]: ||W|| = 5. b = [3, 4] (excluded): ratio 1, no decay.
  Problem p({3, 0, 0, 4}, {3, 4});
  auto opt = make_optimizer(lars(), p.arena);
  const float* v = state(*opt, 0);

  p.set_grads({0.3f, 0, 0.4f, 0}, {0.6f, 0.8f});
  opt->step(p.arena, 0.2);
  // ||g|| = 0.5: ratio = 0.1*5 / (0.5 + 0.1*5) = 0.5; v = 0.2*0.5*(g + 0.1*W)
  // = 0.1*[0.6, 0, 0.4, 0.4].
  EXPECT_CLOSE(v[0], 0.06);
  EXPECT_CLOSE(v[3], 0.04);
  EXPECT_CLOSE(p.W(0), 2.94);   // 3 - 0.06
  EXPECT_CLOSE(p.W(1), 0.0);
  EXPECT_CLOSE(p.W(2), -0.04);  // 0 - 0.04
  EXPECT_CLOSE(p.W(3), 3.96);   // 4 - 0.04
  EXPECT_CLOSE(p.b(0), 2.88);   // v = 0.2*0.6 = 0.12
  EXPECT_CLOSE(p.b(1), 3.84);   // v = 0.2*0.8 = 0.16

  p.set_grads({0, 0, 0, 0}, {0, 0});
  opt->step(p.arena, 0.2);
  // ||g|| = 0: ratio 1 (the decay term still acts); v = 0.9*v + 0.2*(0 + 0.1*W).
  EXPECT_CLOSE(v[0], 0.1128);     // 0.054 + 0.02*2.94
  EXPECT_CLOSE(p.W(0), 2.8272);   // 2.94 - 0.1128
  EXPECT_CLOSE(p.W(2), -0.0752);  // v = 0.036 + 0.02*(-0.04) = 0.0352
  EXPECT_CLOSE(p.W(3), 3.8448);   // v = 0.036 + 0.02*3.96 = 0.1152
  EXPECT_CLOSE(p.b(0), 2.772);    // excluded, no decay: v = 0.9*0.12 = 0.108
  EXPECT_CLOSE(p.b(1), 3.696);    // v = 0.9*0.16 = 0.144
}

TEST(Lars, BiasGetsTrustRatioWhenNotExcluded) {
  Problem p({0, 0, 0, 0}, {3, 4});
  auto opt = make_optimizer(lars(false), p.arena);
  p.set_grads({0.6f, 0.8f, 0, 0}, {0.6f, 0.8f});
  opt->step(p.arena, 0.2);
  // b: ||b|| = 5, ||g|| = 1: ratio = 0.5/(1 + 0.5) = 1/3; v = (0.2/3)*(g + 0.1*b) = (0.2/3)*[0.9, 1.2].
  EXPECT_CLOSE(p.b(0), 2.94);  // 3 - 0.06
  EXPECT_CLOSE(p.b(1), 3.92);  // 4 - 0.08
  // W: ||W|| = 0, so ratio 1 (not 0): v = 0.2*g.
  EXPECT_CLOSE(p.W(0), -0.12);
  EXPECT_CLOSE(p.W(1), -0.16);
}

TEST(Lars, TrustClip) {
  Problem p({3, 0, 0, 4}, {3, 4});
  auto opt = make_optimizer(lars(true, 0.25), p.arena);
  p.set_grads({0.3f, 0, 0.4f, 0}, {0.6f, 0.8f});
  opt->step(p.arena, 0.2);
  // ratio 0.5 clipped to 0.25: v = 0.05*[0.6, 0, 0.4, 0.4].
  EXPECT_CLOSE(p.W(0), 2.97);
  EXPECT_CLOSE(p.W(2), -0.02);
  EXPECT_CLOSE(p.W(3), 3.98);
  // An excluded bias keeps ratio 1: the clip bounds trust ratios only.
  EXPECT_CLOSE(p.b(0), 2.88);
  EXPECT_CLOSE(p.b(1), 3.84);

  // A clip above the ratio changes nothing: ratio 0.5 as in the unclipped test.
  Problem q({3, 0, 0, 4}, {3, 4});
  auto loose = make_optimizer(lars(true, 0.6), q.arena);
  q.set_grads({0.3f, 0, 0.4f, 0}, {0.6f, 0.8f});
  loose->step(q.arena, 0.2);
  EXPECT_CLOSE(q.W(0), 2.94);

  // The zero-norm fallback ratio 1 is a trust ratio too, so it is clipped.
  Problem z({0, 0, 0, 0}, {0, 0});
  auto zopt = make_optimizer(lars(true, 0.25), z.arena);
  z.set_grads({0.6f, 0.8f, 0, 0}, {0, 0});
  zopt->step(z.arena, 0.2);
  EXPECT_CLOSE(z.W(0), -0.03);  // 0.2*0.25*0.6
  EXPECT_CLOSE(z.W(1), -0.04);  // 0.2*0.25*0.8
}

TEST(Lars, MomentumCorrectionOnRateChange) {
  // The excluded bias (ratio 1): b = [3, 4], g = [0.6, 0.8], lr 0.2 then 0.4.
  for (bool correction : {true, false}) {
    Problem p({0, 0, 0, 0}, {3, 4});
    auto o = lars();
    o.momentum_correction = correction;
    auto opt = make_optimizer(o, p.arena);
    p.set_grads({0, 0, 0, 0}, {0.6f, 0.8f});
    opt->step(p.arena, 0.2);  // v = [0.12, 0.16]
    opt->step(p.arena, 0.4);
    if (correction) {
      EXPECT_CLOSE(p.b(0), 2.424);  // v = 0.9*2*0.12 + 0.4*0.6 = 0.456; 2.88 - 0.456
      EXPECT_CLOSE(p.b(1), 3.232);  // v = 0.9*2*0.16 + 0.4*0.8 = 0.608; 3.84 - 0.608
    } else {
      EXPECT_CLOSE(p.b(0), 2.532);  // v = 0.9*0.12 + 0.24 = 0.348
      EXPECT_CLOSE(p.b(1), 3.376);  // v = 0.9*0.16 + 0.32 = 0.464
    }
  }
}

// ---------------------------------------------------------------- LAMB

namespace {
// wd 0.25, beta1 0.9, beta2 0.999, eps 1e-8; used with lr 0.09.
OptimizerOptions lamb(bool exclude_bias = true, double trust_clip = 0.0) {
  auto o = options(OptimizerKind::kLamb, 0.0, 0.25);
  o.exclude_bias = exclude_bias;
  o.trust_clip = trust_clip;
  return o;
}
}  // namespace

TEST(Lamb, TrustRatioPerTensorAndExcludedBias) {
  // W = [3, 0, 0, 4] (||W|| = 5), b = [4, 0] (excluded); a constant gradient,
  // so mhat = g and vhat = g^2 at every t and r = sign(g) (up to eps).
  Problem p({3, 0, 0, 4}, {4, 0});
  auto opt = make_optimizer(lamb(), p.arena);
  p.set_grads({1, 1, -1, -1}, {1, 0});

  opt->step(p.arena, 0.09);
  EXPECT_CLOSE(state(*opt, 0)[0], 0.1);    // m = 0.1*1
  EXPECT_CLOSE(state(*opt, 1)[0], 0.001);  // v = 0.001*1
  // u = r + 0.25*W = [1.75, 1, -1, 0]; ||u|| = sqrt(3.0625 + 2) = 2.25;
  // ratio = 5/2.25; lr*ratio = 0.09*5/2.25 = 0.2.
  EXPECT_CLOSE(p.W(0), 2.65);  // 3 - 0.2*1.75
  EXPECT_CLOSE(p.W(1), -0.2);
  EXPECT_CLOSE(p.W(2), 0.2);
  EXPECT_CLOSE(p.W(3), 4.0);   // u = -1 + 0.25*4 = 0
  EXPECT_CLOSE(p.b(0), 3.91);  // excluded: ratio 1, u = r = 1: 4 - 0.09
  EXPECT_CLOSE(p.b(1), 0.0);   // g = 0: r = 0

  opt->step(p.arena, 0.09);
  // u = [1 + 0.6625, 1 - 0.05, -1 + 0.05, -1 + 1] = [1.6625, 0.95, -0.95, 0];
  // ||u||^2 = 2.76390625 + 2*0.9025 = 4.56890625, ||u|| = 2.1375;
  // ||W||^2 = 7.0225 + 0.04 + 0.04 + 16 = 23.1025, ||W|| = 4.80650601;
  // lr*ratio = 0.09*4.80650601/2.1375 = 0.20237920.
  EXPECT_CLOSE(p.W(0), 2.31354458);   // 2.65 - 0.20237920*1.6625
  EXPECT_CLOSE(p.W(1), -0.39226024);  // -0.2 - 0.20237920*0.95
  EXPECT_CLOSE(p.W(2), 0.39226024);
  EXPECT_CLOSE(p.W(3), 4.0);
  EXPECT_CLOSE(p.b(0), 3.82);  // no decay for the excluded bias: 3.91 - 0.09*1
}

TEST(Lamb, BiasGetsTrustRatioWhenNotExcluded) {
  Problem p({0, 0, 0, 0}, {4, 0});
  auto opt = make_optimizer(lamb(false), p.arena);
  p.set_grads({1, 1, -1, -1}, {1, 0});
  opt->step(p.arena, 0.09);
  // b: u = [1 + 0.25*4, 0] = [2, 0]; ratio = 4/2 = 2: 4 - 0.09*2*2.
  EXPECT_CLOSE(p.b(0), 3.64);
  // W: ||W|| = 0, so ratio 1 (not 0): u = r.
  EXPECT_CLOSE(p.W(0), -0.09);
  EXPECT_CLOSE(p.W(1), -0.09);
  EXPECT_CLOSE(p.W(2), 0.09);
  EXPECT_CLOSE(p.W(3), 0.09);
}

TEST(Lamb, ZeroUpdateNormLeavesWeightsFinite) {
  // g = 0 and no decay: u = 0, ||u|| = 0; the ratio must not be 5/0 or 0/0.
  Problem p({3, 0, 0, 4}, {1, 2});
  auto opt = make_optimizer(options(OptimizerKind::kLamb), p.arena);
  p.set_grads({0, 0, 0, 0}, {0, 0});
  opt->step(p.arena, 0.09);
  EXPECT_EQ(p.W(0), 3.0f);
  EXPECT_EQ(p.W(3), 4.0f);
  EXPECT_EQ(p.b(1), 2.0f);
}

TEST(Lamb, TrustClip) {
  Problem p({3, 0, 0, 4}, {4, 0});
  auto opt = make_optimizer(lamb(true, 1.5), p.arena);
  p.set_grads({1, 1, -1, -1}, {1, 0});
  opt->step(p.arena, 0.09);
  // ratio 5/2.25 = 2.22 clipped to 1.5: lr*ratio = 0.135; u = [1.75, 1, -1, 0].
  EXPECT_CLOSE(p.W(0), 2.76375);  // 3 - 0.135*1.75
  EXPECT_CLOSE(p.W(1), -0.135);
  EXPECT_CLOSE(p.W(2), 0.135);
  EXPECT_CLOSE(p.b(0), 3.91);  // excluded bias: ratio 1, unclipped
}

// ---------------------------------------------------------------- common

namespace {
const OptimizerKind kAllKinds[] = {OptimizerKind::kSgd, OptimizerKind::kAdamW, OptimizerKind::kLars,
                                   OptimizerKind::kLamb};

OptimizerOptions busy_options(OptimizerKind kind) {
  auto o = options(kind, 0.9, 0.1);
  o.lars_eta = 0.1;
  return o;
}
}  // namespace

TEST(Optim, PaddingBetweenTensorsStaysZero) {
  for (auto kind : kAllKinds) {
    Problem p({1, -2, 0.5f, 3}, {0.5f, -1});
    auto opt = make_optimizer(busy_options(kind), p.arena);
    p.set_grads({0.1f, 0.2f, -0.3f, 0.4f}, {1, -0.5f});  // padding grads hold 100
    opt->step(p.arena, 0.1);
    opt->step(p.arena, 0.2);
    for (long long i = 4; i < kBias; ++i) {
      EXPECT_EQ(p.arena.params()[i], 0.0f) << optimizer_name(kind) << " param " << i;
      for (auto& [name, buf] : opt->state_buffers())
        EXPECT_EQ(buf[i], 0.0f) << optimizer_name(kind) << " " << name << " " << i;
    }
  }
}

TEST(Optim, StateBufferNamesAndArenaShape) {
  const std::vector<std::vector<std::string>> names = {
      {"velocity"}, {"adam_m", "adam_v"}, {"velocity"}, {"adam_m", "adam_v"}};
  for (int k = 0; k < 4; ++k) {
    Problem p({1, 2, 3, 4}, {5, 6});
    auto opt = make_optimizer(busy_options(kAllKinds[k]), p.arena);
    auto bufs = opt->state_buffers();
    ASSERT_EQ(bufs.size(), names[k].size()) << optimizer_name(kAllKinds[k]);
    for (size_t i = 0; i < bufs.size(); ++i) {
      EXPECT_EQ(bufs[i].first, names[k][i]);
      ASSERT_NE(bufs[i].second, nullptr);
      for (long long j = 0; j < p.arena.param_count(); ++j) EXPECT_EQ(bufs[i].second[j], 0.0f);
    }
    if (bufs.size() == 2) {
      EXPECT_NE(bufs[0].second, bufs[1].second);
    }
  }
  // The buffer is indexed like the arena: the last float is b[1]'s velocity.
  Problem p({0, 0, 0, 0}, {0, 0});
  auto opt = make_optimizer(options(OptimizerKind::kSgd, 0.9), p.arena);
  state(*opt, 0)[p.arena.param_count() - 1] = 1.0f;
  opt->step(p.arena, 0.1);
  EXPECT_CLOSE(p.b(1), -0.9);  // v = 0.9*1 + 0.1*0
}

TEST(Optim, CountersAdvancePerStep) {
  for (auto kind : kAllKinds) {
    Problem p({1, 2, 3, 4}, {5, 6});
    auto opt = make_optimizer(busy_options(kind), p.arena);
    EXPECT_EQ(opt->step_count(), 0);
    EXPECT_EQ(opt->previous_lr(), 0.0);
    opt->step(p.arena, 0.1);
    EXPECT_EQ(opt->step_count(), 1) << optimizer_name(kind);
    EXPECT_DOUBLE_EQ(opt->previous_lr(), 0.1);
    opt->step(p.arena, 0.3);
    EXPECT_EQ(opt->step_count(), 2) << optimizer_name(kind);
    EXPECT_DOUBLE_EQ(opt->previous_lr(), 0.3);
  }
}

TEST(Optim, RestoredStateAndCountersContinueTheRun) {
  // Run A: 3 steps. Run B: a fresh optimizer given A's params, state buffers
  // (param_count floats each) and counters after step 2, then step 3. B must
  // equal A exactly; without the counters (t for Adam bias correction, the
  // previous rate for momentum correction) it must not.
  const double lrs[] = {0.1, 0.2, 0.05};
  for (auto kind : kAllKinds) {
    for (bool restore_counters : {true, false}) {
      Problem a({1, -2, 0.5f, 3}, {0.5f, -1});
      Problem b({0, 0, 0, 0}, {0, 0});
      auto opt_a = make_optimizer(busy_options(kind), a.arena);
      auto opt_b = make_optimizer(busy_options(kind), b.arena);
      a.set_grads({0.1f, 0.2f, -0.3f, 0.4f}, {1, -0.5f});
      b.set_grads({0.1f, 0.2f, -0.3f, 0.4f}, {1, -0.5f});
      opt_a->step(a.arena, lrs[0]);
      opt_a->step(a.arena, lrs[1]);
      const long long n = a.arena.param_count();
      std::copy(a.arena.params(), a.arena.params() + n, b.arena.params());
      auto from = opt_a->state_buffers(), to = opt_b->state_buffers();
      for (size_t i = 0; i < from.size(); ++i) std::copy(from[i].second, from[i].second + n, to[i].second);
      if (restore_counters) opt_b->set_counters(opt_a->step_count(), opt_a->previous_lr());
      opt_a->step(a.arena, lrs[2]);
      opt_b->step(b.arena, lrs[2]);
      bool same = true;
      for (long long i = 0; i < n; ++i) same = same && a.arena.params()[i] == b.arena.params()[i];
      EXPECT_EQ(same, restore_counters) << optimizer_name(kind);
    }
  }
}

TEST(Optim, StepRejectsAnotherArena) {
  Problem p({1, 2, 3, 4}, {5, 6});
  Arena other;
  other.add("dense0/W", {3, 3});
  other.allocate();
  auto opt = make_optimizer(options(OptimizerKind::kSgd, 0.9), p.arena);
  EXPECT_THROW(opt->step(other, 0.1), std::logic_error);
}

// core/vector_math is the one norm of the optimizers and the gradient
// reducer; its tests live with its first user.
TEST(VectorMath, SumOfSquaresHandValues) {
  const float x[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};  // 8 in the partial sums, 2 in the tail
  EXPECT_EQ(sum_of_squares(x, 10), 385.0);
  EXPECT_EQ(sum_of_squares(x, 3), 14.0);
  EXPECT_EQ(sum_of_squares(x, 0), 0.0);
  EXPECT_EQ(sum_of_squares(x, -1), 0.0);
  const float big[] = {3e20f, 4e20f};  // squares overflow float, not double
  EXPECT_NEAR(sum_of_squares(big, 2), 25e40, 25e40 * 1e-7);
  EXPECT_EQ(l2_norm(x, 10), std::sqrt(385.0));
}

// The accumulation order is part of the contract (the trainer's numbers must
// not move when a caller switches to it): eight partial sums by index mod 8,
// the tail into the first, then the eight added in order. Values of very
// different sizes make any other order round differently.
TEST(VectorMath, SumOfSquaresFixedOrderBitwise) {
  std::vector<float> x(37);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<float>((1.0 + static_cast<double>(i * 7919 % 1000) / 997.0) *
                              std::pow(10.0, static_cast<double>(i * 5 % 9) - 4.0));
  double part[8] = {};
  size_t i = 0;
  for (; i + 8 <= x.size(); i += 8)
    for (size_t j = 0; j < 8; ++j) part[j] += static_cast<double>(x[i + j]) * x[i + j];
  for (; i < x.size(); ++i) part[0] += static_cast<double>(x[i]) * x[i];
  double want = 0;
  for (double p : part) want += p;
  double serial = 0;
  for (float v : x) serial += static_cast<double>(v) * v;
  ASSERT_NE(want, serial) << "the values no longer tell the two orders apart";
  EXPECT_EQ(sum_of_squares(x.data(), static_cast<long long>(x.size())), want);
  EXPECT_EQ(l2_norm(x.data(), static_cast<long long>(x.size())), std::sqrt(want));
}

TEST(Optim, L2NormAccumulatesInDouble) {
  const float x[] = {3, 4};
  EXPECT_DOUBLE_EQ(l2_norm(x, 2), 5.0);
  EXPECT_DOUBLE_EQ(l2_norm(x, 0), 0.0);
  const float big[] = {3e20f, 4e20f};  // squares overflow float
  EXPECT_NEAR(l2_norm(big, 2), 5e20, 5e20 * 1e-7);
}

// ---------------------------------------------------------------- parsing

TEST(Optim, ParseOptimizerNames) {
  for (auto kind : kAllKinds) EXPECT_EQ(parse_optimizer(optimizer_name(kind)), kind);
  EXPECT_STREQ(optimizer_name(OptimizerKind::kSgd), "sgd");
  EXPECT_STREQ(optimizer_name(OptimizerKind::kAdamW), "adamw");
  EXPECT_STREQ(optimizer_name(OptimizerKind::kLars), "lars");
  EXPECT_STREQ(optimizer_name(OptimizerKind::kLamb), "lamb");
  try {
    parse_optimizer("adam");
    ADD_FAILURE() << "no UserError for 'adam'";
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("--optimizer"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'adam'"), std::string::npos) << msg;
    for (const char* choice : {"sgd", "adamw", "lars", "lamb"})
      EXPECT_NE(msg.find(choice), std::string::npos) << msg;
  }
  EXPECT_THROW(parse_optimizer(""), UserError);
  EXPECT_THROW(parse_optimizer("SGD"), UserError);
}

TEST(Optim, ParseWeightDecayMode) {
  EXPECT_EQ(parse_weight_decay_mode("l2"), WeightDecayMode::kL2);
  EXPECT_EQ(parse_weight_decay_mode("decoupled"), WeightDecayMode::kDecoupled);
  try {
    parse_weight_decay_mode("adamw");
    ADD_FAILURE() << "no UserError for 'adamw'";
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("--weight-decay-mode"), std::string::npos) << msg;
    EXPECT_NE(msg.find("l2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("decoupled"), std::string::npos) << msg;
  }
}

// check_optimizer_options is the one check (config's validate() calls it);
// the e2e tests and users read these exact lines.
TEST(Optim, CheckOptimizerOptionsExactMessages) {
  const auto message = [](void (*set)(OptimizerOptions&)) {
    OptimizerOptions o;
    set(o);
    try {
      check_optimizer_options(o);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_EQ(message([](OptimizerOptions& o) { o.momentum = 1.5; }), "--momentum must be in [0, 1) (got 1.5)");
  EXPECT_EQ(message([](OptimizerOptions& o) { o.momentum = -0.0123456789; }),
            "--momentum must be in [0, 1) (got -0.0123456789)");  // the value as given, not rounded
  EXPECT_EQ(message([](OptimizerOptions& o) { o.weight_decay = -1; }),
            "--weight-decay must be a finite number >= 0 (got -1)");
  EXPECT_EQ(message([](OptimizerOptions& o) { o.beta1 = 1; }), "--beta1 must be in [0, 1)");
  EXPECT_EQ(message([](OptimizerOptions& o) { o.beta2 = -0.5; }), "--beta2 must be in [0, 1)");
  EXPECT_EQ(message([](OptimizerOptions& o) { o.eps = 0; }), "--eps must be > 0");
  EXPECT_EQ(message([](OptimizerOptions& o) { o.lars_eta = -1; }), "--lars-eta must be > 0");
  EXPECT_EQ(message([](OptimizerOptions& o) { o.trust_clip = -1; }), "--trust-clip must be >= 0 (0: no clip)");
  EXPECT_EQ(message([](OptimizerOptions&) {}), "(accepted)");
}

TEST(Optim, MakeOptimizerValidatesOptions) {
  Problem p({1, 2, 3, 4}, {5, 6});
  const double nan = std::numeric_limits<double>::quiet_NaN();
  struct Bad {
    const char* option;
    void (*set)(OptimizerOptions&, double);
    std::vector<double> bad, good;
  };
  const Bad cases[] = {
      {"--momentum", [](OptimizerOptions& o, double x) { o.momentum = x; }, {1.0, -0.1, nan}, {0.0, 0.99}},
      {"--weight-decay", [](OptimizerOptions& o, double x) { o.weight_decay = x; }, {-1e-4, nan}, {0.0, 0.5}},
      {"--beta1", [](OptimizerOptions& o, double x) { o.beta1 = x; }, {1.0, -0.1, nan}, {0.0, 0.9}},
      {"--beta2", [](OptimizerOptions& o, double x) { o.beta2 = x; }, {1.0, -0.1, nan}, {0.0, 0.999}},
      {"--eps", [](OptimizerOptions& o, double x) { o.eps = x; }, {0.0, -1e-8, nan}, {1e-12}},
      {"--lars-eta", [](OptimizerOptions& o, double x) { o.lars_eta = x; }, {0.0, -0.001, nan}, {0.02}},
      {"--trust-clip", [](OptimizerOptions& o, double x) { o.trust_clip = x; }, {-1.0, nan}, {0.0, 10.0}},
  };
  for (const auto& c : cases) {
    for (double x : c.bad) {
      OptimizerOptions o;
      c.set(o, x);
      try {
        make_optimizer(o, p.arena);
        ADD_FAILURE() << c.option << " = " << x << " accepted";
      } catch (const UserError& e) {
        EXPECT_NE(std::string(e.what()).find(c.option), std::string::npos) << e.what();
      }
    }
    for (double x : c.good) {
      OptimizerOptions o;
      c.set(o, x);
      EXPECT_NO_THROW(make_optimizer(o, p.arena)) << c.option << " = " << x;
    }
  }
}

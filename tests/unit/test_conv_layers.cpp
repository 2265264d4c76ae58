// Tests of the convolutional layers (nn/conv2d, nn/pooling, nn/dropout,
// nn/batch_norm): finite-difference gradient checks of every layer through the
// shared checker (tests/support/gradient_check.hpp), Conv2D forward against a
// naive double-precision convolution for each padding mode and stride, the
// TensorFlow "same" padding split, max pooling routing its gradient to the
// argmax only, dropout masks keyed by (seed, step, global row) so that any
// split of the rows gives the same result, and batch norm synchronized over
// two simulated ranks equal to batch norm over the union of their rows,
// with its running statistics and parameter flags.
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

// One convolution under test: input shape, output channels, kernel, stride,
// pad (-1 = same).
struct ConvCase {
  const char* label;
  Shape in;
  int out_c, kh, kw, stride, pad;
  int rows;
};

// The geometries the brief asks for: same/valid/explicit padding, stride 2 on
// an odd input, a non-square kernel, several input and output channels.
const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases = {
      {"3x3 same stride 1", Shape{1, 6, 6}, 2, 3, 3, 1, -1, 2},
      {"5x5 valid", Shape{2, 8, 7}, 3, 5, 5, 1, 0, 2},
      {"3x3 same stride 2 on 7x5", Shape{2, 7, 5}, 2, 3, 3, 2, -1, 2},
      {"3x2 pad 1", Shape{3, 5, 6}, 2, 3, 2, 1, 1, 2},
      {"4x4 same (uneven padding)", Shape{3, 6, 6}, 4, 4, 4, 1, -1, 1},
      {"3x2 same (pad top 1, left 0)", Shape{2, 5, 6}, 2, 3, 2, 1, -1, 2},
      {"3x3 valid stride 2", Shape{2, 7, 7}, 3, 3, 3, 2, 0, 2},
      {"2x2 pad 1 stride 2", Shape{2, 5, 5}, 2, 2, 2, 2, 1, 2},
  };
  return cases;
}

// A Conv2D bound to its own arena, with non-zero biases.
struct ConvUnderTest {
  Arena arena;
  Conv2D conv;
  ConvUnderTest(const ConvCase& c, std::uint64_t seed, FusedActivation act = FusedActivation::kNone)
      : conv("c", c.in, c.out_c, conv_geometry(c.in, c.kh, c.kw, c.stride, c.pad, "test conv"), act) {
    gradcheck::bind_to_own_arena(conv, arena, seed);
    for (int j = 0; j < c.out_c; ++j) b()[j] = static_cast<float>(0.1 * (j + 1) * (j % 2 ? -1 : 1));
  }
  float* w() { return arena.params() + arena.views()[0].offset; }
  float* b() { return arena.params() + arena.views()[1].offset; }

  // Pre-activations (R, OH, OW, O) by the definition of a convolution, in
  // double: seven loops, padding read as zeros outside the image.
  std::vector<double> naive(const std::vector<float>& x, int rows) {
    const Shape in = conv.in_shape(), out = conv.out_shape();
    const Conv2DGeometry& g = conv.geometry();
    std::vector<double> y(static_cast<size_t>(rows) * out.size());
    for (int r = 0; r < rows; ++r)
      for (int oy = 0; oy < out.h; ++oy)
        for (int ox = 0; ox < out.w; ++ox)
          for (int o = 0; o < out.c; ++o) {
            double s = b()[o];
            for (int ky = 0; ky < g.kh; ++ky)
              for (int kx = 0; kx < g.kw; ++kx)
                for (int ch = 0; ch < in.c; ++ch) {
                  const int iy = oy * g.stride - g.pad_top + ky, ix = ox * g.stride - g.pad_left + kx;
                  if (iy < 0 || iy >= in.h || ix < 0 || ix >= in.w) continue;
                  const double xv = x[static_cast<size_t>(r) * in.size() + (static_cast<size_t>(iy) * in.w + ix) * in.c + ch];
                  s += xv * w()[((static_cast<size_t>(ky) * g.kw + kx) * in.c + ch) * out.c + o];
                }
            y[static_cast<size_t>(r) * out.size() + (static_cast<size_t>(oy) * out.w + ox) * out.c + o] = s;
          }
    return y;
  }
};

// n distinct values 0.01 apart (far more than the checker's 2 * eps), in a
// random order: max pooling has no ties and no argmax changes under the step.
std::vector<float> distinct_floats(size_t n, std::uint64_t seed) {
  const std::vector<std::int64_t> perm = random_permutation(static_cast<std::int64_t>(n), seed);
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(0.01 * (static_cast<double>(perm[i]) - n / 2.0));
  return v;
}

// A pooling layer with its argmax scratch, as the model gives it.
struct PoolUnderTest {
  Arena arena;
  Pool2D pool;
  PoolUnderTest(Pool2D::Kind kind, Shape in, int k, int stride) : pool("p", kind, in, k, stride, "test pool") {
    gradcheck::bind_to_own_arena(pool, arena, 1);
  }
};

// Naive max/avg pooling of one row, and the input index of each max.
void naive_pool(Pool2D::Kind kind, Shape in, Shape out, int k, int stride, const float* x, std::vector<double>& y,
                std::vector<long long>& arg) {
  y.assign(static_cast<size_t>(out.size()), 0.0);
  arg.assign(static_cast<size_t>(out.size()), -1);
  for (int oy = 0; oy < out.h; ++oy)
    for (int ox = 0; ox < out.w; ++ox)
      for (int ch = 0; ch < in.c; ++ch) {
        const size_t o = (static_cast<size_t>(oy) * out.w + ox) * in.c + ch;
        double best = -1e300, sum = 0;
        for (int ky = 0; ky < k; ++ky)
          for (int kx = 0; kx < k; ++kx) {
            const long long i = ((static_cast<long long>(oy) * stride + ky) * in.w + ox * stride + kx) * in.c + ch;
            sum += x[i];
            if (x[i] > best) best = x[i], arg[o] = i;
          }
        y[o] = kind == Pool2D::Kind::kMax ? best : sum / (k * k);
      }
}

// A BatchNorm bound to its own arena with gamma, beta away from 1, 0.
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
    void sum(double* data, int count) override {
      ++calls;
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

// ---------------------------------------------------------------- Conv2D

// TensorFlow's "same": output ceil(in / stride), padding total
// (out - 1) * stride + k - in with the odd pixel at the bottom/right.
TEST(Conv2DGeometry, SameValidAndExplicitPaddingByHand) {
  Conv2DGeometry g = conv_geometry(Shape{2, 7, 5}, 3, 3, 2, -1, "t");
  EXPECT_EQ(g.out_h, 4);
  EXPECT_EQ(g.out_w, 3);
  EXPECT_EQ(g.pad_top, 1);
  EXPECT_EQ(g.pad_left, 1);
  g = conv_geometry(Shape{3, 6, 6}, 4, 4, 1, -1, "t");  // total 3: 1 on top, 2 below
  EXPECT_EQ(g.out_h, 6);
  EXPECT_EQ(g.pad_top, 1);
  g = conv_geometry(Shape{1, 8, 8}, 2, 2, 2, -1, "t");  // total 0
  EXPECT_EQ(g.out_h, 4);
  EXPECT_EQ(g.pad_top, 0);
  g = conv_geometry(Shape{2, 5, 6}, 3, 2, 1, -1, "t");  // totals 2 and 1: padding differs by axis
  EXPECT_EQ(g.out_h, 5);
  EXPECT_EQ(g.out_w, 6);
  EXPECT_EQ(g.pad_top, 1);
  EXPECT_EQ(g.pad_left, 0);
  g = conv_geometry(Shape{2, 8, 7}, 5, 5, 1, 0, "t");
  EXPECT_EQ(g.out_h, 4);
  EXPECT_EQ(g.out_w, 3);
  EXPECT_EQ(g.pad_top, 0);
  g = conv_geometry(Shape{3, 5, 6}, 3, 2, 1, 1, "t");
  EXPECT_EQ(g.out_h, 5);
  EXPECT_EQ(g.out_w, 7);
  EXPECT_EQ(g.pad_top, 1);
  EXPECT_EQ(g.pad_left, 1);
  g = conv_geometry(Shape{2, 5, 5}, 2, 2, 2, 1, "t");
  EXPECT_EQ(g.out_h, 3);
  EXPECT_EQ(g.out_w, 3);
  EXPECT_THROW(conv_geometry(Shape{1, 4, 4}, 5, 5, 1, 0, "t"), UserError);
  EXPECT_NO_THROW(conv_geometry(Shape{1, 4, 4}, 5, 5, 1, 1, "t"));  // fits with padding 1
  // "same" does not pad a kernel to fit an input smaller than it.
  EXPECT_THROW(conv_geometry(Shape{1, 4, 4}, 5, 5, 1, -1, "t"), UserError);
  EXPECT_THROW(conv_geometry(Shape{1, 4, 6}, 5, 3, 1, -1, "t"), UserError);
  EXPECT_THROW(conv_geometry(Shape{1, 6, 4}, 3, 5, 2, -1, "t"), UserError);
  EXPECT_NO_THROW(conv_geometry(Shape{1, 4, 4}, 4, 4, 1, -1, "t"));
  EXPECT_THROW(conv_geometry(Shape{1, 4, 4}, 3, 3, 0, 0, "t"), UserError);
}

TEST(Conv2D, ForwardEqualsNaiveConvolution) {
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(c.label);
    ConvUnderTest t(c, 31);
    const int rows = 3;
    const auto x = random_floats(static_cast<size_t>(rows) * c.in.size(), 32);
    std::vector<float> y(static_cast<size_t>(rows) * t.conv.out_width());
    t.conv.forward(x.data(), y.data(), rows);
    const std::vector<double> ref = t.naive(x, rows);
    ASSERT_EQ(ref.size(), y.size());
    size_t bad = 0;
    for (size_t i = 0; i < y.size(); ++i)
      if (!(std::abs(y[i] - ref[i]) <= 1e-4 * (1.0 + std::abs(ref[i])))) {
        if (++bad <= 5) ADD_FAILURE() << "y[" << i << "] = " << y[i] << ", naive " << ref[i];
      }
    EXPECT_EQ(bad, 0u);
  }
}

TEST(Conv2D, FusedReluForwardIsReluOfNaive) {
  const ConvCase& c = conv_cases()[2];  // stride 2, same, 7x5
  ConvUnderTest t(c, 33, FusedActivation::kRelu);
  EXPECT_EQ(t.conv.name(), "c+relu");
  const int rows = 2;
  const auto x = random_floats(static_cast<size_t>(rows) * c.in.size(), 34);
  std::vector<float> y(static_cast<size_t>(rows) * t.conv.out_width());
  t.conv.forward(x.data(), y.data(), rows);
  const std::vector<double> ref = t.naive(x, rows);
  int negative = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    negative += ref[i] < 0;
    EXPECT_NEAR(y[i], std::max(ref[i], 0.0), 1e-4 * (1.0 + std::abs(ref[i]))) << i;
  }
  EXPECT_GT(negative, 0);
}

TEST(Conv2D, GradientsMatchFiniteDifferences) {
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(c.label);
    ConvUnderTest t(c, 41);
    const auto x = random_floats(static_cast<size_t>(c.rows) * c.in.size(), 42);
    const auto dy = random_floats(static_cast<size_t>(c.rows) * t.conv.out_width(), 43);
    const gradcheck::Report report = gradcheck::check_layer(t.conv, &t.arena, x, dy, c.rows, {}, chw(c.in));
    EXPECT_TRUE(report.passed()) << report;
    ASSERT_EQ(report.tensors.size(), 3u);
    EXPECT_EQ(report["c/W"].count, static_cast<size_t>(c.kh) * c.kw * c.in.c * c.out_c);
    EXPECT_EQ(report["c/b"].count, static_cast<size_t>(c.out_c));
    EXPECT_GT(report.largest_numeric(), 0.2);
  }
}

// Fused ReLU, checked on a draw whose pre-activations stay clear of the kink
// (a step of 1e-3 in x, W or b moves them by far less than 0.02).
TEST(Conv2D, FusedReluGradientsMatchFiniteDifferences) {
  const ConvCase c{"3x3 same, 2 -> 3 channels", Shape{2, 5, 4}, 3, 3, 3, 1, -1, 2};
  ConvUnderTest t(c, 44, FusedActivation::kRelu);
  std::vector<float> x;
  std::vector<double> z;
  for (std::uint64_t seed = 45;; ++seed) {
    ASSERT_LT(seed, 2000u) << "no kink-free draw";
    x = random_floats(static_cast<size_t>(c.rows) * c.in.size(), seed);
    z = t.naive(x, c.rows);
    if (std::all_of(z.begin(), z.end(), [](double v) { return std::abs(v) > 0.02; })) break;
  }
  EXPECT_TRUE(std::any_of(z.begin(), z.end(), [](double v) { return v < 0; }));
  EXPECT_TRUE(std::any_of(z.begin(), z.end(), [](double v) { return v > 0; }));
  const auto dy = random_floats(static_cast<size_t>(c.rows) * t.conv.out_width(), 46);
  const gradcheck::Report report = gradcheck::check_layer(t.conv, &t.arena, x, dy, c.rows, {}, chw(c.in));
  EXPECT_TRUE(report.passed()) << report;
  EXPECT_EQ(report.tensors.size(), 3u);
}

TEST(Conv2D, ParamsRegisteredWithShapesAndFlags) {
  ConvUnderTest t(conv_cases()[3], 1);  // 3x2 kernel, 3 -> 2 channels
  const auto& v = t.arena.views();
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].name, "c/W");
  EXPECT_EQ(v[0].shape, (std::vector<long long>{3, 2, 3, 2}));
  EXPECT_TRUE(v[0].flags.trainable && v[0].flags.decay && v[0].flags.trust_ratio);
  EXPECT_EQ(v[1].name, "c/b");
  EXPECT_EQ(v[1].shape, (std::vector<long long>{2}));
  EXPECT_TRUE(v[1].flags.trainable);
  EXPECT_FALSE(v[1].flags.decay);
  EXPECT_FALSE(v[1].flags.trust_ratio);
  EXPECT_EQ(t.conv.param_count(), 3 * 2 * 3 * 2 + 2);
}

// ---------------------------------------------------------------- pooling

TEST(Pool2D, ForwardEqualsNaivePooling) {
  struct Case { Pool2D::Kind kind; Shape in; int k, stride; Shape out; };
  const std::vector<Case> cases = {
      {Pool2D::Kind::kMax, Shape{2, 6, 6}, 2, 2, Shape{2, 3, 3}},
      {Pool2D::Kind::kMax, Shape{3, 7, 5}, 3, 2, Shape{3, 3, 2}},
      {Pool2D::Kind::kMax, Shape{2, 7, 5}, 2, 2, Shape{2, 3, 2}},  // last row and column dropped
      {Pool2D::Kind::kAvg, Shape{2, 6, 6}, 2, 2, Shape{2, 3, 3}},
      {Pool2D::Kind::kAvg, Shape{3, 7, 5}, 3, 2, Shape{3, 3, 2}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.kind == Pool2D::Kind::kMax ? "max" : "avg") + " " + std::to_string(c.k) + " stride " +
                 std::to_string(c.stride) + " on " + c.in.text());
    PoolUnderTest t(c.kind, c.in, c.k, c.stride);
    ASSERT_EQ(t.pool.out_shape(), c.out);
    const int rows = 2;
    const auto x = distinct_floats(static_cast<size_t>(rows) * c.in.size(), 51);
    std::vector<float> y(static_cast<size_t>(rows) * c.out.size());
    t.pool.forward(x.data(), y.data(), rows);
    for (int r = 0; r < rows; ++r) {
      std::vector<double> ref;
      std::vector<long long> arg;
      naive_pool(c.kind, c.in, c.out, c.k, c.stride, x.data() + r * c.in.size(), ref, arg);
      for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(y[r * c.out.size() + i], ref[i], 1e-6) << r << "," << i;
    }
  }
}

TEST(Pool2D, GradientsMatchFiniteDifferences) {
  struct Case { Pool2D::Kind kind; Shape in; int k, stride; };
  const std::vector<Case> cases = {
      {Pool2D::Kind::kMax, Shape{2, 6, 6}, 2, 2},
      {Pool2D::Kind::kMax, Shape{3, 7, 5}, 3, 2},  // overlapping windows, odd sizes
      {Pool2D::Kind::kAvg, Shape{2, 6, 6}, 2, 2},
      {Pool2D::Kind::kAvg, Shape{3, 7, 5}, 3, 2},
      {Pool2D::Kind::kAvg, Shape{2, 7, 5}, 2, 2},  // the dropped border gets no gradient
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.kind == Pool2D::Kind::kMax ? "max" : "avg") + " " + std::to_string(c.k) + " stride " +
                 std::to_string(c.stride) + " on " + c.in.text());
    PoolUnderTest t(c.kind, c.in, c.k, c.stride);
    const int rows = 3;
    const auto x = distinct_floats(static_cast<size_t>(rows) * c.in.size(), 52);
    const auto dy = random_floats(static_cast<size_t>(rows) * t.pool.out_width(), 53);
    const gradcheck::Report report = gradcheck::check_layer(t.pool, nullptr, x, dy, rows, {}, chw(c.in));
    EXPECT_TRUE(report.passed()) << report;
    EXPECT_GT(report.largest_numeric(), 0.2);
  }
}

// Max pooling's input gradient is dy at each window's argmax (summed where
// overlapping windows share it) and exactly zero everywhere else.
TEST(Pool2D, MaxPoolBackwardRoutesToTheArgmaxOnly) {
  const Shape in{2, 5, 5};
  PoolUnderTest t(Pool2D::Kind::kMax, in, 3, 2);  // overlapping 3x3 windows at stride 2
  const Shape out = t.pool.out_shape();
  ASSERT_EQ(out, (Shape{2, 2, 2}));
  const int rows = 2;
  const auto x = distinct_floats(static_cast<size_t>(rows) * in.size(), 54);
  std::vector<float> dy(static_cast<size_t>(rows) * out.size());
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = static_cast<float>(1 + i);  // distinct, non-zero
  std::vector<float> y(dy.size()), dx(x.size(), 123.0f);
  t.pool.forward(x.data(), y.data(), rows);
  t.pool.backward(x.data(), y.data(), dy.data(), dx.data(), rows);
  for (int r = 0; r < rows; ++r) {
    std::vector<double> ref;
    std::vector<long long> arg;
    naive_pool(Pool2D::Kind::kMax, in, out, 3, 2, x.data() + r * in.size(), ref, arg);
    std::vector<double> expected(static_cast<size_t>(in.size()), 0.0);
    for (size_t o = 0; o < arg.size(); ++o) expected[static_cast<size_t>(arg[o])] += dy[r * out.size() + o];
    int nonzero = 0;
    for (long long i = 0; i < in.size(); ++i) {
      EXPECT_EQ(dx[r * in.size() + i], expected[static_cast<size_t>(i)]) << "row " << r << " input " << i;
      nonzero += expected[static_cast<size_t>(i)] != 0.0;
    }
    EXPECT_GE(nonzero, 1);
    EXPECT_LE(nonzero, out.size());
  }
  // A hand case: one channel, 4x4, the max of each 2x2 window placed by hand.
  PoolUnderTest h(Pool2D::Kind::kMax, Shape{1, 4, 4}, 2, 2);
  const std::vector<float> hx = {0, 1, 2, 9,   //
                                 8, 3, 4, 5,   //
                                 6, 7, 1, 0,   //
                                 2, 3, 4, -1};
  std::vector<float> hdy = {10, 20, 30, 40}, hy(4), hdx(16, -5.0f);
  h.pool.forward(hx.data(), hy.data(), 1);
  EXPECT_EQ(hy, (std::vector<float>{8, 9, 7, 4}));
  h.pool.backward(hx.data(), hy.data(), hdy.data(), hdx.data(), 1);
  EXPECT_EQ(hdx, (std::vector<float>{0, 0, 0, 20, 10, 0, 0, 0, 0, 30, 0, 0, 0, 0, 40, 0}));
  // Overlapping windows sharing their argmax: column 2 is in both 3x3
  // windows of a 3x5 map at stride 2, so it gets both gradients.
  PoolUnderTest o(Pool2D::Kind::kMax, Shape{1, 3, 5}, 3, 2);
  const std::vector<float> ox = {0, 1, 2, 1, 0,  //
                                 1, 2, 9, 2, 1,  //
                                 0, 1, 2, 1, 0};
  std::vector<float> ody = {1.5f, -4.0f}, oy(2), odx(15, 7.0f);
  o.pool.forward(ox.data(), oy.data(), 1);
  EXPECT_EQ(oy, (std::vector<float>{9, 9}));
  o.pool.backward(ox.data(), oy.data(), ody.data(), odx.data(), 1);
  std::vector<float> oexpected(15, 0.0f);
  oexpected[7] = -2.5f;
  EXPECT_EQ(odx, oexpected);
}

TEST(Pool2D, WindowLargerThanInputIsAUserError) {
  EXPECT_THROW(Pool2D("p", Pool2D::Kind::kMax, Shape{1, 4, 5}, 5, 1, "t"), UserError);
  EXPECT_THROW(Pool2D("p", Pool2D::Kind::kAvg, Shape{8, 1, 1}, 2, 2, "t"), UserError);  // a flat vector
  EXPECT_NO_THROW(Pool2D("p", Pool2D::Kind::kAvg, Shape{1, 4, 4}, 4, 1, "t"));
}

TEST(GlobalAvgPool, ForwardByHandAndGradientsMatchFiniteDifferences) {
  const Shape in{3, 4, 5};
  GlobalAvgPool gap("gap0", in);
  EXPECT_EQ(gap.out_shape(), (Shape{3, 1, 1}));
  const int rows = 3;
  const auto x = random_floats(static_cast<size_t>(rows) * in.size(), 61);
  std::vector<float> y(static_cast<size_t>(rows) * 3);
  gap.forward(x.data(), y.data(), rows);
  for (int r = 0; r < rows; ++r)
    for (int ch = 0; ch < 3; ++ch) {
      double s = 0;
      for (int p = 0; p < 20; ++p) s += x[r * in.size() + p * 3 + ch];
      EXPECT_NEAR(y[r * 3 + ch], s / 20, 1e-6) << r << "," << ch;
    }
  const auto dy = random_floats(y.size(), 62, 20.0);  // dx = dy / 20: keep it O(1)
  const gradcheck::Report report = gradcheck::check_layer(gap, nullptr, x, dy, rows, {}, chw(in));
  EXPECT_TRUE(report.passed()) << report;
  EXPECT_GT(report.largest_numeric(), 0.2);
}

TEST(Flatten, CopiesRowsAndGradientsMatchFiniteDifferences) {
  const Shape in{2, 3, 4};
  Flatten f("flatten0", in);
  EXPECT_EQ(f.out_shape(), (Shape{24, 1, 1}));
  const int rows = 2;
  const auto x = random_floats(48, 63);
  std::vector<float> y(48);
  f.forward(x.data(), y.data(), rows);
  EXPECT_EQ(y, x);
  const gradcheck::Report report = gradcheck::check_layer(f, nullptr, x, random_floats(48, 64), rows, {}, chw(in));
  EXPECT_TRUE(report.passed()) << report;
}

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

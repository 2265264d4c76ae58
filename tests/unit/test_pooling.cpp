// Tests of nn/pooling: max and average pooling against naive loops, max
// pooling routing its gradient to the argmax only, global average pooling and
// flatten, with finite-difference gradient checks through the shared checker.
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

}  // namespace

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

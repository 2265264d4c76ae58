// Tests of nn/conv2d and nn/im2col: Conv2D forward against a naive
// double-precision convolution for each padding mode and stride, the
// TensorFlow "same" padding split, finite-difference gradient checks through
// the shared checker (tests/support/gradient_check.hpp), parameter flags.
#include <gtest/gtest.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
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
  ConvUnderTest(const ConvCase& c, std::uint64_t seed, FusedActivation act = FusedActivation::kNone,
                ConvAlgorithm algo = ConvAlgorithm::kIm2col)
      : conv("c", c.in, c.out_c, conv_geometry(c.in, c.kh, c.kw, c.stride, c.pad, "test conv"), act, algo) {
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

// Winograd's cases: every tile size it picks (F(4,3), F(4,4), F(4,5),
// F(3,6), F(2,7)), outputs that are not a multiple of the tile (partial edge
// tiles), same/valid/explicit padding, odd sizes, channels > 1.
const std::vector<ConvCase>& winograd_cases() {
  static const std::vector<ConvCase> cases = {
      {"3x3 same 7x6, 3 -> 2", Shape{3, 7, 6}, 2, 3, 3, 1, -1, 2},
      {"5x5 same 9x10, 8 -> 4", Shape{8, 9, 10}, 4, 5, 5, 1, -1, 1},
      {"5x5 valid 9x8, 2 -> 3", Shape{2, 9, 8}, 3, 5, 5, 1, 0, 2},
      {"3x3 pad 2 on 5x5", Shape{2, 5, 5}, 3, 3, 3, 1, 2, 2},
      {"4x4 same (uneven padding) 6x7", Shape{3, 6, 7}, 2, 4, 4, 1, -1, 1},
      {"6x6 same 9x9", Shape{2, 9, 9}, 2, 6, 6, 1, -1, 1},
      {"7x7 same 11x10", Shape{2, 11, 10}, 3, 7, 7, 1, -1, 1},
      {"3x3 pad 4 (tiles wholly in padding) 5x6", Shape{2, 5, 6}, 2, 3, 3, 1, 4, 1},
      // 16-wide transforms and their one-channel tail, on inputs and outputs.
      {"5x5 same 6x7, 20 -> 17", Shape{20, 6, 7}, 17, 5, 5, 1, -1, 1},
      {"3x3 same 5x5, 17 -> 33", Shape{17, 5, 5}, 33, 3, 3, 1, -1, 1},
  };
  return cases;
}

// Largest |y - naive| relative to 1 + |naive| over a forward of `rows` rows.
double forward_error(ConvUnderTest& t, int rows, std::uint64_t seed) {
  const auto x = random_floats(static_cast<size_t>(rows) * t.conv.in_width(), seed);
  std::vector<float> y(static_cast<size_t>(rows) * t.conv.out_width());
  t.conv.forward(x.data(), y.data(), rows);
  const std::vector<double> ref = t.naive(x, rows);
  double worst = 0.0;
  for (size_t i = 0; i < y.size(); ++i) worst = std::max(worst, std::abs(y[i] - ref[i]) / (1.0 + std::abs(ref[i])));
  return worst;
}

// n distinct values 0.01 apart (far more than the checker's 2 * eps), in a
// random order: max pooling has no ties and no argmax changes under the step.

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

TEST(Conv2DWinograd, ForwardEqualsNaiveConvolution) {
  for (const ConvCase& c : winograd_cases()) {
    SCOPED_TRACE(c.label);
    ConvUnderTest t(c, 35, FusedActivation::kNone, ConvAlgorithm::kWinograd);
    ASSERT_EQ(t.conv.algorithm(), ConvAlgorithm::kWinograd);
    EXPECT_LT(forward_error(t, 3, 36), 2e-5);
  }
}

// The CNN job's conv1 shape (32 -> 64 channels, 5x5 same on 14x14): F(4x4,
// 5x5) in float stays within a few 1e-5 of the double-precision direct sum
// over its 800 products (im2col's sgemm: about 1e-6).
TEST(Conv2DWinograd, AccurateAtTheCnnJobsShape) {
  const ConvCase c{"conv1", Shape{32, 14, 14}, 64, 5, 5, 1, -1, 2};
  ConvUnderTest wino(c, 37, FusedActivation::kNone, ConvAlgorithm::kWinograd);
  ConvUnderTest direct(c, 37);
  const double we = forward_error(wino, 2, 38), de = forward_error(direct, 2, 38);
  EXPECT_LT(we, 5e-5) << "im2col " << de;
  EXPECT_GT(we, 0.0);
}

// Winograd's forward rounds about 100x more than a direct sum (1e-5, not
// 6e-8), which at the checker's step of 1e-3 drowns the difference quotient.
// The layer is linear in x and in W, so a central difference is exact at any
// step: a step of 0.25 keeps the rounding 250x smaller relative to it.
TEST(Conv2DWinograd, GradientsMatchFiniteDifferences) {
  gradcheck::Options options;
  options.eps = 0.25;
  for (const ConvCase& c : winograd_cases()) {
    SCOPED_TRACE(c.label);
    ConvUnderTest t(c, 47, FusedActivation::kNone, ConvAlgorithm::kWinograd);
    const auto x = random_floats(static_cast<size_t>(c.rows) * c.in.size(), 48);
    const auto dy = random_floats(static_cast<size_t>(c.rows) * t.conv.out_width(), 49);
    const gradcheck::Report report = gradcheck::check_layer(t.conv, &t.arena, x, dy, c.rows, options, chw(c.in));
    EXPECT_TRUE(report.passed()) << report;
    ASSERT_EQ(report.tensors.size(), 3u);
    EXPECT_GT(report.largest_numeric(), 0.2);
  }
}

// Both algorithms give the same gradients (to Winograd's rounding, 1e-5 of
// the largest value) on one draw, with a fused ReLU and more rows than the
// input gradient's row groups.
TEST(Conv2DWinograd, GradientsEqualIm2col) {
  const ConvCase c{"5x5 same 10x9, 8 -> 6", Shape{8, 10, 9}, 6, 5, 5, 1, -1, Conv2D::kInputGradRows + 3};
  ConvUnderTest wino(c, 50, FusedActivation::kRelu, ConvAlgorithm::kWinograd);
  ConvUnderTest direct(c, 50, FusedActivation::kRelu);
  const auto x = random_floats(static_cast<size_t>(c.rows) * c.in.size(), 51);
  const auto dy0 = random_floats(static_cast<size_t>(c.rows) * wino.conv.out_width(), 52);
  std::vector<float> dx[2];
  ConvUnderTest* both[2] = {&wino, &direct};
  for (int k = 0; k < 2; ++k) {
    ConvUnderTest& t = *both[k];
    t.arena.zero_grads();
    std::vector<float> y(dy0.size()), dy = dy0;
    dx[k].assign(x.size(), 0.0f);
    t.conv.forward(x.data(), y.data(), c.rows);
    t.conv.backward(x.data(), y.data(), dy.data(), dx[k].data(), c.rows);
  }
  auto largest = [](const float* v, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; ++i) m = std::max(m, static_cast<double>(std::abs(v[i])));
    return m;
  };
  const double dx_tol = 2e-5 * largest(dx[1].data(), dx[1].size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(dx[0][i], dx[1][i], dx_tol) << "dx " << i;
  const size_t n = static_cast<size_t>(wino.arena.param_count());
  const double grad_tol = 2e-5 * largest(direct.arena.grads(), n);
  for (size_t i = 0; i < n; ++i) EXPECT_NEAR(wino.arena.grads()[i], direct.arena.grads()[i], grad_tol) << "grad " << i;
  EXPECT_GT(grad_tol, 0.0);
}

// The --deterministic contract (nn/pass.hpp) for Winograd: with units of 8
// rows (3 blocks of 3, 3 and 2 rows each on 20x20 maps: 25 tiles per row),
// a unit's outputs, gradients and input gradient are the same bits whether
// it is the second unit of a 16-row chunk or a chunk of its own; the units'
// gradients sum to the chunk's (and the input gradient is the chunk's to
// rounding: its blocks differ). 17 and 20 channels take the 16-wide path
// and the tail of the transforms.
namespace {
struct KeepUnits final : UnitSink {
  long long size;
  std::map<long long, std::vector<float>> grads;
  explicit KeepUnits(long long n) : size(n) {}
  // The same buffer for every call of a unit, as the trainer's sink; NaN
  // until the layer writes it, so every value must be written.
  float* unit_grads(long long unit) override {
    auto [it, fresh] = grads.try_emplace(unit);
    if (fresh) it->second.assign(static_cast<size_t>(size), std::nanf(""));
    return it->second.data();
  }
  void add(long long, long long, long long) override {}
};
}  // namespace

TEST(Conv2DWinograd, UnitsAreBitwiseTheSameInAnyChunk) {
  const ConvCase c{"5x5 same 20x20, 17 -> 20", Shape{17, 20, 20}, 20, 5, 5, 1, -1, 16};
  ConvUnderTest t(c, 60, FusedActivation::kRelu, ConvAlgorithm::kWinograd);
  const long long in = c.in.size(), out = t.conv.out_width(), n = t.arena.param_count();
  const auto x = random_floats(static_cast<size_t>(c.rows * in), 61);
  const auto dy0 = random_floats(static_cast<size_t>(c.rows * out), 62);
  struct Result {
    std::vector<float> y, dx;
    KeepUnits sink;
  };
  // Rows [first, first + rows) of x as one chunk at global row `first`.
  auto run = [&](int first, int rows) {
    Result r{{}, {}, KeepUnits(n)};
    Pass pass;
    pass.unit_rows = 8;
    pass.unit_sink = &r.sink;
    pass.first_row = first;
    t.conv.set_pass(&pass);
    r.y.assign(static_cast<size_t>(rows * out), 0.0f);
    r.dx.assign(static_cast<size_t>(rows * in), 0.0f);
    std::vector<float> dy(dy0.begin() + first * out, dy0.begin() + (first + rows) * out);
    t.conv.forward(x.data() + first * in, r.y.data(), rows);
    t.conv.backward(x.data() + first * in, r.y.data(), dy.data(), r.dx.data(), rows);
    t.conv.set_pass(nullptr);
    return r;
  };
  const Result both = run(0, 16), second = run(8, 8);
  ASSERT_EQ(both.sink.grads.size(), 2u);
  ASSERT_EQ(second.sink.grads.count(1), 1u);
  EXPECT_TRUE(std::equal(second.y.begin(), second.y.end(), both.y.begin() + 8 * out));
  EXPECT_TRUE(std::equal(second.dx.begin(), second.dx.end(), both.dx.begin() + 8 * in));
  for (const ParamView& v : t.arena.views())
    EXPECT_EQ(std::memcmp(second.sink.grads.at(1).data() + v.offset, both.sink.grads.at(1).data() + v.offset,
                          sizeof(float) * v.size), 0) << v.name;
  for (const ParamView& v : t.arena.views())  // (the arena pads between tensors; padding is never written)
    for (long long i = v.offset; i < v.offset + v.size; ++i) ASSERT_FALSE(std::isnan(both.sink.grads.at(0)[i])) << v.name;

  // The units' sum against one pass over the chunk without units.
  t.arena.zero_grads();
  std::vector<float> y(static_cast<size_t>(c.rows * out)), dx(x.size()), dy = dy0;
  t.conv.forward(x.data(), y.data(), c.rows);
  t.conv.backward(x.data(), y.data(), dy.data(), dx.data(), c.rows);
  double largest = 0.0;
  for (long long i = 0; i < n; ++i) largest = std::max(largest, static_cast<double>(std::abs(t.arena.grads()[i])));
  for (const ParamView& v : t.arena.views())
    for (long long i = v.offset; i < v.offset + v.size; ++i)
      ASSERT_NEAR(both.sink.grads.at(0)[i] + both.sink.grads.at(1)[i], t.arena.grads()[i], 1e-5 * largest) << v.name;
  for (size_t i = 0; i < dx.size(); ++i) ASSERT_NEAR(dx[i], both.dx[i], 1e-5 * (1 + std::abs(dx[i]))) << i;
}

TEST(Conv2DWinograd, AutoPicksWinogradForStrideOneSquareKernelsOnEightChannels) {
  EXPECT_EQ(auto_conv_algorithm(Shape{32, 14, 14}, conv_geometry(Shape{32, 14, 14}, 5, 5, 1, -1, "t")),
            ConvAlgorithm::kWinograd);
  EXPECT_EQ(auto_conv_algorithm(Shape{8, 6, 6}, conv_geometry(Shape{8, 6, 6}, 3, 3, 1, 0, "t")),
            ConvAlgorithm::kWinograd);
  // One input channel (the first layer): im2col's K = 25 beats sgemm calls with K = 1.
  EXPECT_EQ(auto_conv_algorithm(Shape{1, 28, 28}, conv_geometry(Shape{1, 28, 28}, 5, 5, 1, -1, "t")),
            ConvAlgorithm::kIm2col);
  EXPECT_EQ(auto_conv_algorithm(Shape{8, 8, 8}, conv_geometry(Shape{8, 8, 8}, 3, 3, 2, -1, "t")),
            ConvAlgorithm::kIm2col);
  EXPECT_EQ(auto_conv_algorithm(Shape{8, 8, 8}, conv_geometry(Shape{8, 8, 8}, 3, 2, 1, -1, "t")),
            ConvAlgorithm::kIm2col);
  EXPECT_EQ(auto_conv_algorithm(Shape{8, 12, 12}, conv_geometry(Shape{8, 12, 12}, 1, 1, 1, -1, "t")),
            ConvAlgorithm::kIm2col);
  EXPECT_EQ(auto_conv_algorithm(Shape{8, 12, 12}, conv_geometry(Shape{8, 12, 12}, 9, 9, 1, -1, "t")),
            ConvAlgorithm::kIm2col);
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

// Tests of the fused losses (loss.hpp): hand values, numerical stability,
// finite-difference gradients (against a double reference, through the shared
// checker tests/support/gradient_check.hpp), the grad_scale contract and
// aliasing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "gradient_check.hpp"
#include "mpitrain/nn/loss.hpp"

using namespace mpitrain;
using gradcheck::random_floats;

namespace {

// Reference loss of one row in double, straight from the definition.
template <typename T>
double ce_row_reference(const T* z, int label, int classes) {
  double m = z[0];
  for (int k = 1; k < classes; ++k) m = std::max(m, static_cast<double>(z[k]));
  double s = 0.0;
  for (int k = 0; k < classes; ++k) s += std::exp(z[k] - m);
  return std::log(s) + m - z[label];
}

}  // namespace

TEST(SoftmaxCrossEntropy, EqualLogitsGiveLogK) {
  const int rows = 3, classes = 5;
  std::vector<float> z(rows * classes, 0.7f), dz(rows * classes);
  const int labels[] = {1, 4, 2};
  const LossSums s = softmax_cross_entropy(z.data(), labels, rows, classes, dz.data(), 1.0f);
  EXPECT_NEAR(s.loss, rows * std::log(5.0), 1e-6);
  for (int r = 0; r < rows; ++r)
    for (int k = 0; k < classes; ++k)
      EXPECT_NEAR(dz[r * classes + k], 0.2 - (k == labels[r] ? 1.0 : 0.0), 1e-6) << r << "," << k;
}

TEST(SoftmaxCrossEntropy, HandValuesAndCorrectCount) {
  // Row 0: logits (0, ln 3, -100) label 1: p ~ (1/4, 3/4, 0), loss = -ln(3/4).
  // Row 1: logits (2, 0, 0) label 2: loss = ln(e^2 + 2); argmax 0 != label.
  // Row 2: logits (-1, 5, 1) label 1: argmax == label.
  const float ln3 = static_cast<float>(std::log(3.0));
  const std::vector<float> z = {0.0f, ln3, -100.0f, 2.0f, 0.0f, 0.0f, -1.0f, 5.0f, 1.0f};
  const int labels[] = {1, 2, 1};
  std::vector<float> dz(9);
  const LossSums s = softmax_cross_entropy(z.data(), labels, 3, 3, dz.data(), 0.5f);
  const double row0 = -std::log(0.75), row1 = std::log(std::exp(2.0) + 2.0);
  const double row2 = std::log(std::exp(-1.0) + std::exp(5.0) + std::exp(1.0)) - 5.0;
  EXPECT_NEAR(s.loss, row0 + row1 + row2, 1e-5);
  EXPECT_EQ(s.correct, 2.0);  // rows 0 and 2
  // Gradient scaled by 0.5: row 0 is (0.25, 0.75 - 1, ~0) * 0.5.
  EXPECT_NEAR(dz[0], 0.125, 1e-6);
  EXPECT_NEAR(dz[1], -0.125, 1e-6);
  EXPECT_NEAR(dz[5], 0.5 * (1.0 / (std::exp(2.0) + 2.0) - 1.0), 1e-6);
  // Each row of (softmax - onehot) sums to zero.
  for (int r = 0; r < 3; ++r) EXPECT_NEAR(dz[r * 3] + dz[r * 3 + 1] + dz[r * 3 + 2], 0.0, 1e-6);
}

TEST(SoftmaxCrossEntropy, StableForHugeLogits) {
  std::vector<float> z = {1000.0f, -1000.0f, 0.0f, -1000.0f, 1000.0f, 1000.0f};
  const int labels[] = {1, 0};
  std::vector<float> dz(6);
  const LossSums s = softmax_cross_entropy(z.data(), labels, 2, 3, dz.data(), 1.0f);
  ASSERT_TRUE(std::isfinite(s.loss));
  // Row 0: loss = 1000 - (-1000) = 2000 (the others vanish); row 1: 2000 + ln 2.
  EXPECT_NEAR(s.loss, 2000.0 + 2000.0 + std::log(2.0), 1e-3);
  for (float g : dz) EXPECT_TRUE(std::isfinite(g));
  EXPECT_NEAR(dz[0], 1.0, 1e-6);
  EXPECT_NEAR(dz[1], -1.0, 1e-6);
  EXPECT_NEAR(dz[3], -1.0, 1e-6);
  EXPECT_NEAR(dz[4], 0.5, 1e-6);
  EXPECT_NEAR(dz[5], 0.5, 1e-6);
  EXPECT_EQ(s.correct, 0.0);
}

TEST(SoftmaxCrossEntropy, GradientMatchesFiniteDifferences) {
  const int rows = 4, classes = 6;
  auto z = random_floats(rows * classes, 31, 2.0);
  const int labels[] = {0, 5, 3, 3};
  const float scale = 0.25f;
  std::vector<float> dz(z.size()), scratch(z.size());
  softmax_cross_entropy(z.data(), labels, rows, classes, dz.data(), scale);
  // The reference loss is evaluated in double and the logits perturbed in
  // double, which keeps the finite difference free of float rounding, so the
  // central-difference error is O(eps^2) ~ 1e-8, far below the tolerance.
  std::vector<double> logits(z.begin(), z.end());
  auto loss = [&] {
    double sum = 0.0;
    for (int r = 0; r < rows; ++r) sum += ce_row_reference(&logits[r * classes], labels[r], classes);
    return sum * scale;
  };
  const gradcheck::Comparison c = gradcheck::compare_gradient(
      "dlogits", {rows, classes}, logits.data(), dz.data(), dz.size(), loss, {.eps = 1e-4, .relative = 0, .absolute = 1e-5});
  EXPECT_TRUE(c.passed()) << c;
  EXPECT_EQ(c.count, static_cast<size_t>(rows * classes));
  // And the float loss agrees with the double reference.
  double ref = 0.0;
  for (int r = 0; r < rows; ++r) ref += ce_row_reference(&z[r * classes], labels[r], classes);
  EXPECT_NEAR(softmax_cross_entropy(z.data(), labels, rows, classes, scratch.data(), scale).loss, ref, 1e-5);
}

TEST(SoftmaxCrossEntropy, ZeroRowsReturnsZeros) {
  float z = 1.0f, dz = 42.0f;
  const int label = 0;
  const LossSums s = softmax_cross_entropy(&z, &label, 0, 1, &dz, 1.0f);
  EXPECT_EQ(s.loss, 0.0);
  EXPECT_EQ(s.correct, 0.0);
  EXPECT_EQ(dz, 42.0f);  // nothing written
}

TEST(SoftmaxCrossEntropy, AliasingLogitsGivesSameResults) {
  const int rows = 5, classes = 7;
  auto z = random_floats(rows * classes, 8, 3.0);
  const int labels[] = {0, 6, 2, 2, 4};
  std::vector<float> dz(z.size());
  const LossSums a = softmax_cross_entropy(z.data(), labels, rows, classes, dz.data(), 0.1f);
  std::vector<float> inplace = z;
  const LossSums b = softmax_cross_entropy(inplace.data(), labels, rows, classes, inplace.data(), 0.1f);
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_EQ(a.correct, b.correct);
  EXPECT_EQ(inplace, dz);
}

TEST(SoftmaxCrossEntropy, CorrectCountsArgmaxMatches) {
  // 4 rows, 3 classes, distinct logits; argmax = 2, 0, 1, 2.
  const std::vector<float> z = {0, 1, 3, 5, -1, 2, 0, 4, 1, -2, -3, -1};
  const int labels[] = {2, 1, 1, 2};
  std::vector<float> dz(z.size());
  EXPECT_EQ(softmax_cross_entropy(z.data(), labels, 4, 3, dz.data(), 1.0f).correct, 3.0);
}

TEST(MeanSquaredError, HandValues) {
  // Row 0: diffs (1, -2) -> (1 + 4) / 2 = 2.5; row 1: diffs (0, 3) -> 4.5.
  const std::vector<float> y = {2, 0, 5, 4}, t = {1, 2, 5, 1};
  std::vector<float> dy(4);
  const LossSums s = mean_squared_error(y.data(), t.data(), 2, 2, dy.data(), 0.5f);
  EXPECT_DOUBLE_EQ(s.loss, 7.0);
  EXPECT_EQ(s.correct, 0.0);
  // dy = 2 * diff / width * scale.
  EXPECT_FLOAT_EQ(dy[0], 0.5f);
  EXPECT_FLOAT_EQ(dy[1], -1.0f);
  EXPECT_FLOAT_EQ(dy[2], 0.0f);
  EXPECT_FLOAT_EQ(dy[3], 1.5f);
}

TEST(MeanSquaredError, GradientMatchesFiniteDifferencesAndAliasing) {
  const int rows = 3, width = 4;
  auto y = random_floats(rows * width, 4, 1.0);
  auto t = random_floats(rows * width, 5, 1.0);
  const float scale = 1.0f / 3.0f;
  std::vector<float> dy(y.size());
  const LossSums s = mean_squared_error(y.data(), t.data(), rows, width, dy.data(), scale);
  // The loss in double of double outputs: an exact quadratic, so the central
  // difference has no truncation error.
  std::vector<double> outputs(y.begin(), y.end());
  auto loss = [&] {
    double sum = 0.0;
    for (size_t i = 0; i < outputs.size(); ++i) sum += (outputs[i] - t[i]) * (outputs[i] - t[i]) / width;
    return sum * scale;
  };
  const gradcheck::Comparison c = gradcheck::compare_gradient(
      "dy", {rows, width}, outputs.data(), dy.data(), dy.size(), loss, {.eps = 1e-3, .relative = 0, .absolute = 1e-6});
  EXPECT_TRUE(c.passed()) << c;
  EXPECT_EQ(c.count, static_cast<size_t>(rows * width));
  std::vector<float> inplace = y;
  const LossSums s2 = mean_squared_error(inplace.data(), t.data(), rows, width, inplace.data(), scale);
  EXPECT_EQ(s.loss, s2.loss);
  EXPECT_EQ(inplace, dy);
}

// comm/exact_sum.hpp: the order-independent exact sums of --deterministic.
// (Across ranks they are one integer MPI_SUM; e2e_deterministic checks that
// whole runs come out bitwise equal on 1-8 ranks.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "mpitrain/comm/exact_sum.hpp"

namespace mpitrain {
namespace {

std::vector<float> random_unit(std::mt19937& gen, int n, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(gen);
  return v;
}

std::vector<float> fixed_sum(const std::vector<std::vector<float>>& units, const std::vector<size_t>& order) {
  const auto n = static_cast<long long>(units.front().size());
  FixedPointGradients s(n);
  for (size_t k : order) s.add(units[k].data(), 0, n);
  std::vector<float> out(static_cast<size_t>(n));
  EXPECT_TRUE(s.write(out.data()));
  return out;
}

TEST(FixedPointGradients, SumIsBitwiseTheSameInAnyOrderWhereAFloatSumIsNot) {
  std::mt19937 gen(7);
  std::vector<std::vector<float>> units;
  for (int u = 0; u < 64; ++u) units.push_back(random_unit(gen, 1000, u % 3 == 0 ? 1e-3f : 10.0f));
  std::vector<size_t> order(units.size());
  std::iota(order.begin(), order.end(), 0);
  const std::vector<float> first = fixed_sum(units, order);
  bool float_sums_differ = false;
  for (int trial = 0; trial < 5; ++trial) {
    std::shuffle(order.begin(), order.end(), gen);
    EXPECT_EQ(std::memcmp(fixed_sum(units, order).data(), first.data(), first.size() * sizeof(float)), 0);
    for (size_t i = 0; i < first.size(); ++i) {
      float a = 0, b = 0;
      for (size_t k = 0; k < units.size(); ++k) a += units[k][i];
      for (size_t k : order) b += units[k][i];
      float_sums_differ = float_sums_differ || a != b;
    }
  }
  EXPECT_TRUE(float_sums_differ) << "the data should show why the exact sum is needed";
}

TEST(FixedPointGradients, SumIsTheExactSumRoundedToFloat) {
  // Values across the window, both signs, with carries between the limbs.
  const std::vector<float> values = {1.5f, -0.75f, 3.0e-9f, 1.0e-12f, -2.5e-7f, 12345.678f, -12345.5f, 0.1f, 0.2f,
                                     2147483520.0f, -2147483520.0f, 9.313225746154785e-10f};
  FixedPointGradients s(1);
  long double exact = 0;
  for (float v : values) {
    s.add(&v, 0, 1);
    exact += static_cast<long double>(v);  // 64-bit mantissa: exact for these values
  }
  float out = 0;
  ASSERT_TRUE(s.write(&out));
  EXPECT_EQ(out, static_cast<float>(exact));
}

TEST(FixedPointGradients, ValuesBelowTheWindowRoundToItsStep) {
  const float tiny = 1e-25f;  // below 2^-64: rounds to 0
  FixedPointGradients s(1);
  for (int i = 0; i < 10; ++i) s.add(&tiny, 0, 1);
  float out = 1;
  ASSERT_TRUE(s.write(&out));
  EXPECT_EQ(out, 0.0f);
}

TEST(FixedPointGradients, OutOfRangeOrNonFiniteMakesTheWholeSumNaN) {
  for (float bad : {3.0e9f, -3.0e9f, std::numeric_limits<float>::infinity(), std::nanf("")}) {
    FixedPointGradients s(3);
    const float unit[3] = {1.0f, bad, 2.0f};
    s.add(unit, 0, 3);
    float out[3];
    EXPECT_FALSE(s.write(out));
    for (float v : out) EXPECT_TRUE(std::isnan(v));
  }
}

TEST(FixedPointGradients, AddsAtTheGivenOffset) {
  FixedPointGradients s(4);
  const float a[2] = {1.0f, 2.0f};
  s.add(a, 2, 2);
  s.add(a, 1, 1);
  float out[4];
  ASSERT_TRUE(s.write(out));
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_EQ(out[1], 1.0f);
  EXPECT_EQ(out[2], 1.0f);
  EXPECT_EQ(out[3], 2.0f);
  s.zero();
  ASSERT_TRUE(s.write(out));
  EXPECT_EQ(out[2], 0.0f);
}

TEST(ExactUnitSum, SumIsBitwiseTheSameInAnyOrderAndCloseToTheTrueSum) {
  std::mt19937 gen(3);
  std::uniform_real_distribution<double> d(-1.0, 1.0);
  const int units = 200, count = 3;
  std::vector<double> p(static_cast<size_t>(units * count));
  for (int u = 0; u < units; ++u) {
    p[u * count + 0] = d(gen) * 1e6;   // large
    p[u * count + 1] = d(gen) * 1e-9;  // tiny
    p[u * count + 2] = u % 2 ? 1.0 : 0.0;  // a count
  }
  ExactUnitSum sum(count);
  double first[count], again[count];
  sum.sum(nullptr, p.data(), units, count, first);
  std::vector<int> order(units);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), gen);
  std::vector<double> q(p.size());
  for (int u = 0; u < units; ++u) std::copy_n(&p[order[u] * count], count, &q[u * count]);
  sum.sum(nullptr, q.data(), units, count, again);
  EXPECT_EQ(std::memcmp(first, again, sizeof first), 0);
  for (int k = 0; k < count; ++k) {
    long double exact = 0, largest = 0;
    for (int u = 0; u < units; ++u) {
      exact += p[u * count + k];
      largest = std::max(largest, std::fabs(static_cast<long double>(p[u * count + k])));
    }
    EXPECT_NEAR(first[k], static_cast<double>(exact), static_cast<double>(largest) * units * 0x1p-41);
  }
  EXPECT_EQ(first[2], 100.0);  // integers stay exact
}

TEST(ExactUnitSum, NonFiniteGivesNaNZeroGivesZeroNoUnitsGiveZero) {
  ExactUnitSum sum(2);
  const double p[4] = {1.0, 0.0, std::numeric_limits<double>::infinity(), 0.0};
  double out[2];
  sum.sum(nullptr, p, 2, 2, out);
  EXPECT_TRUE(std::isnan(out[0]));
  EXPECT_EQ(out[1], 0.0);
  sum.sum(nullptr, p, 0, 2, out);
  EXPECT_EQ(out[0], 0.0);
  EXPECT_EQ(out[1], 0.0);
}

TEST(ExactUnitSum, InPlaceLikeBatchNormUsesIt) {
  ExactUnitSum sum(1);
  double p[3] = {0.5, 0.25, 0.125};
  sum.sum(nullptr, p, 3, 1, p);
  EXPECT_EQ(p[0], 0.875);
}

}  // namespace
}  // namespace mpitrain

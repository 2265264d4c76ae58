// comm/exact_sum.hpp: the order-independent exact sums of --deterministic.
// (Across ranks they are one integer MPI_SUM; e2e_deterministic checks that
// whole runs come out bitwise equal on 1-8 ranks.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "mpitrain/comm/exact_sum.hpp"
#include "mpitrain/comm/exact_sum_kernels.hpp"

namespace mpitrain {
namespace {

std::vector<float> random_unit(std::mt19937& gen, int n, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(gen);
  return v;
}

// Sums units (in the given order) of two tensors, [0, n/2) and [n/2, n).
std::vector<float> exact_sum(const std::vector<std::vector<float>>& units, const std::vector<size_t>& order) {
  const auto n = static_cast<long long>(units.front().size());
  ExactGradientSum s({{0, n / 2}, {n / 2, n - n / 2}}, n, static_cast<long long>(units.size()));
  s.begin(static_cast<long long>(order.size()), static_cast<long long>(order.size()));
  long long k = 0;
  for (size_t u : order) {
    std::copy(units[u].begin(), units[u].end(), s.unit(k));
    s.add(k, 0, n / 2);
    s.add(k, n / 2, n - n / 2);
    ++k;
  }
  std::vector<float> out(static_cast<size_t>(n));
  std::vector<double> sq(units.size());
  s.reduce_into(nullptr, out.data(), sq.data());
  return out;
}

TEST(ExactGradientSum, SumIsBitwiseTheSameInAnyOrderWhereAFloatSumIsNot) {
  std::mt19937 gen(7);
  std::vector<std::vector<float>> units;
  for (int u = 0; u < 64; ++u) units.push_back(random_unit(gen, 1000, u % 3 == 0 ? 1e-3f : 10.0f));
  std::vector<size_t> order(units.size());
  std::iota(order.begin(), order.end(), 0);
  const std::vector<float> first = exact_sum(units, order);
  bool float_sums_differ = false;
  for (int trial = 0; trial < 5; ++trial) {
    std::shuffle(order.begin(), order.end(), gen);
    EXPECT_EQ(std::memcmp(exact_sum(units, order).data(), first.data(), first.size() * sizeof(float)), 0);
    for (size_t i = 0; i < first.size(); ++i) {
      float a = 0, b = 0;
      for (size_t k = 0; k < units.size(); ++k) a += units[k][i];
      for (size_t k : order) b += units[k][i];
      float_sums_differ = float_sums_differ || a != b;
    }
  }
  EXPECT_TRUE(float_sums_differ) << "the data should show why the exact sum is needed";
}

// Sums `values` as one unit each, of `total` units in the global batch.
float exact_sum_of(const std::vector<float>& values, long long total) {
  ExactGradientSum s({{0, 1}}, 1, static_cast<long long>(values.size()));
  s.begin(static_cast<long long>(values.size()), total);
  for (size_t k = 0; k < values.size(); ++k) {
    *s.unit(static_cast<long long>(k)) = values[k];
    s.add(static_cast<long long>(k), 0, 1);
  }
  float out = 0;
  std::vector<double> sq(values.size());
  s.reduce_into(nullptr, &out, sq.data());
  return out;
}

TEST(ExactGradientSum, SumIsTheExactSumRoundedToFloatWhenOnTheGrid) {
  // 9 units: the largest value gets 31 - bit_width(9) = 27 bits. It is
  // 12345.678 (< 2^14), so the grid step is 2^(14-27) = 2^-13: every value
  // here is a multiple of it and the sum is exact before rounding.
  const std::vector<float> values = {1.5f, -0.75f, 0x1p-12f, -3 * 0x1p-12f, 12345.678f, -12345.5f, 0.125f, 0.25f, 7.0f};
  long double exact = 0;
  for (float v : values) exact += static_cast<long double>(v);
  EXPECT_EQ(exact_sum_of(values, 9), static_cast<float>(exact));
}

TEST(ExactGradientSum, OffTheGridTheErrorIsAtMostHalfAStepPerUnit) {
  // 9 units of 20 in the global batch: 31 - bit_width(20) = 26 bits for
  // the largest (0.9 < 2^0), a step of 2^-26; the sum is within 9
  // half-steps of the true sum, plus its rounding to float.
  std::mt19937 gen(5);
  std::uniform_real_distribution<float> d(-0.9f, 0.9f);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> values(9);
    for (auto& v : values) v = d(gen);
    values[0] = 0.9f;
    long double exact = 0;
    for (float v : values) exact += static_cast<long double>(v);
    const double bound = 9 * 0x1p-27 + std::fabs(static_cast<double>(exact)) * 0x1p-24;
    EXPECT_LE(std::fabs(static_cast<double>(exact_sum_of(values, 20)) - static_cast<double>(exact)), bound);
  }
}

TEST(ExactGradientSum, TheMostUnitsAtTheirLargestDoNotOverflow) {
  // kMaxUnits units, each at the largest value: 31 - bit_width(2^15) = 15
  // bits for it. 0.75 is on the grid (24576 steps of 2^-15); just below 1
  // rounds up to 2^15 steps, and 2^15 of those are 2^30, an int32. And 2^15
  // - 1 units get 16 bits: (2^15 - 1) 2^16 < 2^31.
  EXPECT_EQ(exact_sum_of(std::vector<float>(kMaxUnits, 0.75f), kMaxUnits), 0.75f * static_cast<float>(kMaxUnits));
  EXPECT_EQ(exact_sum_of(std::vector<float>(kMaxUnits, std::nextafter(1.0f, 0.0f)), kMaxUnits),
            static_cast<float>(kMaxUnits));
  EXPECT_EQ(exact_sum_of(std::vector<float>(kMaxUnits, -std::nextafter(1.0f, 0.0f)), kMaxUnits),
            -static_cast<float>(kMaxUnits));
  EXPECT_EQ(exact_sum_of(std::vector<float>(kMaxUnits - 1, -std::nextafter(1.0f, 0.0f)), kMaxUnits - 1),
            -static_cast<float>(kMaxUnits - 1));
}

TEST(ExactGradientSum, SquaredNormOfEachUnitOverAllTensors) {
  ExactGradientSum s({{0, 3}, {3, 5}}, 8, 2);
  s.begin(2, 2);
  const float g[8] = {3.0f, 4.0f, 0.0f, 1.0f, 2.0f, 0.0f, 0.0f, 2.0f};
  std::copy(g, g + 8, s.unit(0));
  std::fill(s.unit(1), s.unit(1) + 8, 0.5f);
  for (long long k = 0; k < 2; ++k) {
    s.add(k, 0, 3);
    s.add(k, 3, 5);
  }
  float out[8];
  double sq[2];
  s.reduce_into(nullptr, out, sq);
  EXPECT_EQ(sq[0], 34.0);
  EXPECT_EQ(sq[1], 2.0);
  EXPECT_EQ(out[1], 4.5f);
}

TEST(ExactGradientSum, NonFiniteMakesItsTensorNaNAndLeavesOthers) {
  for (float bad : {std::numeric_limits<float>::infinity(), std::nanf("")}) {
    ExactGradientSum s({{0, 2}, {2, 1}}, 3, 1);
    s.begin(1, 1);
    const float g[3] = {1.0f, bad, 2.0f};
    std::copy(g, g + 3, s.unit(0));
    s.add(0, 0, 2);
    s.add(0, 2, 1);
    float out[3];
    double sq[1];
    s.reduce_into(nullptr, out, sq);
    EXPECT_TRUE(std::isnan(out[0]));
    EXPECT_TRUE(std::isnan(out[1]));
    EXPECT_EQ(out[2], 2.0f);
  }
}

TEST(ExactGradientSum, EachStepStartsFromZeroAndGapsStayZero) {
  ExactGradientSum s({{1, 2}}, 4, 2);
  const float a[2] = {1.0f, 2.0f};
  s.begin(2, 2);
  std::copy(a, a + 2, s.unit(0) + 1);
  std::copy(a, a + 2, s.unit(1) + 1);
  s.add(0, 1, 2);
  s.add(1, 1, 2);
  float out[4] = {9, 9, 9, 9};
  double sq[2];
  s.reduce_into(nullptr, out, sq);
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_EQ(out[1], 2.0f);
  EXPECT_EQ(out[2], 4.0f);
  EXPECT_EQ(out[3], 0.0f);
  s.begin(1, 1);
  s.add(0, 1, 2);
  s.reduce_into(nullptr, out, sq);
  EXPECT_EQ(out[2], 2.0f);
}

// Values that probe the conversion on the grid of 2^(e - bits): random
// magnitudes, exact ties (k + 1/2 steps), subnormals, and a largest value that is negative and a power
// of two (or just below one).
std::vector<float> probe_values(std::mt19937& gen, size_t count, int e, int bits) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::uniform_int_distribution<int> kind(0, 5);
  std::vector<float> v(count);
  for (auto& x : v) {
    switch (kind(gen)) {
      case 0: x = std::ldexp(std::round(d(gen) * 1000.0f) + 0.5f, e - bits); break;  // a tie: k + 1/2 steps
      case 1: x = std::numeric_limits<float>::denorm_min() * static_cast<float>(1 + (gen() % 1000)); break;
      case 2: x = -std::ldexp(1.0f, e - 1 - static_cast<int>(gen() % 30)); break;
      default: x = std::ldexp(d(gen), e - 3); break;
    }
  }
  if (!v.empty()) v[v.size() / 2] = -std::ldexp(1.0f, e - 1);  // the largest: -2^(e-1)
  return v;
}

// The fast kernels (AVX2 + FMA) give the generic kernels' bits: the same
// integers, the same norms (lanes added in the same order), the same floats
// back, the same largest value, for 0-12 units (groups of 4 and the rest)
// and every tail length mod 8, at grids of 10 to 30 bits and at a scale a
// float cannot hold.
TEST(ExactSumKernels, FastKernelsGiveTheGenericKernelsBits) {
  if (!exact_detail::fast_kernels()) GTEST_SKIP() << "this CPU has no AVX2 + FMA";
  using exact_detail::Lanes;
  std::mt19937 gen(11);
  AlignedBuffer<Lanes> l1(16), l2(16);
  int checked = 0;
  for (int e : {1, -6, -60, -110}) {  // the largest value is 2^(e-1); e = -110 needs a scale above 2^126
    for (int bits : {10, 27, 30}) {
      const double scale = std::ldexp(1.0, bits - e);
      for (long long m = 0; m < 16; ++m) {
        const long long n = m == 15 ? 1003 : m;  // every length mod 8, and a long one
        for (long long units : {0LL, 1LL, 2LL, 3LL, 4LL, 5LL, 7LL, 8LL, 12LL}) {
          if (bits == 30 && units > 1) continue;  // 2^30 per value leaves room for one unit
          if (bits == 27 && units > 8) continue;
          const long long stride = n + 5, begin = 3;
          std::vector<float> kept = probe_values(gen, static_cast<size_t>(std::max(1LL, units) * stride), e, bits);
          std::vector<std::int32_t> q1(static_cast<size_t>(n) + 1, 7), q2(static_cast<size_t>(n) + 1, 9);
          std::vector<double> s1(static_cast<size_t>(units) + 1, 0.5), s2 = s1;
          exact_detail::quantize_units_generic(kept.data(), stride, units, begin, n, scale, q1.data(), l1.data(),
                                               s1.data());
          exact_detail::quantize_units_fast(kept.data(), stride, units, begin, n, scale, q2.data(), l2.data(),
                                            s2.data());
          const std::string at = "e " + std::to_string(e) + " bits " + std::to_string(bits) + " n " +
                                 std::to_string(n) + " units " + std::to_string(units);
          ASSERT_EQ(std::memcmp(q1.data(), q2.data(), static_cast<size_t>(n) * sizeof(std::int32_t)), 0) << at;
          ASSERT_EQ(std::memcmp(s1.data(), s2.data(), s1.size() * sizeof(double)), 0) << at;
          // Against the definition: the sum of round-half-even of each exact product.
          for (long long i = 0; i < n; ++i) {
            long long want = 0;
            for (long long u = 0; u < units; ++u)
              want += std::llrint(static_cast<long double>(kept[static_cast<size_t>(u * stride + begin + i)]) *
                                  static_cast<long double>(scale));
            ASSERT_EQ(q2[static_cast<size_t>(i)], want) << at << " i " << i;
          }
          std::vector<float> f1(static_cast<size_t>(n) + 1), f2(static_cast<size_t>(n) + 1);  // + 1: never empty
          exact_detail::to_floats_generic(q1.data(), n, 1.0 / scale, f1.data());
          exact_detail::to_floats_fast(q1.data(), n, 1.0 / scale, f2.data());
          ASSERT_EQ(std::memcmp(f1.data(), f2.data(), static_cast<size_t>(n) * sizeof(float)), 0) << at;
          double big1 = 0, big2 = 0;
          exact_detail::raise_largest_generic(kept.data(), static_cast<long long>(kept.size()), big1);
          exact_detail::raise_largest_fast(kept.data(), static_cast<long long>(kept.size()), big2);
          ASSERT_EQ(big1, big2) << at;
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 500);
  // A value that is not finite anywhere (also in the last 8) makes the largest infinite on both.
  for (size_t at : {size_t{0}, size_t{37}, size_t{39}}) {
    std::vector<float> g(40, 1.0f);
    g[at] = std::nanf("");
    double a = 0, b = 0;
    exact_detail::raise_largest_generic(g.data(), 40, a);
    exact_detail::raise_largest_fast(g.data(), 40, b);
    EXPECT_TRUE(std::isinf(a) && std::isinf(b)) << at;
  }
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

#include "mpitrain/comm/exact_sum.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

namespace mpitrain {
namespace {

// round-to-nearest of |t| < 2^51 as an int64, branch-free (vectorises): adding
// 1.5 * 2^52 leaves the rounded integer in the low mantissa bits.
constexpr double kMagic = 6755399441055744.0;
inline std::int64_t round_small(double t, double& rounded) {
  const double m = t + kMagic;
  rounded = m - kMagic;  // exact
  return std::bit_cast<std::int64_t>(m) - std::bit_cast<std::int64_t>(kMagic);
}

constexpr float kLimit = 2147483648.0f;           // 2^31: the largest |value| one unit may add
constexpr double kHiUnit = 65536.0;               // hi counts 2^-16
constexpr double kLoPerHi = 281474976710656.0;    // 2^48 lo units per hi unit
constexpr double kHiWeight = 1.0 / 65536.0;
constexpr double kLoWeight = 1.0 / 18446744073709551616.0;  // 2^-64
constexpr int kStatBits = 62 - 20;                // bits left to a statistic's largest value (kMaxStatUnits = 2^20)

}  // namespace

FixedPointGradients::FixedPointGradients(long long count)
    : count_(count), limbs_(static_cast<size_t>(2 * count + 1)) {
  zero();
}

void FixedPointGradients::zero() { std::fill(limbs_.data(), limbs_.data() + 2 * count_ + 1, std::int64_t{0}); }

void FixedPointGradients::add(const float* g, long long offset, long long n) {
  std::int64_t* __restrict hi = limbs_.data() + offset;
  std::int64_t* __restrict lo = limbs_.data() + count_ + offset;
  int bad = 0;
  for (long long i = 0; i < n; ++i) {
    const float v = g[i];
    bad |= !(std::fabs(v) < kLimit);  // also NaN
    const double t = static_cast<double>(v) * kHiUnit;  // exact
    double h;
    const std::int64_t hq = round_small(bad ? 0.0 : t, h);
    double unused;
    const std::int64_t lq = round_small(bad ? 0.0 : (t - h) * kLoPerHi, unused);  // t - h is exact, |.| <= 1/2
    hi[i] += hq;
    lo[i] += lq;
  }
  limbs_.data()[2 * count_] += bad;
}

void FixedPointGradients::allreduce(const Comm& comm) {
  if (comm.size() > 1) comm.allreduce_sum(limbs_.data(), 2 * count_ + 1);
}

bool FixedPointGradients::write(float* out) const {
  const std::int64_t* hi = limbs_.data();
  const std::int64_t* lo = limbs_.data() + count_;
  if (limbs_.data()[2 * count_] != 0) {
    std::fill(out, out + count_, std::numeric_limits<float>::quiet_NaN());
    return false;
  }
  for (long long i = 0; i < count_; ++i) {
    // Carry lo's whole hi units over, so lo is in [0, 2^48) and both terms are
    // exact doubles before one rounding to float via double.
    const std::int64_t carry = lo[i] >> 48;  // floor division by 2^48
    const std::int64_t h = hi[i] + carry;
    const std::int64_t l = lo[i] - carry * (std::int64_t{1} << 48);
    out[i] = static_cast<float>(static_cast<double>(h) * kHiWeight + static_cast<double>(l) * kLoWeight);
  }
  return true;
}

ExactUnitSum::ExactUnitSum(int max_count) : max_(static_cast<size_t>(max_count)), q_(static_cast<size_t>(max_count)) {}

void ExactUnitSum::sum(const Comm* comm, const double* partials, int units, int count, double* out) {
  if (static_cast<size_t>(count) > max_.size()) {
    max_.resize(static_cast<size_t>(count));
    q_.resize(static_cast<size_t>(count));
  }
  const double inf = std::numeric_limits<double>::infinity();
  for (int k = 0; k < count; ++k) {
    double m = 0;
    for (int u = 0; u < units; ++u) {
      const double v = partials[static_cast<long long>(u) * count + k];
      m = std::isfinite(v) ? std::max(m, std::fabs(v)) : inf;
    }
    max_[static_cast<size_t>(k)] = m;
  }
  const bool many = comm && comm->size() > 1;
  if (many) comm->allreduce_max(max_.data(), count);
  for (int k = 0; k < count; ++k) {
    const double m = max_[static_cast<size_t>(k)];
    std::int64_t s = 0;
    if (std::isfinite(m) && m > 0) {
      int e = 0;
      std::frexp(m, &e);  // m < 2^e
      for (int u = 0; u < units; ++u)
        s += std::llrint(std::ldexp(partials[static_cast<long long>(u) * count + k], kStatBits - e));
    }
    q_[static_cast<size_t>(k)] = s;
  }
  if (many) comm->allreduce_sum(q_.data(), count);
  for (int k = 0; k < count; ++k) {
    const double m = max_[static_cast<size_t>(k)];
    int e = 0;
    if (std::isfinite(m) && m > 0) std::frexp(m, &e);
    out[k] = !std::isfinite(m) ? std::numeric_limits<double>::quiet_NaN()
                               : std::ldexp(static_cast<double>(q_[static_cast<size_t>(k)]), e - kStatBits);
  }
}

}  // namespace mpitrain

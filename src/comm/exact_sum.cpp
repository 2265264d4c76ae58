#include "mpitrain/comm/exact_sum.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace mpitrain {
namespace {

// Round-to-nearest of |t| < 2^51, branch-free (vectorises): adding 1.5 * 2^52
// leaves the rounded integer in the low mantissa bits.
constexpr double kMagic = 6755399441055744.0;
constexpr std::uint64_t kMagicBits = 0x4338000000000000ULL;
constexpr int kGradBits = 62 - 15;  // bits of a tensor's largest value (kMaxUnits = 2^15)
constexpr int kStatBits = 62 - 20;  // bits of a statistic's largest value (kMaxStatUnits = 2^20)

// The grid exponent for a largest |value| m: values become v * 2^(bits - e), m < 2^e.
int grid_exponent(double m) {
  int e = 0;
  std::frexp(m, &e);
  return e;
}

// Explicit vectors (GCC vector extensions): the lanes are part of the
// arithmetic, so every target (AVX2 or SSE2) computes the same bits.
typedef float v4f __attribute__((vector_size(16)));
typedef double v4d __attribute__((vector_size(32)));
typedef std::int64_t v4l __attribute__((vector_size(32)));
typedef std::uint32_t v4u __attribute__((vector_size(16)));

inline v4f load4(const float* p) {
  v4f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// q[i] = sum over units of round(g_u[i] * scale); each element exact or one
// IEEE rounding (|g * scale| < 2^47: the product is exact, adding 1.5 * 2^52
// rounds it to an integer in the low mantissa bits). No FMA: AVX2 only.
// Also adds each unit's squared norm of these values to sq[u] (four lanes,
// added in a fixed order).
__attribute__((target_clones("avx2", "default")))
void quantize_units(const float* kept, long long stride, long long units, long long begin, long long n, double scale,
                    std::int64_t* __restrict q, v4d* __restrict lanes, double* __restrict sq) {
  const v4d magic = {kMagic, kMagic, kMagic, kMagic};
  const auto mb = static_cast<std::int64_t>(kMagicBits);
  const v4l magic_bits = {mb, mb, mb, mb};
  const v4d s = {scale, scale, scale, scale};
  const float* g = kept + begin;
  for (long long u = 0; u < units; ++u) lanes[u] = v4d{0, 0, 0, 0};
  long long i = 0;
  for (; i + 4 <= n; i += 4) {
    v4l acc = {0, 0, 0, 0};
    for (long long u = 0; u < units; ++u) {
      const v4d d = __builtin_convertvector(load4(g + u * stride + i), v4d);
      lanes[u] += d * d;
      acc += (v4l)(d * s + magic) - magic_bits;
    }
    std::memcpy(q + i, &acc, sizeof acc);
  }
  for (long long u = 0; u < units; ++u) {
    double tail = 0;
    for (long long j = i; j < n; ++j) tail += static_cast<double>(g[u * stride + j]) * static_cast<double>(g[u * stride + j]);
    const v4d l = lanes[u];
    sq[u] += ((l[0] + l[1]) + (l[2] + l[3])) + tail;
  }
  for (; i < n; ++i) {
    std::int64_t acc = 0;
    for (long long u = 0; u < units; ++u) {
      const double m = static_cast<double>(g[u * stride + i]) * scale + kMagic;
      acc += static_cast<std::int64_t>(std::bit_cast<std::uint64_t>(m) - kMagicBits);
    }
    q[i] = acc;
  }
}

// out[i] = float(double(q[i]) * back): the int64 converted as the exact
// hi * 2^26 + lo with one rounding (the same bits as a direct conversion),
// which vectorises where a direct conversion does not.
__attribute__((target_clones("avx2", "default")))
void to_floats(const std::int64_t* __restrict q, long long n, double back, float* __restrict out) {
  const v4d magic = {kMagic, kMagic, kMagic, kMagic};
  const auto mb = static_cast<std::int64_t>(kMagicBits);
  const v4l magic_bits = {mb, mb, mb, mb};
  const v4l low_mask = {(1LL << 26) - 1, (1LL << 26) - 1, (1LL << 26) - 1, (1LL << 26) - 1};
  const v4d two26 = {0x1p26, 0x1p26, 0x1p26, 0x1p26};
  const v4d b = {back, back, back, back};
  long long i = 0;
  for (; i + 4 <= n; i += 4) {
    v4l v;
    std::memcpy(&v, q + i, sizeof v);
    const v4d hi = (v4d)((v >> 26) + magic_bits) - magic;  // |hi| < 2^37: exact
    const v4d lo = (v4d)((v & low_mask) + magic_bits) - magic;
    const v4f f = __builtin_convertvector((hi * two26 + lo) * b, v4f);
    std::memcpy(out + i, &f, sizeof f);
  }
  for (; i < n; ++i) out[i] = static_cast<float>(static_cast<double>(q[i]) * back);
}

// Raises `largest` to the largest |value| of g[0, n), found on the bits:
// |v|'s bits order like |v|, and inf/NaN have the largest bits.
__attribute__((target_clones("avx2", "default")))
void raise_largest(const float* __restrict g, long long n, double& largest) {
  v4u big = {0, 0, 0, 0};
  const v4u abs_mask = {0x7fffffffU, 0x7fffffffU, 0x7fffffffU, 0x7fffffffU};
  long long i = 0;
  for (; i + 4 <= n; i += 4) {
    const v4u b = (v4u)load4(g + i) & abs_mask;
    big = big > b ? big : b;
  }
  std::uint32_t most = 0;
  for (; i < n; ++i) most = std::max(most, std::bit_cast<std::uint32_t>(g[i]) & 0x7fffffffU);
  for (int k = 0; k < 4; ++k) most = std::max(most, big[k]);
  largest = most >= 0x7f800000U ? std::numeric_limits<double>::infinity()
                                : std::max(largest, static_cast<double>(std::bit_cast<float>(most)));
}

}  // namespace

ExactGradientSum::ExactGradientSum(std::vector<std::pair<long long, long long>> tensors, long long count,
                                   long long max_units)
    : tensors_(std::move(tensors)),
      count_(count),
      max_units_(max_units),
      kept_(static_cast<size_t>(max_units * count)),
      lanes_(static_cast<size_t>(max_units)),
      max_(tensors_.size()),
      sums_(static_cast<size_t>(count)) {
  std::sort(tensors_.begin(), tensors_.end());
}

void ExactGradientSum::begin(long long units) {
  if (units > max_units_) throw std::logic_error("ExactGradientSum: more units than planned");
  units_ = units;
  std::fill(max_.begin(), max_.end(), 0.0);
}

size_t ExactGradientSum::tensor_at(long long offset) const {
  const auto it = std::lower_bound(tensors_.begin(), tensors_.end(), std::pair<long long, long long>{offset, 0});
  if (it == tensors_.end() || it->first != offset) throw std::logic_error("ExactGradientSum: no tensor at this offset");
  return static_cast<size_t>(it - tensors_.begin());
}

void ExactGradientSum::add(long long k, long long offset, long long n) {
  raise_largest(kept_.data() + k * count_ + offset, n, max_[tensor_at(offset)]);
}

void ExactGradientSum::reduce_into(const Comm* comm, float* out, double* unit_sq) {
  const bool many = comm && comm->size() > 1;
  std::fill(unit_sq, unit_sq + units_, 0.0);
  if (many) comm->allreduce_max(max_.data(), static_cast<long long>(max_.size()));
  std::int64_t* q = sums_.data();
  long long done = 0;  // elements before this tensor (gaps between tensors are zero)
  for (size_t t = 0; t < tensors_.size(); ++t) {
    const auto [begin, n] = tensors_[t];
    std::fill(q + done, q + begin, std::int64_t{0});
    const double m = max_[t];
    // A non-finite tensor sums to NaN below; its norms are then not finite either.
    const double scale = std::isfinite(m) && m > 0 ? std::ldexp(1.0, kGradBits - grid_exponent(m)) : 0.0;
    quantize_units(kept_.data(), count_, units_, begin, n, scale, q + begin, lanes_.data(), unit_sq);
    done = begin + n;
  }
  std::fill(q + done, q + count_, std::int64_t{0});
  if (many) comm->allreduce_sum(q, count_);
  done = 0;
  for (size_t t = 0; t < tensors_.size(); ++t) {
    const auto [begin, n] = tensors_[t];
    std::fill(out + done, out + begin, 0.0f);
    const double m = max_[t];
    if (!std::isfinite(m))
      std::fill(out + begin, out + begin + n, std::numeric_limits<float>::quiet_NaN());
    else if (m > 0)
      to_floats(q + begin, n, std::ldexp(1.0, grid_exponent(m) - kGradBits), out + begin);
    else
      std::fill(out + begin, out + begin + n, 0.0f);
    done = begin + n;
  }
  std::fill(out + done, out + count_, 0.0f);
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
      const int e = grid_exponent(m);
      for (int u = 0; u < units; ++u)
        s += std::llrint(std::ldexp(partials[static_cast<long long>(u) * count + k], kStatBits - e));
    }
    q_[static_cast<size_t>(k)] = s;
  }
  if (many) comm->allreduce_sum(q_.data(), count);
  for (int k = 0; k < count; ++k) {
    const double m = max_[static_cast<size_t>(k)];
    const int e = std::isfinite(m) && m > 0 ? grid_exponent(m) : 0;
    out[k] = !std::isfinite(m) ? std::numeric_limits<double>::quiet_NaN()
                               : std::ldexp(static_cast<double>(q_[static_cast<size_t>(k)]), e - kStatBits);
  }
}

}  // namespace mpitrain

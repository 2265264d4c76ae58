#include "mpitrain/comm/exact_sum_kernels.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

namespace mpitrain::exact_detail {
namespace {

// Round-to-nearest of |t| < 2^51, branch-free (vectorises): adding 1.5 * 2^52
// leaves the rounded integer in the low mantissa bits.
constexpr double kMagic = 6755399441055744.0;
constexpr std::uint64_t kMagicBits = 0x4338000000000000ULL;

// Explicit vectors (GCC vector extensions): the lanes are part of the
// arithmetic, so every target (SSE2, AVX2, AVX-512) computes the same bits.
typedef float v4f __attribute__((vector_size(16)));
typedef Lanes v4d;
typedef std::int64_t v4l __attribute__((vector_size(32)));
typedef std::uint32_t v4u __attribute__((vector_size(16)));
typedef float v8f __attribute__((vector_size(32)));
typedef double v8d __attribute__((vector_size(64)));
typedef std::uint64_t v8ul __attribute__((vector_size(64)));
typedef std::int64_t v8l __attribute__((vector_size(64)));
typedef std::uint32_t v16u __attribute__((vector_size(64)));

inline v4f load4(const float* p) {
  v4f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

// ---- For every x86-64 CPU (AVX2 where present) -------------------------

// q[i] = sum over units of round(g_u[i] * scale); each element exact or one
// IEEE rounding (|g * scale| < 2^47: the product is exact, adding 1.5 * 2^52
// rounds it to an integer in the low mantissa bits). No FMA: AVX2 only.
// Also adds each unit's squared norm of these values to sq[u] (four lanes,
// added in a fixed order).
__attribute__((target_clones("avx2", "default")))
void quantize_units_narrow(const float* kept, long long stride, long long units, long long begin, long long n,
                           double scale, std::int64_t* __restrict q, Lanes* __restrict lanes, double* __restrict sq) {
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
void to_floats_narrow(const std::int64_t* __restrict q, long long n, double back, float* __restrict out) {
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
void raise_largest_narrow(const float* __restrict g, long long n, double& largest) {
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

// ---- For AVX-512 CPUs (x86-64-v4) ---------------------------------------
// Eight doubles per vector. The norms keep the narrow kernels' four lanes
// and their order: each 8-element step adds its low half, then its high half.

#define MPITRAIN_QUANTIZE_STEP(k)                                                   \
  {                                                                                 \
    v8f f;                                                                          \
    std::memcpy(&f, g##k + i, sizeof f);                                            \
    const v8d d = __builtin_convertvector(f, v8d);                                  \
    const v4d lo = __builtin_shufflevector(d, d, 0, 1, 2, 3);                       \
    const v4d hi = __builtin_shufflevector(d, d, 4, 5, 6, 7);                       \
    l##k += lo * lo;                                                                \
    l##k += hi * hi;                                                                \
    acc += (v8ul)(d * s + magic);                                                   \
  }

// G (1-4) units from g, g + stride, ...: their lanes stay in registers.
// q gets the sum (first group) or adds it; n is a multiple of 8. Each
// rounded value is its double's bits minus the magic's: the G magics are
// taken off once (unsigned, so the wrap-around is defined).
namespace {
template <int G>
__attribute__((target("arch=x86-64-v4"), always_inline)) inline void quantize_group(
    const float* g, long long stride, long long n, double scale, bool first, std::uint64_t* __restrict q,
    v4d* __restrict lanes) {
  const v8d magic = {kMagic, kMagic, kMagic, kMagic, kMagic, kMagic, kMagic, kMagic};
  const v8d s = {scale, scale, scale, scale, scale, scale, scale, scale};
  const std::uint64_t off = kMagicBits * G;
  const v8ul offs = {off, off, off, off, off, off, off, off};
  v4d l0 = {0, 0, 0, 0}, l1 = l0, l2 = l0, l3 = l0;
  const float* g0 = g;
  const float* g1 = g + stride;
  const float* g2 = g + 2 * stride;
  const float* g3 = g + 3 * stride;
  for (long long i = 0; i < n; i += 8) {
    v8ul acc;
    if (first) {
      acc = -offs;
    } else {
      std::memcpy(&acc, q + i, sizeof acc);
      acc -= offs;
    }
    MPITRAIN_QUANTIZE_STEP(0)
    if (G > 1) MPITRAIN_QUANTIZE_STEP(1)
    if (G > 2) MPITRAIN_QUANTIZE_STEP(2)
    if (G > 3) MPITRAIN_QUANTIZE_STEP(3)
    std::memcpy(q + i, &acc, sizeof acc);
  }
  lanes[0] = l0;
  if (G > 1) lanes[1] = l1;
  if (G > 2) lanes[2] = l2;
  if (G > 3) lanes[3] = l3;
}
#undef MPITRAIN_QUANTIZE_STEP
}  // namespace

__attribute__((target("arch=x86-64-v4")))
void quantize_units_wide(const float* kept, long long stride, long long units, long long begin, long long n,
                         double scale, std::int64_t* __restrict q, Lanes* __restrict lanes, double* __restrict sq) {
  const float* g = kept + begin;
  auto* uq = reinterpret_cast<std::uint64_t*>(q);
  const long long nv = n & ~7LL;
  long long u = 0;
  for (; u + 4 <= units; u += 4) quantize_group<4>(g + u * stride, stride, nv, scale, u == 0, uq, lanes + u);
  const auto rest = static_cast<int>(units - u);
  if (rest == 3) quantize_group<3>(g + u * stride, stride, nv, scale, u == 0, uq, lanes + u);
  if (rest == 2) quantize_group<2>(g + u * stride, stride, nv, scale, u == 0, uq, lanes + u);
  if (rest == 1) quantize_group<1>(g + u * stride, stride, nv, scale, u == 0, uq, lanes + u);
  if (units == 0) std::fill(q, q + nv, std::int64_t{0});
  // Elements [nv, n), fewer than 8: a last 4-element step of the lanes, as the narrow kernel takes it.
  for (u = 0; u < units; ++u) {
    const float* gu = g + u * stride;
    v4d l = lanes[u];
    long long j = nv;
    if (j + 4 <= n) {
      v4f f;
      std::memcpy(&f, gu + j, sizeof f);
      const v4d d = __builtin_convertvector(f, v4d);
      l += d * d;
      j += 4;
    }
    double tail = 0;
    for (; j < n; ++j) tail += static_cast<double>(gu[j]) * static_cast<double>(gu[j]);
    sq[u] += ((l[0] + l[1]) + (l[2] + l[3])) + tail;
  }
  for (long long i = nv; i < n; ++i) {
    std::int64_t acc = 0;
    for (u = 0; u < units; ++u) {
      const double m = static_cast<double>(g[u * stride + i]) * scale + kMagic;
      acc += static_cast<std::int64_t>(std::bit_cast<std::uint64_t>(m) - kMagicBits);
    }
    q[i] = acc;
  }
}

__attribute__((target("arch=x86-64-v4")))
void to_floats_wide(const std::int64_t* __restrict q, long long n, double back, float* __restrict out) {
  const v8d magic = {kMagic, kMagic, kMagic, kMagic, kMagic, kMagic, kMagic, kMagic};
  const auto mb = static_cast<std::int64_t>(kMagicBits);
  const v8l magic_bits = {mb, mb, mb, mb, mb, mb, mb, mb};
  const std::int64_t m26 = (1LL << 26) - 1;
  const v8l low_mask = {m26, m26, m26, m26, m26, m26, m26, m26};
  const v8d two26 = {0x1p26, 0x1p26, 0x1p26, 0x1p26, 0x1p26, 0x1p26, 0x1p26, 0x1p26};
  const v8d b = {back, back, back, back, back, back, back, back};
  long long i = 0;
  for (; i + 8 <= n; i += 8) {
    v8l v;
    std::memcpy(&v, q + i, sizeof v);
    const v8d hi = (v8d)((v >> 26) + magic_bits) - magic;  // |hi| < 2^37: exact; hi * 2^26 too
    const v8d lo = (v8d)((v & low_mask) + magic_bits) - magic;
    const v8f f = __builtin_convertvector((hi * two26 + lo) * b, v8f);
    std::memcpy(out + i, &f, sizeof f);
  }
  to_floats_narrow(q + i, n - i, back, out + i);
}

__attribute__((target("arch=x86-64-v4")))
void raise_largest_wide(const float* __restrict g, long long n, double& largest) {
  const std::uint32_t a = 0x7fffffffU;
  const v16u abs_mask = {a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a};
  v16u big = {0};
  long long i = 0;
  for (; i + 16 <= n; i += 16) {
    v16u b;
    std::memcpy(&b, g + i, sizeof b);
    b &= abs_mask;
    big = big > b ? big : b;
  }
  std::uint32_t most = 0;
  for (int k = 0; k < 16; ++k) most = std::max(most, big[k]);
  if (most >= 0x7f800000U) {
    largest = std::numeric_limits<double>::infinity();
    return;
  }
  largest = std::max(largest, static_cast<double>(std::bit_cast<float>(most)));
  raise_largest_narrow(g + i, n - i, largest);
}

bool wide_kernels() {
  static const bool wide = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v4") != 0;
  }();
  return wide;
}

void quantize_units(const float* kept, long long stride, long long units, long long begin, long long n, double scale,
                    std::int64_t* q, Lanes* lanes, double* sq) {
  (wide_kernels() ? quantize_units_wide : quantize_units_narrow)(kept, stride, units, begin, n, scale, q, lanes, sq);
}

void to_floats(const std::int64_t* q, long long n, double back, float* out) {
  (wide_kernels() ? to_floats_wide : to_floats_narrow)(q, n, back, out);
}

void raise_largest(const float* g, long long n, double& largest) {
  (wide_kernels() ? raise_largest_wide : raise_largest_narrow)(g, n, largest);
}

}  // namespace mpitrain::exact_detail

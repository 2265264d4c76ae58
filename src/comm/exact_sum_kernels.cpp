#include "mpitrain/comm/exact_sum_kernels.hpp"

#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

namespace mpitrain::exact_detail {
namespace {

// Round-to-nearest of |t| < 2^51, branch-free (vectorises): adding 1.5 * 2^52
// leaves the rounded integer in the low mantissa bits, two's complement. The
// magic's low 32 bits are zero, so for |t| < 2^31 the sum's low 32 bits are
// the rounded t as an int32.
constexpr double kMagic = 6755399441055744.0;

// Explicit vectors (GCC vector extensions): the lanes are part of the
// arithmetic, so every target computes the same bits.
typedef float v4f __attribute__((vector_size(16)));
typedef Lanes v4d;
typedef std::uint64_t v4ul __attribute__((vector_size(32)));
typedef std::uint32_t v4u __attribute__((vector_size(16)));
typedef std::int32_t v4i __attribute__((vector_size(16)));
typedef std::uint32_t v8u __attribute__((vector_size(32)));

// Unaligned loads (a statement expression: a function returning a vector
// would depend on the caller's ISA) and stores.
#define MPITRAIN_LOAD(V, p)           \
  __extension__({                     \
    V v_;                             \
    std::memcpy(&v_, (p), sizeof v_); \
    v_;                               \
  })

template <class V>
inline void store(void* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}

// round(g * scale) as an int32 (|g * scale| <= 2^30: the product is exact).
inline std::uint32_t rounded(float g, double scale) {
  return static_cast<std::uint32_t>(std::bit_cast<std::uint64_t>(static_cast<double>(g) * scale + kMagic));
}

// Elements [from, n) of every unit, one at a time, after the vector steps;
// the norms' lanes continue with a last 4-element step where 4 are left, as
// the generic kernel takes it.
void quantize_tail(const float* g, long long stride, long long units, long long from, long long n, double scale,
                   std::int32_t* q, const v4d* lanes, double* sq) {
  for (long long u = 0; u < units; ++u) {
    const float* gu = g + u * stride;
    v4d l = lanes[u];
    long long j = from;
    if (j + 4 <= n) {
      const v4d d = __builtin_convertvector(MPITRAIN_LOAD(v4f, gu + j), v4d);
      l += d * d;
      j += 4;
    }
    double tail = 0;
    for (; j < n; ++j) tail += static_cast<double>(gu[j]) * static_cast<double>(gu[j]);
    sq[u] += ((l[0] + l[1]) + (l[2] + l[3])) + tail;
  }
  for (long long i = from; i < n; ++i) {
    std::uint32_t acc = 0;
    for (long long u = 0; u < units; ++u) acc += rounded(g[u * stride + i], scale);
    q[i] = static_cast<std::int32_t>(acc);
  }
}

}  // namespace

// ---- Generic: every x86-64 CPU (SSE2; an AVX2 clone where present) -------

// Four elements a step, every unit in turn, rounding in double; sums in
// uint32 (wrap-around is exact: the true sum fits an int32). Where a
// compiler contracts into FMA the products are exact, so the bits agree.
__attribute__((target_clones("avx2", "default")))
void quantize_units_generic(const float* kept, long long stride, long long units, long long begin, long long n,
                            double scale, std::int32_t* __restrict q, Lanes* __restrict lanes,
                            double* __restrict sq) {
  const v4d magic = {kMagic, kMagic, kMagic, kMagic};
  const v4d s = {scale, scale, scale, scale};
  const float* g = kept + begin;
  for (long long u = 0; u < units; ++u) lanes[u] = v4d{0, 0, 0, 0};
  const long long nv = n & ~3LL;
  for (long long i = 0; i < nv; i += 4) {
    v4u acc = {0, 0, 0, 0};
    for (long long u = 0; u < units; ++u) {
      const v4d d = __builtin_convertvector(MPITRAIN_LOAD(v4f, g + u * stride + i), v4d);
      lanes[u] += d * d;
      acc += __builtin_convertvector((v4ul)(d * s + magic), v4u);
    }
    store(q + i, acc);
  }
  quantize_tail(g, stride, units, nv, n, scale, q, lanes, sq);
}

__attribute__((target_clones("avx2", "default")))
void to_floats_generic(const std::int32_t* __restrict q, long long n, double back, float* __restrict out) {
  const v4d b = {back, back, back, back};
  long long i = 0;
  for (; i + 4 <= n; i += 4)
    store(out + i, __builtin_convertvector(__builtin_convertvector(MPITRAIN_LOAD(v4i, q + i), v4d) * b, v4f));
  for (; i < n; ++i) out[i] = static_cast<float>(static_cast<double>(q[i]) * back);
}

// |v|'s bits order like |v|, and inf/NaN have the largest bits.
__attribute__((target_clones("avx2", "default")))
void raise_largest_generic(const float* __restrict g, long long n, double& largest) {
  v4u big = {0, 0, 0, 0};
  const v4u abs_mask = {0x7fffffffU, 0x7fffffffU, 0x7fffffffU, 0x7fffffffU};
  long long i = 0;
  for (; i + 4 <= n; i += 4) {
    const v4u b = MPITRAIN_LOAD(v4u, g + i) & abs_mask;
    big = big > b ? big : b;
  }
  std::uint32_t most = 0;
  for (; i < n; ++i) most = std::max(most, std::bit_cast<std::uint32_t>(g[i]) & 0x7fffffffU);
  for (int k = 0; k < 4; ++k) most = std::max(most, big[k]);
  largest = most >= 0x7f800000U ? std::numeric_limits<double>::infinity()
                                : std::max(largest, static_cast<double>(std::bit_cast<float>(most)));
}

// ---- Fast: AVX2 + FMA CPUs (x86-64-v3, also every AVX-512 CPU) ----------
// The conversion rounds in float: g * scale is exact in float too (a
// power-of-two scale, a result of at most 2^30 in magnitude, below 2^-126
// only where it rounds to 0 either way), and cvtps2dq rounds to nearest
// even as the generic kernel does, eight values per instruction. The norms
// keep the generic kernel's four double lanes and their order: each
// 8-element step adds its low half, then its high half (FMA: the squares
// are exact).

namespace {
// G (1-4) units from g, g + stride, ...: their lanes stay in registers. q
// gets the sum (first group) or adds it; n is a multiple of 8.
template <int G>
__attribute__((target("avx2,fma"), always_inline)) inline void quantize_group(
    const float* g, long long stride, long long n, float scale, bool first, std::int32_t* __restrict q,
    v4d* __restrict lanes) {
  const __m256 s = _mm256_set1_ps(scale);
  __m256d l[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
  for (long long i = 0; i < n; i += 8) {
    __m256i acc = first ? _mm256_setzero_si256() : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i));
#pragma GCC unroll 4
    for (int k = 0; k < G; ++k) {
      const __m256 f = _mm256_loadu_ps(g + k * stride + i);
      acc = _mm256_add_epi32(acc, _mm256_cvtps_epi32(_mm256_mul_ps(f, s)));
      const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(f));
      const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1));
      l[k] = _mm256_fmadd_pd(lo, lo, l[k]);
      l[k] = _mm256_fmadd_pd(hi, hi, l[k]);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), acc);
  }
  for (int k = 0; k < G; ++k) std::memcpy(&lanes[k], &l[k], sizeof(v4d));
}
}  // namespace

__attribute__((target("avx2,fma")))
void quantize_units_fast(const float* kept, long long stride, long long units, long long begin, long long n,
                         double scale, std::int32_t* __restrict q, Lanes* __restrict lanes, double* __restrict sq) {
  // A scale a float cannot hold (a tensor whose largest value is below
  // 2^-96): the generic kernel, which gives the same integers.
  if (scale > 0x1p126) {
    quantize_units_generic(kept, stride, units, begin, n, scale, q, lanes, sq);
    return;
  }
  const float* g = kept + begin;
  const auto fs = static_cast<float>(scale);
  const long long nv = n & ~7LL;
  long long u = 0;
  for (; u + 4 <= units; u += 4) quantize_group<4>(g + u * stride, stride, nv, fs, u == 0, q, lanes + u);
  const auto rest = static_cast<int>(units - u);
  if (rest == 3) quantize_group<3>(g + u * stride, stride, nv, fs, u == 0, q, lanes + u);
  if (rest == 2) quantize_group<2>(g + u * stride, stride, nv, fs, u == 0, q, lanes + u);
  if (rest == 1) quantize_group<1>(g + u * stride, stride, nv, fs, u == 0, q, lanes + u);
  if (units == 0) std::fill(q, q + nv, 0);
  quantize_tail(g, stride, units, nv, n, scale, q, lanes, sq);
}

__attribute__((target("avx2,fma")))
void to_floats_fast(const std::int32_t* __restrict q, long long n, double back, float* __restrict out) {
  const __m256d b = _mm256_set1_pd(back);
  long long i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256d d = _mm256_mul_pd(_mm256_cvtepi32_pd(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + i))), b);
    _mm_storeu_ps(out + i, _mm256_cvtpd_ps(d));
  }
  for (; i < n; ++i) out[i] = static_cast<float>(static_cast<double>(q[i]) * back);
}

__attribute__((target("avx2,fma")))
void raise_largest_fast(const float* __restrict g, long long n, double& largest) {
  const std::uint32_t a = 0x7fffffffU;
  const v8u abs_mask = {a, a, a, a, a, a, a, a};
  v8u big = {0, 0, 0, 0, 0, 0, 0, 0};
  long long i = 0;
  for (; i + 8 <= n; i += 8) {
    const v8u b = MPITRAIN_LOAD(v8u, g + i) & abs_mask;
    big = big > b ? big : b;
  }
  std::uint32_t most = 0;
  for (int k = 0; k < 8; ++k) most = std::max(most, big[k]);
  if (most >= 0x7f800000U) {
    largest = std::numeric_limits<double>::infinity();
    return;
  }
  largest = std::max(largest, static_cast<double>(std::bit_cast<float>(most)));
  raise_largest_generic(g + i, n - i, largest);
}

bool fast_kernels() {
  static const bool fast = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0 && __builtin_cpu_supports("fma") != 0;
  }();
  return fast;
}

void quantize_units(const float* kept, long long stride, long long units, long long begin, long long n, double scale,
                    std::int32_t* q, Lanes* lanes, double* sq) {
  (fast_kernels() ? quantize_units_fast : quantize_units_generic)(kept, stride, units, begin, n, scale, q, lanes, sq);
}

void to_floats(const std::int32_t* q, long long n, double back, float* out) {
  (fast_kernels() ? to_floats_fast : to_floats_generic)(q, n, back, out);
}

void raise_largest(const float* g, long long n, double& largest) {
  (fast_kernels() ? raise_largest_fast : raise_largest_generic)(g, n, largest);
}

}  // namespace mpitrain::exact_detail

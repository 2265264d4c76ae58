#include "mpitrain/comm/exact_sum_kernels.hpp"

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
// arithmetic, so every target (SSE2, AVX2, AVX-512) computes the same bits.
typedef float v4f __attribute__((vector_size(16)));
typedef Lanes v4d;
typedef std::uint64_t v4ul __attribute__((vector_size(32)));
typedef std::uint32_t v4u __attribute__((vector_size(16)));
typedef std::int32_t v4i __attribute__((vector_size(16)));
typedef float v8f __attribute__((vector_size(32)));
typedef double v8d __attribute__((vector_size(64)));
typedef std::uint64_t v8ul __attribute__((vector_size(64)));
typedef std::uint32_t v8u __attribute__((vector_size(32)));
typedef std::int32_t v8i __attribute__((vector_size(32)));
typedef std::uint32_t v16u __attribute__((vector_size(64)));

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
// the narrow kernel takes it.
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

// ---- For every x86-64 CPU (AVX2 where present) -------------------------

// Four elements a step, every unit in turn; sums in uint32 (wrap-around is
// exact: the true sum fits an int32). No FMA in the avx2 clone; where a
// compiler contracts anyway the products are exact, so the bits agree.
__attribute__((target_clones("avx2", "default")))
void quantize_units_narrow(const float* kept, long long stride, long long units, long long begin, long long n,
                           double scale, std::int32_t* __restrict q, Lanes* __restrict lanes, double* __restrict sq) {
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
void to_floats_narrow(const std::int32_t* __restrict q, long long n, double back, float* __restrict out) {
  const v4d b = {back, back, back, back};
  long long i = 0;
  for (; i + 4 <= n; i += 4) store(out + i, __builtin_convertvector(__builtin_convertvector(MPITRAIN_LOAD(v4i, q + i), v4d) * b, v4f));
  for (; i < n; ++i) out[i] = static_cast<float>(static_cast<double>(q[i]) * back);
}

// |v|'s bits order like |v|, and inf/NaN have the largest bits.
__attribute__((target_clones("avx2", "default")))
void raise_largest_narrow(const float* __restrict g, long long n, double& largest) {
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

// ---- For AVX-512 CPUs (x86-64-v4) ---------------------------------------
// Eight doubles per vector. The norms keep the narrow kernels' four lanes
// and their order: each 8-element step adds its low half, then its high half.

#define MPITRAIN_QUANTIZE_STEP(k)                                   \
  {                                                                 \
    const v8d d = __builtin_convertvector(MPITRAIN_LOAD(v8f, g##k + i), v8d); \
    const v4d lo = __builtin_shufflevector(d, d, 0, 1, 2, 3);       \
    const v4d hi = __builtin_shufflevector(d, d, 4, 5, 6, 7);       \
    l##k += lo * lo;                                                \
    l##k += hi * hi;                                                \
    acc += __builtin_convertvector((v8ul)(d * s + magic), v8u);     \
  }

namespace {
// G (1-4) units from g, g + stride, ...: their lanes stay in registers. q
// gets the sum (first group) or adds it; n is a multiple of 8.
template <int G>
__attribute__((target("arch=x86-64-v4"), always_inline)) inline void quantize_group(
    const float* g, long long stride, long long n, double scale, bool first, std::int32_t* __restrict q,
    v4d* __restrict lanes) {
  const v8d magic = {kMagic, kMagic, kMagic, kMagic, kMagic, kMagic, kMagic, kMagic};
  const v8d s = {scale, scale, scale, scale, scale, scale, scale, scale};
  v4d l0 = {0, 0, 0, 0}, l1 = l0, l2 = l0, l3 = l0;
  const float* g0 = g;
  const float* g1 = g + stride;
  const float* g2 = g + 2 * stride;
  const float* g3 = g + 3 * stride;
  for (long long i = 0; i < n; i += 8) {
    v8u acc = first ? v8u{0, 0, 0, 0, 0, 0, 0, 0} : MPITRAIN_LOAD(v8u, q + i);
    MPITRAIN_QUANTIZE_STEP(0)
    if (G > 1) MPITRAIN_QUANTIZE_STEP(1)
    if (G > 2) MPITRAIN_QUANTIZE_STEP(2)
    if (G > 3) MPITRAIN_QUANTIZE_STEP(3)
    store(q + i, acc);
  }
  lanes[0] = l0;
  if (G > 1) lanes[1] = l1;
  if (G > 2) lanes[2] = l2;
  if (G > 3) lanes[3] = l3;
}
}  // namespace
#undef MPITRAIN_QUANTIZE_STEP

__attribute__((target("arch=x86-64-v4")))
void quantize_units_wide(const float* kept, long long stride, long long units, long long begin, long long n,
                         double scale, std::int32_t* __restrict q, Lanes* __restrict lanes, double* __restrict sq) {
  const float* g = kept + begin;
  const long long nv = n & ~7LL;
  long long u = 0;
  for (; u + 4 <= units; u += 4) quantize_group<4>(g + u * stride, stride, nv, scale, u == 0, q, lanes + u);
  const auto rest = static_cast<int>(units - u);
  if (rest == 3) quantize_group<3>(g + u * stride, stride, nv, scale, u == 0, q, lanes + u);
  if (rest == 2) quantize_group<2>(g + u * stride, stride, nv, scale, u == 0, q, lanes + u);
  if (rest == 1) quantize_group<1>(g + u * stride, stride, nv, scale, u == 0, q, lanes + u);
  if (units == 0) std::fill(q, q + nv, 0);
  quantize_tail(g, stride, units, nv, n, scale, q, lanes, sq);
}

__attribute__((target("arch=x86-64-v4")))
void to_floats_wide(const std::int32_t* __restrict q, long long n, double back, float* __restrict out) {
  const v8d b = {back, back, back, back, back, back, back, back};
  long long i = 0;
  for (; i + 8 <= n; i += 8) store(out + i, __builtin_convertvector(__builtin_convertvector(MPITRAIN_LOAD(v8i, q + i), v8d) * b, v8f));
  to_floats_narrow(q + i, n - i, back, out + i);
}

__attribute__((target("arch=x86-64-v4")))
void raise_largest_wide(const float* __restrict g, long long n, double& largest) {
  const std::uint32_t a = 0x7fffffffU;
  const v16u abs_mask = {a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a};
  v16u big = {0};
  long long i = 0;
  for (; i + 16 <= n; i += 16) {
    const v16u b = MPITRAIN_LOAD(v16u, g + i) & abs_mask;
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
                    std::int32_t* q, Lanes* lanes, double* sq) {
  (wide_kernels() ? quantize_units_wide : quantize_units_narrow)(kept, stride, units, begin, n, scale, q, lanes, sq);
}

void to_floats(const std::int32_t* q, long long n, double back, float* out) {
  (wide_kernels() ? to_floats_wide : to_floats_narrow)(q, n, back, out);
}

void raise_largest(const float* g, long long n, double& largest) {
  (wide_kernels() ? raise_largest_wide : raise_largest_narrow)(g, n, largest);
}

}  // namespace mpitrain::exact_detail

// The vector kernels of the exact gradient sum (comm/exact_sum.hpp): a unit
// gradient's largest |value|, the conversion of a tensor's units to one
// int32 sum per element on the tensor's grid (with each unit's squared
// norm), and the summed integers back to floats.
//
// Every kernel gives the same bits on every CPU: the integer results are
// exact, and the norms add in an order fixed by the code (four lanes, each
// over the elements i = k mod 4 in increasing i, then ((l0 + l1) + (l2 + l3))
// + the scalar tail), whatever the vector width. Each kernel has a generic
// version (SSE2, with an AVX2 clone) and a fast one for AVX2 + FMA CPUs
// (x86-64-v3; every AVX-512 CPU has them): its conversion rounds in float,
// eight values per instruction, 3x faster than the generic kernel for the
// same integers. The choice is made once, from the CPU.
#pragma once
#include <cstdint>

namespace mpitrain::exact_detail {

typedef double Lanes __attribute__((vector_size(32)));

// q[i] = sum over units u < `units` of round(kept[u * stride + begin + i] *
// scale), for i < n, rounding to nearest even. Each |g * scale| must be at
// most 2^30 and the sum must fit an int32 (the caller's grid sees to both);
// a value that is not finite gives an unspecified q. Adds each unit's
// squared norm over these elements to sq[u]; lanes has room for `units`
// vectors of scratch.
void quantize_units(const float* kept, long long stride, long long units, long long begin, long long n, double scale,
                    std::int32_t* q, Lanes* lanes, double* sq);

// out[i] = float(double(q[i]) * back), one rounding, for i < n.
void to_floats(const std::int32_t* q, long long n, double back, float* out);

// Raises `largest` to the largest |value| of g[0, n), or to +infinity if a
// value is not finite.
void raise_largest(const float* g, long long n, double& largest);

// The two versions behind the three calls above (for the test that they give
// the same bits); the fast ones only where fast_kernels() is true.
bool fast_kernels();
void quantize_units_generic(const float* kept, long long stride, long long units, long long begin, long long n,
                            double scale, std::int32_t* q, Lanes* lanes, double* sq);
void quantize_units_fast(const float* kept, long long stride, long long units, long long begin, long long n,
                         double scale, std::int32_t* q, Lanes* lanes, double* sq);
void to_floats_generic(const std::int32_t* q, long long n, double back, float* out);
void to_floats_fast(const std::int32_t* q, long long n, double back, float* out);
void raise_largest_generic(const float* g, long long n, double& largest);
void raise_largest_fast(const float* g, long long n, double& largest);

}  // namespace mpitrain::exact_detail

// Order-independent exact sums for --deterministic (README, "Deterministic
// training"): a sum over the units of a global batch that comes out bitwise
// the same whichever rank holds which unit, because it is a sum of integers.
//
// Two representations, one per kind of quantity:
//
// - Gradients (FixedPointGradients): each unit's float gradient element v
//   becomes the integer round(v * 2^64), held in two int64 limbs (hi counts
//   2^-16, lo counts 2^-64). Every float with |v| in [2^-40, 2^31) is exact;
//   smaller values are rounded to 2^-64 (far below a float's resolution at
//   any weight that matters). No scale has to be agreed first, so each unit
//   is added as soon as backward produces it and the all-reduce is one
//   MPI_SUM of int64. Up to kMaxUnits units per sum cannot overflow. A value
//   beyond the range (or not finite) marks the whole sum overflowed, and it
//   comes out NaN: the trainer's divergence check stops the run.
//
// - Statistics (ExactUnitSum): a few doubles per unit (batch-norm sums, the
//   loss, the noise-scale norms, evaluation counts). Their scale varies too
//   much for a fixed window, so the ranks first agree on the largest |value|
//   per quantity (an MPI_MAX all-reduce), and each value becomes an int64 on
//   the power-of-two grid that leaves room for kMaxStatUnits of them; then
//   one MPI_SUM. The largest value keeps 62 - log2(kMaxStatUnits) = 42 bits.
#pragma once
#include <cstdint>
#include <vector>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/core/tensor.hpp"

namespace mpitrain {

// Units one exact gradient sum may hold (over all ranks): global batch / unit rows.
inline constexpr long long kMaxUnits = 1LL << 15;
// Units one exact statistics sum may hold: evaluation rows / unit rows.
inline constexpr long long kMaxStatUnits = 1LL << 20;

class FixedPointGradients {
 public:
  explicit FixedPointGradients(long long count);
  long long count() const { return count_; }
  void zero();
  // Adds one unit's values g[0, n) at elements [offset, offset + n).
  void add(const float* g, long long offset, long long n);
  // Sums over all ranks (every rank calls it, also with nothing added).
  void allreduce(const Comm& comm);
  // Writes the sum as floats (correctly rounded); NaN everywhere if any
  // added value was out of range. Returns false in that case.
  bool write(float* out) const;

 private:
  long long count_;
  AlignedBuffer<std::int64_t> limbs_;  // [hi (count) | lo (count) | overflow flag]
};

class ExactUnitSum {
 public:
  // Room for `max_count` quantities per unit (grows if a caller needs more,
  // which only happens on a first call).
  explicit ExactUnitSum(int max_count = 8);
  // partials: this rank's `units` rows of `count` values (row-major).
  // Writes the sums over all units of all ranks to out[0, count). A quantity
  // with a non-finite value anywhere sums to NaN. Every rank calls it, in the
  // same order, also with units = 0.
  void sum(const Comm* comm, const double* partials, int units, int count, double* out);

 private:
  std::vector<double> max_;
  std::vector<std::int64_t> q_;
};

}  // namespace mpitrain

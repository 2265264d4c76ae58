// Order-independent exact sums for --deterministic (README, "Deterministic
// training"): a sum over the units of a global batch that comes out bitwise
// the same whichever rank holds which unit, because it is a sum of integers
// on a grid every rank agrees on.
//
// - Gradients (ExactGradientSum): each unit's gradient is kept (floats, this
//   rank's units only) until backward is done. Then the ranks agree on the
//   largest |value| of each tensor over all units (an MPI_MAX all-reduce of
//   one double per tensor), every value becomes an int32 on the power-of-two
//   grid that gives that largest value 31 - w bits, w the bit width of the
//   global batch's unit count n (28 bits for 5 units, 27 for 8, 15 for
//   kMaxUnits = 2^15), so the n of them cannot overflow, and one MPI_SUM of
//   int32 adds them: the same bytes as the float all-reduce of the default
//   mode. The sum is exact on the grid and off the true sum by at most n
//   half-steps, at most 2^-(31 - w) of n times the largest value (about
//   float precision up to 127 units, 2^-15 at 2^15); errors of both signs
//   usually make it smaller. Small values keep an absolute, not a relative,
//   precision. A non-finite value makes its tensor's sum NaN (the trainer's
//   divergence check stops the run).
// - Statistics (ExactUnitSum): a few doubles per unit (batch-norm sums, the
//   loss, the noise-scale norms, evaluation counts), the same way with a
//   grid that leaves room for kMaxStatUnits (2^20) values: the largest keeps
//   62 - 20 = 42 bits.
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

class ExactGradientSum {
 public:
  // tensors: (offset, size) of each tensor in a gradient buffer of `count`
  // floats (the arena's views); room for max_units units on this rank.
  ExactGradientSum(std::vector<std::pair<long long, long long>> tensors, long long count, long long max_units);
  long long count() const { return count_; }
  // A step with `units` units on this rank (at most max_units), of
  // `total_units` over all ranks (1 to kMaxUnits; it sets the grid).
  void begin(long long units, long long total_units);
  // Unit k's (0-based on this rank) buffer, `count` floats: write a unit's
  // values there, then add() them.
  float* unit(long long k) { return kept_.data() + k * count_; }
  // Unit k's values at [offset, offset + n) of its buffer, the tensor that
  // starts at `offset`, are final.
  void add(long long k, long long offset, long long n);
  // Sums over all units of all ranks (every rank calls it, also with no
  // units) and writes the sum as floats to out[0, count); unit_sq[k] gets
  // unit k's squared L2 norm (double, in a fixed order).
  void reduce_into(const Comm* comm, float* out, double* unit_sq);

 private:
  size_t tensor_at(long long offset) const;

  std::vector<std::pair<long long, long long>> tensors_;  // sorted by offset
  long long count_, max_units_, units_ = 0;
  int bits_ = 0;                       // the largest value's bits on this step's grid
  AlignedBuffer<float> kept_;          // (max_units, count): this step's unit gradients
  typedef double Lanes __attribute__((vector_size(32)));
  AlignedBuffer<Lanes> lanes_;         // per unit: the norm's four lanes over one tensor
  std::vector<double> max_;            // per tensor: largest |value| (inf: not finite)
  AlignedBuffer<std::int32_t> sums_;   // (count) the integer sums
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

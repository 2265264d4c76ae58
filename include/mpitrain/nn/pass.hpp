// What a forward/backward pass tells its layers beyond the rows themselves.
// The trainer sets it before each chunk; evaluation sets training = false.
//
// Rank-count invariance (the product's rule): a layer's math may depend on a
// row's place in the global batch (first_row + r), on the step and the seed,
// and on sums over the whole global batch, never on which rank holds a row.
#pragma once
#include <cstdint>

namespace mpitrain {

// Sums statistics over every rank's rows of the global batch. The trainer
// provides an MPI all-reduce; nullptr in a Pass means this process holds the
// whole batch (a unit test, the bench).
class BatchSum {
 public:
  virtual ~BatchSum() = default;
  // In place: data[i] becomes the sum over ranks. Every rank calls it, in the
  // same order, also with no rows of its own.
  virtual void sum(double* data, int count) = 0;
};

struct Pass {
  bool training = true;        // false: dropout off, batch norm uses its running statistics
  std::uint64_t seed = 0;      // the run's seed (dropout masks)
  long long step = 0;          // the global optimizer step the pass computes
  long long first_row = 0;     // position in the global batch of this chunk's first row
  BatchSum* batch_sum = nullptr;
};

}  // namespace mpitrain

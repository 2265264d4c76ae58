// What a forward/backward pass tells its layers beyond the rows themselves.
// The trainer sets it before each chunk; evaluation sets training = false.
//
// Rank-count invariance (the product's rule): a layer's math may depend on a
// row's place in the global batch (first_row + r), on the step and the seed,
// and on sums over the whole global batch, never on which rank holds a row.
//
// --deterministic makes it bitwise (README, "Deterministic training"): the
// global batch is cut into units of unit_rows rows, a chunk holds whole
// units, and a layer computes everything that mixes rows (every sgemm, every
// sum over rows) one unit at a time, so a unit's numbers are the same on
// whichever rank holds it. Sums over units are then exact: parameter
// gradients go to the UnitSink per unit, batch statistics to BatchSum as
// one row of partial sums per unit.
#pragma once
#include <algorithm>
#include <cstdint>

namespace mpitrain {

// Sums statistics over every rank's rows of the global batch. The trainer
// provides an MPI all-reduce; nullptr in a Pass means this process holds the
// whole batch (a unit test, the bench).
class BatchSum {
 public:
  virtual ~BatchSum() = default;
  // data holds `units` rows of `count` partial sums (this rank's units; one
  // row outside --deterministic). Afterwards data[0, count) holds the sums
  // over all units of all ranks. Every rank calls it, in the same order,
  // also with no rows of its own.
  virtual void sum(double* data, int count, int units) = 0;
};

// Takes each unit's parameter gradients (--deterministic). `unit` is the
// unit's index in the global batch.
class UnitSink {
 public:
  virtual ~UnitSink() = default;
  // Where a layer writes the unit's gradients: a buffer laid out like the
  // arena's gradients (a layer's tensors at their arena offsets).
  virtual float* unit_grads(long long unit) = 0;
  // The unit's values at [offset, offset + count) of that buffer are final.
  virtual void add(long long unit, long long offset, long long count) = 0;
};

struct Pass {
  bool training = true;        // false: dropout off, batch norm uses its running statistics
  std::uint64_t seed = 0;      // the run's seed (dropout masks)
  long long step = 0;          // the global optimizer step the pass computes
  long long first_row = 0;     // position in the global batch of this chunk's first row
  BatchSum* batch_sum = nullptr;
  // --deterministic: rows per unit (0: off, the chunk is one piece), and where
  // units' parameter gradients go (training only).
  int unit_rows = 0;
  UnitSink* unit_sink = nullptr;

  // Calls f(first row in the chunk, rows, unit index in the global batch or
  // -1) for each unit of a chunk of `rows` rows; without units, once for the
  // whole chunk (with unit -1).
  template <class F>
  void for_units(int rows, F&& f) const {
    if (unit_rows <= 0) {
      f(0, rows, -1LL);
      return;
    }
    const long long first_unit = first_row / unit_rows;
    for (int r0 = 0; r0 < rows; r0 += unit_rows) f(r0, std::min(unit_rows, rows - r0), first_unit + r0 / unit_rows);
  }
  // Units in a chunk of `rows` rows (1 without units, also for 0 rows).
  int unit_count(int rows) const { return unit_rows <= 0 ? 1 : (rows + unit_rows - 1) / unit_rows; }
  // Per-unit parameter gradients go to the sink (training, --deterministic).
  bool per_unit_grads() const { return unit_rows > 0 && unit_sink != nullptr; }
};

}  // namespace mpitrain

// Which rows form each step, and which of them this rank computes.
// The rows of step s of epoch e are a function of (seed, e, s) only: one
// seeded permutation of the training set per epoch, cut into consecutive
// global batches. The rank count decides only the balanced split of each
// batch: rank r of P takes rows [r*b/P, (r+1)*b/P) of a batch of b rows, so
// shard sizes differ by at most 1 and may be 0 (DESIGN.md). With
// --deterministic the batch is first cut into units of U rows (the last may
// be shorter) and the split is of whole units: rank r takes units
// [r*n/P, (r+1)*n/P) of the n = ceil(b/U) units.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "mpitrain/core/epoch_steps.hpp"  // steps_per_epoch

namespace mpitrain {

struct RowRange {
  long long begin = 0, end = 0;
  long long size() const { return end - begin; }
};

// Rows in step `step` of an epoch: B, except a smaller last batch.
long long batch_rows(long long n, long long global_batch, long long step);
// The balanced slice of a batch of b rows for rank r of P (of whole units
// of unit_rows rows when unit_rows > 0).
RowRange shard_range(long long b, int ranks, int rank, long long unit_rows = 0);
// The most rows any rank computes in any step (buffer sizing).
long long max_shard_rows(long long global_batch, int ranks, long long unit_rows = 0);
// Units of unit_rows rows in a batch of b rows.
long long unit_count(long long b, long long unit_rows);

class EpochSampler {
 public:
  // Samples positions [0, n). With a row table (size n), position i stands
  // for file row table[i] (e.g. the training rows left after holding out a
  // validation set).
  EpochSampler(long long n, long long global_batch, bool drop_last, std::uint64_t seed,
               std::vector<std::int64_t> row_table = {}, long long unit_rows = 0);
  // Draws the permutation of epoch e (0-based), mapped through the row table.
  void start_epoch(long long epoch);
  // Batches of B rows from step `from_step` on, the first of them starting
  // at position `from_offset` of the epoch's permutation (the rows the
  // steps before it took). A batch schedule changes B between epochs
  // (0, 0); --global-batch auto also between two steps of an epoch.
  void set_global_batch(long long global_batch, long long from_step = 0, long long from_offset = 0);
  long long steps() const {
    return origin_step_ + steps_per_epoch(n_ - origin_offset_, global_batch_, drop_last_);
  }
  long long rows() const { return n_; }
  // Rows the steps before `step` took (step >= the origin step).
  long long offset_of(long long step) const;
  // All global rows of a step, in batch order.
  std::span<const std::int64_t> batch(long long step) const;
  // This rank's shard of a step.
  std::span<const std::int64_t> shard(long long step, int ranks, int rank) const;

 private:
  long long n_, global_batch_;
  long long origin_step_ = 0, origin_offset_ = 0;  // where batches of global_batch_ rows begin
  bool drop_last_;
  std::uint64_t seed_;
  std::vector<std::int64_t> row_table_;
  long long unit_rows_;  // shards of whole units (0: of rows)
  std::vector<std::int64_t> perm_;
};

}  // namespace mpitrain

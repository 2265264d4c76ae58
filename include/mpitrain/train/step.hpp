// One training step's gradient on one rank (DESIGN.md data flow steps 3-4):
// take this rank's shard of the global batch from the batch source chunk by
// chunk, forward and backward each chunk with the gradients adding up in the
// arena, and start the bucketed all-reduce during the last chunk's backward. Afterwards
// the arena holds the mean gradient over the global batch, and the stat
// slots the sums the trainer needs: loss, correct count, and the noise
// scale's small-batch statistics (they ride in the same all-reduce).
//
// --deterministic (README, "Deterministic training"): the layers compute
// unit by unit, each unit's gradient is kept, and after backward exact
// integer sums (comm/exact_sum.hpp) add them over all ranks' units, and
// the statistics are exact sums over units: the noise scale's small batch is
// a unit, on any number of ranks.
#pragma once
#include <cstdint>

#include <memory>
#include <vector>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/comm/exact_sum.hpp"
#include "mpitrain/comm/gradient_reducer.hpp"
#include "mpitrain/nn/model.hpp"
#include "mpitrain/train/batch_source.hpp"
#include "mpitrain/train/forward_loss.hpp"

namespace mpitrain {

// Seconds of one rank, summed over the steps of an epoch.
struct StepTimes {
  double data = 0;            // waiting for rows (all of the read without prefetch)
  double compute = 0;         // forward, loss, backward, optimizer
  double allreduce_wait = 0;  // the part of the all-reduce the step waited for (exposed)
  double comm = 0;            // time the all-reduce was in flight (hidden + exposed)
};

// The reduced sums of a step (identical on every rank).
struct StepSums {
  double loss = 0, correct = 0;
  // Noise scale: mean over ranks that had rows of |G_r|^2 and of 1/b_r
  // (contributors 0: no estimate this step).
  double small_sq_mean = 0, inv_small_mean = 0, contributors = 0;
};

// Batch statistics summed over the ranks (nn/pass.hpp): a blocking
// all-reduce of doubles on the main thread.
// With units (--deterministic) the sum is exact (comm/exact_sum.hpp).
class CommBatchSum final : public BatchSum {
 public:
  CommBatchSum(const Comm& comm, bool exact) : comm_(comm), exact_(exact) {}
  void sum(double* data, int count, int units) override;

 private:
  const Comm& comm_;
  bool exact_;
  ExactUnitSum exact_sum_;
};

// The gradients of one step's units (--deterministic): kept for the exact
// sum, with each unit's squared gradient norm (the noise scale's small batch).
class UnitGradients final : public UnitSink {
 public:
  UnitGradients(const Arena& arena, long long max_units);
  // A step whose units on this rank are [first_unit, first_unit + units), of
  // total_units in the global batch.
  void begin(long long first_unit, long long units, long long total_units);
  float* unit_grads(long long unit) override { return sums_.unit(unit - first_unit_); }
  void add(long long unit, long long offset, long long count) override;
  // The exact sum over all ranks' units into `out`; afterwards unit_sq(k) is
  // this rank's k-th unit's squared gradient norm.
  void reduce_into(const Comm& comm, float* out) { sums_.reduce_into(&comm, out, sq_.data()); }
  double unit_sq(long long k) const { return sq_[static_cast<size_t>(k)]; }

 private:
  ExactGradientSum sums_;
  std::vector<double> sq_;
  long long first_unit_ = 0;
};

class GradientStep {
 public:
  // With batch statistics in the model (batch norm), the layers all-reduce
  // on the main thread during backward, which MPI_THREAD_SERIALIZED forbids
  // while the reducer's thread sends buckets: the gradients are then reduced
  // after backward (no overlap).
  // unit_rows > 0: --deterministic, with at most max_shard_rows rows per rank.
  GradientStep(Model& model, const Comm& comm, int num_classes, long long bucket_bytes, std::uint64_t seed,
               int unit_rows = 0, long long max_shard_rows = 0);

  // Computes the mean gradient of `batch` (global optimizer step
  // `global_step`), whose rows come from `source`.
  StepSums run(BatchSource& source, const Batch& batch, long long global_step, StepTimes& times);
  const GradientReducer& reducer() const { return reducer_; }
  bool deterministic() const { return unit_rows_ > 0; }

 private:
  StepSums run_units(BatchSource& source, const Batch& batch, StepTimes& times);

  Model& model_;
  const Comm& comm_;
  int num_classes_;
  std::uint64_t seed_;
  CommBatchSum batch_sum_;
  GradientReducer reducer_;
  int unit_rows_;
  std::unique_ptr<UnitGradients> units_;  // --deterministic only
  std::vector<double> partials_;          // per unit of this rank: the kUnitStats statistics
  ExactUnitSum stat_sum_;
};

}  // namespace mpitrain

// One training step's gradient on one rank (DESIGN.md data flow steps 3-4):
// take this rank's shard of the global batch from the batch source chunk by
// chunk, forward and backward each chunk with the gradients adding up in the
// arena, and start the bucketed all-reduce during the last chunk's backward. Afterwards
// the arena holds the mean gradient over the global batch, and the stat
// slots the sums the trainer needs: loss, correct count, and the noise
// scale's small-batch statistics (they ride in the same all-reduce).
#pragma once
#include <cstdint>

#include "mpitrain/comm/communicator.hpp"
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
class CommBatchSum final : public BatchSum {
 public:
  explicit CommBatchSum(const Comm& comm) : comm_(comm) {}
  void sum(double* data, int count) override {
    if (comm_.size() > 1) comm_.allreduce_sum(data, count);
  }

 private:
  const Comm& comm_;
};

class GradientStep {
 public:
  // With batch statistics in the model (batch norm), the layers all-reduce
  // on the main thread during backward, which MPI_THREAD_SERIALIZED forbids
  // while the reducer's thread sends buckets: the gradients are then reduced
  // after backward (no overlap).
  GradientStep(Model& model, const Comm& comm, int num_classes, long long bucket_bytes, std::uint64_t seed);

  // Computes the mean gradient of `batch` (global optimizer step
  // `global_step`), whose rows come from `source`.
  StepSums run(BatchSource& source, const Batch& batch, long long global_step, StepTimes& times);
  const GradientReducer& reducer() const { return reducer_; }

 private:
  Model& model_;
  const Comm& comm_;
  int num_classes_;
  std::uint64_t seed_;
  CommBatchSum batch_sum_;
  GradientReducer reducer_;
};

}  // namespace mpitrain

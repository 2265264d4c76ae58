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

class GradientStep {
 public:
  GradientStep(Model& model, const Comm& comm, int num_classes, long long bucket_bytes);

  // Computes the mean gradient of `batch`, whose rows come from `source`.
  StepSums run(BatchSource& source, const Batch& batch, StepTimes& times);
  const GradientReducer& reducer() const { return reducer_; }

 private:
  Model& model_;
  const Comm& comm_;
  int num_classes_;
  GradientReducer reducer_;
};

}  // namespace mpitrain

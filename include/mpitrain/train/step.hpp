// One training step's gradient on one rank (DESIGN.md data flow steps 2-4):
// read this rank's shard of the global batch in chunks of the model's
// capacity (prefetched on a background thread when asked), forward and
// backward each chunk with the gradients adding up in the arena, and the
// bucketed all-reduce started during the last chunk's backward. Afterwards
// the arena holds the mean gradient over the global batch, and the stat
// slots the sums the trainer needs: loss, correct count, and the noise
// scale's small-batch statistics (they ride in the same all-reduce).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/comm/gradient_reducer.hpp"
#include "mpitrain/data/dataset.hpp"
#include "mpitrain/data/prefetch_reader.hpp"
#include "mpitrain/nn/model.hpp"
#include "mpitrain/train/evaluation.hpp"

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
  GradientStep(Model& model, const DatasetFile& data, const Comm& comm, int num_classes, int capacity_rows,
               long long bucket_bytes, bool prefetch);

  // Computes the mean gradient of a global batch of b rows whose shard on
  // this rank is `shard`; `next_shard` is this rank's shard of the step
  // that follows in the same epoch (empty if none), whose first rows are
  // read while this step computes.
  StepSums run(std::span<const std::int64_t> shard, long long b, std::span<const std::int64_t> next_shard,
               StepTimes& times);
  // Waits for any read in flight: call before other HDF5 use (evaluation,
  // checkpoints), since HDF5 is not thread-safe.
  void drain();
  const GradientReducer& reducer() const { return reducer_; }

 private:
  // The small batch of the noise scale: this rank's shard, or on one rank
  // the first half of the batch (its gradient norm is taken before the
  // second half is added).
  size_t small_batch_rows(std::span<const std::int64_t> shard) const {
    return comm_.size() > 1 ? shard.size() : shard.size() / 2;
  }
  // Splits a shard into the chunks the model takes; returns where the noise
  // scale's small batch ends (on one rank: after the first half).
  size_t plan_chunks(std::span<const std::int64_t> shard, std::vector<std::span<const std::int64_t>>& out) const;
  struct Input {
    const float* x;
    const int* labels;
    const float* targets;
  };
  Input read(std::span<const std::int64_t> rows, StepTimes& times);

  Model& model_;
  const Comm& comm_;
  int num_classes_;
  int capacity_;
  GradientReducer reducer_;
  std::optional<SplitReader> reader_;            // without prefetch
  std::unique_ptr<PrefetchReader> prefetch_;     // with prefetch
  TargetBuffers targets_;
  std::vector<std::span<const std::int64_t>> chunks_, next_chunks_;
  bool next_first_requested_ = false;            // the next step's first chunk is already queued
};

}  // namespace mpitrain

// The rows of every step, ready to compute (DESIGN.md data flow steps 1-2).
// The sampler decides which global rows form step s of epoch e (a function of
// the seed, e and s only) and which of them are this rank's shard; the shard
// is cut into chunks of the model's capacity (micro-batches), and each chunk
// is read from HDF5 into float rows. With prefetch, a background thread reads
// the next chunk (of this step, or the first of the next step in the epoch)
// while the current one computes.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/core/tensor.hpp"
#include "mpitrain/data/augment.hpp"
#include "mpitrain/data/dataset.hpp"
#include "mpitrain/data/prefetch_reader.hpp"
#include "mpitrain/data/sampler.hpp"
#include "mpitrain/train/forward_loss.hpp"  // TargetBuffers

namespace mpitrain {

// One step as this rank sees it.
struct Batch {
  long long step = 0;         // within the epoch (0-based)
  long long global_rows = 0;  // b: rows of the whole global batch (B, or fewer in a last partial step)
  long long first_row = 0;    // position in the global batch of this rank's first row
  size_t shard_rows = 0;      // this rank's rows of it (may be 0)
  size_t small_rows = 0;      // the noise scale's small batch: the shard, or on one rank its first half (units: unused)
  size_t chunks = 0;          // pieces of at most the model's capacity the shard is computed in
  size_t small_chunks = 0;    // the first chunks, which hold exactly the small batch
};

// One chunk's rows: x (rows, x_width); labels (rows) for classes, else
// targets (rows, y_width). Valid until the next chunk() or next().
struct ChunkRows {
  const float* x;
  const int* labels;
  const float* targets;
  int rows;
  long long first_row;  // position in the global batch of the chunk's first row
};

struct BatchSourceSetup {
  const DatasetFile* data = nullptr;
  long long train_count = 0;              // positions sampled per epoch
  std::vector<std::int64_t> train_rows;   // their /train rows (empty: position i is row i)
  long long global_batch = 0;
  bool drop_last = false;
  std::uint64_t seed = 0;
  int capacity_rows = 0;                  // rows per chunk
  float* direct_input = nullptr;          // where rows go without prefetch: (capacity, x_width)
  bool prefetch = true;
  // The model has batch statistics (batch norm): a shard goes through in one
  // chunk, and on one rank there is no noise-scale half batch (it would be
  // a second chunk).
  bool whole_shard = false;
  // --deterministic: shards of whole units of this many rows (capacity_rows
  // is a multiple of it, so chunks hold whole units); 0: off.
  int unit_rows = 0;
  AugmentOptions augment;                 // applied to each chunk as it is taken
  Shape image;                            // the sample shape augmentation works on
};

class BatchSource {
 public:
  BatchSource(BatchSourceSetup setup, const Comm& comm);
  // Starts epoch `epoch` (0-based) at global batch B, at step first_step
  // (non-zero when resuming mid-epoch), which begins at row first_offset of
  // the epoch's order (the rows of the steps before it; < 0: first_step x B,
  // right unless B changed within the epoch).
  void start_epoch(long long epoch, long long global_batch, long long first_step, long long first_offset = -1);
  // The steps after the current one take B rows each, from where the epoch
  // stands (--global-batch auto); steps() follows.
  void change_batch(long long global_batch);
  long long steps() const { return sampler_.steps(); }
  // The next step of the epoch; queues the read of its first chunk.
  Batch next();
  // Reads (or waits for) chunk i of the current step and queues the chunk
  // after it. `wait_s` grows by the time spent waiting for rows.
  ChunkRows chunk(size_t i, double& wait_s);
  // Waits for any read in flight: call before other HDF5 use (evaluation,
  // checkpoints), since HDF5 is not thread-safe.
  void drain();

 private:
  void drop_queued_next();
  size_t small_batch_rows(std::span<const std::int64_t> shard) const;
  // Cuts a shard into chunks; returns how many of them hold the small batch.
  size_t plan_chunks(std::span<const std::int64_t> shard, std::vector<std::span<const std::int64_t>>& out) const;

  const Comm& comm_;
  EpochSampler sampler_;
  bool whole_shard_;
  int unit_rows_;
  AugmentOptions augment_;
  Shape image_;
  std::uint64_t seed_;
  long long epoch_ = 0;
  AlignedBuffer<float> augment_scratch_;  // one image
  std::span<const std::int64_t> shard_;       // this rank's shard of the current step
  long long shard_first_row_ = 0;             // its position in the global batch
  int capacity_;
  float* direct_input_;
  std::optional<SplitReader> reader_;         // without prefetch
  std::unique_ptr<PrefetchReader> prefetch_;  // with prefetch
  TargetBuffers targets_;                     // labels/targets of a direct read
  long long step_ = 0;
  std::span<const std::int64_t> next_shard_;  // this rank's shard of the step after the current one (same epoch)
  std::vector<std::span<const std::int64_t>> chunks_, next_chunks_;
  bool next_first_requested_ = false;         // the next step's first chunk is already queued
};

}  // namespace mpitrain

// Checkpoints: the whole training state in one HDF5 file, readable with h5py.
//
//   /params/<layer>/<W|b>             parameters, named after the layers
//   /optimizer/<buffer>/<layer>/<W|b> optimizer state of the same shapes
//   /progress                         attributes: epoch, step_in_epoch, global_step, samples,
//                                     global_batch, optimizer_steps, previous_lr, ...,
//                                     best_ckpt_epoch, best_ckpt_value, noise_updates,
//                                     noise_ema_g2, noise_ema_s, noise_decay_pow (optional:
//                                     absent in older checkpoints, read as the defaults)
//   root attributes                   format, version, model_spec, world_size, config (INI),
//                                     optimizer, data shape, last_metrics (JSON), checksum
//
// Written by rank 0 only, atomically: a temporary file in the same directory
// is written, flushed and fsync'ed, then renamed, and only then is the
// `latest` pointer (a one-line text file) replaced the same way. A crash at
// any moment leaves the previous checkpoint complete and `latest` valid.
// The checksum (CRC-32, zlib) covers parameters, optimizer state and progress.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mpitrain/core/arena.hpp"
#include "mpitrain/optim/optimizer.hpp"

namespace mpitrain {

inline constexpr const char* kCheckpointFormat = "mpitrain-checkpoint-1";

// What a checkpoint keeps of the online gradient-noise-scale estimator
// (train/noise_scale.hpp, NoiseScaleEstimator::State): everything its
// update() changes, so a resumed estimate continues bit for bit.
struct NoiseScaleState {
  long long updates = 0;
  double ema_g2 = 0, ema_s = 0, decay_pow = 1;
};

// Where the run stands; restoring it (with the weights and optimizer state)
// continues the run exactly.
struct TrainProgress {
  long long epoch = 0;          // epoch to continue in (0-based)
  long long step_in_epoch = 0;  // steps of that epoch already done
  long long global_step = 0;    // optimizer steps done
  long long samples = 0;        // samples seen
  long long global_batch = 0;   // B of the current epoch
  long long optimizer_steps = 0;
  double previous_lr = 0.0;
  double first_loss = 0.0;      // divergence reference
  // Running sums of the current epoch (for its epoch line after a mid-epoch resume).
  double epoch_loss_sum = 0.0, epoch_correct_sum = 0.0;
  long long epoch_samples = 0;
  double elapsed_s = 0.0;       // training wall time before this checkpoint
  // Early stopping and target bookkeeping.
  long long best_epoch = 0;
  double best_value = 0.0;
  long long target_epoch = 0, target_step = 0, target_samples = 0;  // target_epoch 0: not reached
  double target_time_s = 0.0;
  // Added later; optional in the file (older checkpoints load with these defaults).
  // The tracker behind best.h5: best validation value so far (0 epoch: none yet).
  long long best_ckpt_epoch = 0;
  double best_ckpt_value = 0.0;
  // The online gradient-noise-scale estimator (NoiseScaleEstimator::state()).
  NoiseScaleState noise;
  // --target-hold: evaluations in a row at which the target held so far, and
  // where the first of them was (what target_* become once it has held long enough).
  long long target_streak = 0;
  long long target_first_epoch = 0, target_first_step = 0, target_first_samples = 0;
  double target_first_time_s = 0.0;
  // --lr-scaling adascale: scale-invariant iterations done (the sum of the gains).
  double adascale_tau = 0.0;
  // Seconds of evaluation so far, and the target's time without them (what
  // the performance model predicts: training alone).
  double eval_time_s = 0.0;
  double target_train_time_s = 0.0, target_first_train_time_s = 0.0;
};

struct CheckpointMeta {
  std::string version, model_spec, optimizer, config_ini, last_metrics;
  int world_size = 0;
  long long train_rows = 0;  // rows trained on (after any held-out validation)
  int x_width = 0, num_classes = 0, y_width = 0;
  std::uint64_t seed = 0;    // sample order and init are counter-based: (seed, epoch) is the RNG state
  // The global batch's changes so far (--global-batch auto, --batch-changes)
  // as STEP:B text; optional in the file, and covered by meta_crc32 when present.
  std::string batch_changes;
};

// CRC-32 of the metadata a resume trusts: the model spec, optimizer, config
// text, world size, data shape and seed (each tagged with its name), kept in
// the `meta_crc32` attribute. A checkpoint written before it existed has no
// such attribute and still loads; in a newer one, an edited or blanked config
// (which once let --resume accept another --seed) fails it.
std::uint32_t checkpoint_meta_checksum(const CheckpointMeta& meta);

struct Checkpoint {
  CheckpointMeta meta;
  TrainProgress progress;
  std::vector<float> params;                                     // arena layout (param_count floats)
  std::vector<std::pair<std::string, std::vector<float>>> state;  // optimizer buffers, arena layout
  std::uint32_t checksum = 0;
};

// CRC-32 over the arena-layout params, the state buffers and the progress.
// The progress fields added later (best_ckpt_*, noise) count only where they
// differ from their defaults, so a checkpoint written before they existed
// still verifies, and a default TrainProgress gives the same value as before.
std::uint32_t checkpoint_checksum(const float* params, long long count,
                                  const std::vector<std::pair<std::string, const float*>>& state,
                                  const TrainProgress& progress);

// Writes `dir/name` atomically from the arena and optimizer, then (if
// update_latest) points `dir/latest` at it, and removes older "ckpt-*.h5"
// files beyond keep_last (0 keeps all). Returns the bytes written. Throws
// SystemError on failure.
long long write_checkpoint(const std::string& dir, const std::string& name, const Arena& arena,
                           Optimizer& optimizer, const TrainProgress& progress, const CheckpointMeta& meta,
                           int keep_last, bool update_latest = true);

// Reads and verifies a checkpoint against the arena layout of `arena` (same
// parameter names and shapes) and the optimizer's state buffer names. Throws
// UserError naming what is wrong: missing file, not a checkpoint, missing
// field, shape mismatch, checksum.
Checkpoint read_checkpoint(const std::string& path, const Arena& arena, const std::vector<std::string>& state_names);

// The optimizer state buffer names a checkpoint holds (under /optimizer).
std::vector<std::string> checkpoint_state_names(const std::string& path);

// Reads only the metadata (for inspect/evaluate to build the right model).
CheckpointMeta read_checkpoint_meta(const std::string& path);

// The file `dir/latest` names, as a path ("" if there is none).
std::string latest_checkpoint(const std::string& dir);

}  // namespace mpitrain

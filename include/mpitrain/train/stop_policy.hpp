// When the run stops, and what it records on the way (the rules themselves,
// Target and EarlyStopping, are in stopping.hpp):
//  - divergence: a non-finite loss or gradient, or a loss above
//    --divergence-factor x the first step's, ends the run;
//  - the target (--target, steps-to-result: Shallue et al. 2018): the first
//    evaluation at which it holds is recorded, and ends the run with
//    --stop-at-target;
//  - early stopping on a validation metric (--early-stop-patience);
//  - the best model: the epoch whose validation metric is best so far
//    (written as best.h5 by the checkpointer).
// Its bookkeeping lives in the loop's TrainProgress, so checkpoints carry it.
#pragma once
#include <optional>
#include <string>

#include "mpitrain/io/checkpoint_file.hpp"
#include "mpitrain/train/options.hpp"
#include "mpitrain/train/stopping.hpp"

namespace mpitrain {

class StopPolicy {
 public:
  // target: the parsed --target (if any); track_best: keep the best epoch by
  // the validation metric (there is a validation split and checkpoints).
  StopPolicy(const StopOptions& o, std::optional<Target> target, bool track_best, TrainProgress& progress);

  // After the step that made global step `global_step` (0-based): why the run
  // diverged, or "" if it did not. The first step's loss is the reference.
  std::string divergence(long long global_step, double step_loss, double grad_norm);

  // Records the first evaluation at which the target holds (with
  // --target-hold K: the first of K evaluations in a row at which it holds);
  // true when that is decided now.
  // time_s: since the start; train_time_s: the same without evaluations.
  bool check_target(const EpochMetrics& m, long long epoch, double time_s, double train_time_s);
  bool stop_at_target() const { return target_ && o_.stop_at_target; }

  struct EpochVerdict {
    bool stop_early = false;  // early stopping says stop
    bool new_best = false;    // this epoch is the best so far: write best.h5
  };
  // After epoch `epoch` (0-based) was evaluated.
  EpochVerdict end_epoch(long long epoch, const EpochMetrics& m);
  // Copies the best-model tracker into the progress (before a checkpoint).
  void save() const;

  const std::optional<Target>& target() const { return target_; }
  const EarlyStopping* early_stopping() const { return early_ ? &*early_ : nullptr; }
  long long patience() const { return o_.early_stop_patience; }

 private:
  StopOptions o_;
  std::optional<Target> target_;
  std::optional<EarlyStopping> early_;
  std::optional<EarlyStopping> best_;  // patience 0: never asks to stop
  std::string best_metric_;
  TrainProgress& pr_;
};

}  // namespace mpitrain

// The trainer's side of checkpoints: when to write (every N epochs, every N
// steps, every T seconds: rank 0 decides the timed ones and broadcasts, so
// ranks never disagree), what to write (the loop's TrainProgress plus the
// weights and optimizer state), the final and best models, and restoring a
// run from --resume after checking that the checkpoint fits this run.
#pragma once
#include <string>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/io/checkpoint_file.hpp"
#include "mpitrain/nn/model.hpp"
#include "mpitrain/train/config.hpp"
#include "mpitrain/train/options.hpp"
#include "mpitrain/train/run_log.hpp"
#include "mpitrain/train/run_plan.hpp"

namespace mpitrain {

// What every checkpoint of this run records about it (model, data shape,
// config), checked again on --resume.
CheckpointMeta checkpoint_meta(const Config& c, const RunPlan& plan, const Comm& comm);

class Checkpointer {
 public:
  // dir: the resolved checkpoint directory ("" for none).
  Checkpointer(const CheckpointOptions& o, std::string dir, CheckpointMeta meta, const Comm& comm);
  bool enabled() const { return !dir_.empty(); }
  // After a step: due by --checkpoint-every-steps or --checkpoint-every-s.
  // Collective when --checkpoint-every-s is set.
  bool due_after_step(long long global_steps_done);
  bool due_at_epoch_end(long long epochs_done) const;
  // Rank 0 writes dir/name (atomically) and a checkpoint line in the run
  // log; other ranks return.
  void save(const std::string& name, const TrainProgress& p, Model& model, Optimizer& opt, RunLog& log,
            bool update_latest);
  void set_last_metrics(std::string json) { meta_.last_metrics = std::move(json); }
  void set_batch_changes(std::string text) { meta_.batch_changes = std::move(text); }
  // With --resume: rank 0 reads the checkpoint it names (or the directory's
  // latest), checks it was written for this model, data and sample order,
  // and every rank receives weights, optimizer state and progress.
  // Collective; a bad checkpoint is reported once (UserError path). Without
  // --resume: the progress of a fresh run.
  TrainProgress restore(const std::string& data_path, Model& model, Optimizer& opt);
  // The restored checkpoint's batch changes (every rank; "" for none or a fresh run).
  const std::string& restored_batch_changes() const { return meta_.batch_changes; }

  static std::string epoch_name(long long epochs_done);
  static std::string step_name(long long epoch, long long step_in_epoch);

 private:
  CheckpointOptions o_;
  const Comm& comm_;
  std::string dir_;
  CheckpointMeta meta_;
  double last_timed_s_;
};

}  // namespace mpitrain

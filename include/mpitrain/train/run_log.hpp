// The record of a run on disk, written by rank 0 (numbers already reduced
// over ranks): the run directory (config.ini, summary.json) and the
// JSON-lines metrics file. This file is the one home of the metrics format,
// the contract with the study tools (scripts/mpitrain_study reads it):
//   header      once at the start (config, ranks, placement, model, plan, versions)
//   step        every --metrics-every-steps steps
//   eval        every --eval-every-steps steps (mid-epoch evaluation)
//   epoch       after each epoch (losses, accuracies, throughput, time split, noise scale)
//   checkpoint  after each checkpoint write (file, seconds, MB)
//   batch_change when --global-batch auto or --batch-changes changes B (auto: what it predicted)
//   summary     at the end, also as <run-dir>/summary.json; or
//   diverged    when the run diverged (then the summary says so)
// Keys are added over time, never renamed. Non-finite numbers are null.
#pragma once
#include <optional>
#include <string>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/comm/placement.hpp"
#include "mpitrain/io/json_lines.hpp"
#include "mpitrain/nn/model.hpp"
#include "mpitrain/train/config.hpp"  // the header line records it
#include "mpitrain/train/batch_controller.hpp"
#include "mpitrain/train/options.hpp"
#include "mpitrain/train/run_plan.hpp"
#include "mpitrain/train/stopping.hpp"
#include "mpitrain/train/trainer.hpp"

namespace mpitrain {

struct StepRecord {
  long long epoch = 0, step = 0, samples = 0;  // 1-based epoch, global steps done
  double lr = 0;
  long long global_batch = 0;
  double loss = 0, acc = 0, grad_norm = 0, noise_scale = 0;
  // The step's raw noise-scale statistics, for re-averaging: mean |G_small|^2
  // over the small batches and their size 1/mean(1/b); |G_big|^2 is
  // grad_norm^2 at global_batch. NaN when the step had no small batches.
  double small_sq = 0, b_small = 0;
  // --lr-scaling adascale: the step's gain and the scale-invariant iterations after it.
  std::optional<double> gain, scale_iterations;
};

struct EvalRecord {
  long long epoch = 0, step = 0, samples = 0;
  double time_s = 0;
  const EpochMetrics* metrics = nullptr;  // val/test loss and accuracy measured
  std::optional<bool> target_reached;     // with --target
};

// Per-epoch time split of one rank, summed over the epoch's steps; the
// epoch line gives the max (the slowest rank sets the pace) and the min.
struct TimeSplit {
  double data = 0, compute = 0, allreduce_wait = 0, comm = 0;
};

struct EpochRecord {
  long long epoch = 0, step = 0, samples = 0, global_batch = 0, steps_in_epoch = 0;
  double lr = 0, train_loss = 0, train_acc = 0;
  const EpochMetrics* metrics = nullptr;  // val/test measured at the epoch's end
  double time_s = 0, epoch_time_s = 0, samples_per_s = 0, eval_time_s = 0;
  TimeSplit time_max, time_min;
  double peak_rss_mb = 0;
  double noise_scale = 0, noise_g2 = 0, noise_trace_s = 0;
  std::optional<bool> target_reached;
  std::optional<double> gain, scale_iterations;  // --lr-scaling adascale: the last step's
};

struct BatchChangeRecord {
  long long epoch = 0;                 // 1-based
  const BatchDecision* decision = nullptr;
  long long samples = 0;
  double time_s = 0, noise_scale = 0;
};

struct DivergedRecord {
  long long epoch = 0, step = 0;  // 1-based epoch and global step of the failing step
  long long global_batch = 0, ranks = 0;
  double lr = 0, loss = 0, grad_norm = 0;
  std::string reason;
};

struct SummaryRecord {
  const TrainResult* result = nullptr;
  long long ranks = 0, global_batch = 0;
  double lr = 0, noise_scale = 0;
  bool has_test = false;                 // test values are the test split's (else null)
  const EarlyStopping* early = nullptr;  // with early stopping
  const Target* target = nullptr;        // with --target
  std::optional<double> scale_iterations;  // --lr-scaling adascale: tau at the end
  // --global-batch auto or --batch-changes: the batch at the end and every change, as STEP:B text.
  std::optional<long long> final_global_batch;
  std::string batch_changes;
};

class RunLog {
 public:
  // Rank 0 writes; other ranks keep a log that writes nothing.
  RunLog() = default;
  // Rank 0, collective_check'ed by the caller: creates the run directory and
  // its config.ini on a fresh run, and opens the metrics file (appending on
  // a resumed run, which continues its file).
  RunLog(const RunLogOptions& o, const std::string& config_ini, bool resumed);

  // The header line: the whole configuration and how the run is laid out.
  static JsonObject header_json(const Config& c, const Comm& comm, const Placement& place, const RunPlan& p,
                                const Model& m);
  void header(const JsonObject& h) { metrics_.write(h); }
  bool step_due(long long global_steps_done) const {
    return every_steps_ > 0 && global_steps_done % every_steps_ == 0;
  }
  void step(const StepRecord& r);
  void eval(const EvalRecord& r);
  // Returns the line, which checkpoints keep as their last metrics.
  std::string epoch(const EpochRecord& r);
  void checkpoint(const std::string& file, long long epoch, long long step, double seconds, double mb);
  void diverged(const DivergedRecord& r);
  void batch_change(const BatchChangeRecord& r);
  // The closing line; also written as <run-dir>/summary.json for sweep tools.
  void summary(const SummaryRecord& r);

 private:
  void summary_file(const JsonObject& line) const;  // <run-dir>/summary.json (also for runs that diverged)
  std::string run_dir_;
  long long every_steps_ = 0;
  MetricsWriter metrics_;
};

}  // namespace mpitrain

// The option groups of `mpitrain train`, one per module that takes them, so
// a module sees only its own options (Config, in config.hpp, holds one of
// each and binds every command-line/INI option to a field here). The
// learning-rate and optimizer groups live with their modules in optim/.
#pragma once
#include <string>

#include "mpitrain/comm/bucket_plan.hpp"  // kDefaultBucketBytes

namespace mpitrain {

// --global-batch auto and --batch-changes (train/goodput.hpp, trainer).
struct BatchAdaptOptions {
  bool automatic = false;          // --global-batch auto: choose B for goodput during training
  std::string range_text;          // --batch-range MIN:MAX
  long long range_min = 0, range_max = 0;
  long long every_steps = 20;      // --goodput-every: steps between choices
  // --goodput-noise-factor: the efficiency takes this x the online noise
  // scale (B_simple); a scaling study's fitted B_crit / B_simple calibrates it.
  double noise_factor = 1.0;
  std::string changes_text;        // --batch-changes STEP:B,...: replay (e.g. an auto run's choices)
};

// Evaluation during training (run_plan, trainer).
struct EvalOptions {
  double val_fraction = 0.0;  // held out of /train by seed
  std::string split = "test"; // evaluated after each epoch: test | val | none
  long long every_steps = 0;  // also evaluate every N steps (0: at epoch ends only)
  // Also evaluate after the step whose samples pass a multiple of N (0: off):
  // the same data between evaluations at every B, and with a changing B.
  long long every_samples = 0;
};

// When the run stops (stop_policy).
struct StopOptions {
  long long early_stop_patience = 0;  // 0: off
  std::string early_stop_metric = "val_loss";
  double early_stop_min_delta = 0.0;
  std::string target;                 // e.g. "val_acc>=0.88"; empty: none
  bool stop_at_target = false;
  long long target_hold = 1;          // the target counts once it holds at this many evaluations in a row
  double divergence_factor = 10.0;    // loss above this x the first step's loss: diverged (0: off)
};

// When and where checkpoints are written, and resuming (checkpointer).
struct CheckpointOptions {
  std::string dir;             // empty: <run-dir>/checkpoints, or none without a run dir
  long long every_epochs = 1;  // 0: not at epoch ends
  long long every_steps = 0;   // 0: off
  double every_s = 0;          // 0: off (rank 0 decides and broadcasts)
  long long keep_last = 3;     // ckpt-*.h5 files kept (0: all)
  std::string resume;          // "": fresh run; "latest": the checkpoint dir's latest; else a file
};

// The run directory and the metrics file (run_log).
struct RunLogOptions {
  std::string run_dir;        // this run's own directory: config.ini, metrics.jsonl, checkpoints/
  std::string metrics;        // empty: <run_dir>/metrics.jsonl, or none without a run dir
  long long every_steps = 0;  // step lines every N steps (0: none)
  // The metrics file this run writes ("" for none).
  std::string metrics_path() const;
};

// Rank 0's progress display (progress).
struct ProgressOptions {
  std::string mode = "auto";  // auto | live | lines | none
  double interval_s = 5;      // plain progress line period when not a TTY
};

// How a step computes and communicates (step, batch source).
struct StepOptions {
  long long bucket_bytes = kDefaultBucketBytes;  // gradient all-reduce bucket size (0: one all-reduce after backward)
  std::string overlap = "auto";         // all-reduce during backward: auto | on | off
  bool prefetch = true;                 // read the next chunk of rows on a background thread
  // --deterministic: bitwise the same for any rank count (README,
  // "Deterministic training"): units of unit_rows rows, exact sums.
  bool deterministic = false;
  int unit_rows = 32;
};

}  // namespace mpitrain

// All options of `mpitrain train`, parsed with Boost.Program_options from the
// command line and an INI file (--config; the command line wins), validated
// once, and kept as one struct. The optimizer and schedule options are bound
// straight into the structs their modules take. Every option is also kept as
// text in `entries`, in declaration order, for the run and metrics headers.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "mpitrain/nn/activation.hpp"
#include "mpitrain/optim/optimizer.hpp"
#include "mpitrain/optim/schedule.hpp"

namespace mpitrain {

struct Config {
  Config() { schedule.base_lr = 0.05; }

  std::string config_file;
  std::string data = "datasets/fashion-mnist.h5";
  std::string model = "784-256-128-100-10";
  std::string activation_name = "relu";
  Activation activation = Activation::kRelu;
  long long epochs = 15;
  long long global_batch = 256;
  std::uint64_t seed = 1;
  bool drop_last = false;
  long long micro_batch = 0;       // most rows per forward/backward on a rank; 0: the whole shard

  ScheduleOptions schedule;        // lr, ref-batch, scaling, warmup, decay
  std::string lr_scaling_name = "linear", lr_decay_name = "none", milestones_text, batch_schedule_text;
  std::string batch_schedule_lr = "scale";  // scale | hold

  OptimizerOptions optim;          // optimizer, momentum, weight decay, ...
  std::string optimizer_name = "sgd", weight_decay_mode_name = "l2";

  double val_fraction = 0.0;       // held out of /train by seed
  std::string eval_split = "test"; // test | val | none
  long long early_stop_patience = 0;
  std::string early_stop_metric = "val_loss";
  double early_stop_min_delta = 0.0;
  std::string target;              // e.g. "val_acc>=0.88"
  bool stop_at_target = false;
  double noise_ema_decay = 0.99;   // EMA decay of the gradient-noise-scale estimates
  double divergence_factor = 10.0; // loss above this x the first step's loss: diverged (0: off)

  std::string run_dir;             // this run's own directory: config.ini, metrics.jsonl, checkpoints/
  std::string metrics;             // empty: <run_dir>/metrics.jsonl, or none without a run dir
  std::string checkpoint_dir;      // empty: <run_dir>/checkpoints, or none without a run dir
  long long checkpoint_every_epochs = 1;  // 0: not at epoch ends
  long long checkpoint_every_steps = 0;   // 0: off
  double checkpoint_every_s = 0;          // 0: off (rank 0 decides and broadcasts)
  long long keep_last = 3;                // ckpt-*.h5 files kept (0: all)
  std::string resume;              // "": fresh run; "latest": the checkpoint dir's latest; else a file
  double stall_timeout_s = 600;    // watchdog: abort when a rank makes no progress this long (0: off)
  long long metrics_every_steps = 0;  // step lines in the metrics file (0: none)
  int threads = 0;                 // BLAS threads per rank; 0 = automatic
  long long bucket_bytes = 256 * 1024;  // gradient all-reduce bucket size (0: one all-reduce after backward)
  std::string overlap = "auto";    // all-reduce during backward: auto | on | off
  bool prefetch = true;            // read the next chunk of rows on a background thread
  long long eval_every_steps = 0;  // also evaluate (for --target) every N steps (0: at epoch ends only)
  std::string progress = "auto";   // auto | live | lines | none
  double progress_interval_s = 5;  // plain progress line period when not a TTY

  std::vector<std::pair<std::string, std::string>> entries;  // name -> value text

  // The metrics file this run writes ("" for none).
  std::string metrics_path() const;
  // The checkpoint directory ("" for none).
  std::string checkpoint_path() const;
  // The effective configuration as an INI file that --config accepts.
  std::string to_ini() const;
};

struct ParseResult {
  enum class Action { kTrain, kHelp } action = Action::kTrain;
  Config config;
  std::string help_text;
};

// Parses `args` (the words after "mpitrain train"). Throws UserError with a
// message that says what to change on any bad option, value or config file.
ParseResult parse_train_args(const std::vector<std::string>& args);

}  // namespace mpitrain

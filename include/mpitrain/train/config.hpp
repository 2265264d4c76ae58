// All options of `mpitrain train`, parsed with Boost.Program_options from the
// command line and an INI file (--config; the command line wins), validated
// once, and kept as one struct of option groups: each option is bound
// straight into the group its module takes (options.hpp, and the schedule
// and optimizer groups of optim/), so modules never see the whole Config.
// Every option is also kept as text in `entries`, in declaration order, for
// the run and metrics headers.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "mpitrain/data/augment.hpp"
#include "mpitrain/nn/activation.hpp"
#include "mpitrain/optim/optimizer.hpp"
#include "mpitrain/optim/schedule.hpp"
#include "mpitrain/train/options.hpp"

namespace mpitrain {

struct Config {
  Config() { schedule.base_lr = 0.05; }

  std::string config_file;
  std::string data = "datasets/fashion-mnist.h5";
  std::string model = "784-256-128-100-10";
  std::string activation_name = "relu";
  Activation activation = Activation::kRelu;
  long long epochs = 15;
  long long global_batch = 256;    // with --global-batch auto: the first B (--ref-batch within --batch-range)
  std::string global_batch_text = "256";
  BatchAdaptOptions batch_adapt;   // --global-batch auto, --batch-range, --goodput-every, --batch-changes
  std::uint64_t seed = 1;
  bool drop_last = false;
  long long micro_batch = 0;       // most rows per forward/backward on a rank; 0: the whole shard
  std::string augment_name = "none";  // none | flip | crop | crop+flip
  int augment_pad = 2;             // crop: zero padding on each side before the random crop
  AugmentOptions augment;          // parsed from the two above

  ScheduleOptions schedule;        // lr, ref-batch, scaling, warmup, decay
  std::string lr_scaling_name = "linear", lr_decay_name = "none", milestones_text, batch_schedule_text;
  std::string batch_schedule_lr = "scale";  // scale | hold

  OptimizerOptions optim;          // optimizer, momentum, weight decay, ...
  std::string optimizer_name = "sgd", weight_decay_mode_name = "l2";

  EvalOptions eval;                // validation split, what is evaluated, how often
  StopOptions stop;                // divergence, target, early stopping
  CheckpointOptions checkpoint;    // when and where checkpoints go; --resume
  RunLogOptions log;               // run directory, metrics file, step lines
  ProgressOptions progress;        // rank 0's progress display
  StepOptions step;                // gradient buckets, overlap, prefetch
  double noise_ema_decay = 0.99;   // per-step EMA decay of the noise-scale estimates (with window 0)
  double noise_window_samples = 25600;  // their EMA window in samples (0: per-step decay)
  double stall_timeout_s = 600;    // watchdog: abort when a rank makes no progress this long (0: off)
  int threads = 0;                 // BLAS threads per rank; 0 = automatic
  double max_memory_mb = 0;        // per rank; 0: the node's memory / its ranks

  std::vector<std::pair<std::string, std::string>> entries;  // name -> value text

  // Rows per --deterministic unit; 0 when the mode is off.
  int unit_rows() const { return step.deterministic ? step.unit_rows : 0; }
  // The checkpoint directory ("" for none): --checkpoint-dir, else <run-dir>/checkpoints.
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

// The `key = value` lines of an INI text (as Config::to_ini() writes it and
// --config reads it, with the same Boost parser): the one INI reader, also
// for the config a checkpoint records. UserError if the text is not INI.
std::map<std::string, std::string> parse_ini_entries(const std::string& text);

}  // namespace mpitrain

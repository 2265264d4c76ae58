// The training loop: every step, each rank takes its shard of one global
// batch, computes local gradients (in micro-batches if asked), the gradients
// are all-reduced, and every rank applies the same update at the scheduled
// rate. After each epoch: exact evaluation, one log line, one metrics line,
// the target and early-stopping checks.
#pragma once
#include <string>
#include <vector>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/train/config.hpp"

namespace mpitrain {

inline constexpr int kExitDiverged = 4;

struct TrainResult {
  long long epochs_done = 0;
  long long steps = 0;
  long long samples = 0;
  double train_loss = 0.0, train_acc = 0.0;
  double eval_loss = 0.0, eval_acc = 0.0;  // test split (or val with --eval-split val)
  double val_loss = 0.0, val_acc = 0.0;    // NaN without a validation split
  double time_s = 0.0;
  std::string stop_reason = "epochs";      // epochs | early_stop | target | iterations (AdaScale)
  long long best_epoch = 0;                // early stopping's best epoch (0: not tracked)
  double best_value = 0.0;
  bool target_reached = false;
  long long target_epoch = 0, target_step = 0, target_samples = 0;
  double target_time_s = 0.0;
  double target_train_time_s = 0.0;  // the same without the evaluations' time
  std::vector<float> params;  // final parameters (for tests)
};

// Collective. Throws ReportedError (all ranks) on bad input (exit 2) or
// divergence (exit 4), SystemError on a failed call.
TrainResult run_training(const Config& config, const Comm& comm);


}  // namespace mpitrain

// The training loop: every step, each rank takes its shard of one global
// batch, computes local gradients, the gradients are all-reduced, and every
// rank applies the same learning-rate-scaled update. After each epoch: exact
// evaluation, one log line, one metrics line.
#pragma once
#include "mpitrain/comm.hpp"
#include "mpitrain/config.hpp"

namespace mpitrain {

struct TrainResult {
  long long epochs_done = 0;
  long long steps = 0;
  long long samples = 0;
  double train_loss = 0.0, train_acc = 0.0;
  double eval_loss = 0.0, eval_acc = 0.0;
  double time_s = 0.0;
  std::vector<float> params;  // final parameters (for tests)
};

// Collective. Throws ReportedError (all ranks) on bad input or divergence,
// SystemError on a failed call.
TrainResult run_training(const Config& config, const Comm& comm);

// Entry point for `mpitrain train`; returns the exit code.
int train_command(const std::vector<std::string>& args);

}  // namespace mpitrain

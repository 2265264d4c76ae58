// Rank 0's voice on stdout: on a terminal, one live progress line rewritten
// in place (at most ~10 times a second); in a batch log (not a TTY), a plain
// line every `interval_s` seconds instead, so logs stay readable; and the
// permanent lines: one per epoch and the closing summary.
#pragma once
#include <optional>
#include <string>

#include "mpitrain/train/run_log.hpp"
#include "mpitrain/train/trainer.hpp"

namespace mpitrain {

struct ProgressState {
  long long epoch = 0, epochs = 0;  // 1-based epoch
  long long step = 0, steps = 0;    // steps done in this epoch
  double loss = 0.0;                // running mean training loss of the epoch
  double samples_per_s = 0.0;
  double eta_s = 0.0;               // remaining time of the whole run
};

class Progress {
 public:
  // enabled: this rank speaks (rank 0). updates: show step progress at all.
  Progress(bool enabled, bool updates, bool tty, double interval_s);
  void update(const ProgressState& s);
  // Prints a permanent line (clearing the live line first on a TTY).
  void println(const std::string& line);

 private:
  bool enabled_, updates_, tty_;
  double interval_s_;
  double last_print_s_;
  bool live_line_ = false;
};

// The epoch's permanent line, e.g. "epoch 3/15  train loss 0.3520 acc 0.8726
// test loss 0.4014 acc 0.8550  lr 0.0125  B 256  0.5s  111198 samples/s  B_noise 539".
// classes: print accuracies; b_noise: none before the noise scale has an
// estimate; target_reached: the --target text when it was reached now.
std::string format_epoch_line(const EpochRecord& r, long long epochs, bool classes, std::optional<double> b_noise,
                              const std::optional<std::string>& target_reached);

// The closing lines (rank 0): "done: ..." and the target's outcome.
void print_run_summary(const TrainResult& r, bool show_acc, const std::optional<Target>& target);

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"

// True when our stdout is a terminal a person watches. Open MPI gives rank
// processes a pseudo-terminal for stdout even when mpirun's own output goes
// to a log file, so a local launcher's stdout (our parent process) is checked
// too: a batch log then gets plain lines, not carriage-return redraws.
bool stdout_is_terminal();

}  // namespace mpitrain

// When to stop, and what to record: a target on an epoch metric
// (steps-to-result, Shallue et al. 2018, arXiv:1811.03600) and early stopping
// on a metric that has stopped improving. Metrics are named as in the metrics
// file: train_loss, train_acc, val_loss, val_acc, test_loss, test_acc.
#pragma once
#include <map>
#include <string>

namespace mpitrain {

// UserError unless `name` is one of the six metric names.
void check_metric_name(const std::string& name, const std::string& option);
// Losses improve downwards, accuracies upwards.
bool lower_is_better(const std::string& metric);

struct Target {
  std::string metric;     // e.g. "val_acc"
  std::string op;         // ">=", ">", "<=", "<"
  double value = 0.0;
  std::string text;       // as given
  bool reached(double v) const;
};
// Parses "val_acc>=0.88"; UserError naming --target on bad text.
Target parse_target(const std::string& text);

// Tracks the best value of one metric over epochs.
class EarlyStopping {
 public:
  EarlyStopping(std::string metric, long long patience, double min_delta);
  // Records the value after `epoch` (1-based); returns true when the run
  // should stop (no improvement for `patience` epochs). Patience 0 never stops.
  bool update(long long epoch, double value);
  // Continues from a checkpoint's bookkeeping.
  void restore(long long best_epoch, double best_value) { best_epoch_ = best_epoch; best_ = best_value; }
  const std::string& metric() const { return metric_; }
  long long best_epoch() const { return best_epoch_; }
  double best_value() const { return best_; }

 private:
  std::string metric_;
  long long patience_;
  double min_delta_;
  long long best_epoch_ = 0;
  double best_ = 0.0;
};

// The epoch's metric values by name (absent when not measured).
using EpochMetrics = std::map<std::string, double>;

}  // namespace mpitrain

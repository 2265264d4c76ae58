// Who changes the global batch during training, and when: --global-batch
// auto (every --goodput-every steps, the batch of most goodput, goodput.hpp)
// or --batch-changes (a given list, e.g. an auto run's own, replayed). A
// change after step s takes effect from step s + 1, also mid-epoch: the
// epoch's order continues where it stands (BatchSource::change_batch), so the
// rows of a step depend on (seed, epoch, the batches so far), never on P.
//
// Auto: rank 0 measures its steps (the all-reduce makes every rank's step
// as long as the slowest's), fits the step time, chooses, and broadcasts the
// batch, so every rank changes at the same step. The choice depends on
// timings, so it is not reproducible; its record is: the run's summary gives
// the changes as --batch-changes text, and a replay of them is the same
// training, bitwise with --deterministic on any P.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/train/goodput.hpp"
#include "mpitrain/train/options.hpp"

namespace mpitrain {

struct BatchDecision {
  long long from = 0, to = 0;
  long long at_step = 0;                 // optimizer steps done when it takes effect
  std::optional<GoodputChoice> choice;   // auto, on rank 0: what it predicted
  std::optional<StepTimeModel::Fit> fit; // auto, on rank 0: the step-time fit it used
};

class BatchController {
 public:
  // `changes`: --batch-changes; `candidates`: --global-batch auto's (one of the two is empty).
  BatchController(const BatchAdaptOptions& o, std::vector<BatchChange> changes, std::vector<long long> candidates,
                  int ranks, long long unit_rows, double ref_batch);
  bool active() const { return automatic_ || !changes_.empty(); }
  bool automatic() const { return automatic_; }

  // Step `step` (global, 1-based) on this rank: rows it computed, the step's
  // wall time and the exposed all-reduce.
  void record_step(long long step, long long rows, double step_s, double comm_s);
  // After `steps_done` optimizer steps at batch `current`: a change for the
  // next step, if any. Collective in auto mode (every rank calls it after
  // every step); trace_s and g2 are the noise scale's estimates.
  std::optional<BatchDecision> after_step(long long steps_done, long long current, double trace_s, double g2,
                                          const Comm& comm);

  // The changes made in this run (restored ones first), as --batch-changes text.
  void restore(const std::string& changes_text);
  std::string changes_text() const { return batch_changes_text(made_); }
  long long change_count() const { return static_cast<long long>(made_.size()); }

 private:
  bool automatic_;
  long long every_;
  std::vector<BatchChange> changes_;
  std::vector<long long> candidates_;
  int ranks_;
  long long unit_rows_;
  double ref_batch_;
  double noise_factor_;
  StepTimeModel times_;
  // Steps not timed: the first of the run and after a change (caches and the read-ahead restart).
  static constexpr int kSettleSteps = 3;
  int skip_ = kSettleSteps;
  std::vector<BatchChange> made_;
};

}  // namespace mpitrain

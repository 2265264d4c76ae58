#include "mpitrain/train/batch_controller.hpp"

#include <algorithm>
#include <cmath>


namespace mpitrain {

BatchController::BatchController(const BatchAdaptOptions& o, std::vector<BatchChange> changes,
                                 std::vector<long long> candidates, int ranks, long long unit_rows, double ref_batch)
    : automatic_(o.automatic),
      every_(o.every_steps),
      changes_(std::move(changes)),
      candidates_(std::move(candidates)),
      ranks_(ranks),
      unit_rows_(unit_rows),
      ref_batch_(ref_batch),
      noise_factor_(o.noise_factor),
      times_(10 * o.every_steps) {}

void BatchController::record_step(long long step, long long rows, double step_s, double comm_s) {
  if (!automatic_) return;
  if (skip_ > 0) {
    --skip_;
    return;
  }
  times_.add(rows, std::max(0.0, step_s - comm_s), comm_s, step);
}

std::optional<BatchDecision> BatchController::after_step(long long steps_done, long long current, double trace_s,
                                                         double g2, const Comm& comm) {
  BatchDecision d;
  d.from = current;
  d.at_step = steps_done;
  if (!automatic_) {
    const auto it = std::find_if(changes_.begin(), changes_.end(),
                                 [&](const BatchChange& c) { return c.at_step == steps_done; });
    if (it == changes_.end() || it->global_batch == current) return std::nullopt;
    d.to = it->global_batch;
  } else {
    if (steps_done % every_ != 0) return std::nullopt;
    long long next = current;
    // No choice before a step was timed and the noise scale has a usable
    // estimate: early, |G|^2 or tr(S) can come out <= 0, which the gain would
    // read as pure noise (or none) and send B to an end of the range.
    if (comm.rank() == 0 && times_.steps() > 0 && std::isfinite(trace_s) && std::isfinite(g2) && trace_s > 0 &&
        g2 > 0) {
      const StepTimeModel::Fit fit = times_.fit(steps_done);
      const GoodputChoice c =
          choose_batch(fit, {candidates_, current, ranks_, unit_rows_, noise_factor_ * trace_s, g2, ref_batch_, 1.05});
      next = c.batch;
      d.choice = c;
      d.fit = fit;
    }
    comm.broadcast(&next, sizeof next, 0);  // rank 0 decides: every rank changes at this step
    if (next == current) return std::nullopt;
    d.to = next;
  }
  made_.push_back({d.at_step, d.to});
  skip_ = kSettleSteps;
  return d;
}

void BatchController::restore(const std::string& changes_text) {
  if (!changes_text.empty()) made_ = parse_batch_changes(changes_text);
}

}  // namespace mpitrain

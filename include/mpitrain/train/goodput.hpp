// --global-batch auto: the global batch that maximises goodput (Qiao et al.,
// "Pollux: Co-adaptive Cluster Scheduling for Goodput-Optimized Deep
// Learning", OSDI 2021; AdaptDL's goodput.py), chosen during training.
//
//   goodput(B) = throughput(B) x efficiency(B)
//   throughput(B) = B / T(B)                      samples per second
//   efficiency(B) = r(B) / (B / ref)              progress per sample, relative to --ref-batch
//
// with r(B) AdaScale's gain (optim/adascale.hpp) from the online noise
// scale's tr(Sigma) and |G|^2: a sample of a batch B counts r(B) ref / B
// samples of the reference run. So goodput(B) = ref x r(B) / T(B): the
// scale-invariant iterations per second, which AdaScale then turns into
// the run's progress. Efficiency falls from 1 towards ref / B as B passes the
// noise scale; throughput rises with B while the step's fixed costs (the
// all-reduce, per-step overheads) are amortised.
//
// The step time is this run's own measurement, fitted as the performance
// model does (scripts/perf_model.py) and as AdaptDL's compute term is:
//   T(B) = alpha + beta x rows_per_rank(B) + comm
// where alpha + beta x rows is the compute side of a step (reading rows,
// forward, backward, update; linear in the rows each rank computes) and comm
// the exposed all-reduce (the same for every B: it moves the parameters).
// With one rows-per-rank measured so far, alpha is half the measured compute
// time (AdaptDL's prior: optimistic about larger batches, so the run tries
// one and then knows). Each rows-per-rank counts by the median of its last
// 32 steps, and a batch left for `horizon` steps is forgotten: a machine's
// speed drifts (cold caches and reads at the start, other jobs), and stale
// times of a batch the run left would otherwise decide for ever. Candidates are 50 batches spaced geometrically over
// --batch-range, as AdaptDL samples them; the run moves only when the best
// predicts more than `hysteresis` (5%) times the current B's goodput.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace mpitrain {

struct BatchRange {
  long long min = 0, max = 0;
};
// "MIN:MAX" with 1 <= MIN <= MAX; UserError naming --batch-range otherwise.
BatchRange parse_batch_range(const std::string& text);
// Up to `count` distinct batches spaced geometrically from min to max, both included, ascending.
std::vector<long long> batch_candidates(const BatchRange& range, int count = 50);

// r(B) / (B / ref): in (0, 1] above ref; 1 when the gradient is all noise,
// ref / B when it has none (or there is no estimate yet: gain 1).
double statistical_efficiency(double trace_s, double g2, double global_batch, double ref_batch);

// The measured step times and their fit.
class StepTimeModel {
 public:
  explicit StepTimeModel(long long horizon_steps = 0) : horizon_(horizon_steps) {}
  // Step number `step` (any increasing count): rows the slowest rank
  // computed, its compute side and exposed all-reduce, in seconds.
  void add(long long rows_per_rank, double compute_s, double comm_s, long long step = 0);
  long long steps() const { return steps_; }
  struct Fit {
    double alpha = 0, beta = 0, comm = 0;
    double predict(long long rows_per_rank) const { return alpha + beta * static_cast<double>(rows_per_rank) + comm; }
  };
  // Least squares of the median compute time per rows-per-rank (weighted by
  // their steps) with alpha, beta >= 0; comm is the weighted mean of the
  // medians. Rows last seen more than the horizon before `now` are left out
  // (horizon 0: none is).
  Fit fit(long long now = 0) const;

 private:
  static constexpr size_t kWindow = 32;
  struct Recent {
    std::vector<double> compute, comm;  // the last kWindow steps, as a ring
    size_t next = 0;
    long long last_step = 0;
  };
  long long horizon_;
  std::map<long long, Recent> by_rows_;
  long long steps_ = 0;
};

struct GoodputChoice {
  long long batch = 0;               // the batch to run next (the current one unless a move pays)
  bool change = false;
  double goodput = 0;                // predicted scale-invariant iterations per second at `batch`
  double current_goodput = 0;        // the same at the current batch
  double best_goodput = 0;           // at the best candidate (may be within the hysteresis)
  long long best_batch = 0;
  double step_s = 0, efficiency = 0; // predicted at `batch`
};

struct GoodputInputs {
  std::vector<long long> candidates;
  long long current = 0;
  int ranks = 1;
  long long unit_rows = 0;           // --deterministic units (rows per rank are whole units)
  double trace_s = 0, g2 = 0, ref_batch = 1;
  double hysteresis = 1.05;
};
GoodputChoice choose_batch(const StepTimeModel::Fit& fit, const GoodputInputs& in);

// Changes of the global batch at given global steps, "STEP:B,STEP:B"
// (--batch-changes, and what an auto run reports): after STEP optimizer
// steps the batch is B. Steps > 0 and increasing, B >= 1; UserError naming
// --batch-changes otherwise.
struct BatchChange {
  long long at_step = 0;
  long long global_batch = 0;
};
std::vector<BatchChange> parse_batch_changes(const std::string& text);
std::string batch_changes_text(const std::vector<BatchChange>& changes);

}  // namespace mpitrain

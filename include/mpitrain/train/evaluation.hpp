// Exact evaluation of a whole split: the split's rows are divided among ranks
// with the same balanced rule as a batch, every row is counted once, and the
// sums are all-reduced (no padding, no sample dropped). RunEvaluation is what
// a training run evaluates: its validation and test splits, with their
// readers and buffers opened once before the first step. With
// --deterministic units the split is divided by whole units and the sums
// are exact (comm/exact_sum.hpp), so the result is bitwise the same on any
// number of ranks.
#pragma once
#include <optional>
#include <span>
#include <string>

#include <vector>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/comm/exact_sum.hpp"
#include "mpitrain/data/dataset.hpp"
#include "mpitrain/nn/model.hpp"
#include "mpitrain/train/forward_loss.hpp"
#include "mpitrain/train/stopping.hpp"  // EpochMetrics

namespace mpitrain {

struct EvalResult {
  double loss = 0.0;      // mean over the split
  double accuracy = 0.0;  // NaN for regression
  long long rows = 0;
};

// --deterministic evaluation: units of unit_rows rows (the model's chunks
// hold whole units) and the exact sum of their loss and correct counts.
struct UnitEvaluation {
  int unit_rows = 0;
  std::vector<double> partials;  // (units on this rank, 2); grows once if too small
  ExactUnitSum sum{2};
};

// Collective over comm. `rows` lists the rows of the split to evaluate
// (sorted; e.g. a held-out validation set); empty means all of them.
EvalResult evaluate_split(Model& model, SplitReader& reader, int num_classes, const Comm& comm,
                          TargetBuffers& buffers, std::span<const std::int64_t> rows = {},
                          UnitEvaluation* units = nullptr);

class RunEvaluation {
 public:
  // val_split: "" (none), "val" (/val), or "train" (val_rows held out of
  // /train; the span must outlive this object); test: evaluate /test.
  // unit_rows > 0: --deterministic.
  RunEvaluation(const DatasetFile& data, const std::string& val_split, std::span<const std::int64_t> val_rows,
                bool test, int capacity_rows, int unit_rows, const Comm& comm);
  bool has_val() const { return val_.has_value(); }
  bool has_test() const { return test_.has_value(); }
  bool any() const { return has_val() || has_test(); }
  // Collective: adds val_loss/val_acc and test_loss/test_acc to `m` for the
  // splits there are. No other HDF5 read may be in flight.
  void run(Model& model, int num_classes, const Comm& comm, EpochMetrics& m);

 private:
  std::optional<SplitReader> val_, test_;
  std::span<const std::int64_t> val_rows_;
  TargetBuffers targets_;
  UnitEvaluation units_;
};

}  // namespace mpitrain

// Exact evaluation of a whole split: the split's rows are divided among ranks
// with the same balanced rule as a batch, every row is counted once, and the
// sums are all-reduced (no padding, no sample dropped).
#pragma once
#include <span>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/data/dataset.hpp"
#include "mpitrain/nn/model.hpp"
#include "mpitrain/train/forward_loss.hpp"

namespace mpitrain {

struct EvalResult {
  double loss = 0.0;      // mean over the split
  double accuracy = 0.0;  // NaN for regression
  long long rows = 0;
};

// Collective over comm. `rows` lists the rows of the split to evaluate
// (sorted; e.g. a held-out validation set); empty means all of them.
EvalResult evaluate_split(Model& model, SplitReader& reader, int num_classes, const Comm& comm,
                          TargetBuffers& buffers, std::span<const std::int64_t> rows = {});

}  // namespace mpitrain

// The loss applied to the model's output (shared by training and
// evaluation), and exact evaluation of a whole split: the split's rows are
// divided among ranks with the same balanced rule as a batch, every row is
// counted once, and the sums are all-reduced (no padding, no sample dropped).
#pragma once
#include <span>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/data/dataset.hpp"
#include "mpitrain/nn/loss.hpp"
#include "mpitrain/nn/model.hpp"

namespace mpitrain {

// Per-shard label/target buffers, sized once for the model's capacity.
struct TargetBuffers {
  TargetBuffers(int capacity_rows, int target_width);
  std::vector<int> labels;      // (capacity) class ids
  AlignedBuffer<float> targets;  // (capacity, target_width) regression targets
};

// Runs forward over `rows` rows of model.input() and applies the loss
// (softmax cross-entropy when num_classes > 0, else MSE), writing the output
// gradient scaled by grad_scale into model.output_grad().
LossSums forward_loss(Model& model, int num_classes, int rows, const TargetBuffers& t, float grad_scale);
// The same on caller buffers: x (R, W_0), labels (R) or targets (R, k).
LossSums forward_loss(Model& model, int num_classes, int rows, const float* x, const int* labels, const float* targets,
                      float grad_scale);

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

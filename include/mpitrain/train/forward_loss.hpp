// Forward and loss of one chunk of rows, shared by the training step and
// evaluation: the model's output, the loss summed over the rows (softmax
// cross-entropy for classes, MSE for regression targets) and the output
// gradient, with the label/target buffers a chunk needs.
#pragma once
#include <vector>

#include "mpitrain/core/tensor.hpp"
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

// --deterministic (nn/pass.hpp units): the same over a chunk of whole
// units, writing each unit's loss and correct count to out[k * stride] and
// out[k * stride + 1] for the chunk's k-th unit. Returns the chunk's units.
int forward_loss_units(Model& model, int num_classes, int rows, const float* x, const int* labels,
                       const float* targets, float grad_scale, double* out, int stride);

}  // namespace mpitrain

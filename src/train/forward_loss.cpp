#include "mpitrain/train/forward_loss.hpp"

namespace mpitrain {

TargetBuffers::TargetBuffers(int capacity_rows, int target_width)
    : labels(static_cast<size_t>(capacity_rows)),
      targets(static_cast<size_t>(capacity_rows) * static_cast<size_t>(target_width)) {}

LossSums forward_loss(Model& model, int num_classes, int rows, const TargetBuffers& t, float grad_scale) {
  return forward_loss(model, num_classes, rows, nullptr, t.labels.data(), t.targets.data(), grad_scale);
}

LossSums forward_loss(Model& model, int num_classes, int rows, const float* x, const int* labels, const float* targets,
                      float grad_scale) {
  // No rows, no work, unless a layer sums over the global batch: then this
  // rank still takes part in its all-reduces.
  if (rows == 0 && !model.uses_batch_statistics()) return {};
  const float* out = model.forward(rows, x);
  if (num_classes > 0) return softmax_cross_entropy(out, labels, rows, num_classes, model.output_grad(), grad_scale);
  return mean_squared_error(out, targets, rows, static_cast<int>(model.output_width()), model.output_grad(), grad_scale);
}

}  // namespace mpitrain

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

int forward_loss_units(Model& model, int num_classes, int rows, const float* x, const int* labels,
                       const float* targets, float grad_scale, double* out, int stride) {
  if (rows == 0 && !model.uses_batch_statistics()) return 0;
  const float* y = model.forward(rows, x);
  float* dy = model.output_grad();
  const long long w = model.output_width();
  int k = 0;
  model.pass().for_units(rows, [&](int r0, int n, long long) {
    const long long o = r0 * w;
    const LossSums s = num_classes > 0
                           ? softmax_cross_entropy(y + o, labels + r0, n, num_classes, dy + o, grad_scale)
                           : mean_squared_error(y + o, targets + o, n, static_cast<int>(w), dy + o, grad_scale);
    out[static_cast<long long>(k) * stride] = s.loss;
    out[static_cast<long long>(k) * stride + 1] = s.correct;
    ++k;
  });
  return k;
}

}  // namespace mpitrain

// Losses. Each returns the SUM over the local rows (not the mean) and writes
// the gradient already multiplied by grad_scale; the trainer passes
// grad_scale = 1 / global batch, so the all-reduced gradient is the mean over
// the global batch whatever the rank count (DESIGN.md).
// Dimension key: R rows, K classes or target width.
#pragma once

namespace mpitrain {

struct LossSums {
  double loss = 0.0;     // summed over rows
  double correct = 0.0;  // rows whose argmax is the label (classification)
};

// Softmax + cross-entropy, fused and numerically stable (max subtracted).
// logits (R, K), labels (R) in [0, K); dlogits (R, K) = (softmax - onehot) * grad_scale.
// dlogits may alias logits.
LossSums softmax_cross_entropy(const float* logits, const int* labels, int rows, int classes,
                               float* dlogits, float grad_scale);

// Per-row loss = mean over K of (y - t)^2. y, t, dy (R, K); dy may alias y.
LossSums mean_squared_error(const float* y, const float* targets, int rows, int width, float* dy,
                            float grad_scale);

}  // namespace mpitrain

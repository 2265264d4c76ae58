// Optimizers run on the flat arena (every rank applies the same update to the
// same all-reduced gradient, so no broadcast is needed after start-up). State
// lives in arena-shaped buffers so checkpoints stay simple.
#pragma once
#include "mpitrain/arena.hpp"
#include "mpitrain/tensor.hpp"

namespace mpitrain {

struct SgdOptions {
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 0.0;  // L2 penalty added to the gradient
};

// SGD with (optionally Nesterov) momentum in the form PyTorch uses:
//   g = grad + wd * w;  v = m * v + g;  w -= lr * (nesterov ? g + m * v : v)
class Sgd {
 public:
  Sgd(long long count, SgdOptions options);
  void step(float* params, const float* grads, double lr);
  const SgdOptions& options() const { return options_; }
  float* velocity() { return velocity_.data(); }

 private:
  SgdOptions options_;
  long long count_;
  AlignedBuffer<float> velocity_;  // (count) zero at start
};

}  // namespace mpitrain

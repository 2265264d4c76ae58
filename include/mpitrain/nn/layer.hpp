// The layer interface of a sequential model. Dimension key: R = rows of the
// current shard (or micro-batch), I = input width, O = output width.
// Every layer has forward (x -> y) and backward (dy -> dx, and the parameter
// gradient accumulated into the arena), llm.c / mlpack style. Buffers are
// owned by the model and sized once; layers never allocate per step.
#pragma once
#include <string>

#include "mpitrain/core/arena.hpp"
#include "mpitrain/core/rng.hpp"

namespace mpitrain {

class Layer {
 public:
  virtual ~Layer() = default;
  virtual std::string name() const = 0;
  virtual int in_width() const = 0;
  virtual int out_width() const = 0;
  // Registers parameters in the arena (before Arena::allocate).
  virtual void register_params(Arena&) {}
  // Binds the layer to the allocated arena.
  virtual void bind(Arena&) {}
  virtual void init(Rng&) {}
  // x (R, I) -> y (R, O)
  virtual void forward(const float* x, float* y, int rows) const = 0;
  // Given x (R, I), y (R, O) from forward and dy (R, O): writes dx (R, I)
  // unless dx is null, and adds parameter gradients into the arena.
  // dy is scratch: a layer may overwrite it (a fused Dense turns it into the
  // pre-activation gradient in place, so no extra buffer is needed); callers
  // must not read it afterwards. dy and dx must not alias each other, x or y.
  void backward(const float* x, const float* y, float* dy, float* dx, int rows) {
    backward_params(x, y, dy, rows);
    if (dx) backward_input(x, y, dy, dx, rows);
  }
  // Backward in two halves (mlpack's "gradient" and "backward"): the
  // parameter gradients first (turning dy into the pre-activation gradient
  // where an activation is fused), then the input gradient from that dy. The
  // model hands a layer's finished gradients to the all-reduce in between,
  // so they travel while the input gradient is computed.
  virtual void backward_params(const float* /*x*/, const float* /*y*/, float* /*dy*/, int /*rows*/) {}
  virtual void backward_input(const float* x, const float* y, const float* dy, float* dx, int rows) = 0;
  // Multiply-adds x2 per sample of forward (backward is about twice this).
  virtual double forward_flops_per_sample() const { return 0.0; }
};

}  // namespace mpitrain

// Layers of a sequential model. Dimension key: R = rows of the current shard
// (or micro-batch), I = input width, O = output width.
// Every layer has forward (x -> y) and backward (dy -> dx, and the parameter
// gradient accumulated into the arena), llm.c / mlpack style. Buffers are
// owned by the model and sized once; layers never allocate per step.
// ReLU and tanh are fused into the Dense layer before them (their derivative
// is a function of the output, so no pre-activation buffer is kept); GELU
// needs the pre-activation and stays a separate ActivationLayer.
#pragma once
#include <memory>
#include <string>

#include "mpitrain/arena.hpp"
#include "mpitrain/rng.hpp"

namespace mpitrain {

enum class Activation { kRelu, kTanh, kGelu };
Activation parse_activation(const std::string& name);  // UserError if unknown
const char* activation_name(Activation a);

// Activation a Dense layer applies in place to its own output.
enum class FusedActivation { kNone, kRelu, kTanh };

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

// y = act(x W + b) with W (I, O) row-major, b (O) and act the fused
// activation (identity for kNone), applied in place on y. Parameters are
// "<name>/W" and "<name>/b" (checkpoints depend on these names).
class Dense final : public Layer {
 public:
  enum class Init { kHe, kGlorot };
  Dense(std::string name, int in, int out, Init init, FusedActivation act = FusedActivation::kNone);
  // "dense0", or "dense0+relu" with a fused activation.
  std::string name() const override;
  FusedActivation fused_activation() const { return act_; }
  int in_width() const override { return in_; }
  int out_width() const override { return out_; }
  void register_params(Arena& arena) override;
  void bind(Arena& arena) override;
  void init(Rng& rng) override;
  void forward(const float* x, float* y, int rows) const override;
  // Overwrites dy with the pre-activation gradient when an activation is fused.
  void backward_params(const float* x, const float* y, float* dy, int rows) override;
  void backward_input(const float* x, const float* y, const float* dy, float* dx, int rows) override;
  double forward_flops_per_sample() const override { return 2.0 * in_ * out_; }

 private:
  std::string name_;  // parameter prefix, "dense<i>"
  int in_, out_;
  Init init_;
  FusedActivation act_;
  long long w_offset_ = 0, b_offset_ = 0;
  float *w_ = nullptr, *b_ = nullptr, *dw_ = nullptr, *db_ = nullptr;
};

// Elementwise activation; width unchanged.
class ActivationLayer final : public Layer {
 public:
  ActivationLayer(Activation kind, int width) : kind_(kind), width_(width) {}
  std::string name() const override { return activation_name(kind_); }
  int in_width() const override { return width_; }
  int out_width() const override { return width_; }
  void forward(const float* x, float* y, int rows) const override;
  void backward_input(const float* x, const float* y, const float* dy, float* dx, int rows) override;

 private:
  Activation kind_;
  int width_;
};

}  // namespace mpitrain

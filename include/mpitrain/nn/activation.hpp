// Elementwise activations. ReLU and tanh are fused into the Dense layer
// before them (their derivative is a function of the output, so no
// pre-activation buffer is kept); GELU needs the pre-activation and stays a
// separate ActivationLayer.
#pragma once
#include <string>

#include "mpitrain/nn/layer.hpp"

namespace mpitrain {

enum class Activation { kRelu, kTanh, kGelu };
Activation parse_activation(const std::string& name);  // UserError if unknown
const char* activation_name(Activation a);

// Activation a Dense layer applies in place to its own output.
enum class FusedActivation { kNone, kRelu, kTanh };

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

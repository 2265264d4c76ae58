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

// Elementwise activation; shape unchanged.
class ActivationLayer final : public Layer {
 public:
  ActivationLayer(Activation kind, Shape shape) : Layer(shape, shape), kind_(kind), width_(shape.size()) {}
  ActivationLayer(Activation kind, int width) : ActivationLayer(kind, Shape{width, 1, 1}) {}
  std::string name() const override { return activation_name(kind_); }
  std::string kind() const override { return "activation"; }
  void forward(const float* x, float* y, int rows) override;
  void backward_input(const float* x, const float* y, const float* dy, float* dx, int rows) override;

 private:
  Activation kind_;
  long long width_;
};

}  // namespace mpitrain

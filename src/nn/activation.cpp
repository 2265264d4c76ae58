#include "mpitrain/nn/activation.hpp"

#include <cmath>

#include "mpitrain/core/errors.hpp"

namespace mpitrain {

Activation parse_activation(const std::string& name) {
  if (name == "relu") return Activation::kRelu;
  if (name == "tanh") return Activation::kTanh;
  if (name == "gelu") return Activation::kGelu;
  throw UserError("unknown --activation '" + name + "': use relu, tanh or gelu");
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::kRelu: return "relu";
    case Activation::kTanh: return "tanh";
    case Activation::kGelu: return "gelu";
  }
  return "?";
}

namespace {
// GELU, tanh approximation (Hendrycks & Gimpel 2016).
constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kGeluA = 0.044715f;
}  // namespace

void ActivationLayer::forward(const float* x, float* y, int rows) {
  const long long n = static_cast<long long>(rows) * width_;
  switch (kind_) {
    case Activation::kRelu:
      for (long long i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
      break;
    case Activation::kTanh:
      for (long long i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
      break;
    case Activation::kGelu:
      for (long long i = 0; i < n; ++i) {
        const float v = x[i];
        y[i] = 0.5f * v * (1.0f + std::tanh(kGeluC * (v + kGeluA * v * v * v)));
      }
      break;
  }
}

void ActivationLayer::backward_input(const float* x, const float* y, const float* dy, float* dx, int rows) {
  if (!dx) return;
  const long long n = static_cast<long long>(rows) * width_;
  switch (kind_) {
    case Activation::kRelu:
      for (long long i = 0; i < n; ++i) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
      break;
    case Activation::kTanh:
      for (long long i = 0; i < n; ++i) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
      break;
    case Activation::kGelu:
      for (long long i = 0; i < n; ++i) {
        const float v = x[i];
        const float t = std::tanh(kGeluC * (v + kGeluA * v * v * v));
        const float dt = (1.0f - t * t) * kGeluC * (1.0f + 3.0f * kGeluA * v * v);
        dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * dt);
      }
      break;
  }
}

}  // namespace mpitrain

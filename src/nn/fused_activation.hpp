// Private to src/nn/: the activation a Dense or Conv2D layer applies in place
// to its own output (ReLU, tanh: their derivative is a function of the
// output, so no pre-activation buffer is kept), and its backward fused with
// the bias gradient. Both layers compute y (N, O) = x' W + b over N output
// rows (samples, or samples x output pixels), so they share this code.
#pragma once
#include <cmath>

#include "mpitrain/nn/activation.hpp"

namespace mpitrain::nn_detail {

// y (n floats) <- act(y) in place.
inline void apply_fused(FusedActivation act, float* y, long long n) {
  switch (act) {
    case FusedActivation::kNone:
      break;
    case FusedActivation::kRelu:
      for (long long i = 0; i < n; ++i) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
      break;
    case FusedActivation::kTanh:
      for (long long i = 0; i < n; ++i) y[i] = std::tanh(y[i]);
      break;
  }
}

// One pass over dy (N, O): dy <- dy * act'(y) in place, and db (O) += column
// sums of the result. The summation order over rows is the same as a separate
// activation backward followed by a column-sum pass, so results are bitwise
// identical to the unfused layers.
template <typename Derivative>
void grad_and_bias_sum(float* dy, const float* y, float* __restrict db, long long rows, int out, Derivative deriv) {
  for (long long r = 0; r < rows; ++r) {
    float* __restrict dyr = dy + r * out;
    const float* __restrict yr = y + r * out;
    for (int j = 0; j < out; ++j) {
      const float g = deriv(dyr[j], yr[j]);
      dyr[j] = g;
      db[j] += g;
    }
  }
}

inline void fused_backward(FusedActivation act, float* dy, const float* y, float* db, long long rows, int out) {
  switch (act) {
    case FusedActivation::kNone:
      for (long long r = 0; r < rows; ++r) {
        const float* dyr = dy + r * out;
        for (int j = 0; j < out; ++j) db[j] += dyr[j];
      }
      break;
    case FusedActivation::kRelu:
      grad_and_bias_sum(dy, y, db, rows, out, [](float g, float v) { return v > 0.0f ? g : 0.0f; });
      break;
    case FusedActivation::kTanh:
      grad_and_bias_sum(dy, y, db, rows, out, [](float g, float v) { return g * (1.0f - v * v); });
      break;
  }
}

inline const char* fused_suffix(FusedActivation act) {
  switch (act) {
    case FusedActivation::kNone: return "";
    case FusedActivation::kRelu: return "+relu";
    case FusedActivation::kTanh: return "+tanh";
  }
  return "";
}

}  // namespace mpitrain::nn_detail

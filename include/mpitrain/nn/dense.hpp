// The fully connected layer: one sgemm over all rows of the shard.
#pragma once
#include <string>

#include "mpitrain/nn/activation.hpp"
#include "mpitrain/nn/layer.hpp"

namespace mpitrain {

// y = act(x W + b) with W (I, O) row-major, b (O) and act the fused
// activation (identity for kNone), applied in place on y. A map input
// (CxHxW) is read as its I = C*H*W floats in storage order (channels
// innermost), so no flatten layer is needed before it. Parameters are
// "<name>/W" and "<name>/b" (checkpoints depend on these names).
class Dense final : public Layer {
 public:
  enum class Init { kHe, kGlorot };
  Dense(std::string name, Shape in, int out, Init init, FusedActivation act = FusedActivation::kNone);
  Dense(std::string name, int in, int out, Init init, FusedActivation act = FusedActivation::kNone)
      : Dense(std::move(name), Shape{in, 1, 1}, out, init, act) {}
  // "dense0", or "dense0+relu" with a fused activation.
  std::string kind() const override { return "dense"; }
  std::string name() const override;
  FusedActivation fused_activation() const { return act_; }
  void register_params(Arena& arena) override;
  void bind(Arena& arena) override;
  void init(Rng& rng) override;
  void forward(const float* x, float* y, int rows) override;
  // Overwrites dy with the pre-activation gradient when an activation is fused.
  void backward_params(const float* x, const float* y, float* dy, int rows) override;
  void backward_input(const float* x, const float* y, const float* dy, float* dx, int rows) override;
  double forward_flops_per_sample() const override { return 2.0 * static_cast<double>(in_) * out_; }
  std::vector<GemmShape> gemm_shapes(int rows, bool input_grad) const override;
  double param_count() const override { return static_cast<double>(in_) * out_ + out_; }

 private:
  std::string name_;  // parameter prefix, "dense<i>"
  int in_, out_;
  Init init_;
  FusedActivation act_;
  long long w_offset_ = 0, b_offset_ = 0;
  float *w_ = nullptr, *b_ = nullptr, *dw_ = nullptr, *db_ = nullptr;
};

}  // namespace mpitrain

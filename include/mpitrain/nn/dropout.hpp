// Inverted dropout (Srivastava et al. 2014): in training each value is kept
// with probability 1 - p and scaled by 1/(1 - p); in evaluation the layer is
// the identity. The mask of value j of a row is a pure function of (seed,
// layer, step, the row's position in the global batch, j), drawn by a
// counter-based hash, so it is the same whichever rank or chunk holds the
// row (rank-count invariance) and backward recomputes it instead of storing it.
#pragma once
#include <cstdint>
#include <string>

#include "mpitrain/nn/layer.hpp"

namespace mpitrain {

class Dropout final : public Layer {
 public:
  // rate p in [0, 1); `salt` tells the model's dropout layers apart.
  Dropout(std::string name, Shape in, double rate, std::uint64_t salt);
  std::string kind() const override { return "dropout"; }
  std::string name() const override { return name_; }
  double rate() const { return rate_; }
  void forward(const float* x, float* y, int rows) override;
  void backward_input(const float* x, const float* y, const float* dy, float* dx, int rows) override;
  double forward_flops_per_sample() const override { return static_cast<double>(in_width()); }

 private:
  // y = x * mask / (1 - p), row by row (used by forward and backward alike).
  void apply_mask(const float* in, float* out, int rows) const;

  std::string name_;
  double rate_;
  std::uint64_t salt_;
};

}  // namespace mpitrain

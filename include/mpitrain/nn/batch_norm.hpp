// Batch normalization (Ioffe & Szegedy 2015) per channel (over rows, and
// over H x W for a map), with its batch statistics taken over the *global*
// batch: each rank sums its rows' x and x^2 per channel, the sums go through
// Pass::batch_sum (an all-reduce across ranks), and every rank normalizes
// with the same mean and variance; backward sums dy and dy * xhat the same
// way (synchronized batch norm). So the result does not depend on how the
// batch is split across ranks. Every rank must run forward and backward,
// also with no rows, and a shard must go through in one piece (a layer
// cannot see the global batch piecemeal): the trainer enforces both.
// With --deterministic units (nn/pass.hpp) each unit's sums are a row of
// partial sums, which BatchSum adds exactly, and gamma/beta gradients go to
// the unit sink per unit.
//
// Running mean and (unbiased) variance are updated with momentum 0.1 as in
// PyTorch and used in evaluation. They live in the arena as non-trainable
// tensors ("<name>/running_mean", "<name>/running_var"), so checkpoints,
// resume and evaluate carry them with the weights.
#pragma once
#include <string>
#include <vector>

#include "mpitrain/nn/layer.hpp"

namespace mpitrain {

class BatchNorm final : public Layer {
 public:
  static constexpr double kEps = 1e-5;
  static constexpr double kMomentum = 0.1;

  BatchNorm(std::string name, Shape in);
  std::string kind() const override { return "batchnorm"; }
  std::string name() const override { return name_; }
  bool uses_batch_statistics() const override { return true; }
  void register_params(Arena& arena) override;
  void bind(Arena& arena) override;
  void init(Rng& rng) override;
  void forward(const float* x, float* y, int rows) override;
  void backward_params(const float* x, const float* y, float* dy, int rows) override;
  void backward_input(const float* x, const float* y, const float* dy, float* dx, int rows) override;
  double forward_flops_per_sample() const override { return 4.0 * static_cast<double>(in_width()); }
  double param_count() const override { return 2.0 * in_shape().c; }
  // A row of 2C + 1 partial sums per unit (at most one unit per row).
  std::size_t scratch_bytes_per_row() const override { return (2 * static_cast<std::size_t>(c_) + 1) * sizeof(double); }
  std::size_t scratch_bytes_fixed() const override { return (2 * static_cast<std::size_t>(c_) + 1) * sizeof(double); }
  void bind_scratch(void* scratch, int) override { unit_sums_ = static_cast<double*>(scratch); }

 private:
  long long positions(int rows) const { return static_cast<long long>(rows) * in_shape().h * in_shape().w; }
  // Adds the `units` rows of `count` partial sums in unit_sums_ over the
  // global batch into sums_[0, count).
  void sum_over_batch(int count, int units);

  std::string name_;
  int c_;
  long long gamma_off_ = 0, beta_off_ = 0, mean_off_ = 0, var_off_ = 0;
  float *gamma_ = nullptr, *beta_ = nullptr, *dgamma_ = nullptr, *dbeta_ = nullptr;
  float *running_mean_ = nullptr, *running_var_ = nullptr;
  // Of the last training forward: the global batch's mean and 1/sqrt(var + eps)
  // per channel, and how many values (rows x H x W) each channel had.
  std::vector<double> mean_, invstd_;
  double count_ = 0;
  std::vector<double> sums_;  // 2C + 1: the global sums
  std::vector<double> one_unit_;  // 2C + 1: the partial sums of a layer used without the model's scratch (one unit)
  double* unit_sums_ = nullptr;  // scratch: per unit, 2C + 1 partial sums (what goes through Pass::batch_sum)
  int units_ = 0;               // units of the last backward_params
  std::vector<float> coef_a_, coef_b_, coef_c_;  // per-channel coefficients of the elementwise passes
};

}  // namespace mpitrain

#include "mpitrain/nn/conv2d.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "fused_activation.hpp"

namespace mpitrain {

Conv2D::Conv2D(std::string name, Shape in, int out_channels, const Conv2DGeometry& g, FusedActivation act)
    : Layer(in, Shape{out_channels, g.out_h, g.out_w}), name_(std::move(name)), out_c_(out_channels), g_(g), act_(act) {}

std::string Conv2D::name() const { return name_ + nn_detail::fused_suffix(act_); }

void Conv2D::register_params(Arena& arena) {
  w_offset_ = arena.add(name_ + "/W", {g_.kh, g_.kw, in_shape().c, out_c_});
  b_offset_ = arena.add(name_ + "/b", {out_c_}, kNoDecayParam);
}

void Conv2D::bind(Arena& arena) {
  w_ = arena.params() + w_offset_;
  b_ = arena.params() + b_offset_;
  dw_ = arena.grads() + w_offset_;
  db_ = arena.grads() + b_offset_;
}

void Conv2D::init(Rng& rng) {
  // He et al. 2015: normal with std sqrt(2 / fan_in), fan_in = KH*KW*C.
  const double std = std::sqrt(2.0 / static_cast<double>(patch()));
  const long long n = patch() * out_c_;
  for (long long i = 0; i < n; ++i) w_[i] = static_cast<float>(std * rng.normal());
  for (int j = 0; j < out_c_; ++j) b_[j] = 0.0f;
}

std::size_t Conv2D::scratch_bytes_per_row() const {
  return static_cast<std::size_t>(pixels() * patch()) * sizeof(float);
}

std::size_t Conv2D::scratch_bytes_fixed() const {
  return static_cast<std::size_t>(kInputGradRows * pixels() * patch()) * sizeof(float);
}

void Conv2D::bind_scratch(void* scratch, int capacity_rows) {
  cols_ = static_cast<float*>(scratch);
  dcols_ = cols_ + static_cast<long long>(capacity_rows) * pixels() * patch();
}

double Conv2D::forward_flops_per_sample() const {
  return 2.0 * static_cast<double>(pixels()) * static_cast<double>(patch()) * out_c_;
}

std::vector<GemmShape> Conv2D::gemm_shapes(int rows, bool input_grad) const {
  const long long n = rows * pixels();
  std::vector<GemmShape> g{{false, false, n, out_c_, patch()}, {true, false, patch(), out_c_, n}};
  if (input_grad)
    for (int r0 = 0; r0 < rows; r0 += kInputGradRows)
      g.push_back({false, true, std::min(kInputGradRows, rows - r0) * pixels(), patch(), out_c_});
  return g;
}

double Conv2D::param_count() const { return static_cast<double>(patch()) * out_c_ + out_c_; }

void Conv2D::forward(const float* x, float* y, int rows) {
  if (rows == 0) return;
  im2col(x, rows, in_shape(), g_, cols_);
  const long long n = rows * pixels();
  for (long long i = 0; i < n; ++i) {  // y = b broadcast (a loop: a library call per pixel costs more)
    float* __restrict yi = y + i * out_c_;
    for (int j = 0; j < out_c_; ++j) yi[j] = b_[j];
  }
  // One sgemm over the chunk, or one per unit (nn/pass.hpp).
  pass().for_units(rows, [&](int r0, int count, long long) {
    const long long p0 = static_cast<long long>(r0) * pixels();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(count * pixels()), out_c_,
                static_cast<int>(patch()), 1.0f, cols_ + p0 * patch(), static_cast<int>(patch()), w_, out_c_, 1.0f,
                y + p0 * out_c_, out_c_);
  });
  nn_detail::apply_fused(act_, y, n * out_c_);
}

void Conv2D::backward_params(const float*, const float* y, float* dy, int rows) {
  if (rows == 0) return;
  const bool per_unit = pass().per_unit_grads();
  pass().for_units(rows, [&](int r0, int count, long long unit) {
    // A unit's gradients go straight to the sink's buffer for it (the sgemm overwrites dW: beta 0).
    float* dw = per_unit ? pass().unit_sink->unit_grads(unit) + w_offset_ : dw_;
    float* db = per_unit ? pass().unit_sink->unit_grads(unit) + b_offset_ : db_;
    if (per_unit) std::fill(db, db + out_c_, 0.0f);
    const long long p0 = static_cast<long long>(r0) * pixels();
    const long long n = count * pixels();
    float* d = dy + p0 * out_c_;
    nn_detail::fused_backward(act_, d, y + p0 * out_c_, db, n, out_c_);
    // dW (K, O) += cols^T (K, N) . dy (N, O)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(patch()), out_c_, static_cast<int>(n), 1.0f,
                cols_ + p0 * patch(), static_cast<int>(patch()), d, out_c_, per_unit ? 0.0f : 1.0f, dw, out_c_);
    if (per_unit) {
      pass().unit_sink->add(unit, w_offset_, patch() * out_c_);
      pass().unit_sink->add(unit, b_offset_, out_c_);
    }
  });
}

void Conv2D::backward_input(const float*, const float*, const float* dy, float* dx, int rows) {
  // dcols (n, K) = dy (n, O) . W^T (O, K) for kInputGradRows rows at a time
  // (counted from each unit's start, so a unit's groups never depend on the
  // chunk), each scattered into its rows of dx while it is still in cache.
  const Shape in = in_shape();
  pass().for_units(rows, [&](int u0, int unit_rows, long long) {
    for (int r0 = u0; r0 < u0 + unit_rows; r0 += kInputGradRows) {
      const int group = std::min(kInputGradRows, u0 + unit_rows - r0);
      const long long n = group * pixels();
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(patch()), out_c_, 1.0f,
                  dy + r0 * pixels() * out_c_, out_c_, w_, out_c_, 0.0f, dcols_, static_cast<int>(patch()));
      col2im(dcols_, group, in, g_, dx + static_cast<long long>(r0) * in.size());
    }
  });
}

}  // namespace mpitrain

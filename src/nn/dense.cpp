#include "mpitrain/nn/dense.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "fused_activation.hpp"

namespace mpitrain {

Dense::Dense(std::string name, Shape in, int out, Init init, FusedActivation act)
    : Layer(in, Shape{out, 1, 1}),
      name_(std::move(name)),
      in_(static_cast<int>(in.size())),
      out_(out),
      init_(init),
      act_(act) {}

std::string Dense::name() const { return name_ + nn_detail::fused_suffix(act_); }

void Dense::register_params(Arena& arena) {
  w_offset_ = arena.add(name_ + "/W", {in_, out_});
  b_offset_ = arena.add(name_ + "/b", {out_}, kNoDecayParam);
}

void Dense::bind(Arena& arena) {
  w_ = arena.params() + w_offset_;
  b_ = arena.params() + b_offset_;
  dw_ = arena.grads() + w_offset_;
  db_ = arena.grads() + b_offset_;
}

void Dense::init(Rng& rng) {
  // He et al. 2015 (normal, std sqrt(2/fan_in)) before ReLU-like units;
  // Glorot & Bengio 2010 (uniform, limit sqrt(6/(fan_in+fan_out))) otherwise.
  const long long n = static_cast<long long>(in_) * out_;
  if (init_ == Init::kHe) {
    const double std = std::sqrt(2.0 / in_);
    for (long long i = 0; i < n; ++i) w_[i] = static_cast<float>(std * rng.normal());
  } else {
    const double limit = std::sqrt(6.0 / (in_ + out_));
    for (long long i = 0; i < n; ++i) w_[i] = static_cast<float>(limit * (2.0 * rng.uniform01() - 1.0));
  }
  for (int j = 0; j < out_; ++j) b_[j] = 0.0f;
}


std::vector<GemmShape> Dense::gemm_shapes(int rows, bool input_grad) const {
  std::vector<GemmShape> g{{false, false, rows, out_, in_}, {true, false, in_, out_, rows}};
  if (input_grad) g.push_back({false, true, rows, in_, out_});
  return g;
}

void Dense::forward(const float* x, float* y, int rows) {
  if (rows == 0) return;
  // y (R, O) = b broadcast, then y += x (R, I) . W (I, O), one sgemm per unit (nn/pass.hpp)
  for (int r = 0; r < rows; ++r) {
    float* yr = y + static_cast<long long>(r) * out_;
    for (int j = 0; j < out_; ++j) yr[j] = b_[j];
  }
  pass().for_units(rows, [&](int r0, int n, long long) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, out_, in_, 1.0f, x + static_cast<long long>(r0) * in_,
                in_, w_, out_, 1.0f, y + static_cast<long long>(r0) * out_, out_);
  });
  // y = act(y) in place: the pre-activation is not kept, backward needs only y.
  nn_detail::apply_fused(act_, y, static_cast<long long>(rows) * out_);
}

void Dense::backward_params(const float* x, const float* y, float* dy, int rows) {
  if (rows == 0) return;
  const bool per_unit = pass().per_unit_grads();
  pass().for_units(rows, [&](int r0, int n, long long unit) {
    // A unit's gradients go straight to the sink's buffer for it (the sgemm overwrites dW: beta 0).
    float* dw = per_unit ? pass().unit_sink->unit_grads(unit) + w_offset_ : dw_;
    float* db = per_unit ? pass().unit_sink->unit_grads(unit) + b_offset_ : db_;
    if (per_unit) std::fill(db, db + out_, 0.0f);
    float* d = dy + static_cast<long long>(r0) * out_;
    // dy (R, O) <- dL/d(pre-activation) in place, from the output alone:
    // relu'(z) = [y > 0], tanh'(z) = 1 - y^2; and db (O) += its column sums.
    nn_detail::fused_backward(act_, d, y + static_cast<long long>(r0) * out_, db, n, out_);
    // dW (I, O) += x^T (I, R) . dy (R, O)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in_, out_, n, 1.0f, x + static_cast<long long>(r0) * in_, in_,
                d, out_, per_unit ? 0.0f : 1.0f, dw, out_);
    if (per_unit) {
      pass().unit_sink->add(unit, w_offset_, static_cast<long long>(in_) * out_);
      pass().unit_sink->add(unit, b_offset_, out_);
    }
  });
}

void Dense::backward_input(const float*, const float*, const float* dy, float* dx, int rows) {
  if (rows == 0) return;
  // dx (R, I) = dy (R, O) . W^T (O, I)
  pass().for_units(rows, [&](int r0, int n, long long) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, in_, out_, 1.0f, dy + static_cast<long long>(r0) * out_,
                out_, w_, out_, 0.0f, dx + static_cast<long long>(r0) * in_, in_);
  });
}

}  // namespace mpitrain

#include "mpitrain/nn/conv2d.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "fused_activation.hpp"

namespace mpitrain {

ConvAlgorithm auto_conv_algorithm(Shape in, const Conv2DGeometry& g) {
  return Winograd::applies(g) && in.c >= 8 ? ConvAlgorithm::kWinograd : ConvAlgorithm::kIm2col;
}

Conv2D::Conv2D(std::string name, Shape in, int out_channels, const Conv2DGeometry& g, FusedActivation act,
               ConvAlgorithm algo)
    : Layer(in, Shape{out_channels, g.out_h, g.out_w}), name_(std::move(name)), out_c_(out_channels), g_(g), act_(act) {
  if (algo == ConvAlgorithm::kWinograd) wino_.emplace(in, out_channels, g);
}

std::string Conv2D::name() const { return name_ + nn_detail::fused_suffix(act_); }

std::string Conv2D::method() const {
  if (!wino_) return "im2col";
  const std::string m = std::to_string(wino_->m()), r = std::to_string(g_.kh);
  return "winograd F(" + m + "x" + m + "," + r + "x" + r + ")";
}

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
  if (wino_) return 0;
  return static_cast<std::size_t>(pixels() * patch()) * sizeof(float);
}

std::size_t Conv2D::scratch_bytes_fixed() const {
  if (wino_) {
    const long long u = static_cast<long long>(wino_->points()) * in_shape().c * out_c_;
    return static_cast<std::size_t>(2 * u + block_rows() * (v_per_row() + z_per_row())) * sizeof(float) +
           wino_->tile_tmp_floats() * sizeof(float);
  }
  return static_cast<std::size_t>(kInputGradRows * pixels() * patch()) * sizeof(float);
}

void Conv2D::bind_scratch(void* scratch, int capacity_rows) {
  float* f = static_cast<float*>(scratch);
  if (wino_) {
    const long long u = static_cast<long long>(wino_->points()) * in_shape().c * out_c_;
    u_ = f;
    du_ = u_ + u;
    vb_ = du_ + u;
    zb_ = vb_ + block_rows() * v_per_row();
    ttmp_ = zb_ + block_rows() * z_per_row();
    return;
  }
  cols_ = f;
  dcols_ = cols_ + static_cast<long long>(capacity_rows) * pixels() * patch();
}

double Conv2D::forward_flops_per_sample() const {
  return 2.0 * static_cast<double>(pixels()) * static_cast<double>(patch()) * out_c_;
}

std::vector<GemmShape> Conv2D::gemm_shapes(int rows, bool input_grad) const {
  if (wino_) {
    const long long c = in_shape().c;
    std::vector<GemmShape> g;
    for (int r0 = 0; r0 < rows; r0 += block_rows()) {
      const long long t = static_cast<long long>(std::min(block_rows(), rows - r0)) * wino_->tiles();
      for (int xi = 0; xi < wino_->points(); ++xi) {
        g.push_back({false, false, t, out_c_, c});
        g.push_back({true, false, c, out_c_, t});
        if (input_grad) g.push_back({false, true, t, c, out_c_});
      }
    }
    return g;
  }
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
  if (wino_) return forward_winograd(x, y, rows);
  im2col(x, rows, in_shape(), g_, cols_);
  const long long n = rows * pixels();
  for (long long i = 0; i < n; ++i) {  // y = b broadcast (a loop: a library call per pixel costs more)
    float* __restrict yi = y + i * out_c_;
    for (int j = 0; j < out_c_; ++j) yi[j] = b_[j];
  }
  // One sgemm over the chunk, or one per unit (nn/pass.hpp).
  pass().for_units(rows, [&](int r0, int count, long long) {
    const long long p0 = static_cast<long long>(r0) * pixels();
    timed_gemm([&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(count * pixels()), out_c_,
                  static_cast<int>(patch()), 1.0f, cols_ + p0 * patch(), static_cast<int>(patch()), w_, out_c_, 1.0f,
                  y + p0 * out_c_, out_c_);
    });
  });
  nn_detail::apply_fused(act_, y, n * out_c_);
}

void Conv2D::backward_params(const float* x, const float* y, float* dy, int rows) {
  if (rows == 0) return;
  if (wino_) return backward_params_winograd(x, dy, y, rows);
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
    timed_gemm([&] {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(patch()), out_c_, static_cast<int>(n), 1.0f,
                  cols_ + p0 * patch(), static_cast<int>(patch()), d, out_c_, per_unit ? 0.0f : 1.0f, dw, out_c_);
    });
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
  if (wino_) return backward_input_winograd(dy, dx, rows);
  const Shape in = in_shape();
  pass().for_units(rows, [&](int u0, int unit_rows, long long) {
    for (int r0 = u0; r0 < u0 + unit_rows; r0 += kInputGradRows) {
      const int group = std::min(kInputGradRows, u0 + unit_rows - r0);
      const long long n = group * pixels();
      timed_gemm([&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(patch()), out_c_, 1.0f,
                    dy + r0 * pixels() * out_c_, out_c_, w_, out_c_, 0.0f, dcols_, static_cast<int>(patch()));
      });
      col2im(dcols_, group, in, g_, dx + static_cast<long long>(r0) * in.size());
    }
  });
}

// ------------------------------------------------------------- Winograd
// A unit is cut into blocks of block_rows() rows, counted from its first row
// (so a unit's numbers never depend on the chunk around it). A block's V
// planes (tiles, C) and Z or M planes (tiles, O) stay in cache between the
// transforms and the n*n sgemm calls; backward recomputes V and M per block
// rather than keep them for the chunk (they would go through memory).

int Conv2D::block_rows() const { return std::max(1, kWinogradBlockTiles / wino_->tiles()); }

template <class F>
void Conv2D::for_blocks(int rows, F&& f) const {
  pass().for_units(rows, [&](int u0, int unit_rows, long long unit) {
    for (int r0 = u0; r0 < u0 + unit_rows; r0 += block_rows())
      f(r0, std::min(block_rows(), u0 + unit_rows - r0), r0 == u0, r0 + block_rows() >= u0 + unit_rows, unit);
  });
}

void Conv2D::forward_winograd(const float* x, float* y, int rows) {
  const int c = static_cast<int>(in_shape().c);
  wino_->weights_to_u(w_, u_);
  for_blocks(rows, [&](int r0, int count, bool, bool, long long) {
    const long long t = static_cast<long long>(count) * wino_->tiles(), pv = t * c, pz = t * out_c_;
    wino_->input_to_v(x + r0 * in_shape().size(), count, vb_, pv, ttmp_);
    timed_gemm([&] {
      for (int xi = 0; xi < wino_->points(); ++xi)  // Z[xi] (t, O) = V[xi] (t, C) . U[xi] (C, O)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(t), out_c_, c, 1.0f, vb_ + xi * pv, c,
                    u_ + static_cast<long long>(xi) * c * out_c_, out_c_, 0.0f, zb_ + xi * pz, out_c_);
    });
    wino_->z_to_output(zb_, pz, b_, count, y + r0 * out_width(), ttmp_);
  });
  nn_detail::apply_fused(act_, y, rows * pixels() * out_c_);
}

void Conv2D::backward_params_winograd(const float* x, float* dy, const float* y, int rows) {
  const int c = static_cast<int>(in_shape().c);
  const bool per_unit = pass().per_unit_grads();
  for_blocks(rows, [&](int r0, int count, bool first, bool last, long long unit) {
    float* dw = per_unit ? pass().unit_sink->unit_grads(unit) + w_offset_ : dw_;
    float* db = per_unit ? pass().unit_sink->unit_grads(unit) + b_offset_ : db_;
    if (per_unit && first) std::fill(db, db + out_c_, 0.0f);
    const long long t = static_cast<long long>(count) * wino_->tiles(), pv = t * c, pz = t * out_c_;
    float* d = dy + r0 * out_width();
    nn_detail::fused_backward(act_, d, y + r0 * out_width(), db, count * pixels(), out_c_);
    wino_->input_to_v(x + r0 * in_shape().size(), count, vb_, pv, ttmp_);
    wino_->dy_to_m(d, count, zb_, pz, ttmp_);
    timed_gemm([&] {
      for (int xi = 0; xi < wino_->points(); ++xi)  // dU[xi] (C, O) += V[xi]^T (C, t) . M[xi] (t, O)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c, out_c_, static_cast<int>(t), 1.0f, vb_ + xi * pv, c,
                    zb_ + xi * pz, out_c_, first ? 0.0f : 1.0f, du_ + static_cast<long long>(xi) * c * out_c_, out_c_);
    });
    if (!last) return;
    wino_->du_to_dw(du_, dw, per_unit);
    if (per_unit) {
      pass().unit_sink->add(unit, w_offset_, patch() * out_c_);
      pass().unit_sink->add(unit, b_offset_, out_c_);
    }
  });
}

void Conv2D::backward_input_winograd(const float* dy, float* dx, int rows) {
  const int c = static_cast<int>(in_shape().c);
  for_blocks(rows, [&](int r0, int count, bool, bool, long long) {
    const long long t = static_cast<long long>(count) * wino_->tiles(), pv = t * c, pz = t * out_c_;
    wino_->dy_to_m(dy + r0 * out_width(), count, zb_, pz, ttmp_);
    timed_gemm([&] {
      for (int xi = 0; xi < wino_->points(); ++xi)  // dV[xi] (t, C) = M[xi] (t, O) . U[xi]^T (O, C)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(t), c, out_c_, 1.0f, zb_ + xi * pz, out_c_,
                    u_ + static_cast<long long>(xi) * c * out_c_, out_c_, 0.0f, vb_ + xi * pv, c);
    });
    float* d = dx + r0 * in_shape().size();
    std::fill(d, d + count * in_shape().size(), 0.0f);
    wino_->dv_to_dx(vb_, pv, count, d, ttmp_);
  });
}

}  // namespace mpitrain

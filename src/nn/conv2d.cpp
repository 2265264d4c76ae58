#include "mpitrain/nn/conv2d.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "fused_activation.hpp"
#include "mpitrain/core/errors.hpp"

namespace mpitrain {

Conv2DGeometry conv_geometry(Shape in, int kh, int kw, int stride, int pad, const std::string& what) {
  if (kh < 1 || kw < 1 || stride < 1) throw UserError(what + ": kernel and stride must be at least 1");
  Conv2DGeometry g;
  g.kh = kh;
  g.kw = kw;
  g.stride = stride;
  if (pad < 0) {  // same
    g.out_h = (in.h + stride - 1) / stride;
    g.out_w = (in.w + stride - 1) / stride;
    const int total_h = std::max((g.out_h - 1) * stride + kh - in.h, 0);
    const int total_w = std::max((g.out_w - 1) * stride + kw - in.w, 0);
    g.pad_top = total_h / 2;
    g.pad_left = total_w / 2;
    if (kh > in.h || kw > in.w)  // same padding would otherwise pad it to fit
      throw UserError(what + ": a " + std::to_string(kh) + "x" + std::to_string(kw) + " kernel is larger than its " +
                      in.text() + " input: use a smaller kernel, or fewer pooling layers before it");
    return g;
  }
  if (kh > in.h + 2 * pad || kw > in.w + 2 * pad)
    throw UserError(what + ": a " + std::to_string(kh) + "x" + std::to_string(kw) + " kernel is larger than its " +
                    in.text() + " input" + (pad ? " with padding " + std::to_string(pad) : std::string()) +
                    ": use a smaller kernel, padding, or fewer pooling layers before it");
  g.pad_top = g.pad_left = pad;
  g.out_h = (in.h + 2 * pad - kh) / stride + 1;
  g.out_w = (in.w + 2 * pad - kw) / stride + 1;
  return g;
}

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
  return 2 * static_cast<std::size_t>(pixels() * patch()) * sizeof(float);
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
  if (input_grad) g.push_back({false, true, n, patch(), out_c_});
  return g;
}

double Conv2D::param_count() const { return static_cast<double>(patch()) * out_c_ + out_c_; }

// cols row (r, oy, ox) = the KH x KW x C patch of image r under output pixel
// (oy, ox): for each kernel row a run of KW*C floats, copied where it lies
// inside the image and zero where it leaves it.
void Conv2D::im2col(const float* x, int rows) {
  const Shape in = in_shape();
  const int c = in.c;
  const long long k = patch();
  float* col = cols_;
  for (int r = 0; r < rows; ++r) {
    const float* img = x + static_cast<long long>(r) * in.size();
    for (int oy = 0; oy < g_.out_h; ++oy) {
      for (int ox = 0; ox < g_.out_w; ++ox, col += k) {
        const int y0 = oy * g_.stride - g_.pad_top, x0 = ox * g_.stride - g_.pad_left;
        float* dst = col;
        for (int ky = 0; ky < g_.kh; ++ky, dst += static_cast<long long>(g_.kw) * c) {
          const int iy = y0 + ky;
          if (iy < 0 || iy >= in.h) {
            std::memset(dst, 0, sizeof(float) * static_cast<size_t>(g_.kw) * c);
            continue;
          }
          const int kx_begin = std::min(g_.kw, std::max(0, -x0));
          const int kx_end = std::max(kx_begin, std::min(g_.kw, in.w - x0));
          if (kx_begin > 0) std::memset(dst, 0, sizeof(float) * static_cast<size_t>(kx_begin) * c);
          if (kx_end > kx_begin)
            std::memcpy(dst + static_cast<long long>(kx_begin) * c,
                        img + (static_cast<long long>(iy) * in.w + x0 + kx_begin) * c,
                        sizeof(float) * static_cast<size_t>(kx_end - kx_begin) * c);
          if (kx_end < g_.kw)
            std::memset(dst + static_cast<long long>(kx_end) * c, 0, sizeof(float) * static_cast<size_t>(g_.kw - kx_end) * c);
        }
      }
    }
  }
}

// The adjoint of im2col: every dcols entry is added to the input pixel it was
// copied from (entries that were padding are dropped).
void Conv2D::col2im(float* dx, int rows) const {
  const Shape in = in_shape();
  const int c = in.c;
  const long long k = patch();
  std::fill(dx, dx + static_cast<long long>(rows) * in.size(), 0.0f);
  const float* col = dcols_;
  for (int r = 0; r < rows; ++r) {
    float* img = dx + static_cast<long long>(r) * in.size();
    for (int oy = 0; oy < g_.out_h; ++oy) {
      for (int ox = 0; ox < g_.out_w; ++ox, col += k) {
        const int y0 = oy * g_.stride - g_.pad_top, x0 = ox * g_.stride - g_.pad_left;
        const int kx_begin = std::min(g_.kw, std::max(0, -x0));
        const int kx_end = std::max(kx_begin, std::min(g_.kw, in.w - x0));
        for (int ky = 0; ky < g_.kh; ++ky) {
          const int iy = y0 + ky;
          if (iy < 0 || iy >= in.h || kx_end <= kx_begin) continue;
          const float* __restrict src = col + (static_cast<long long>(ky) * g_.kw + kx_begin) * c;
          float* __restrict dst = img + (static_cast<long long>(iy) * in.w + x0 + kx_begin) * c;
          const long long n = static_cast<long long>(kx_end - kx_begin) * c;
          for (long long i = 0; i < n; ++i) dst[i] += src[i];
        }
      }
    }
  }
}

void Conv2D::forward(const float* x, float* y, int rows) {
  if (rows == 0) return;
  im2col(x, rows);
  const long long n = rows * pixels();
  for (long long i = 0; i < n; ++i) std::memcpy(y + i * out_c_, b_, sizeof(float) * static_cast<size_t>(out_c_));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n), out_c_, static_cast<int>(patch()), 1.0f,
              cols_, static_cast<int>(patch()), w_, out_c_, 1.0f, y, out_c_);
  nn_detail::apply_fused(act_, y, n * out_c_);
}

void Conv2D::backward_params(const float*, const float* y, float* dy, int rows) {
  if (rows == 0) return;
  const long long n = rows * pixels();
  nn_detail::fused_backward(act_, dy, y, db_, n, out_c_);
  // dW (K, O) += cols^T (K, N) . dy (N, O)
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(patch()), out_c_, static_cast<int>(n), 1.0f,
              cols_, static_cast<int>(patch()), dy, out_c_, 1.0f, dw_, out_c_);
}

void Conv2D::backward_input(const float*, const float*, const float* dy, float* dx, int rows) {
  if (rows == 0) return;
  const long long n = rows * pixels();
  // dcols (N, K) = dy (N, O) . W^T (O, K), then scattered into dx.
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(patch()), out_c_, 1.0f, dy,
              out_c_, w_, out_c_, 0.0f, dcols_, static_cast<int>(patch()));
  col2im(dx, rows);
}

}  // namespace mpitrain

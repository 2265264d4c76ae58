#include "mpitrain/nn/pooling.hpp"

#include <algorithm>
#include <cstring>

#include "mpitrain/core/errors.hpp"

namespace mpitrain {
namespace {

Shape pooled_shape(Shape in, int k, int stride, const std::string& what) {
  if (k < 1 || stride < 1) throw UserError(what + ": window and stride must be at least 1");
  if (in.is_flat())
    throw UserError(what + " needs a CxHxW map but follows a flat vector of " + in.text() +
                    ": pool before the dense layers, or start --model with the image shape, e.g. 1x28x28");
  if (k > in.h || k > in.w)
    throw UserError(what + ": a " + std::to_string(k) + "x" + std::to_string(k) + " window is larger than its " +
                    in.text() + " input: use a smaller window or fewer pooling layers");
  return Shape{in.c, (in.h - k) / stride + 1, (in.w - k) / stride + 1};
}

}  // namespace

Pool2D::Pool2D(std::string name, Kind kind, Shape in, int kernel, int stride, const std::string& what)
    : Layer(in, pooled_shape(in, kernel, stride, what)), name_(std::move(name)), kind_(kind), k_(kernel), stride_(stride) {}

std::size_t Pool2D::scratch_bytes_per_row() const {
  return kind_ == Kind::kMax ? static_cast<std::size_t>(out_width()) * sizeof(std::int32_t) : 0;
}

void Pool2D::bind_scratch(void* scratch, int) { argmax_ = static_cast<std::int32_t*>(scratch); }

double Pool2D::forward_flops_per_sample() const { return static_cast<double>(out_width()) * k_ * k_; }

void Pool2D::forward(const float* x, float* y, int rows) {
  const Shape in = in_shape(), out = out_shape();
  const int c = in.c;
  const float inv = 1.0f / static_cast<float>(k_ * k_);
  for (int r = 0; r < rows; ++r) {
    const float* img = x + static_cast<long long>(r) * in.size();
    for (int oy = 0; oy < out.h; ++oy) {
      for (int ox = 0; ox < out.w; ++ox) {
        const long long o = static_cast<long long>(r) * out.size() + (static_cast<long long>(oy) * out.w + ox) * c;
        float* __restrict dst = y + o;
        const int first = ((oy * stride_) * in.w + ox * stride_) * c;
        if (kind_ == Kind::kMax) {
          // Branch-free over the channels (vectorisable); the first maximum wins ties.
          std::int32_t* __restrict arg = argmax_ + o;
          for (int ch = 0; ch < c; ++ch) { dst[ch] = img[first + ch]; arg[ch] = first + ch; }
          for (int ky = 0; ky < k_; ++ky)
            for (int kx = 0; kx < k_; ++kx) {
              const int at = ((oy * stride_ + ky) * in.w + ox * stride_ + kx) * c;
              const float* __restrict src = img + at;
              for (int ch = 0; ch < c; ++ch) {
                const bool more = src[ch] > dst[ch];
                dst[ch] = more ? src[ch] : dst[ch];
                arg[ch] = more ? at + ch : arg[ch];
              }
            }
        } else {
          std::fill(dst, dst + c, 0.0f);
          for (int ky = 0; ky < k_; ++ky)
            for (int kx = 0; kx < k_; ++kx) {
              const float* __restrict src = img + ((oy * stride_ + ky) * in.w + ox * stride_ + kx) * c;
              for (int ch = 0; ch < c; ++ch) dst[ch] += src[ch];
            }
          for (int ch = 0; ch < c; ++ch) dst[ch] *= inv;
        }
      }
    }
  }
}

void Pool2D::backward_input(const float*, const float*, const float* dy, float* dx, int rows) {
  const Shape in = in_shape(), out = out_shape();
  const int c = in.c;
  std::fill(dx, dx + static_cast<long long>(rows) * in.size(), 0.0f);
  if (kind_ == Kind::kMax) {
    for (int r = 0; r < rows; ++r) {
      const float* g = dy + static_cast<long long>(r) * out.size();
      const std::int32_t* a = argmax_ + static_cast<long long>(r) * out.size();
      float* d = dx + static_cast<long long>(r) * in.size();
      for (long long i = 0; i < out.size(); ++i) d[a[i]] += g[i];
    }
    return;
  }
  const float inv = 1.0f / static_cast<float>(k_ * k_);
  for (int r = 0; r < rows; ++r) {
    const float* g = dy + static_cast<long long>(r) * out.size();
    float* d = dx + static_cast<long long>(r) * in.size();
    for (int oy = 0; oy < out.h; ++oy)
      for (int ox = 0; ox < out.w; ++ox) {
        const float* go = g + (static_cast<long long>(oy) * out.w + ox) * c;
        for (int ky = 0; ky < k_; ++ky)
          for (int kx = 0; kx < k_; ++kx) {
            float* dst = d + ((static_cast<long long>(oy) * stride_ + ky) * in.w + ox * stride_ + kx) * c;
            for (int ch = 0; ch < c; ++ch) dst[ch] += go[ch] * inv;
          }
      }
  }
}

void GlobalAvgPool::forward(const float* x, float* y, int rows) {
  const Shape in = in_shape();
  const long long hw = static_cast<long long>(in.h) * in.w;
  const float inv = 1.0f / static_cast<float>(hw);
  for (int r = 0; r < rows; ++r) {
    const float* img = x + r * in.size();
    float* o = y + static_cast<long long>(r) * in.c;
    std::fill(o, o + in.c, 0.0f);
    for (long long p = 0; p < hw; ++p)
      for (int ch = 0; ch < in.c; ++ch) o[ch] += img[p * in.c + ch];
    for (int ch = 0; ch < in.c; ++ch) o[ch] *= inv;
  }
}

void GlobalAvgPool::backward_input(const float*, const float*, const float* dy, float* dx, int rows) {
  const Shape in = in_shape();
  const long long hw = static_cast<long long>(in.h) * in.w;
  const float inv = 1.0f / static_cast<float>(hw);
  for (int r = 0; r < rows; ++r) {
    const float* g = dy + static_cast<long long>(r) * in.c;
    float* d = dx + r * in.size();
    for (long long p = 0; p < hw; ++p)
      for (int ch = 0; ch < in.c; ++ch) d[p * in.c + ch] = g[ch] * inv;
  }
}

void Flatten::forward(const float* x, float* y, int rows) {
  if (rows == 0) return;
  std::memcpy(y, x, sizeof(float) * static_cast<size_t>(rows * in_width()));
}

void Flatten::backward_input(const float*, const float*, const float* dy, float* dx, int rows) {
  if (rows == 0) return;
  std::memcpy(dx, dy, sizeof(float) * static_cast<size_t>(rows * in_width()));
}

}  // namespace mpitrain

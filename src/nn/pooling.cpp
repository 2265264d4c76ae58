#include "mpitrain/nn/pooling.hpp"

#include <algorithm>
#include <cstring>

#include "mpitrain/core/errors.hpp"

namespace mpitrain {
namespace {

Shape pooled_shape(Shape in, int k, int stride, const std::string& what) {
  if (k < 1 || stride < 1) throw UserError(what + ": window and stride must be at least 1");
  if (in.is_flat())
    throw UserError(what + " needs a CxHxW map but follows a flat vector (or 1x1 map) of " + in.text() +
                    ": pool before the dense layers, or start --model with the image shape, e.g. 1x28x28");
  if (k > in.h || k > in.w)
    throw UserError(what + ": a " + std::to_string(k) + "x" + std::to_string(k) + " window is larger than its " +
                    in.text() + " input: use a smaller window or fewer pooling layers");
  return Shape{in.c, (in.h - k) / stride + 1, (in.w - k) / stride + 1};
}

}  // namespace

Pool2D::Pool2D(std::string name, Kind kind, Shape in, int kernel, int stride, const std::string& what)
    : Layer(in, pooled_shape(in, kernel, stride, what)),
      name_(std::move(name)),
      kind_(kind),
      k_(kernel),
      stride_(stride) {}

// Here and not in the constructor: a spec's layers are constructed before
// the memory plan is checked (issue 17, the same fuzz finding as batch norm).
void Pool2D::bind(Arena&) {
  if (kind_ == Kind::kMax) taken_.assign(static_cast<size_t>(in_shape().c), 0);
}

double Pool2D::forward_flops_per_sample() const { return static_cast<double>(out_width()) * k_ * k_; }

// Output pixel (oy, ox) of image `img`: its window's values, channel by channel.
// Max: a plain running maximum (vectorised over the channels); backward finds
// the argmax again from x and y, so nothing is stored between the passes.
void Pool2D::forward(const float* x, float* y, int rows) {
  const Shape in = in_shape(), out = out_shape();
  const int c = in.c;
  const float inv = 1.0f / static_cast<float>(k_ * k_);
  for (int r = 0; r < rows; ++r) {
    const float* img = x + static_cast<long long>(r) * in.size();
    float* o = y + static_cast<long long>(r) * out.size();
    for (int oy = 0; oy < out.h; ++oy) {
      for (int ox = 0; ox < out.w; ++ox) {
        float* __restrict dst = o + (static_cast<long long>(oy) * out.w + ox) * c;
        const float* first = img + (static_cast<long long>(oy) * stride_ * in.w + ox * stride_) * c;
        if (kind_ == Kind::kMax) std::copy(first, first + c, dst);
        else std::fill(dst, dst + c, 0.0f);
        for (int ky = 0; ky < k_; ++ky) {
          const float* line = first + static_cast<long long>(ky) * in.w * c;
          for (int kx = 0; kx < k_; ++kx) {
            const float* __restrict src = line + static_cast<long long>(kx) * c;
            if (kind_ == Kind::kMax)
              for (int ch = 0; ch < c; ++ch) dst[ch] = dst[ch] < src[ch] ? src[ch] : dst[ch];
            else
              for (int ch = 0; ch < c; ++ch) dst[ch] += src[ch];
          }
        }
        if (kind_ == Kind::kAvg)
          for (int ch = 0; ch < c; ++ch) dst[ch] *= inv;
      }
    }
  }
}

void Pool2D::backward_input(const float* x, const float* y, const float* dy, float* dx, int rows) {
  const Shape in = in_shape(), out = out_shape();
  const int c = in.c;
  std::fill(dx, dx + static_cast<long long>(rows) * in.size(), 0.0f);
  const float inv = 1.0f / static_cast<float>(k_ * k_);
  unsigned char* __restrict taken = taken_.data();
  for (int r = 0; r < rows; ++r) {
    const float* img = x + static_cast<long long>(r) * in.size();
    float* d = dx + static_cast<long long>(r) * in.size();
    for (int oy = 0; oy < out.h; ++oy)
      for (int ox = 0; ox < out.w; ++ox) {
        const long long o = static_cast<long long>(r) * out.size() + (static_cast<long long>(oy) * out.w + ox) * c;
        const float* __restrict g = dy + o;
        const float* __restrict yo = y + o;
        const long long first = (static_cast<long long>(oy) * stride_ * in.w + ox * stride_) * c;
        // Max: the first window position (in forward's order) holding the maximum takes the gradient.
        if (kind_ == Kind::kMax) std::fill(taken, taken + c, 0);
        for (int ky = 0; ky < k_; ++ky)
          for (int kx = 0; kx < k_; ++kx) {
            const long long at = first + (static_cast<long long>(ky) * in.w + kx) * c;
            const float* __restrict src = img + at;
            float* __restrict dd = d + at;
            if (kind_ == Kind::kAvg) {
              for (int ch = 0; ch < c; ++ch) dd[ch] += g[ch] * inv;
              continue;
            }
            // Branch-free (which position holds a maximum is data, not a pattern to predict).
            for (int ch = 0; ch < c; ++ch) {
              const auto hit = static_cast<unsigned char>(static_cast<unsigned char>(src[ch] == yo[ch]) & (taken[ch] ^ 1u));
              dd[ch] += g[ch] * static_cast<float>(hit);
              taken[ch] |= hit;
            }
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

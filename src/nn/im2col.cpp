#include "mpitrain/nn/im2col.hpp"

#include <algorithm>
#include <cstring>

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

// cols row (r, oy, ox) = the KH x KW x C patch of image r under output pixel
// (oy, ox): for each kernel row a run of KW*C floats, copied where it lies
// inside the image and zero where it leaves it.
void im2col(const float* x, int rows, Shape in, const Conv2DGeometry& g, float* cols) {
  const int c = in.c;
  const long long k = static_cast<long long>(g.kh) * g.kw * c;
  float* col = cols;
  for (int r = 0; r < rows; ++r) {
    const float* img = x + static_cast<long long>(r) * in.size();
    for (int oy = 0; oy < g.out_h; ++oy) {
      for (int ox = 0; ox < g.out_w; ++ox, col += k) {
        const int y0 = oy * g.stride - g.pad_top, x0 = ox * g.stride - g.pad_left;
        float* __restrict dst = col;
        for (int ky = 0; ky < g.kh; ++ky, dst += static_cast<long long>(g.kw) * c) {
          const int iy = y0 + ky;
          // Plain loops, not memcpy/memset: the runs are short (KW*C floats; 5 for
          // a 5x5 kernel on one channel), where a library call costs more than the copy.
          const long long run = static_cast<long long>(g.kw) * c;
          if (iy < 0 || iy >= in.h) {
            for (long long i = 0; i < run; ++i) dst[i] = 0.0f;
            continue;
          }
          const long long begin = static_cast<long long>(std::min(g.kw, std::max(0, -x0))) * c;
          const long long end = std::max(begin, static_cast<long long>(std::min(g.kw, in.w - x0)) * c);
          const float* __restrict src = img + (static_cast<long long>(iy) * in.w + x0) * c;  // kernel column 0
          for (long long i = 0; i < begin; ++i) dst[i] = 0.0f;
          for (long long i = begin; i < end; ++i) dst[i] = src[i];
          for (long long i = end; i < run; ++i) dst[i] = 0.0f;
        }
      }
    }
  }
}

// The adjoint of im2col: every dcols entry is added to the input pixel it was
// copied from (entries that were padding are dropped).
void col2im(const float* dcols, int rows, Shape in, const Conv2DGeometry& g, float* dx) {
  const int c = in.c;
  const long long k = static_cast<long long>(g.kh) * g.kw * c;
  std::fill(dx, dx + static_cast<long long>(rows) * in.size(), 0.0f);
  const float* col = dcols;
  for (int r = 0; r < rows; ++r) {
    float* img = dx + static_cast<long long>(r) * in.size();
    for (int oy = 0; oy < g.out_h; ++oy) {
      for (int ox = 0; ox < g.out_w; ++ox, col += k) {
        const int y0 = oy * g.stride - g.pad_top, x0 = ox * g.stride - g.pad_left;
        const int kx_begin = std::min(g.kw, std::max(0, -x0));
        const int kx_end = std::max(kx_begin, std::min(g.kw, in.w - x0));
        for (int ky = 0; ky < g.kh; ++ky) {
          const int iy = y0 + ky;
          if (iy < 0 || iy >= in.h || kx_end <= kx_begin) continue;
          const float* __restrict src = col + (static_cast<long long>(ky) * g.kw + kx_begin) * c;
          float* __restrict dst = img + (static_cast<long long>(iy) * in.w + x0 + kx_begin) * c;
          const long long n = static_cast<long long>(kx_end - kx_begin) * c;
          for (long long i = 0; i < n; ++i) dst[i] += src[i];
        }
      }
    }
  }
}

}  // namespace mpitrain

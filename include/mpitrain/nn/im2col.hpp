// The patch matrix of a 2-D convolution (Caffe's im2col, channels innermost
// as in core/shape.hpp) and its adjoint:
//
//   cols (N, K)  N = R*OH*OW output pixels, K = KH*KW*C: row n holds the
//                input patch under output pixel n in (kh, kw, c) order, zeros
//                where the patch leaves the image (padding)
//
// so a convolution is one sgemm of cols with the (K, O) weights (nn/conv2d).
#pragma once
#include <string>

#include "mpitrain/core/shape.hpp"

namespace mpitrain {

struct Conv2DGeometry {
  int kh = 3, kw = 3, stride = 1;
  int pad_top = 0, pad_left = 0;  // the rest of the padding is at the bottom/right
  int out_h = 0, out_w = 0;
};

// Output size and padding. pad < 0 means "same" (output ceil(in/stride),
// padding split as TensorFlow does: the extra pixel at the bottom/right);
// otherwise `pad` zeros on every side. UserError when the kernel does not fit.
Conv2DGeometry conv_geometry(Shape in, int kh, int kw, int stride, int pad, const std::string& what);

// x (rows, H, W, C) -> cols (rows*OH*OW, KH*KW*C)
void im2col(const float* x, int rows, Shape in, const Conv2DGeometry& g, float* cols);
// The adjoint: dx (rows, H, W, C) = the sum of every dcols entry into the
// input pixel it was copied from (entries that were padding are dropped).
void col2im(const float* dcols, int rows, Shape in, const Conv2DGeometry& g, float* dx);

}  // namespace mpitrain

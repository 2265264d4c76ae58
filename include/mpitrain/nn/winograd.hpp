// Winograd's minimal filtering F(m x m, r x r) for a stride-1 convolution
// (Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural Networks"):
// an m x m block of outputs from an n x n input tile, n = m + r - 1, with
// n^2 multiplications per input/output channel pair instead of m^2 r^2.
//
//   U = G g G^T        weights  (r x r -> n x n per channel pair)
//   V = B^T d B        input tile (n x n per input channel)
//   Y = A^T [sum_c U (.) V] A          (the sum over c is one sgemm per
//                                       point xi of the n x n tile)
//
// With the tiles of a chunk side by side, point xi is a matrix product:
//   Z[xi] (T, O) = V[xi] (T, C) . U[xi] (C, O)         forward
//   dU[xi] (C, O) = V[xi]^T (C, T) . M[xi] (T, O)      weight gradient,
//                                                       M = A dY A^T
//   dV[xi] (T, C) = M[xi] (T, O) . U[xi]^T (O, C)      input gradient,
//                                                       dd = B dV B^T
// and the weight and input gradients are the exact adjoints of forward.
//
// The matrices come from the Cook-Toom construction on the points
// 0, 1, -1, 2, -2, 1/2, -1/2 and infinity (the first n - 1 of them):
//   A^T[j][i] = p_i^j,  G[i][k] = p_i^k / prod_{q != p_i} (p_i - q),
//   row i of B^T = the coefficients of prod_{q != p_i} (x - q),
// and for infinity the last column of A^T and row of G pick the highest
// power, the last row of B^T holds prod_q (x - q). m is 4 for 3x3 and 5x5
// kernels (n = 6, 8), so tiles stay at n <= 8 where float keeps the result
// within a few 1e-6 of the direct sum (tests/unit/test_conv2d.cpp).
//
// Layout (channels innermost, as core/shape.hpp): a chunk's rows are cut
// into tiles_h x tiles_w tiles each, tile t = row * tiles + ty * tiles_w + tx;
// the transformed tiles live as n*n planes, V[xi] at v + xi * plane, with
// tile t's C values at t * C in the plane (plane = T * C for T tiles).
#pragma once
#include <cstddef>

#include "mpitrain/core/shape.hpp"
#include "mpitrain/nn/im2col.hpp"

namespace mpitrain {

namespace winograd_detail {
// The geometry the tile loops need, as plain values.
struct TileGeo {
  int m, n, c, o, h, w, oh, ow, pad_top, pad_left, tiles_h, tiles_w;
  long long in_row() const { return static_cast<long long>(h) * w * c; }
  long long out_row() const { return static_cast<long long>(oh) * ow * o; }
};
// A transform matrix (at most 8 x 8) as its non-zero entries row by row (B^T
// is half zeros): row a has entries [start[a], start[a + 1]) of idx/coef.
struct Sparse {
  int rows = 0, cols = 0;
  int start[9] = {};
  int idx[64] = {};
  float coef[64] = {};
};
}  // namespace winograd_detail

class Winograd {
 public:
  // Whether F(m x m, r x r) applies: stride 1 and a square kernel of 3 to 7.
  static bool applies(const Conv2DGeometry& g);
  Winograd(Shape in, int out_c, const Conv2DGeometry& g);

  int m() const { return geo_.m; }
  int n() const { return geo_.n; }
  int points() const { return geo_.n * geo_.n; }
  int tiles() const { return geo_.tiles_h * geo_.tiles_w; }  // per row (sample)

  // u (n*n, C, O) from w (r, r, C, O).
  void weights_to_u(const float* w, float* u) const;
  // dw (r, r, C, O) += (or =, when overwrite) the adjoint of weights_to_u on du.
  void du_to_dw(const float* du, float* dw, bool overwrite) const;
  // The tile transforms below take `tmp` of tile_tmp_floats() floats.
  // V planes of `rows` rows of x (rows, H, W, C); tiles count from x's first row.
  void input_to_v(const float* x, int rows, float* v, long long plane, float* tmp) const;
  // y (rows, OH, OW, O) = bias + the output transform of the Z planes.
  void z_to_output(const float* z, long long plane, const float* bias, int rows, float* y, float* tmp) const;
  // M planes (the transposed output transform) of dy (rows, OH, OW, O).
  void dy_to_m(const float* dy, int rows, float* mt, long long plane, float* tmp) const;
  // dx (rows, H, W, C) += the adjoint of input_to_v on the dV planes.
  void dv_to_dx(const float* dv, long long plane, int rows, float* dx, float* tmp) const;

  std::size_t tile_tmp_floats() const;

 private:
  winograd_detail::TileGeo geo_;
  // A^T (m, n) and A (n, m), B^T and B (n, n), G (n, r) and G^T (r, n).
  winograd_detail::Sparse at_, a_, bt_, b_, g_, gt_;
};

}  // namespace mpitrain

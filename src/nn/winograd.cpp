#include "mpitrain/nn/winograd.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

// V16 below is a GCC vector type, passed only between always-inline helpers
// inside one clone, so the ABI note about AVX-512 vectors does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace mpitrain {
namespace {

using winograd_detail::Sparse;
using winograd_detail::TileGeo;

// AVX-512, AVX2 and baseline clones of the per-tile loops (GCC and clang;
// clang 14 dispatches "arch=" clones wrongly, feature names correctly).
#if defined(__x86_64__)
#define MPITRAIN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MPITRAIN_CLONES
#endif

Sparse sparse_of(const float* mat, int rows, int cols) {
  Sparse s;
  s.rows = rows;
  s.cols = cols;
  int k = 0;
  for (int a = 0; a < rows; ++a) {
    s.start[a] = k;
    for (int i = 0; i < cols; ++i)
      if (mat[a * cols + i] != 0.0f) {
        s.idx[k] = i;
        s.coef[k++] = mat[a * cols + i];
      }
  }
  s.start[rows] = k;
  return s;
}

// 16 floats; in each clone the compiler lowers it to that clone's vectors
// (one zmm, two ymm or four xmm registers).
typedef float V16 __attribute__((vector_size(64)));

__attribute__((always_inline)) inline void load16(V16& v, const float* p) { std::memcpy(&v, p, sizeof v); }
__attribute__((always_inline)) inline void store16(float* p, const V16& v) { std::memcpy(p, &v, sizeof v); }

// out[a][b][:] (= or +=) sum_i sum_j L[a][i] R[b][j] in[i][j][:], L (na, ni),
// R (nb, nj) as Sparse; in vector (i, j) at in + (i * nj + j) * in_stride,
// out vector (a, b) at out + (a * nb + b) * out_stride, each `len` floats.
// 16 channels at a time in registers (one load of each input, one store of
// each output); the channels past a multiple of 16 one at a time. Inlined
// into each clone, so it compiles for that clone's instruction set.
__attribute__((always_inline)) inline void two_sided(const Sparse& L, const Sparse& R, const float* in,
                                                     long long in_stride, float* out, long long out_stride, int len,
                                                     bool accumulate) {
  const int na = L.rows, ni = L.cols, nb = R.rows, nj = R.cols;
  int q = 0;
  for (; q + 16 <= len; q += 16) {
    V16 t[8][8];  // t[a][j] = sum_i L[a][i] in[i][j]
    for (int j = 0; j < nj; ++j) {
      V16 x[8];
      for (int i = 0; i < ni; ++i) load16(x[i], in + (i * nj + j) * in_stride + q);
      for (int a = 0; a < na; ++a) {
        V16 acc = {};
        for (int e = L.start[a]; e < L.start[a + 1]; ++e) acc += L.coef[e] * x[L.idx[e]];
        t[a][j] = acc;
      }
    }
    for (int a = 0; a < na; ++a)
      for (int b = 0; b < nb; ++b) {
        float* d = out + (a * nb + b) * out_stride + q;
        V16 acc = {};
        if (accumulate) load16(acc, d);
        for (int e = R.start[b]; e < R.start[b + 1]; ++e) acc += R.coef[e] * t[a][R.idx[e]];
        store16(d, acc);
      }
  }
  for (; q < len; ++q) {
    float t[8][8];
    for (int a = 0; a < na; ++a)
      for (int j = 0; j < nj; ++j) {
        float acc = 0.0f;
        for (int e = L.start[a]; e < L.start[a + 1]; ++e) acc += L.coef[e] * in[(L.idx[e] * nj + j) * in_stride + q];
        t[a][j] = acc;
      }
    for (int a = 0; a < na; ++a)
      for (int b = 0; b < nb; ++b) {
        float* d = out + (a * nb + b) * out_stride + q;
        float acc = accumulate ? *d : 0.0f;
        for (int e = R.start[b]; e < R.start[b + 1]; ++e) acc += R.coef[e] * t[a][R.idx[e]];
        *d = acc;
      }
  }
}

// The n x n (or m x m) window of an image (rows of w pixels, `ch` channels)
// whose top-left pixel is (y0, x0), zeros outside the image, into patch.
__attribute__((always_inline)) inline void read_window(const float* img, int h, int w, int ch, int y0, int x0, int size,
                                                       float* patch) {
  const int jlo = std::clamp(-x0, 0, size), jhi = std::clamp(w - x0, jlo, size);
  for (int i = 0; i < size; ++i) {
    float* __restrict p = patch + static_cast<long long>(i) * size * ch;
    const int iy = y0 + i;
    if (iy < 0 || iy >= h) {
      std::fill(p, p + static_cast<long long>(size) * ch, 0.0f);
      continue;
    }
    std::fill(p, p + static_cast<long long>(jlo) * ch, 0.0f);
    if (jhi > jlo) {
      const float* __restrict s = img + (static_cast<long long>(iy) * w + x0 + jlo) * ch;  // inside the image
      const long long count = static_cast<long long>(jhi - jlo) * ch;
      for (long long q = 0; q < count; ++q) p[jlo * ch + q] = s[q];
    }
    std::fill(p + static_cast<long long>(jhi) * ch, p + static_cast<long long>(size) * ch, 0.0f);
  }
}

// Calls f(row, ty, tx, t) for every tile of `rows` rows, t counting from 0.
// f is an always-inline lambda, so it compiles inside the calling clone.
template <class F>
__attribute__((always_inline)) inline void for_tiles(const TileGeo& g, int rows, F&& f) {
  long long t = 0;
  for (int row = 0; row < rows; ++row)
    for (int ty = 0; ty < g.tiles_h; ++ty)
      for (int tx = 0; tx < g.tiles_w; ++tx, ++t) f(row, ty, tx, t);
}

MPITRAIN_CLONES void input_to_v_impl(const TileGeo& g, const Sparse& bt, const float* x, int rows, float* v,
                                     long long plane, float* tmp) {
  float* patch = tmp;
  for_tiles(g, rows, [&](int row, int ty, int tx, long long t) __attribute__((always_inline)) {
    read_window(x + row * g.in_row(), g.h, g.w, g.c, ty * g.m - g.pad_top, tx * g.m - g.pad_left, g.n, patch);
    two_sided(bt, bt, patch, g.c, v + t * g.c, plane, g.c, false);
  });
}

MPITRAIN_CLONES void z_to_output_impl(const TileGeo& g, const Sparse& at, const float* z, long long plane,
                                      const float* bias, int rows, float* y, float* tmp) {
  float* block = tmp;
  for_tiles(g, rows, [&](int row, int ty, int tx, long long t) __attribute__((always_inline)) {
    two_sided(at, at, z + t * g.o, plane, block, g.o, g.o, false);
    for (int i = 0; i < g.m && ty * g.m + i < g.oh; ++i)
      for (int j = 0; j < g.m && tx * g.m + j < g.ow; ++j) {
        float* __restrict d = y + row * g.out_row() + (static_cast<long long>(ty * g.m + i) * g.ow + tx * g.m + j) * g.o;
        const float* __restrict s = block + (i * g.m + j) * g.o;
        for (int q = 0; q < g.o; ++q) d[q] = s[q] + bias[q];
      }
  });
}

MPITRAIN_CLONES void dy_to_m_impl(const TileGeo& g, const Sparse& a, const float* dy, int rows, float* mt,
                                  long long plane, float* tmp) {
  float* patch = tmp;
  for_tiles(g, rows, [&](int row, int ty, int tx, long long t) __attribute__((always_inline)) {
    read_window(dy + row * g.out_row(), g.oh, g.ow, g.o, ty * g.m, tx * g.m, g.m, patch);
    two_sided(a, a, patch, g.o, mt + t * g.o, plane, g.o, false);
  });
}

MPITRAIN_CLONES void dv_to_dx_impl(const TileGeo& g, const Sparse& b, const float* dv, long long plane, int rows,
                                   float* dx, float* tmp) {
  float* block = tmp;
  for_tiles(g, rows, [&](int row, int ty, int tx, long long t) __attribute__((always_inline)) {
    two_sided(b, b, dv + t * g.c, plane, block, g.c, g.c, false);
    const int y0 = ty * g.m - g.pad_top, x0 = tx * g.m - g.pad_left;
    for (int i = std::max(0, -y0); i < g.n && y0 + i < g.h; ++i)
      for (int j = std::max(0, -x0); j < g.n && x0 + j < g.w; ++j) {
        float* __restrict d = dx + row * g.in_row() + (static_cast<long long>(y0 + i) * g.w + x0 + j) * g.c;
        const float* __restrict s = block + (i * g.n + j) * g.c;
        for (int q = 0; q < g.c; ++q) d[q] += s[q];
      }
  });
}

MPITRAIN_CLONES void weights_impl(const Sparse& L, const float* in, float* out, int len, bool accumulate) {
  two_sided(L, L, in, len, out, len, len, accumulate);
}

double power(double p, int k) {
  double v = 1.0;
  for (int i = 0; i < k; ++i) v *= p;
  return v;
}

}  // namespace

bool Winograd::applies(const Conv2DGeometry& g) { return g.stride == 1 && g.kh == g.kw && g.kh >= 3 && g.kh <= 7; }

Winograd::Winograd(Shape in, int out_c, const Conv2DGeometry& g) {
  const int r = g.kh, m = std::min(4, 9 - r), n = m + r - 1;  // n <= 8: F(4,3), F(4,5), F(3,6), F(2,7)
  geo_ = TileGeo{m, n, in.c, out_c, in.h, in.w, g.out_h, g.out_w, g.pad_top, g.pad_left,
                 (g.out_h + m - 1) / m, (g.out_w + m - 1) / m};
  static constexpr double kPoints[] = {0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5};
  const int finite = n - 1;
  std::vector<double> at(static_cast<size_t>(m * n), 0.0), gm(static_cast<size_t>(n * r), 0.0),
      bt(static_cast<size_t>(n * n), 0.0);
  // Coefficients (ascending powers) of prod over the finite points except `skip`.
  auto product = [&](int skip) {
    std::vector<double> c{1.0};
    for (int q = 0; q < finite; ++q) {
      if (q == skip) continue;
      std::vector<double> next(c.size() + 1, 0.0);
      for (size_t k = 0; k < c.size(); ++k) {
        next[k + 1] += c[k];
        next[k] -= kPoints[q] * c[k];
      }
      c = next;
    }
    return c;
  };
  for (int i = 0; i < finite; ++i) {
    const double p = kPoints[i];
    double f = 1.0;
    for (int q = 0; q < finite; ++q)
      if (q != i) f *= p - kPoints[q];
    for (int j = 0; j < m; ++j) at[j * n + i] = power(p, j);
    for (int k = 0; k < r; ++k) gm[i * r + k] = power(p, k) / f;
    const std::vector<double> c = product(i);
    for (size_t k = 0; k < c.size(); ++k) bt[i * n + k] = c[k];
  }
  at[(m - 1) * n + (n - 1)] = 1.0;
  gm[(n - 1) * r + (r - 1)] = 1.0;
  const std::vector<double> c = product(-1);
  for (size_t k = 0; k < c.size(); ++k) bt[(n - 1) * n + k] = c[k];

  // Each matrix in float, as it is and transposed, then as its non-zero entries.
  auto sparse = [](const std::vector<double>& v, int rows, int cols, bool transposed) {
    std::vector<float> f(v.size());
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) f[transposed ? j * rows + i : i * cols + j] = static_cast<float>(v[i * cols + j]);
    return transposed ? sparse_of(f.data(), cols, rows) : sparse_of(f.data(), rows, cols);
  };
  at_ = sparse(at, m, n, false);
  a_ = sparse(at, m, n, true);
  bt_ = sparse(bt, n, n, false);
  b_ = sparse(bt, n, n, true);
  g_ = sparse(gm, n, r, false);
  gt_ = sparse(gm, n, r, true);
}

std::size_t Winograd::tile_tmp_floats() const {
  return static_cast<std::size_t>(geo_.n) * geo_.n * std::max(geo_.c, geo_.o);
}

void Winograd::weights_to_u(const float* w, float* u) const {
  weights_impl(g_, w, u, geo_.c * geo_.o, false);
}

void Winograd::du_to_dw(const float* du, float* dw, bool overwrite) const {
  weights_impl(gt_, du, dw, geo_.c * geo_.o, !overwrite);
}

void Winograd::input_to_v(const float* x, int rows, float* v, long long plane, float* tmp) const {
  input_to_v_impl(geo_, bt_, x, rows, v, plane, tmp);
}

void Winograd::z_to_output(const float* z, long long plane, const float* bias, int rows, float* y, float* tmp) const {
  z_to_output_impl(geo_, at_, z, plane, bias, rows, y, tmp);
}

void Winograd::dy_to_m(const float* dy, int rows, float* mt, long long plane, float* tmp) const {
  dy_to_m_impl(geo_, a_, dy, rows, mt, plane, tmp);
}

void Winograd::dv_to_dx(const float* dv, long long plane, int rows, float* dx, float* tmp) const {
  dv_to_dx_impl(geo_, b_, dv, plane, rows, dx, tmp);
}

}  // namespace mpitrain

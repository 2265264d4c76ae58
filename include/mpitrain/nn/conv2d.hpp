// 2-D convolution as im2col + one sgemm over the whole chunk (Caffe's
// layout idea, channels innermost as in core/shape.hpp; nn/im2col):
//
//   cols (N, K)  N = R*OH*OW output pixels, K = KH*KW*C; row n holds the
//                input patch under output pixel n, (kh, kw, c) order, zeros
//                where the patch leaves the (padded) image
//   y (N, O)   = cols . W (K, O) + b      -- y is already (R, OH, OW, O), NHWC
//   dW (K, O) += cols^T . dy              -- one sgemm
//   dcols      = dy . W^T, scattered back -- col2im: dx (R, H, W, C)
//
// So a convolution is a Dense layer over patches: the same sgemm shapes, the
// same fused activation. The cols of the last forward are kept (scratch,
// sized once for the model's capacity) for the weight gradient; the input
// gradient goes through dcols kInputGradRows rows at a time (fixed scratch),
// so its buffer stays in cache for col2im and costs no capacity-sized memory.
//
// Or, for stride 1 and square kernels of 3 to 7 (nn/winograd), Winograd's
// F(4x4, 5x5) / F(4x4, 3x3): n*n sgemm calls per pass over the transformed
// tiles of a block of rows (about kWinogradBlockTiles tiles, so the
// transformed block stays in cache), 6.25x fewer multiplications than
// im2col for 5x5. Backward recomputes each block's transforms instead of
// keeping them, so the layer needs no scratch per row. Blocks are counted
// within units (nn/pass.hpp).
#pragma once
#include <optional>
#include <string>

#include "mpitrain/nn/activation.hpp"
#include "mpitrain/nn/im2col.hpp"
#include "mpitrain/nn/layer.hpp"
#include "mpitrain/nn/winograd.hpp"

namespace mpitrain {

enum class ConvAlgorithm { kIm2col, kWinograd };

// What `algo=auto` picks: Winograd where it applies (Winograd::applies) and
// the input has at least 8 channels (below that its sgemm calls have K < 8
// and im2col's K = KH*KW*C is the better shape); im2col otherwise.
ConvAlgorithm auto_conv_algorithm(Shape in, const Conv2DGeometry& g);

class Conv2D final : public Layer {
 public:
  // Parameters "<name>/W" (KH, KW, C, O) and "<name>/b" (O). He-normal init.
  // kWinograd requires Winograd::applies(g) (the registry checks it first).
  Conv2D(std::string name, Shape in, int out_channels, const Conv2DGeometry& g,
         FusedActivation act = FusedActivation::kNone, ConvAlgorithm algo = ConvAlgorithm::kIm2col);
  ConvAlgorithm algorithm() const { return wino_ ? ConvAlgorithm::kWinograd : ConvAlgorithm::kIm2col; }
  std::string kind() const override { return "conv"; }
  std::string name() const override;
  std::string method() const override;
  const Conv2DGeometry& geometry() const { return g_; }
  FusedActivation fused_activation() const { return act_; }
  void register_params(Arena& arena) override;
  void bind(Arena& arena) override;
  void init(Rng& rng) override;
  static constexpr int kInputGradRows = 16;
  static constexpr int kWinogradBlockTiles = 96;
  std::size_t scratch_bytes_per_row() const override;
  std::size_t scratch_bytes_fixed() const override;
  void bind_scratch(void* scratch, int capacity_rows) override;
  void forward(const float* x, float* y, int rows) override;
  void backward_params(const float* x, const float* y, float* dy, int rows) override;
  void backward_input(const float* x, const float* y, const float* dy, float* dx, int rows) override;
  double forward_flops_per_sample() const override;
  double param_count() const override;
  std::vector<GemmShape> gemm_shapes(int rows, bool input_grad) const override;

 private:
  long long pixels() const { return static_cast<long long>(g_.out_h) * g_.out_w; }
  long long patch() const { return static_cast<long long>(g_.kh) * g_.kw * in_shape().c; }
  // Winograd: transformed values per row of the V (input) and Z/M (output) planes.
  long long v_per_row() const { return static_cast<long long>(wino_->tiles()) * wino_->points() * in_shape().c; }
  long long z_per_row() const { return static_cast<long long>(wino_->tiles()) * wino_->points() * out_c_; }
  int block_rows() const;
  // f(first row, rows, first block of its unit, last block of its unit, unit)
  template <class F>
  void for_blocks(int rows, F&& f) const;
  void forward_winograd(const float* x, float* y, int rows);
  void backward_params_winograd(const float* x, float* dy, const float* y, int rows);
  void backward_input_winograd(const float* dy, float* dx, int rows);

  std::string name_;
  int out_c_;
  Conv2DGeometry g_;
  FusedActivation act_;
  long long w_offset_ = 0, b_offset_ = 0;
  float *w_ = nullptr, *b_ = nullptr, *dw_ = nullptr, *db_ = nullptr;
  float* cols_ = nullptr;   // (capacity*OH*OW, K) from the last forward
  float* dcols_ = nullptr;  // (kInputGradRows*OH*OW, K) in backward_input
  std::optional<Winograd> wino_;
  float* u_ = nullptr;      // U (n*n, C, O) of the last forward's weights
  float* du_ = nullptr;     // dU (n*n, C, O)
  float* vb_ = nullptr;     // a block's V (or dV) planes, (block tiles, C) each
  float* zb_ = nullptr;     // a block's Z (or M) planes, (block tiles, O) each
  float* ttmp_ = nullptr;   // Winograd::tile_tmp_floats()
};

}  // namespace mpitrain

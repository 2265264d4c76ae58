// The layer interface of a sequential model. Dimension key: R = rows of the
// current shard (or micro-batch); a row is one sample of in_shape().size()
// floats in (forward input) and out_shape().size() floats out, channels
// innermost (nn/shape.hpp).
//
// Every layer has forward (x -> y) and backward (dy -> dx, and the parameter
// gradient accumulated into the arena), llm.c / mlpack style. Buffers are
// owned by the model and sized once: the model asks each layer for the
// scratch bytes it needs per row and in all (im2col columns) and hands
// it a region for its capacity, so layers never allocate per step.
//
// A pass (nn/pass.hpp) tells a layer what it needs beyond its rows:
// training or evaluation, where its rows sit in the global batch (dropout
// masks are drawn per global row), and how to sum statistics over the whole
// global batch (batch norm).
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "mpitrain/core/arena.hpp"
#include "mpitrain/core/clock.hpp"
#include "mpitrain/core/rng.hpp"
#include "mpitrain/nn/pass.hpp"
#include "mpitrain/core/shape.hpp"

namespace mpitrain {

// One sgemm of a pass, row-major: C (m, n) = op(A) (m, k) . op(B) (k, n).
struct GemmShape {
  bool trans_a = false, trans_b = false;
  long long m = 0, n = 0, k = 0;
};

class Layer {
 public:
  virtual ~Layer() = default;
  // The name in the header's layer table and in parameter names ("conv0").
  virtual std::string name() const = 0;
  // The registry's kind ("conv", "dense", "maxpool", "batchnorm", ...).
  virtual std::string kind() const { return "other"; }
  // How the layer computes, where it has a choice (the layer table's last
  // column): "im2col", "winograd F(4x4,5x5)"; empty otherwise.
  virtual std::string method() const { return ""; }
  Shape in_shape() const { return in_; }
  Shape out_shape() const { return out_; }
  long long in_width() const { return in_.size(); }
  long long out_width() const { return out_.size(); }

  // Registers parameters in the arena (before Arena::allocate), each with the
  // flags the update rules go by (core/arena.hpp).
  virtual void register_params(Arena&) {}
  // Binds the layer to the allocated arena.
  virtual void bind(Arena&) {}
  virtual void init(Rng&) {}
  // Scratch the layer keeps from forward to backward, per row; the model
  // allocates capacity rows of it, plus scratch_bytes_fixed(), once and calls
  // bind_scratch.
  virtual std::size_t scratch_bytes_per_row() const { return 0; }
  virtual std::size_t scratch_bytes_fixed() const { return 0; }
  virtual void bind_scratch(void* /*scratch*/, int /*capacity_rows*/) {}
  // True for layers whose forward and backward sum over the whole global
  // batch (batch norm): every rank must run them, also with no rows, and a
  // shard must go through them in one piece.
  virtual bool uses_batch_statistics() const { return false; }

  // x (R, in) -> y (R, out)
  virtual void forward(const float* x, float* y, int rows) = 0;
  // Given x (R, I), y (R, O) from forward and dy (R, O): writes dx (R, I)
  // unless dx is null, and adds parameter gradients into the arena.
  // dy is scratch: a layer may overwrite it (a fused Dense turns it into the
  // pre-activation gradient in place, so no extra buffer is needed); callers
  // must not read it afterwards. dy and dx must not alias each other, x or y.
  void backward(const float* x, const float* y, float* dy, float* dx, int rows) {
    backward_params(x, y, dy, rows);
    if (dx) backward_input(x, y, dy, dx, rows);
  }
  // Backward in two halves (mlpack's "gradient" and "backward"): the
  // parameter gradients first (turning dy into the pre-activation gradient
  // where an activation is fused), then the input gradient from that dy. The
  // model hands a layer's finished gradients to the all-reduce in between,
  // so they travel while the input gradient is computed.
  virtual void backward_params(const float* /*x*/, const float* /*y*/, float* /*dy*/, int /*rows*/) {}
  virtual void backward_input(const float* x, const float* y, const float* dy, float* dx, int rows) = 0;
  // Multiply-adds x2 per sample of forward (backward is about twice this).
  virtual double forward_flops_per_sample() const { return 0.0; }
  // The sgemm calls of forward, the weight gradient and (if input_grad) the
  // input gradient over `rows` rows: what `mpitrain bench` times alone as
  // the ceiling of the layer's compute.
  virtual std::vector<GemmShape> gemm_shapes(int /*rows*/, bool /*input_grad*/) const { return {}; }
  // Number of parameters (trainable ones), known before the arena exists.
  virtual double param_count() const { return 0.0; }

  // The pass the model runs (set once by the model; a layer on its own runs
  // a training pass on local rows).
  void set_pass(const Pass* pass) { pass_ = pass; }
  // A profile (mpitrain bench): when set, layers that wrap their sgemm calls
  // in timed_gemm add those calls' seconds here (Conv2D does).
  void set_gemm_clock(double* seconds) { gemm_clock_ = seconds; }

 protected:
  Layer(Shape in, Shape out) : in_(in), out_(out) {}
  const Pass& pass() const { return pass_ ? *pass_ : default_pass_; }
  template <class F>
  void timed_gemm(F&& gemm_calls) const {
    if (!gemm_clock_) return gemm_calls();
    const double t0 = now_s();
    gemm_calls();
    *gemm_clock_ += now_s() - t0;
  }

 private:
  Shape in_, out_;
  const Pass* pass_ = nullptr;
  double* gemm_clock_ = nullptr;
  static inline const Pass default_pass_{};
};

}  // namespace mpitrain

// A sequential model built from a --model spec (nn/model_spec.hpp): the
// layers, the parameter/gradient arena, the activation buffers and each
// layer's scratch, all sized once for `capacity_rows`.
// Dimension key: R rows (<= capacity), W_i width of activation i.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "mpitrain/core/arena.hpp"
#include "mpitrain/core/tensor.hpp"
#include "mpitrain/nn/activation.hpp"
#include "mpitrain/nn/layer.hpp"
#include "mpitrain/nn/model_spec.hpp"

namespace mpitrain {

class Model {
 public:
  Model(const std::string& spec, Activation activation, int capacity_rows);

  // Initialises all parameters from the seed (identical on every rank).
  void init(std::uint64_t seed);

  Shape input_shape() const { return input_shape_; }
  long long input_width() const { return input_shape_.size(); }
  long long output_width() const { return layers_.back()->out_width(); }
  int capacity_rows() const { return capacity_; }
  const std::string& spec() const { return spec_; }
  long long param_count() const;  // trainable parameters (excludes running statistics and padding)
  double forward_flops_per_sample() const;
  // FLOPs per sample of layer i in a training step: forward, the parameter
  // gradient and the input gradient, each of forward's size, except that the
  // first layer computes no input gradient (backward skips it).
  double train_flops_per_sample(size_t layer) const;
  double train_flops_per_sample() const;  // summed over the layers
  ModelSummary summary() const;
  // A layer sums over the global batch (batch norm): every rank must run
  // forward and backward each step, with its whole shard in one chunk.
  bool uses_batch_statistics() const { return batch_statistics_; }

  // The pass the layers see (nn/pass.hpp); set it before forward.
  Pass& pass() { return pass_; }

  // Input buffer (capacity, W_0): the reader writes a shard here.
  float* input() { return acts_.front().data(); }
  // Runs forward over `rows` rows of `x` (R, W_0), by default input(); x must
  // stay valid until backward(). Returns the output (R, W_last).
  float* forward(int rows, const float* x = nullptr);
  // Gradient w.r.t. the output (R, W_last) to fill before backward(); may be
  // the output buffer itself (the fused losses allow it).
  float* output_grad() { return grad_a_.data(); }
  // Called after each layer's parameter gradients, before its input
  // gradient, with the layer's index: from then on that layer's gradients
  // are final for this pass, so a gradient reducer can start sending them
  // while the rest of backward computes.
  class BackwardHook {
   public:
    virtual ~BackwardHook() = default;
    // Gradients in the arena from offset `ready_from` (in floats) to the end
    // are final once layer `layer_index` is done.
    virtual void after_layer(size_t layer_index, long long ready_from) = 0;
  };
  // Backward in the reverse order of forward; adds into arena().grads().
  void backward(int rows, BackwardHook* hook = nullptr);

  // A profile (mpitrain bench): when set, forward and backward add each
  // layer's seconds into times[i] (sized to the layer count), and the
  // layers that time their sgemm calls (Layer::timed_gemm) add those.
  struct LayerSeconds {
    double forward = 0, backward = 0, sgemm = 0;
  };
  void set_layer_timer(std::vector<LayerSeconds>* times);

  Arena& arena() { return arena_; }
  const Arena& arena() const { return arena_; }
  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }

 private:
  std::string spec_;
  Shape input_shape_;
  int capacity_;
  std::vector<std::unique_ptr<Layer>> layers_;
  bool batch_statistics_ = false;
  Pass pass_;
  Arena arena_;
  std::vector<AlignedBuffer<float>> acts_;  // acts_[i]: input of layer i (capacity, width)
  std::vector<AlignedBuffer<float>> scratch_;  // per layer, capacity rows of its scratch (may be empty)
  std::vector<long long> param_begin_;      // param_begin_[i]: arena offset of layer i's first parameter
  const float* input_ = nullptr;            // the last forward's input (acts_[0] or the caller's)
  AlignedBuffer<float> grad_a_, grad_b_;    // ping-pong (capacity, max width)
  std::vector<LayerSeconds>* timer_ = nullptr;
};

}  // namespace mpitrain

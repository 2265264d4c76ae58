// A sequential model built from a spec such as "784-256-128-10": Dense
// layers of those widths with the chosen activation between them (none after
// the last; the loss applies softmax). The model owns the parameter/gradient
// arena and the activation buffers, sized once for `capacity_rows`.
// Dimension key: R rows (<= capacity), W_i width of activation i.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "mpitrain/arena.hpp"
#include "mpitrain/layers.hpp"

namespace mpitrain {

// Parses "784-256-10" into widths; UserError on a malformed spec.
std::vector<int> parse_model_spec(const std::string& spec);

class Model {
 public:
  Model(const std::string& spec, Activation activation, int capacity_rows);

  // Initialises all parameters from the seed (identical on every rank).
  void init(std::uint64_t seed);

  int input_width() const { return widths_.front(); }
  int output_width() const { return widths_.back(); }
  int capacity_rows() const { return capacity_; }
  const std::string& spec() const { return spec_; }
  long long param_count() const;  // real parameters (excludes alignment padding)
  double forward_flops_per_sample() const;

  // Input buffer (capacity, W_0): the reader writes a shard here.
  float* input() { return acts_.front().data(); }
  // Runs forward over `rows` rows of input(); returns the output (R, W_last).
  float* forward(int rows);
  // Gradient w.r.t. the output (R, W_last) to fill before backward(); may be
  // the output buffer itself (the fused losses allow it).
  float* output_grad() { return grad_a_.data(); }
  // Backward in the reverse order of forward; adds into arena().grads().
  void backward(int rows);

  Arena& arena() { return arena_; }
  const Arena& arena() const { return arena_; }
  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }

 private:
  std::string spec_;
  std::vector<int> widths_;
  int capacity_;
  std::vector<std::unique_ptr<Layer>> layers_;
  Arena arena_;
  std::vector<AlignedBuffer<float>> acts_;  // acts_[i]: input of layer i (capacity, width)
  AlignedBuffer<float> grad_a_, grad_b_;    // ping-pong (capacity, max width)
};

}  // namespace mpitrain

// One flat parameter buffer and one flat gradient buffer for the whole model.
// Each layer's W and b are views into them (mlpack / llm.c style), so the
// whole gradient is one contiguous all-reduce and the optimizer runs on flat
// arrays. The gradient buffer has a few extra float slots before the
// gradients ("stats") that ride along in the same all-reduce: loss sum,
// correct count, ... (DESIGN.md, data flow step 4). They sit in front so
// they travel with the first layer's gradients, which backward finishes
// last: the bucketed all-reduce sends that bucket when the stats are known.
#pragma once
#include <string>
#include <vector>

#include "mpitrain/core/tensor.hpp"

namespace mpitrain {

// What the update rules may do with a tensor. Layers declare these when they
// register a tensor, so no rule recognises a tensor by its name.
struct ParamFlags {
  bool trainable = true;    // false: state the layer updates itself (batch-norm running statistics);
                            // the optimizers skip it, its gradient stays zero
  bool decay = true;        // weight decay applies (LARS/LAMB with --exclude-bias skip it when false)
  bool trust_ratio = true;  // LARS/LAMB layer-wise trust ratio (with --exclude-bias: ratio 1 when false)
};
// Biases, batch-norm scales and shifts: no decay, no trust ratio under --exclude-bias.
inline constexpr ParamFlags kNoDecayParam{true, false, false};
// Running statistics: checkpointed with the parameters, never updated by an optimizer.
inline constexpr ParamFlags kStateParam{false, false, false};

struct ParamView {
  std::string name;     // e.g. "dense0/W"
  std::vector<long long> shape;
  long long offset = 0;  // in floats, into the arena
  long long size = 0;
  ParamFlags flags;
};

class Arena {
 public:
  static constexpr int kStatSlots = 16;  // 64 bytes: the gradients stay 64-byte aligned

  // Registers a parameter of the given shape; returns its offset in floats.
  long long add(const std::string& name, std::vector<long long> shape, ParamFlags flags = {});
  // Allocates both buffers (zeroed); call once after all add().
  void allocate();

  long long param_count() const { return count_; }
  float* params() { return params_.data(); }
  const float* params() const { return params_.data(); }
  float* grads() { return grads_.data() + kStatSlots; }
  const float* grads() const { return grads_.data() + kStatSlots; }
  float* stats() { return grads_.data(); }
  // The stat slots followed by the gradients: what the all-reduce sums.
  float* reduce_buffer() { return grads_.data(); }
  long long reduce_count() const { return count_ + kStatSlots; }
  void zero_grads() { grads_.zero(); }
  const std::vector<ParamView>& views() const { return views_; }

 private:
  std::vector<ParamView> views_;
  long long count_ = 0;
  AlignedBuffer<float> params_, grads_;
};

}  // namespace mpitrain

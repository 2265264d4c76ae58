// Private to src/optim/: what the four optimizers (sgd.cpp, adamw.cpp,
// lars.cpp, lamb.cpp) share. The base class that owns the arena-shaped state
// buffers, the helpers of the update rules (bias test, momentum correction,
// trust-ratio clip, Adam moments), and one factory per optimizer for
// make_optimizer (optimizer.cpp).
//
// Updates iterate over the parameter views only, never over the padding
// between them, so padding stays zero and never enters a norm. Every rank
// runs the same code on the same reduced gradient, so the result is
// identical on all ranks.
#pragma once
#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "mpitrain/core/arena.hpp"
#include "mpitrain/core/tensor.hpp"
#include "mpitrain/optim/optimizer.hpp"

namespace mpitrain::optim_detail {

// --exclude-bias (LARS, LAMB): tensors their layer declared without weight
// decay or trust ratio (biases, batch-norm scale and shift) get neither.
inline bool excluded_from_trust(const OptimizerOptions& o, const ParamView& view) {
  return o.exclude_bias && !view.flags.trust_ratio;
}
inline double decay_of(const OptimizerOptions& o, const ParamView& view) {
  return o.exclude_bias && !view.flags.decay ? 0.0 : o.weight_decay;
}

// Goyal et al. 2017, eq. (10): with the rate inside the velocity, a rate
// change must rescale the old velocity by lr / previous_lr, or the old
// velocity keeps moving at the old rate. No correction on the first step.
inline double momentum_scale(const OptimizerOptions& o, double previous_lr, double lr) {
  return (o.momentum_correction && previous_lr > 0) ? lr / previous_lr : 1.0;
}

// Trust ratios (LARS, LAMB) are clipped from above when trust_clip > 0.
inline double clip_ratio(const OptimizerOptions& o, double ratio) {
  return o.trust_clip > 0 ? std::min(ratio, o.trust_clip) : ratio;
}

// Bias-corrected Adam moments shared by AdamW and LAMB (Kingma & Ba 2015):
// updates m and v at index i and returns r = mhat / (sqrt(vhat) + eps).
struct AdamMoments {
  double b1, b2, eps, bias1, bias2;  // bias = 1 - beta^t

  AdamMoments(const OptimizerOptions& o, long long t)
      : b1(o.beta1), b2(o.beta2), eps(o.eps),
        bias1(1.0 - std::pow(o.beta1, static_cast<double>(t))),
        bias2(1.0 - std::pow(o.beta2, static_cast<double>(t))) {}

  double update(float& m, float& v, double g) const {
    m = static_cast<float>(b1 * m + (1.0 - b1) * g);
    v = static_cast<float>(b2 * v + (1.0 - b2) * g * g);
    return ratio(m, v);
  }
  double ratio(float m, float v) const { return (m / bias1) / (std::sqrt(v / bias2) + eps); }
};

// Common part: arena-sized, zeroed state buffers allocated once, and the
// check that step() gets the arena the optimizer was made for.
class ArenaOptimizer : public Optimizer {
 public:
  ArenaOptimizer(const OptimizerOptions& options, const Arena& arena, std::vector<std::string> names)
      : options_(options), count_(arena.param_count()), names_(std::move(names)) {
    for (size_t i = 0; i < names_.size(); ++i) buffers_.emplace_back(static_cast<size_t>(count_));
  }

  std::vector<std::pair<std::string, float*>> state_buffers() override {
    std::vector<std::pair<std::string, float*>> out;
    for (size_t i = 0; i < names_.size(); ++i) out.emplace_back(names_[i], buffers_[i].data());
    return out;
  }

  void step(Arena& arena, double lr) override {
    if (arena.param_count() != count_)
      throw std::logic_error("Optimizer::step: arena of " + std::to_string(arena.param_count()) +
                             " floats, optimizer made for " + std::to_string(count_));
    update(arena, lr);
    ++steps_;
    previous_lr_ = lr;
  }

 protected:
  virtual void update(Arena& arena, double lr) = 0;
  float* state(size_t i) { return buffers_[i].data(); }

  OptimizerOptions options_;

 private:
  long long count_;
  std::vector<std::string> names_;
  std::vector<AlignedBuffer<float>> buffers_;
};

// One factory per optimizer file, called by make_optimizer.
std::unique_ptr<Optimizer> make_sgd(const OptimizerOptions& options, const Arena& arena);
std::unique_ptr<Optimizer> make_adamw(const OptimizerOptions& options, const Arena& arena);
std::unique_ptr<Optimizer> make_lars(const OptimizerOptions& options, const Arena& arena);
std::unique_ptr<Optimizer> make_lamb(const OptimizerOptions& options, const Arena& arena);

}  // namespace mpitrain::optim_detail

// LARS, You, Gitman & Ginsburg 2017 (arXiv:1708.03888), Algorithm 1, per
// tensor: local lr = eta*||w|| / (||g|| + wd*||w||), then momentum as in SGD
// (with the momentum correction of Goyal et al. 2017, eq. 10). Biases can be
// excluded (ratio 1, no decay). Norms from core/vector_math, per element in
// double, stored back as float.
#include <memory>

#include "arena_optimizer.hpp"
#include "mpitrain/core/vector_math.hpp"

namespace mpitrain::optim_detail {
namespace {

class Lars final : public ArenaOptimizer {
 public:
  Lars(const OptimizerOptions& o, const Arena& a) : ArenaOptimizer(o, a, {"velocity"}) {}

 protected:
  void update(Arena& arena, double lr) override {
    const OptimizerOptions& o = options_;
    const double mc = o.momentum * momentum_scale(o, previous_lr_, lr);
    float* w = arena.params();
    const float* grad = arena.grads();
    float* vel = state(0);
    for (const ParamView& view : arena.views()) {
      if (!view.flags.trainable) continue;
      const bool excluded = excluded_from_trust(o, view);
      const double wd = decay_of(o, view);
      double ratio = 1.0;  // excluded biases: plain momentum SGD, no clip
      if (!excluded) {
        const double w_norm = l2_norm(w + view.offset, view.size);
        const double g_norm = l2_norm(grad + view.offset, view.size);
        if (w_norm > 0 && g_norm > 0) ratio = o.lars_eta * w_norm / (g_norm + wd * w_norm);
        ratio = clip_ratio(o, ratio);
      }
      const double scale = lr * ratio;
      for (long long i = view.offset; i < view.offset + view.size; ++i) {
        const double v = mc * vel[i] + scale * (grad[i] + wd * w[i]);
        vel[i] = static_cast<float>(v);
        w[i] = static_cast<float>(w[i] - v);
      }
    }
  }
};

}  // namespace

std::unique_ptr<Optimizer> make_lars(const OptimizerOptions& o, const Arena& arena) {
  return std::make_unique<Lars>(o, arena);
}

}  // namespace mpitrain::optim_detail

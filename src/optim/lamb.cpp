// LAMB, You et al. 2019 (arXiv:1904.00962), Algorithm 2, per tensor:
// u = r + wd*w with r the Adam ratio (Kingma & Ba 2015), then
// w -= lr * (||w|| / ||u||) * u. ||u|| is needed before the update, so u is
// formed twice (from the stored moments) instead of being kept in a scratch
// buffer. Biases can be excluded (ratio 1, no decay). Per element in double,
// stored back as float.
#include <cmath>
#include <memory>

#include "arena_optimizer.hpp"

namespace mpitrain::optim_detail {
namespace {

class Lamb final : public ArenaOptimizer {
 public:
  Lamb(const OptimizerOptions& o, const Arena& a) : ArenaOptimizer(o, a, {"adam_m", "adam_v"}) {}

 protected:
  void update(Arena& arena, double lr) override {
    const OptimizerOptions& o = options_;
    const AdamMoments adam(o, steps_ + 1);
    float* w = arena.params();
    const float* grad = arena.grads();
    float* mom = state(0);
    float* var = state(1);
    for (const ParamView& view : arena.views()) {
      if (!view.flags.trainable) continue;
      const bool excluded = excluded_from_trust(o, view);
      const double wd = decay_of(o, view);
      const long long end = view.offset + view.size;
      // ||w||^2 and ||u||^2 in the same pass as the moment update: one
      // serial double sum each (not core/vector_math, which sums in eight parts).
      double w_sq = 0, u_sq = 0;
      for (long long i = view.offset; i < end; ++i) {
        const double u = adam.update(mom[i], var[i], grad[i]) + wd * w[i];
        w_sq += static_cast<double>(w[i]) * w[i];
        u_sq += u * u;
      }
      double ratio = 1.0;  // excluded biases: plain Adam step, no clip
      if (!excluded) {
        if (w_sq > 0 && u_sq > 0) ratio = std::sqrt(w_sq) / std::sqrt(u_sq);
        ratio = clip_ratio(o, ratio);
      }
      const double scale = lr * ratio;
      for (long long i = view.offset; i < end; ++i) {
        const double u = adam.ratio(mom[i], var[i]) + wd * w[i];
        w[i] = static_cast<float>(w[i] - scale * u);
      }
    }
  }
};

}  // namespace

std::unique_ptr<Optimizer> make_lamb(const OptimizerOptions& o, const Arena& arena) {
  return std::make_unique<Lamb>(o, arena);
}

}  // namespace mpitrain::optim_detail

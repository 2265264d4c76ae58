// AdamW, Loshchilov & Hutter 2019 (arXiv:1711.05101): Adam's bias-corrected
// moments (Kingma & Ba 2015, arXiv:1412.6980) and decoupled weight decay on
// every tensor, w -= lr * (mhat / (sqrt(vhat) + eps) + wd*w). Per element in
// double, stored back as float.
#include <memory>

#include "arena_optimizer.hpp"

namespace mpitrain::optim_detail {
namespace {

class AdamW final : public ArenaOptimizer {
 public:
  AdamW(const OptimizerOptions& o, const Arena& a) : ArenaOptimizer(o, a, {"adam_m", "adam_v"}) {}

 protected:
  void update(Arena& arena, double lr) override {
    const AdamMoments adam(options_, steps_ + 1);
    const double wd = options_.weight_decay;
    float* w = arena.params();
    const float* grad = arena.grads();
    float* mom = state(0);
    float* var = state(1);
    for (const ParamView& view : arena.views()) {
      if (!view.flags.trainable) continue;
      for (long long i = view.offset; i < view.offset + view.size; ++i) {
        const double w_old = w[i];
        const double r = adam.update(mom[i], var[i], grad[i]);
        w[i] = static_cast<float>(w_old - lr * (r + wd * w_old));
      }
    }
  }
};

}  // namespace

std::unique_ptr<Optimizer> make_adamw(const OptimizerOptions& o, const Arena& arena) {
  return std::make_unique<AdamW>(o, arena);
}

}  // namespace mpitrain::optim_detail

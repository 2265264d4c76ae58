// SGD with momentum (heavy ball or Nesterov) in the form of Goyal et al. 2017
// (arXiv:1706.02677), the rate inside the velocity:
//   v = m*c*v + lr*g',  w -= v          (Nesterov: w -= m*v + lr*g')
// with c the momentum correction of eq. (10) and g' = g + wd*w (L2), or
// decoupled decay w -= lr*wd*w (Loshchilov & Hutter 2019, arXiv:1711.05101).
// With a constant rate this is PyTorch's SGD with v = lr * buf.
#include <memory>

#include "arena_optimizer.hpp"

namespace mpitrain::optim_detail {
namespace {

class Sgd final : public ArenaOptimizer {
 public:
  Sgd(const OptimizerOptions& o, const Arena& a) : ArenaOptimizer(o, a, {"velocity"}) {}

 protected:
  void update(Arena& arena, double lr) override {
    const OptimizerOptions& o = options_;
    const bool l2 = o.weight_decay_mode == WeightDecayMode::kL2;
    const double wd_grad = l2 ? o.weight_decay : 0.0;        // added to g
    const double wd_step = l2 ? 0.0 : lr * o.weight_decay;   // Loshchilov & Hutter: w -= lr*wd*w
    // Coefficients in double, the element loop in float: it runs on every
    // parameter every step, and float keeps it vectorised (docs/performance.md).
    const auto m = static_cast<float>(o.momentum);
    const auto mc = static_cast<float>(o.momentum * momentum_scale(o, previous_lr_, lr));
    const auto flr = static_cast<float>(lr);
    const auto fwd_grad = static_cast<float>(wd_grad);
    const auto fwd_step = static_cast<float>(wd_step);
    float* w = arena.params();
    const float* grad = arena.grads();
    float* vel = state(0);
    for (const ParamView& view : arena.views()) {
      if (!view.flags.trainable) continue;
      const long long end = view.offset + view.size;
      if (m == 0.0f) {
        for (long long i = view.offset; i < end; ++i) w[i] -= flr * (grad[i] + fwd_grad * w[i]) + fwd_step * w[i];
      } else if (o.nesterov) {
        for (long long i = view.offset; i < end; ++i) {
          const float step_g = flr * (grad[i] + fwd_grad * w[i]);  // lr*g'
          vel[i] = mc * vel[i] + step_g;
          w[i] -= m * vel[i] + step_g + fwd_step * w[i];
        }
      } else {
        for (long long i = view.offset; i < end; ++i) {
          vel[i] = mc * vel[i] + flr * (grad[i] + fwd_grad * w[i]);
          w[i] -= vel[i] + fwd_step * w[i];
        }
      }
    }
  }
};

}  // namespace

std::unique_ptr<Optimizer> make_sgd(const OptimizerOptions& o, const Arena& arena) {
  return std::make_unique<Sgd>(o, arena);
}

}  // namespace mpitrain::optim_detail

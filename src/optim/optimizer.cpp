// Optimizers on the flat arena (optim.hpp): SGD, AdamW, LARS, LAMB.
// Updates iterate over the parameter views only, never over the padding
// between them, so padding stays zero and never enters a norm. Arithmetic is
// per element in double, stored back as float; every rank runs the same code
// on the same reduced gradient, so the result is identical on all ranks.
#include "mpitrain/optim/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/number_text.hpp"
#include "mpitrain/core/tensor.hpp"
#include "mpitrain/core/vector_math.hpp"

namespace mpitrain {

namespace {

bool is_bias(const ParamView& view) { return view.name.ends_with("/b"); }

// Goyal et al. 2017, eq. (10): with the rate inside the velocity, a rate
// change must rescale the old velocity by lr / previous_lr, or the old
// velocity keeps moving at the old rate. No correction on the first step.
double momentum_scale(const OptimizerOptions& o, double previous_lr, double lr) {
  return (o.momentum_correction && previous_lr > 0) ? lr / previous_lr : 1.0;
}

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

// SGD in the form of Goyal et al. 2017 (the rate inside the velocity):
// v = m*c*v + lr*g', w -= v (Nesterov: w -= m*v + lr*g'). With a constant
// rate this is PyTorch's SGD with v = lr * buf.
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
    // parameter every step, and float keeps it vectorised (perf: the double
    // loop cost ~6% of a Fashion-MNIST step).
    const auto m = static_cast<float>(o.momentum);
    const auto mc = static_cast<float>(o.momentum * momentum_scale(o, previous_lr_, lr));
    const auto flr = static_cast<float>(lr);
    const auto fwd_grad = static_cast<float>(wd_grad);
    const auto fwd_step = static_cast<float>(wd_step);
    float* w = arena.params();
    const float* grad = arena.grads();
    float* vel = state(0);
    for (const ParamView& view : arena.views()) {
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

// AdamW, Loshchilov & Hutter 2019: decoupled decay on every tensor.
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
      for (long long i = view.offset; i < view.offset + view.size; ++i) {
        const double w_old = w[i];
        const double r = adam.update(mom[i], var[i], grad[i]);
        w[i] = static_cast<float>(w_old - lr * (r + wd * w_old));
      }
    }
  }
};

// Trust ratios are clipped from above when trust_clip > 0.
double clip_ratio(const OptimizerOptions& o, double ratio) {
  return o.trust_clip > 0 ? std::min(ratio, o.trust_clip) : ratio;
}

// LARS, You, Gitman & Ginsburg 2017 (arXiv:1708.03888), Algorithm 1, per
// tensor: local lr = eta*||w|| / (||g|| + wd*||w||), momentum as in SGD.
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
      const bool excluded = o.exclude_bias && is_bias(view);
      const double wd = excluded ? 0.0 : o.weight_decay;
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

// LAMB, You et al. 2019 (arXiv:1904.00962), Algorithm 2, per tensor:
// u = r + wd*w, w -= lr * (||w|| / ||u||) * u. ||u|| is needed before the
// update, so u is formed twice (from the stored moments) instead of being
// kept in a scratch buffer.
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
      const bool excluded = o.exclude_bias && is_bias(view);
      const double wd = excluded ? 0.0 : o.weight_decay;
      const long long end = view.offset + view.size;
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

void require(bool ok, const std::string& message) {
  if (!ok) throw UserError(message);
}

}  // namespace

OptimizerKind parse_optimizer(const std::string& name) {
  if (name == "sgd") return OptimizerKind::kSgd;
  if (name == "adamw") return OptimizerKind::kAdamW;
  if (name == "lars") return OptimizerKind::kLars;
  if (name == "lamb") return OptimizerKind::kLamb;
  throw UserError("unknown --optimizer '" + name + "': use sgd, adamw, lars or lamb");
}

const char* optimizer_name(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::kSgd: return "sgd";
    case OptimizerKind::kAdamW: return "adamw";
    case OptimizerKind::kLars: return "lars";
    case OptimizerKind::kLamb: return "lamb";
  }
  return "unknown";
}

WeightDecayMode parse_weight_decay_mode(const std::string& name) {
  if (name == "l2") return WeightDecayMode::kL2;
  if (name == "decoupled") return WeightDecayMode::kDecoupled;
  throw UserError("unknown --weight-decay-mode '" + name + "': use l2 or decoupled");
}

void check_optimizer_options(const OptimizerOptions& o) {
  // Every check also refuses NaN.
  require(std::isfinite(o.momentum) && o.momentum >= 0 && o.momentum < 1,
          "--momentum must be in [0, 1) (got " + shortest_text(o.momentum) + ")");
  require(std::isfinite(o.weight_decay) && o.weight_decay >= 0,
          "--weight-decay must be a finite number >= 0 (got " + shortest_text(o.weight_decay) + ")");
  require(std::isfinite(o.beta1) && o.beta1 >= 0 && o.beta1 < 1, "--beta1 must be in [0, 1)");
  require(std::isfinite(o.beta2) && o.beta2 >= 0 && o.beta2 < 1, "--beta2 must be in [0, 1)");
  require(std::isfinite(o.eps) && o.eps > 0, "--eps must be > 0");
  require(std::isfinite(o.lars_eta) && o.lars_eta > 0, "--lars-eta must be > 0");
  require(std::isfinite(o.trust_clip) && o.trust_clip >= 0, "--trust-clip must be >= 0 (0: no clip)");
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerOptions& o, const Arena& arena) {
  check_optimizer_options(o);
  switch (o.kind) {
    case OptimizerKind::kSgd: return std::make_unique<Sgd>(o, arena);
    case OptimizerKind::kAdamW: return std::make_unique<AdamW>(o, arena);
    case OptimizerKind::kLars: return std::make_unique<Lars>(o, arena);
    case OptimizerKind::kLamb: return std::make_unique<Lamb>(o, arena);
  }
  throw std::logic_error("make_optimizer: unknown OptimizerKind");
}

}  // namespace mpitrain

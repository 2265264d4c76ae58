// Optimizers run on the flat arena after the all-reduce. Every rank applies
// the same update to the same reduced gradient, so no broadcast is needed
// after start-up; per-layer norms (LARS, LAMB) are computed here, from the
// reduced gradient, identically on all ranks. State lives in arena-shaped
// buffers (plus a step count and the previous rate) so checkpoints are simple.
// A "layer" for trust ratios is one parameter tensor of the arena (W or b);
// biases are the tensors whose name ends in "/b".
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "mpitrain/core/arena.hpp"

namespace mpitrain {

enum class OptimizerKind { kSgd, kAdamW, kLars, kLamb };
OptimizerKind parse_optimizer(const std::string& name);  // UserError if unknown
const char* optimizer_name(OptimizerKind k);

enum class WeightDecayMode { kL2, kDecoupled };
WeightDecayMode parse_weight_decay_mode(const std::string& name);  // UserError if unknown

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::kSgd;
  double momentum = 0.9;           // SGD, LARS
  bool nesterov = false;           // SGD
  double weight_decay = 0.0;
  WeightDecayMode weight_decay_mode = WeightDecayMode::kL2;  // SGD: L2 adds wd*w to g; decoupled: w -= lr*wd*w
  bool momentum_correction = true;  // SGD/LARS: Goyal et al. eq. (10)
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // AdamW, LAMB
  double lars_eta = 0.001;          // LARS trust coefficient
  bool exclude_bias = true;         // LARS/LAMB: biases get ratio 1 and no weight decay
  double trust_clip = 0.0;          // LARS/LAMB: clip the trust ratio to at most this (0: no clip)
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update of arena.params() from arena.grads() at learning rate lr.
  virtual void step(Arena& arena, double lr) = 0;
  // Named arena-shaped state buffers (param_count floats each), for checkpoints.
  virtual std::vector<std::pair<std::string, float*>> state_buffers() = 0;
  long long step_count() const { return steps_; }
  double previous_lr() const { return previous_lr_; }
  void set_counters(long long steps, double previous_lr) { steps_ = steps; previous_lr_ = previous_lr; }

 protected:
  long long steps_ = 0;       // updates applied so far
  double previous_lr_ = 0.0;  // rate of the last update (momentum correction)
};

// The one check of the optimizer options (run by the config before training
// and by make_optimizer): UserError naming the option and its valid range.
void check_optimizer_options(const OptimizerOptions& options);

std::unique_ptr<Optimizer> make_optimizer(const OptimizerOptions& options, const Arena& arena);
// How many arena-sized state buffers the optimizer keeps (for the memory
// plan before anything is allocated): SGD and LARS 1, AdamW and LAMB 2.
int optimizer_state_buffers(OptimizerKind kind);

}  // namespace mpitrain

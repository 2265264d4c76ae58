// The optimizer interface's free functions (optimizer.hpp): option names
// and their one check, and make_optimizer, which builds one of the four
// update rules, each in its own file: sgd.cpp, adamw.cpp, lars.cpp, lamb.cpp
// (their shared base and helpers: arena_optimizer.hpp).
#include "mpitrain/optim/optimizer.hpp"

#include <cmath>
#include <stdexcept>

#include "arena_optimizer.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/number_text.hpp"

namespace mpitrain {
namespace {

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
    case OptimizerKind::kSgd: return optim_detail::make_sgd(o, arena);
    case OptimizerKind::kAdamW: return optim_detail::make_adamw(o, arena);
    case OptimizerKind::kLars: return optim_detail::make_lars(o, arena);
    case OptimizerKind::kLamb: return optim_detail::make_lamb(o, arena);
  }
  throw std::logic_error("make_optimizer: unknown OptimizerKind");
}

int optimizer_state_buffers(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kSgd:
    case OptimizerKind::kLars: return 1;
    case OptimizerKind::kAdamW:
    case OptimizerKind::kLamb: return 2;
  }
  return 2;
}

}  // namespace mpitrain

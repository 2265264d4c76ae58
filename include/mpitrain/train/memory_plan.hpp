// What one rank will allocate for training, worked out from the model spec
// before anything is allocated, so a model that cannot fit is refused with
// one clear line (issue 17: --model 784-10000000-10 ended in std::bad_alloc)
// instead of failing part-way through setup. A lower bound of the real use:
// it counts the parameter, gradient and optimizer arenas, the model's
// activation buffers and the input buffers, not the code or MPI's own memory.
#pragma once
#include <string>
#include <vector>

#include "mpitrain/nn/model_spec.hpp"

namespace mpitrain {

struct MemoryPlan {
  double arena_bytes = 0;       // parameters and gradients
  double optimizer_bytes = 0;   // arena-sized state buffers
  double activation_bytes = 0;  // the model's buffers for `capacity` rows
  double input_bytes = 0;       // read buffers (prefetch: two) and labels/targets
  double unit_bytes = 0;        // --deterministic: a step's unit gradients on this rank and their integer sums
  double total() const { return arena_bytes + optimizer_bytes + activation_bytes + input_bytes + unit_bytes; }
};

// model: summarize_model() of the spec; capacity_rows: rows per
// forward/backward; state_buffers: optimizer_state_buffers(); y_width:
// regression targets per row (0 for classes); units_per_rank: the most
// --deterministic units a rank holds in a step (0: off).
MemoryPlan plan_rank_memory(const ModelSummary& model, int capacity_rows, int state_buffers, int y_width,
                            bool prefetch, long long units_per_rank = 0);

// UserError when the plan exceeds what a rank may use: --max-memory-mb if
// given (> 0), else the node's physical memory divided among its ranks.
void check_rank_memory(const MemoryPlan& plan, int ranks_on_node, double max_memory_mb);

// For the tools that build a model from a file (inspect, evaluate): the spec's
// parameters, `state_buffers` arena-sized copies and activations for
// `capacity_rows` must fit in the node's memory; UserError naming `what` else.
void check_model_memory(const std::string& spec, Activation activation, int capacity_rows, int state_buffers,
                        const std::string& what);

}  // namespace mpitrain

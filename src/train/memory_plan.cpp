#include "mpitrain/train/memory_plan.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/number_text.hpp"

namespace mpitrain {
namespace {

constexpr double kFloat = 4.0;  // bytes

std::string size_text(double bytes) {
  char buf[32];
  if (bytes >= 1e9) std::snprintf(buf, sizeof buf, "%.2f GB", bytes / 1e9);
  else std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  return buf;
}

}  // namespace

MemoryPlan plan_rank_memory(const ModelSummary& model, int capacity_rows, int state_buffers, int y_width,
                            bool prefetch, long long units_per_rank) {
  // Doubles throughout: a huge spec must not overflow on its way to the message.
  const double params = model.params(), width_sum = model.activation_floats_per_row(), max_width = model.max_width();
  const double rows = std::max(capacity_rows, 1);
  MemoryPlan m;
  m.arena_bytes = 2 * params * kFloat;
  m.optimizer_bytes = state_buffers * params * kFloat;
  // Outputs of every layer, two gradient buffers, and the layers' scratch (im2col columns, argmax).
  m.activation_bytes =
      rows * ((width_sum + 2 * max_width) * kFloat + model.scratch_bytes_per_row()) + model.scratch_bytes_fixed();
  const double row_bytes = (static_cast<double>(model.input.size()) + std::max(y_width, 1)) * kFloat;
  m.input_bytes = rows * row_bytes * (prefetch ? 2 : 1) + 2 * rows * row_bytes;  // + training and evaluation targets
  if (units_per_rank > 0) m.unit_bytes = static_cast<double>(units_per_rank) * params * kFloat + params * 4.0;  // + int32 sums
  return m;
}

void check_rank_memory(const MemoryPlan& m, int ranks_on_node, double max_memory_mb) {
  double limit = max_memory_mb * 1e6;
  std::string where = "--max-memory-mb " + shortest_text(max_memory_mb);
  if (max_memory_mb <= 0) {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return;  // unknown: nothing to compare with
    limit = static_cast<double>(pages) * static_cast<double>(page) / std::max(ranks_on_node, 1);
    where = "this node's " + size_text(static_cast<double>(pages) * static_cast<double>(page)) + " shared by its " +
            std::to_string(ranks_on_node) + " rank(s)";
  }
  if (m.total() <= limit) return;
  throw UserError("each rank needs at least " + size_text(m.total()) + " (parameters and gradients " + size_text(m.arena_bytes) +
                  ", optimizer state " + size_text(m.optimizer_bytes) + ", activations " + size_text(m.activation_bytes) +
                  ", input buffers " + size_text(m.input_bytes) +
                  (m.unit_bytes > 0 ? ", --deterministic unit gradients " + size_text(m.unit_bytes) : std::string()) +
                  "), more than the " + size_text(limit) + " of " + where +
                  ": choose a smaller --model or --micro-batch, or fewer ranks per node (every rank holds the whole model)" +
                  (m.unit_bytes > 0 ? "; with --deterministic, a larger --deterministic-unit or more ranks" : ""));
}

void check_model_memory(const std::string& spec, Activation activation, int capacity_rows, int state_buffers,
                        const std::string& what) {
  try {
    check_rank_memory(plan_rank_memory(summarize_model(spec, activation), capacity_rows, state_buffers, 0, false), 1, 0);
  } catch (const UserError& e) {
    throw UserError(what + ": " + e.what());
  }
}

}  // namespace mpitrain

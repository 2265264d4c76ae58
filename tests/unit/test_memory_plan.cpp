// train/memory_plan.hpp: the memory one rank will allocate, from the spec,
// checked before anything is allocated.
#include <gtest/gtest.h>

#include <string>

#include "mpitrain/core/arena.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/optim/optimizer.hpp"
#include "mpitrain/train/memory_plan.hpp"

namespace mpitrain {
namespace {

TEST(MemoryPlan, CountsArenaStateActivationsAndInputsByHand) {
  // 10-20-3: params 10*20+20 + 20*3+3 = 283; 8 rows; SGD (1 state buffer); classes.
  const MemoryPlan m = plan_rank_memory(summarize_model("10-20-3", Activation::kRelu), 8, 1, 0, /*prefetch=*/true);
  EXPECT_DOUBLE_EQ(m.arena_bytes, 2 * 283 * 4.0);
  EXPECT_DOUBLE_EQ(m.optimizer_bytes, 283 * 4.0);
  EXPECT_DOUBLE_EQ(m.activation_bytes, 8 * (10 + 20 + 3 + 2 * 20) * 4.0);
  EXPECT_DOUBLE_EQ(m.input_bytes, 8 * (10 + 1) * 4.0 * (2 + 2));
  EXPECT_DOUBLE_EQ(m.total(), m.arena_bytes + m.optimizer_bytes + m.activation_bytes + m.input_bytes);
  EXPECT_DOUBLE_EQ(plan_rank_memory(summarize_model("10-20-3", Activation::kRelu), 8, 1, 0, false).input_bytes, 8 * 11 * 4.0 * 3);
}

TEST(MemoryPlan, AHugeSpecDoesNotOverflow) {
  const MemoryPlan m = plan_rank_memory(summarize_model("784-2000000000-10", Activation::kRelu), 256, 2, 0, true);
  EXPECT_GT(m.total(), 1e13);
}

TEST(MemoryPlan, RefusedAboveTheLimitWithWhatToChange) {
  // params 16*100000+100000 + 100000*4+4 = 2,100,004: arena 16.8 MB, state 8.4 MB;
  // activations 64 rows x (16 + 100000 + 4 + 2*100000) floats = 76.8 MB; inputs 17 kB.
  const MemoryPlan m = plan_rank_memory(summarize_model("16-100000-4", Activation::kRelu), 64, 1, 0, true);
  EXPECT_DOUBLE_EQ(m.total(), 102022576.0);
  EXPECT_NO_THROW(check_rank_memory(m, 1, 103));
  try {
    check_rank_memory(m, 1, 1);
    ADD_FAILURE() << "no UserError";
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("each rank needs at least 102.0 MB (parameters and gradients 16.8 MB, optimizer state 8.4 MB, activations 76.8 MB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("more than the 1.0 MB of --max-memory-mb 1"), std::string::npos) << msg;
    EXPECT_NE(msg.find("choose a smaller --model or --micro-batch"), std::string::npos) << msg;
  }
  // Without a limit, the node's memory is the limit: a model of ~1 TB never fits.
  EXPECT_THROW(check_rank_memory(plan_rank_memory(summarize_model("1000-100000000-10", Activation::kRelu), 1, 2, 0, true), 1, 0), UserError);
}

TEST(MemoryPlan, StateBufferCountsAreTheOptimizersOwn) {
  Arena arena;
  arena.add("w", {5});
  arena.allocate();
  for (const OptimizerKind kind : {OptimizerKind::kSgd, OptimizerKind::kAdamW, OptimizerKind::kLars, OptimizerKind::kLamb}) {
    OptimizerOptions o;
    o.kind = kind;
    EXPECT_EQ(static_cast<size_t>(optimizer_state_buffers(kind)), make_optimizer(o, arena)->state_buffers().size())
        << optimizer_name(kind);
  }
}

}  // namespace
}  // namespace mpitrain

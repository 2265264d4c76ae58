// The invariant under the large-batch options: gradient accumulation,
// every optimizer (per-layer norms are taken after the all-reduce), and a
// batch-size schedule with decay and a held-out validation split. Each P-rank
// run must match the 1-rank run (fixture: invariance_fixture.hpp).
#include "invariance_fixture.hpp"

namespace mpitrain::invariance {
namespace {

// Micro-batches of 3 rows add up to the same gradient as the whole shard:
// the P-rank run accumulates, the 1-rank reference does not (at P=1 this is
// accumulation vs none on one rank).
TEST_F(Invariance, MicroBatchesEqualTheWholeShard) {
  const std::vector<std::string> base = {"--model", "12-16-3", "--momentum", "0.9", "--lr-scaling", "none"};
  std::vector<std::string> micro = base;
  micro.insert(micro.end(), {"--micro-batch", "3"});
  const Runs runs = run_both(args("cls.h5", "0.1", micro), args("cls.h5", "0.1", base));
  EXPECT_TRUE(runs.ok);
  if (!runs.ok) return;
  EXPECT_EQ(runs.config.micro_batch, 3);
  check_invariant(runs, kEpochs * 11, kEpochs * 203, true);
}

class OptimizerInvariance : public Invariance, public testing::WithParamInterface<const char*> {};

TEST_P(OptimizerInvariance, MatchesOneRank) {
  const std::string opt = GetParam();
  const std::string lr = opt == "sgd" ? "0.1" : opt == "lars" ? "1.0" : "0.01";
  const Runs runs = run_both(args("cls.h5", lr, {"--model", "12-16-3", "--optimizer", opt, "--weight-decay", "0.0005",
                                                 "--lr-scaling", "none"}));
  EXPECT_TRUE(runs.ok);
  if (!runs.ok) return;
  check_invariant(runs, kEpochs * 11, kEpochs * 203, true);
}

INSTANTIATE_TEST_SUITE_P(All, OptimizerInvariance, testing::Values("adamw", "lars", "lamb"));

// 203 rows, 20% held out: 41 validation rows, 162 training rows. B=20 for
// epochs 1-2 (ceil(162/20) = 9 steps), B=40 from epoch 3 (ceil(162/40) = 5):
// 9 + 9 + 5 + 5 = 28 steps and 4 x 162 = 648 samples.
TEST_F(Invariance, BatchScheduleCosineValidationMatchesOneRank) {
  const Runs runs = run_both(args("cls.h5", "0.1", {"--model", "12-16-3", "--batch-schedule", "2:40",
                                                    "--lr-decay", "cosine", "--warmup-steps", "4",
                                                    "--val-fraction", "0.2", "--ref-batch", "20"}));
  EXPECT_TRUE(runs.ok);
  if (!runs.ok) return;
  check_invariant(runs, 28, 648, true);
  EXPECT_TRUE(std::isfinite(runs.multi.val_loss));
  EXPECT_GT(runs.multi.val_acc, 0.4);  // chance is about 1/3
}

}  // namespace
}  // namespace mpitrain::invariance

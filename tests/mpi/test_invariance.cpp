// The key invariant (DESIGN.md, "The one rule"): P ranks at global batch B
// end with the same weights as 1 rank at B (fixture: invariance_fixture.hpp).
#include "invariance_fixture.hpp"

namespace mpitrain::invariance {
namespace {

TEST_F(Invariance, PlainSgdMatchesOneRank) {
  const Runs runs =
      run_both(args("cls.h5", "0.3", {"--model", "12-16-3", "--momentum", "0", "--lr-scaling", "none"}));
  EXPECT_TRUE(runs.ok);
  if (!runs.ok) return;
  check_invariant(runs, kEpochs * 11, kEpochs * 203, true);  // ceil(203/20) = 11 steps per epoch
  EXPECT_LT(runs.multi.train_loss, 0.9 * std::log(3.0));  // learnt something
  EXPECT_GT(runs.multi.eval_acc, 0.6);                     // chance is about 1/3
}

TEST_F(Invariance, DropLastMatchesOneRank) {
  const Runs runs = run_both(args("cls.h5", "0.1", {"--model", "12-16-3", "--ref-batch", "20", "--drop-last"}));
  EXPECT_TRUE(runs.ok);
  if (!runs.ok) return;
  check_invariant(runs, kEpochs * 10, kEpochs * 200, true);  // the 3-row batch is dropped
  EXPECT_LT(runs.multi.train_loss, 0.9 * std::log(3.0));
}

TEST_F(Invariance, NesterovWeightDecayWarmupSqrtScalingMatchesOneRank) {
  // sqrt scaling from ref batch 10: effective LR 0.1*sqrt(2), warmed up over
  // llround(0.5 * 11) = 6 steps.
  const Runs runs =
      run_both(args("cls.h5", "0.1", {"--model", "12-16-3", "--momentum", "0.9", "--weight-decay", "0.001",
                                      "--warmup-epochs", "0.5", "--lr-scaling", "sqrt", "--ref-batch", "10",
                                      "--nesterov"}));
  EXPECT_TRUE(runs.ok);
  if (!runs.ok) return;
  check_invariant(runs, kEpochs * 11, kEpochs * 203, true);
  EXPECT_LT(runs.multi.train_loss, 0.9 * std::log(3.0));
}

TEST_F(Invariance, BucketedAllreduceMicroBatchesAndPrefetchMatchOneRank) {
  // 64-byte buckets: every parameter is its own bucket, started during
  // backward; 3-row micro-batches: several prefetched chunks per step. The
  // reference is one rank with one all-reduce after backward and no prefetch.
  const std::vector<std::string> common = {"--model", "12-16-8-3", "--momentum", "0.9", "--lr-scaling", "none"};
  auto multi = common, single = common;
  multi.insert(multi.end(), {"--bucket-bytes", "64", "--overlap", "on", "--micro-batch", "3"});
  single.insert(single.end(), {"--bucket-bytes", "0", "--overlap", "off", "--prefetch", "false"});
  const Runs runs = run_both(args("cls.h5", "0.05", multi), args("cls.h5", "0.05", single));
  EXPECT_TRUE(runs.ok);
  if (!runs.ok) return;
  check_invariant(runs, kEpochs * 11, kEpochs * 203, true);
  EXPECT_LT(runs.multi.train_loss, 0.9 * std::log(3.0));
}

TEST_F(Invariance, RegressionMatchesOneRank) {
  const Runs runs =
      run_both(args("reg.h5", "0.05", {"--model", "12-8-2", "--momentum", "0.9", "--lr-scaling", "none"}));
  EXPECT_TRUE(runs.ok);
  if (!runs.ok) return;
  check_invariant(runs, kEpochs * 11, kEpochs * 203, false);
  // Better than predicting zero for every target.
  EXPECT_LT(runs.multi.eval_loss, 0.7 * reg_test_mean_square_);
}

}  // namespace
}  // namespace mpitrain::invariance

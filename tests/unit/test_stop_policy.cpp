// Tests of StopPolicy (train/stop_policy.hpp): divergence (non-finite loss or
// gradient, loss above factor x the first step's, factor 0 off, the first
// step's loss as reference), the target (recorded once, at the first
// evaluation where it holds), early stopping through end_epoch, the best model
// (new_best, save()), and continuing from a checkpoint's TrainProgress.
// Expected values are worked out by hand in the comments.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include "mpitrain/train/stop_policy.hpp"

using namespace mpitrain;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

StopOptions divergence_options(double factor) {
  StopOptions o;
  o.divergence_factor = factor;
  return o;
}

StopOptions early_options(const std::string& metric, long long patience, double min_delta = 0.0) {
  StopOptions o;
  o.early_stop_metric = metric;
  o.early_stop_patience = patience;
  o.early_stop_min_delta = min_delta;
  return o;
}

}  // namespace

// ---- divergence ----

TEST(StopPolicyDivergence, FreshProgressClearsFirstLossResumedKeepsIt) {
  TrainProgress fresh;
  fresh.first_loss = 3.0;  // left over: a fresh run (global_step 0) must not compare against it
  StopPolicy a(StopOptions{}, std::nullopt, false, fresh);
  EXPECT_TRUE(std::isnan(fresh.first_loss)) << fresh.first_loss;

  TrainProgress resumed;
  resumed.global_step = 7;
  resumed.first_loss = 3.0;
  StopPolicy b(StopOptions{}, std::nullopt, false, resumed);
  EXPECT_EQ(resumed.first_loss, 3.0);
}

TEST(StopPolicyDivergence, FirstStepLossIsTheReference) {
  TrainProgress pr;
  StopPolicy p(divergence_options(10.0), std::nullopt, false, pr);
  EXPECT_EQ(p.divergence(0, 2.0, 1.0), "");
  EXPECT_EQ(pr.first_loss, 2.0);
  // Later steps do not move the reference, even with a lower loss.
  EXPECT_EQ(p.divergence(1, 0.5, 1.0), "");
  EXPECT_EQ(pr.first_loss, 2.0);
  // 10 x 2 = 20: 19.9 and exactly 20 are fine, 20.5 is not.
  EXPECT_EQ(p.divergence(2, 19.9, 1.0), "");
  EXPECT_EQ(p.divergence(3, 20.0, 1.0), "");
  EXPECT_EQ(p.divergence(4, 20.5, 1.0), "the loss 20.5 exceeds 10 x the first step's 2");
}

TEST(StopPolicyDivergence, FactorAppliesToTheFirstLossNotALaterOne) {
  // With the reference 1.0, 4.0 at factor 3 diverges; had step 1's loss (2.0)
  // become the reference, 4.0 would be below 3 x 2.
  TrainProgress pr;
  StopPolicy p(divergence_options(3.0), std::nullopt, false, pr);
  EXPECT_EQ(p.divergence(0, 1.0, 0.1), "");
  EXPECT_EQ(p.divergence(1, 2.0, 0.1), "");
  EXPECT_NE(p.divergence(2, 4.0, 0.1), "");
}

TEST(StopPolicyDivergence, NonFiniteLossOrGradientDiverges) {
  const std::string why = "the loss or gradient is not finite";
  TrainProgress pr;
  StopPolicy p(divergence_options(10.0), std::nullopt, false, pr);
  EXPECT_EQ(p.divergence(0, kNaN, 1.0), why);  // even at the first step
  EXPECT_EQ(p.divergence(1, 1.0, 1.0), "");    // a finite step is fine (no loss check: NaN reference)
  EXPECT_EQ(p.divergence(2, kInf, 1.0), why);
  EXPECT_EQ(p.divergence(3, 1.0, kNaN), why);
  EXPECT_EQ(p.divergence(4, 1.0, kInf), why);
  EXPECT_EQ(p.divergence(5, 1.0, -kInf), why);
}

TEST(StopPolicyDivergence, FactorZeroTurnsTheLossCheckOff) {
  TrainProgress pr;
  StopPolicy p(divergence_options(0.0), std::nullopt, false, pr);
  EXPECT_EQ(p.divergence(0, 1.0, 1.0), "");
  EXPECT_EQ(p.divergence(1, 1e6, 1.0), "");
  // Non-finite values still diverge with the factor off.
  EXPECT_EQ(p.divergence(2, kNaN, 1.0), "the loss or gradient is not finite");
}

TEST(StopPolicyDivergence, ResumedRunComparesAgainstTheCheckpointsFirstLoss) {
  TrainProgress pr;
  pr.global_step = 10;
  pr.first_loss = 1.5;
  StopPolicy p(divergence_options(10.0), std::nullopt, false, pr);
  // Step 10 is not the first step: it does not become the reference.
  EXPECT_EQ(p.divergence(10, 14.0, 1.0), "");
  EXPECT_EQ(pr.first_loss, 1.5);
  EXPECT_EQ(p.divergence(11, 15.5, 1.0), "the loss 15.5 exceeds 10 x the first step's 1.5");
}

// ---- target ----

TEST(StopPolicyTarget, RecordedOnceAtTheFirstEvaluationWhereItHolds) {
  TrainProgress pr;
  StopPolicy p(StopOptions{}, parse_target("val_acc>=0.88"), false, pr);
  pr.global_step = 120;
  pr.samples = 3000;
  EXPECT_FALSE(p.check_target({{"val_acc", 0.87}, {"val_loss", 0.4}}, 1, 10.0, 8.0));
  EXPECT_EQ(pr.target_epoch, 0);

  pr.global_step = 180;
  pr.samples = 4500;
  EXPECT_TRUE(p.check_target({{"val_acc", 0.88}, {"val_loss", 0.3}}, 2, 15.5, 12.25));  // >= holds at equality
  EXPECT_EQ(pr.target_epoch, 3);  // epoch 2 is 0-based: the third epoch
  EXPECT_EQ(pr.target_step, 180);
  EXPECT_EQ(pr.target_samples, 4500);
  EXPECT_EQ(pr.target_time_s, 15.5);
  EXPECT_EQ(pr.target_train_time_s, 12.25);  // without the evaluations

  // A later, better hit does not move the record.
  pr.global_step = 240;
  pr.samples = 6000;
  EXPECT_FALSE(p.check_target({{"val_acc", 0.95}}, 3, 20.0, 16.0));
  EXPECT_EQ(pr.target_epoch, 3);
  EXPECT_EQ(pr.target_step, 180);
  EXPECT_EQ(pr.target_samples, 4500);
  EXPECT_EQ(pr.target_time_s, 15.5);
}

// --target-hold 3: the target counts once it holds at 3 evaluations in a row,
// recorded at the first of them; a miss restarts the count.
TEST(StopPolicyTarget, HoldCountsConsecutiveEvaluationsAndRecordsTheFirst) {
  TrainProgress pr;
  StopOptions o;
  o.target_hold = 3;
  StopPolicy p(o, parse_target("val_acc>=0.88"), false, pr);
  const auto eval = [&](double acc, long long epoch, long long step) {
    pr.global_step = step;
    pr.samples = step * 25;
    return p.check_target({{"val_acc", acc}}, epoch, static_cast<double>(step) / 10, static_cast<double>(step) / 20);
  };
  EXPECT_FALSE(eval(0.90, 0, 10));  // holds (1)
  EXPECT_FALSE(eval(0.91, 0, 20));  // holds (2)
  EXPECT_FALSE(eval(0.87, 0, 30));  // misses: the run restarts
  EXPECT_EQ(pr.target_streak, 0);
  EXPECT_FALSE(eval(0.89, 1, 40));  // holds (1): the crossing if the run lasts
  EXPECT_FALSE(eval(0.90, 1, 50));  // (2)
  EXPECT_EQ(pr.target_epoch, 0);
  EXPECT_TRUE(eval(0.92, 1, 60));   // (3): reached, at the first of the three
  EXPECT_EQ(pr.target_epoch, 2);
  EXPECT_EQ(pr.target_step, 40);
  EXPECT_EQ(pr.target_samples, 1000);
  EXPECT_EQ(pr.target_time_s, 4.0);
  EXPECT_EQ(pr.target_train_time_s, 2.0);
  EXPECT_FALSE(eval(0.95, 2, 70));  // recorded once
  EXPECT_EQ(pr.target_step, 40);
}

// A resumed run continues its count: the streak and the first evaluation of
// it are progress fields, saved in checkpoints.
TEST(StopPolicyTarget, HoldCountSurvivesAResume) {
  TrainProgress pr;
  StopOptions o;
  o.target_hold = 2;
  {
    StopPolicy p(o, parse_target("val_acc>=0.88"), false, pr);
    pr.global_step = 10;
    EXPECT_FALSE(p.check_target({{"val_acc", 0.9}}, 0, 1.0, 1.0));
  }
  TrainProgress resumed = pr;  // what the checkpoint carried
  StopPolicy q(o, parse_target("val_acc>=0.88"), false, resumed);
  resumed.global_step = 20;
  EXPECT_TRUE(q.check_target({{"val_acc", 0.9}}, 0, 2.0, 2.0));
  EXPECT_EQ(resumed.target_step, 10);
}

TEST(StopPolicyTarget, LowerIsBetterTargetAndStrictOperator) {
  TrainProgress pr;
  StopPolicy p(StopOptions{}, parse_target("val_loss<0.35"), false, pr);
  EXPECT_FALSE(p.check_target({{"val_loss", 0.35}}, 0, 1.0, 1.0));  // not strictly below
  EXPECT_EQ(pr.target_epoch, 0);
  pr.global_step = 50;
  EXPECT_TRUE(p.check_target({{"val_loss", 0.349}}, 1, 2.0, 2.0));
  EXPECT_EQ(pr.target_epoch, 2);
  EXPECT_EQ(pr.target_step, 50);
}

TEST(StopPolicyTarget, AbsentMetricNeverHits) {
  TrainProgress pr;
  StopPolicy p(StopOptions{}, parse_target("val_acc>=0.5"), false, pr);
  // Every other metric is far past 0.5; val_acc itself was not measured.
  EXPECT_FALSE(p.check_target({{"test_acc", 0.99}, {"train_acc", 0.99}, {"val_loss", 0.01}}, 0, 1.0, 1.0));
  EXPECT_FALSE(p.check_target({}, 1, 2.0, 2.0));
  EXPECT_EQ(pr.target_epoch, 0);
}

TEST(StopPolicyTarget, NonFiniteValueNeverHits) {
  TrainProgress pr;
  StopPolicy p(StopOptions{}, parse_target("val_loss<=0.5"), false, pr);
  EXPECT_FALSE(p.check_target({{"val_loss", kNaN}}, 0, 1.0, 1.0));
  EXPECT_FALSE(p.check_target({{"val_loss", -kInf}}, 1, 1.0, 1.0));
  EXPECT_EQ(pr.target_epoch, 0);
}

TEST(StopPolicyTarget, NoTargetNeverHitsAndStopAtTargetNeedsOne) {
  StopOptions o;
  o.stop_at_target = true;
  TrainProgress pr;
  StopPolicy none(o, std::nullopt, false, pr);
  EXPECT_FALSE(none.check_target({{"val_acc", 1.0}, {"val_loss", 0.0}}, 0, 1.0, 1.0));
  EXPECT_EQ(pr.target_epoch, 0);
  EXPECT_FALSE(none.stop_at_target());

  StopPolicy with(o, parse_target("val_acc>=0.9"), false, pr);
  EXPECT_TRUE(with.stop_at_target());
  o.stop_at_target = false;
  StopPolicy without_flag(o, parse_target("val_acc>=0.9"), false, pr);
  EXPECT_FALSE(without_flag.stop_at_target());
}

TEST(StopPolicyTarget, ReachedBeforeTheCheckpointIsNotRecordedAgain) {
  TrainProgress pr;
  pr.global_step = 300;
  pr.samples = 9000;
  pr.target_epoch = 2;
  pr.target_step = 100;
  pr.target_samples = 3000;
  pr.target_time_s = 4.0;
  StopPolicy p(StopOptions{}, parse_target("val_acc>=0.8"), false, pr);
  EXPECT_FALSE(p.check_target({{"val_acc", 0.9}}, 5, 30.0, 30.0));
  EXPECT_EQ(pr.target_epoch, 2);
  EXPECT_EQ(pr.target_step, 100);
  EXPECT_EQ(pr.target_samples, 3000);
  EXPECT_EQ(pr.target_time_s, 4.0);
}

// ---- early stopping ----

TEST(StopPolicyEarlyStop, StopsAfterPatienceEpochsWithoutImprovement) {
  TrainProgress pr;
  StopPolicy p(early_options("val_loss", 2), std::nullopt, false, pr);
  // epoch (1-based): 1 -> 1.0 best; 2 -> 0.8 best; 3 -> 0.9 (1 epoch since best); 4 -> 0.85 (2: stop).
  EXPECT_FALSE(p.end_epoch(0, {{"val_loss", 1.0}}).stop_early);
  EXPECT_EQ(pr.best_epoch, 1);
  EXPECT_EQ(pr.best_value, 1.0);
  EXPECT_FALSE(p.end_epoch(1, {{"val_loss", 0.8}}).stop_early);
  EXPECT_EQ(pr.best_epoch, 2);
  EXPECT_EQ(pr.best_value, 0.8);
  EXPECT_FALSE(p.end_epoch(2, {{"val_loss", 0.9}}).stop_early);
  EXPECT_EQ(pr.best_epoch, 2);
  EXPECT_TRUE(p.end_epoch(3, {{"val_loss", 0.85}}).stop_early);
  EXPECT_EQ(pr.best_epoch, 2);
  EXPECT_EQ(pr.best_value, 0.8);
}

TEST(StopPolicyEarlyStop, AccuracyImprovesUpwardsAndMinDeltaCounts) {
  TrainProgress pr;
  StopPolicy p(early_options("val_acc", 1, 0.01), std::nullopt, false, pr);
  EXPECT_FALSE(p.end_epoch(0, {{"val_acc", 0.80}, {"val_loss", 9.0}}).stop_early);
  EXPECT_EQ(pr.best_epoch, 1);
  // +0.02 > min_delta 0.01: an improvement (the loss is ignored).
  EXPECT_FALSE(p.end_epoch(1, {{"val_acc", 0.82}, {"val_loss", 10.0}}).stop_early);
  EXPECT_EQ(pr.best_epoch, 2);
  EXPECT_DOUBLE_EQ(pr.best_value, 0.82);
  // +0.005 is within min_delta: no improvement, and patience 1 is used up.
  EXPECT_TRUE(p.end_epoch(2, {{"val_acc", 0.825}, {"val_loss", 0.1}}).stop_early);
  EXPECT_EQ(pr.best_epoch, 2);
  EXPECT_DOUBLE_EQ(pr.best_value, 0.82);
}

TEST(StopPolicyEarlyStop, PatienceZeroNeverStopsNorWritesBest) {
  TrainProgress pr;
  StopPolicy p(early_options("val_loss", 0), std::nullopt, false, pr);
  EXPECT_EQ(p.early_stopping(), nullptr);
  for (long long e = 0; e < 5; ++e) EXPECT_FALSE(p.end_epoch(e, {{"val_loss", 1.0 + e}}).stop_early);
  EXPECT_EQ(pr.best_epoch, 0);
  EXPECT_EQ(pr.best_value, 0.0);
}

// ---- best model ----

TEST(StopPolicyBestModel, NewBestOnlyOnImprovingEpochsSaveCopiesTheTracker) {
  TrainProgress pr;
  StopPolicy p(StopOptions{}, std::nullopt, /*track_best=*/true, pr);  // no early stopping: by val_loss
  EXPECT_TRUE(p.end_epoch(0, {{"val_loss", 1.0}, {"val_acc", 0.5}}).new_best);
  EXPECT_FALSE(p.end_epoch(1, {{"val_loss", 1.2}, {"val_acc", 0.9}}).new_best);  // val_acc is not the metric
  // end_epoch alone does not touch the checkpoint's record.
  EXPECT_EQ(pr.best_ckpt_epoch, 0);
  EXPECT_EQ(pr.best_ckpt_value, 0.0);
  p.save();
  EXPECT_EQ(pr.best_ckpt_epoch, 1);
  EXPECT_EQ(pr.best_ckpt_value, 1.0);
  EXPECT_TRUE(p.end_epoch(2, {{"val_loss", 0.7}}).new_best);
  EXPECT_FALSE(p.end_epoch(3, {{"val_loss", 0.7}}).new_best);  // equal is not better
  p.save();
  EXPECT_EQ(pr.best_ckpt_epoch, 3);
  EXPECT_EQ(pr.best_ckpt_value, 0.7);
  // The best model never stops the run.
  EXPECT_FALSE(p.end_epoch(4, {{"val_loss", 5.0}}).stop_early);
  EXPECT_FALSE(p.end_epoch(20, {{"val_loss", 5.0}}).stop_early);
}

TEST(StopPolicyBestModel, FollowsTheEarlyStoppingMetricWithoutItsMinDelta) {
  TrainProgress pr;
  StopPolicy p(early_options("val_acc", 10, 0.05), std::nullopt, true, pr);
  EXPECT_TRUE(p.end_epoch(0, {{"val_acc", 0.6}, {"val_loss", 1.0}}).new_best);
  EXPECT_FALSE(p.end_epoch(1, {{"val_acc", 0.5}, {"val_loss", 0.1}}).new_best);  // loss better, accuracy worse
  // +0.01: below early stopping's min_delta (its best stays epoch 1) but a better model.
  EXPECT_TRUE(p.end_epoch(2, {{"val_acc", 0.61}, {"val_loss", 2.0}}).new_best);
  EXPECT_EQ(pr.best_epoch, 1);
  p.save();
  EXPECT_EQ(pr.best_ckpt_epoch, 3);
  EXPECT_DOUBLE_EQ(pr.best_ckpt_value, 0.61);
}

TEST(StopPolicyBestModel, NotTrackedNeverNewBestAndSaveLeavesProgress) {
  TrainProgress pr;
  pr.best_ckpt_epoch = 4;  // as a checkpoint may carry
  pr.best_ckpt_value = 0.25;
  StopPolicy p(StopOptions{}, std::nullopt, /*track_best=*/false, pr);
  EXPECT_FALSE(p.end_epoch(0, {{"val_loss", 0.1}}).new_best);
  p.save();
  EXPECT_EQ(pr.best_ckpt_epoch, 4);
  EXPECT_EQ(pr.best_ckpt_value, 0.25);
}

// ---- continuing from a checkpoint's progress ----

TEST(StopPolicyRestore, EarlyStoppingContinuesFromTheCheckpointsBest) {
  TrainProgress pr;
  pr.global_step = 30;
  pr.best_epoch = 3;
  pr.best_value = 0.5;
  StopPolicy p(early_options("val_loss", 2), std::nullopt, false, pr);
  // 0.6 is worse than the restored 0.5 (a fresh tracker would take it as its first best).
  EXPECT_FALSE(p.end_epoch(3, {{"val_loss", 0.6}}).stop_early);
  EXPECT_EQ(pr.best_epoch, 3);
  EXPECT_EQ(pr.best_value, 0.5);
  // Epoch 5 is 2 epochs past the best epoch 3: stop.
  EXPECT_TRUE(p.end_epoch(4, {{"val_loss", 0.55}}).stop_early);
  EXPECT_EQ(pr.best_epoch, 3);
}

TEST(StopPolicyRestore, BestModelContinuesFromTheCheckpointsBest) {
  TrainProgress pr;
  pr.global_step = 20;
  pr.best_ckpt_epoch = 2;
  pr.best_ckpt_value = 0.4;
  StopPolicy p(StopOptions{}, std::nullopt, true, pr);
  EXPECT_FALSE(p.end_epoch(2, {{"val_loss", 0.5}}).new_best);  // worse than the restored 0.4
  p.save();
  EXPECT_EQ(pr.best_ckpt_epoch, 2);
  EXPECT_EQ(pr.best_ckpt_value, 0.4);
  EXPECT_TRUE(p.end_epoch(3, {{"val_loss", 0.3}}).new_best);
  p.save();
  EXPECT_EQ(pr.best_ckpt_epoch, 4);
  EXPECT_EQ(pr.best_ckpt_value, 0.3);
}

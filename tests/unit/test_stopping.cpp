// Target parsing/detection and early stopping on constructed metric series.
#include <gtest/gtest.h>

#include <cmath>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/train/stopping.hpp"

using namespace mpitrain;

TEST(Target, ParsesEveryOperator) {
  const Target ge = parse_target("val_acc>=0.88");
  EXPECT_EQ(ge.metric, "val_acc");
  EXPECT_EQ(ge.op, ">=");
  EXPECT_DOUBLE_EQ(ge.value, 0.88);
  EXPECT_TRUE(ge.reached(0.88));
  EXPECT_TRUE(ge.reached(0.9));
  EXPECT_FALSE(ge.reached(0.8799));
  const Target gt = parse_target("test_acc>0.5");
  EXPECT_FALSE(gt.reached(0.5));
  EXPECT_TRUE(gt.reached(0.5001));
  const Target le = parse_target("val_loss<=0.35");
  EXPECT_TRUE(le.reached(0.35));
  EXPECT_FALSE(le.reached(0.3501));
  const Target lt = parse_target("train_loss<1e-2");
  EXPECT_DOUBLE_EQ(lt.value, 0.01);
  EXPECT_FALSE(lt.reached(0.01));
  EXPECT_TRUE(lt.reached(0.0099));
  EXPECT_FALSE(le.reached(std::nan("")));  // a missing or NaN measurement never counts
}

TEST(Target, RejectsMalformedText) {
  for (const char* bad : {"", "val_acc", "val_acc>=", "val_acc>=abc", "val_acc=>0.8", "accuracy>=0.8",
                          "val_acc>=0.8x", ">=0.8", "val_acc>=inf"}) {
    try {
      parse_target(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("--target"), std::string::npos) << e.what();
    }
  }
}

TEST(EarlyStopping, LossStopsAfterPatienceEpochsWithoutImprovement) {
  // val_loss by epoch: 1.0, 0.8, 0.7 (best, epoch 3), 0.75, 0.71, 0.72 -> with
  // patience 3 the run stops after epoch 6 (epochs 4, 5, 6 did not improve).
  EarlyStopping es("val_loss", 3, 0.0);
  const double series[] = {1.0, 0.8, 0.7, 0.75, 0.71, 0.72};
  long long stopped_at = 0;
  for (long long e = 1; e <= 6 && !stopped_at; ++e)
    if (es.update(e, series[e - 1])) stopped_at = e;
  EXPECT_EQ(stopped_at, 6);
  EXPECT_EQ(es.best_epoch(), 3);
  EXPECT_DOUBLE_EQ(es.best_value(), 0.7);
}

TEST(EarlyStopping, AccuracyImprovesUpwardsAndMinDeltaCounts) {
  // acc: 0.80, 0.805 (+0.005 < min_delta 0.01: no improvement), 0.83 (improves), 0.835, 0.836.
  EarlyStopping es("val_acc", 2, 0.01);
  EXPECT_FALSE(es.update(1, 0.80));
  EXPECT_FALSE(es.update(2, 0.805));
  EXPECT_EQ(es.best_epoch(), 1);
  EXPECT_FALSE(es.update(3, 0.83));
  EXPECT_EQ(es.best_epoch(), 3);
  EXPECT_FALSE(es.update(4, 0.835));
  EXPECT_TRUE(es.update(5, 0.836));
  EXPECT_EQ(es.best_epoch(), 3);
}

TEST(EarlyStopping, PatienceZeroNeverStops) {
  EarlyStopping es("train_loss", 0, 0.0);
  for (long long e = 1; e <= 20; ++e) EXPECT_FALSE(es.update(e, 1.0 + static_cast<double>(e)));
  EXPECT_EQ(es.best_epoch(), 1);
}

TEST(Metrics, NamesAndDirections) {
  EXPECT_TRUE(lower_is_better("val_loss"));
  EXPECT_FALSE(lower_is_better("test_acc"));
  EXPECT_NO_THROW(check_metric_name("train_acc", "--x"));
  EXPECT_THROW(check_metric_name("val_accuracy", "--early-stop-metric"), UserError);
}

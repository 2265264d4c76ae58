// The invariant for convolutional networks (issue 13): P ranks at global
// batch B end with the same weights as 1 rank at B, with the layers whose
// math reaches across rows: batch norm (statistics summed over the global
// batch through Pass::batch_sum), dropout (masks keyed by seed, step and the
// row's place in the global batch) and --augment (draws keyed by seed, epoch
// and dataset row). A rank that mixed in its own rank or local row numbers
// would train differently at each P. Same tolerance and checks as the MLP
// tests (fixture: invariance_fixture.hpp), on images of 2x6x6 stored NHWC.
//
// Empty shards: 97 rows at B=16 end each epoch with a 1-row batch, so at
// P >= 2 every rank but rank 0 runs an empty pass for batch norm's
// collectives in that step; at B=3 the last rank of P=4 is empty every step.
#include "invariance_fixture.hpp"

namespace mpitrain::invariance {
namespace {

constexpr int kImageC = 2, kImageH = 6, kImageW = 6, kImageClasses = 3;
constexpr std::uint64_t kImageTrainRows = 97, kImageTestRows = 40, kTinyTrainRows = 25;
// conv (same padding) -> 4x6x6, bn over 4 channels, a Winograd conv
// (F(4x4, 3x3): partial edge tiles on 6x6) -> 4x6x6, maxpool2 -> 4x3x3,
// dropout, dense to 3 classes.
const std::string kSpec = "2x6x6 conv3x3:4 relu bn conv3x3:4,algo=winograd relu maxpool2 dropout:0.25 dense:3";

// Class 0: a bright horizontal bar in channel 0; class 1: a vertical bar in
// channel 0; class 2: a bar of either kind in channel 1. Noise elsewhere, so
// the classes are learnable but not trivially separated in a few steps.
// x: uint8 [rows, H, W, C] with scale/mean/std (the reader converts).
SplitArrays image_split(std::uint64_t rows, std::mt19937& rng) {
  SplitArrays s;
  s.x_dims = {rows, kImageH, kImageW, kImageC};
  s.scale = 1.0 / 255.0;
  s.mean = 0.3;
  s.std = 0.3;
  for (std::uint64_t r = 0; r < rows; ++r) {
    const int label = static_cast<int>(rng() % kImageClasses);
    const bool vertical = label == 1 || (label == 2 && rng() % 2 == 0);
    const int channel = label == 2 ? 1 : 0;
    const int at = static_cast<int>(rng() % kImageH);
    for (int y = 0; y < kImageH; ++y)
      for (int x = 0; x < kImageW; ++x)
        for (int c = 0; c < kImageC; ++c) {
          const bool on_bar = c == channel && (vertical ? x == at : y == at);
          s.x_u8.push_back(static_cast<std::uint8_t>(on_bar ? 200 + rng() % 56 : rng() % 90));
        }
    s.y_class.push_back(label);
  }
  return s;
}

// Its own data files: the MLP fixture's rows are 12 features, not images.
class CnnInvariance : public Invariance {
 protected:
  static void SetUpTestSuite() {
    Comm comm;
    if (comm.rank() == 0) {
      try {
        char templ[] = "/tmp/mpitrain-invariance-cnn-XXXXXX";
        if (mkdtemp(templ) == nullptr) throw SystemError("mkdtemp failed");
        image_dir_ = templ;
        std::mt19937 rng(2024);
        DatasetArrays img;
        img.num_classes = kImageClasses;
        img.train = image_split(kImageTrainRows, rng);
        img.test = image_split(kImageTestRows, rng);
        write_dataset_file(img, image_dir_ + "/img.h5");
        DatasetArrays tiny;
        tiny.num_classes = kImageClasses;
        tiny.train = image_split(kTinyTrainRows, rng);
        tiny.test = image_split(kImageTestRows, rng);
        write_dataset_file(tiny, image_dir_ + "/tiny.h5");
      } catch (const std::exception& e) {
        ADD_FAILURE() << "writing the image datasets failed: " << e.what();
        image_dir_.clear();
      }
    }
    comm.broadcast(image_dir_, 0);
  }
  static void TearDownTestSuite() {
    Comm comm;
    comm.barrier();
    std::error_code ec;
    if (comm.rank() == 0 && !image_dir_.empty()) std::filesystem::remove_all(image_dir_, ec);
  }
  void SetUp() override {
    if (image_dir_.empty()) GTEST_SKIP() << "no image dataset directory (see the set-up failure)";
  }

  static std::vector<std::string> cnn_args(const std::string& file, const std::string& batch,
                                           std::vector<std::string> extra) {
    std::vector<std::string> a = {"--data", image_dir_ + "/" + file, "--model", kSpec, "--epochs",
                                  std::to_string(kEpochs), "--global-batch", batch, "--lr", "0.02",
                                  "--momentum", "0.9", "--lr-scaling", "none", "--seed", "11",
                                  "--eval-split", "test", "--threads", "1", "--progress-interval-s", "1000"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  static inline std::string image_dir_;
};

// ceil(97/16) = 7 steps per epoch, the last of 1 row.
TEST_F(CnnInvariance, BatchNormDropoutMatchesOneRank) {
  const Runs runs = run_both(cnn_args("img.h5", "16", {}));
  EXPECT_TRUE(runs.ok);
  if (!runs.ok) return;
  check_invariant(runs, kEpochs * 7, kEpochs * kImageTrainRows, true);
  // Learnt something (chance is 1/3). Not the train loss: it is taken with
  // dropout on and includes the 1-row batches, where batch norm sees no spread.
  EXPECT_GT(runs.multi.eval_acc, 0.6);
}

// B=3: at P=4 rank 3 holds no row in any step, at P=2 and P=3 the shards are
// uneven; 25 rows leave a last batch of 1 row. ceil(25/3) = 9 steps per epoch.
TEST_F(CnnInvariance, TinyBatchesWithEmptyShardsMatchOneRank) {
  const Runs runs = run_both(cnn_args("tiny.h5", "3", {}));
  EXPECT_TRUE(runs.ok);
  if (!runs.ok) return;
  check_invariant(runs, kEpochs * 9, kEpochs * kTinyTrainRows, true);
}

// Random crop after 1 pixel of padding and random flips, keyed by dataset row.
TEST_F(CnnInvariance, AugmentCropFlipMatchesOneRank) {
  const Runs runs = run_both(cnn_args("img.h5", "16", {"--augment", "crop+flip", "--augment-pad", "1"}));
  EXPECT_TRUE(runs.ok);
  if (!runs.ok) return;
  check_invariant(runs, kEpochs * 7, kEpochs * kImageTrainRows, true);
  EXPECT_EQ(runs.config.augment.pad, 1);
  EXPECT_TRUE(runs.config.augment.flip);
}

// The augmentation changes the run: the same run without it ends elsewhere
// (otherwise the test above would not test the augmentation at all).
TEST_F(CnnInvariance, AugmentChangesTheWeights) {
  Comm world;
  double rel = 0;
  try {
    const TrainResult plain = run_training(parse_train_args(cnn_args("img.h5", "16", {})).config, world);
    const TrainResult aug = run_training(
        parse_train_args(cnn_args("img.h5", "16", {"--augment", "crop+flip", "--augment-pad", "1"})).config, world);
    ASSERT_EQ(plain.params.size(), aug.params.size());
    double diff = 0, ref = 0;
    for (size_t i = 0; i < plain.params.size(); ++i) {
      diff = std::max(diff, std::abs(static_cast<double>(aug.params[i]) - plain.params[i]));
      ref = std::max(ref, std::abs(static_cast<double>(plain.params[i])));
    }
    rel = diff / std::max(ref, 1e-30);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "run failed on rank " << world.rank() << ": " << e.what();
  }
  EXPECT_GT(rel, 1e3 * kRelTol) << "--augment crop+flip left the weights where they were without it";
}

// Batch norm with a micro-batch no smaller than any shard is allowed (one
// chunk per rank): the same weights as the 1-rank run without --micro-batch.
TEST_F(CnnInvariance, MicroBatchAsLargeAsTheShardMatchesOneRank) {
  const Runs runs = run_both(cnn_args("img.h5", "16", {"--micro-batch", "16"}), cnn_args("img.h5", "16", {}));
  EXPECT_TRUE(runs.ok);
  if (!runs.ok) return;
  check_invariant(runs, kEpochs * 7, kEpochs * kImageTrainRows, true);
}

}  // namespace
}  // namespace mpitrain::invariance

// Shared by the invariance tests. The key invariant (DESIGN.md, "The one rule"): P ranks at global batch B
// end with the same weights as 1 rank at B. Inside one P-rank job, rank 0
// also trains alone on a 1-rank sub-communicator; its result is broadcast
// and every rank compares. 203 rows at B=20 leave a last batch of 3 rows, so
// at P=4 one rank has an empty shard in that step.
//
// Tolerance: relative difference = max_i |a_i - b_i| / max_i |b_i| (infinity
// norm of the difference over the infinity norm of the 1-rank weights); the
// P-rank run only changes the float summation order of the gradient.
#pragma once
#include <gtest/gtest.h>
#include <mpi.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/data/dataset_writer.hpp"
#include "mpitrain/nn/model.hpp"
#include "mpitrain/train/config.hpp"
#include "mpitrain/train/trainer.hpp"

namespace mpitrain {
namespace invariance {

constexpr int kFeatures = 12, kClasses = 3, kTargets = 2;
constexpr std::uint64_t kTrainRows = 203, kTestRows = 50;
constexpr double kRelTol = 1e-5;
constexpr long long kEpochs = 4;

// x: uint8 with scale/mean/std, so the reader's conversion is exercised;
// label = argmax of three fixed linear scores, 10% of labels flipped.
inline SplitArrays classification_split(std::uint64_t rows, std::mt19937& rng) {
  SplitArrays s;
  s.x_dims = {rows, kFeatures};
  s.scale = 1.0 / 255.0;
  s.mean = 0.5;
  s.std = 0.25;
  for (std::uint64_t r = 0; r < rows; ++r) {
    float f[kFeatures];
    for (float& v : f) {
      const auto byte = static_cast<std::uint8_t>(rng() & 0xff);
      s.x_u8.push_back(byte);
      v = (static_cast<float>(byte) / 255.0f - 0.5f) / 0.25f;
    }
    const float score[kClasses] = {f[0] + f[1] - f[2], f[3] - f[0] + 0.5f * f[4], f[5] - f[1] + 0.5f * f[6]};
    int label = static_cast<int>(std::max_element(score, score + kClasses) - score);
    if (rng() % 10 == 0) label = (label + 1 + static_cast<int>(rng() % 2)) % kClasses;
    s.y_class.push_back(label);
  }
  return s;
}

// x: float32 in [-1, 1]; two smooth targets plus a little noise.
inline SplitArrays regression_split(std::uint64_t rows, std::mt19937& rng) {
  SplitArrays s;
  s.x_dims = {rows, kFeatures};
  s.target_width = kTargets;
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (std::uint64_t r = 0; r < rows; ++r) {
    float f[kFeatures];
    for (float& v : f) s.x_f32.push_back(v = u(rng));
    s.y_target.push_back(0.8f * f[0] - 0.5f * f[1] + 0.3f * f[2] * f[3] + 0.05f * u(rng));
    s.y_target.push_back(std::tanh(f[4] + f[5]) - 0.2f * f[6] + 0.05f * u(rng));
  }
  return s;
}

class Invariance : public testing::Test {
 protected:
  // Collective: rank 0 writes both files into a fresh directory and
  // broadcasts its path (empty if writing failed, so no rank waits forever).
  static void SetUpTestSuite() {
    Comm comm;
    if (comm.rank() == 0) {
      try {
        char templ[] = "/tmp/mpitrain-invariance-XXXXXX";
        if (mkdtemp(templ) == nullptr) throw SystemError("mkdtemp failed");
        dir_ = templ;
        std::mt19937 rng(12345);
        DatasetArrays cls;
        cls.num_classes = kClasses;
        cls.train = classification_split(kTrainRows, rng);
        cls.test = classification_split(kTestRows, rng);
        write_dataset_file(cls, dir_ + "/cls.h5");
        DatasetArrays reg;
        reg.train = regression_split(kTrainRows, rng);
        reg.test = regression_split(kTestRows, rng);
        write_dataset_file(reg, dir_ + "/reg.h5");
        double sq = 0;
        for (float y : reg.test.y_target) sq += static_cast<double>(y) * y;
        reg_test_mean_square_ = sq / static_cast<double>(reg.test.y_target.size());
      } catch (const std::exception& e) {
        ADD_FAILURE() << "writing the test datasets failed: " << e.what();
        dir_.clear();
      }
    }
    comm.broadcast(dir_, 0);
    comm.broadcast(&reg_test_mean_square_, sizeof reg_test_mean_square_, 0);
  }
  static void TearDownTestSuite() {
    Comm comm;
    comm.barrier();  // nobody still reads the files
    std::error_code ec;
    if (comm.rank() == 0 && !dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  void SetUp() override {
    if (dir_.empty()) GTEST_SKIP() << "no dataset directory (see the set-up failure)";
  }

  static std::vector<std::string> args(const std::string& file, const std::string& lr,
                                       std::vector<std::string> extra) {
    std::vector<std::string> a = {"--data", dir_ + "/" + file, "--epochs", std::to_string(kEpochs),
                                  "--global-batch", "20", "--lr", lr, "--seed", "7", "--eval-split", "test",
                                  "--threads", "1", "--progress-interval-s", "1000"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  static inline std::string dir_;
  static inline double reg_test_mean_square_ = 0;
};

struct Runs {
  Config config;
  TrainResult multi;   // this rank's result of the P-rank run
  TrainResult single;  // rank 0's 1-rank run, broadcast to every rank
  bool ok = false;     // both runs completed on every rank
};

inline void broadcast_result(const Comm& comm, TrainResult& r) {
  long long n = static_cast<long long>(r.params.size());
  comm.broadcast(&n, sizeof n, 0);
  r.params.resize(static_cast<size_t>(n));
  comm.broadcast(r.params.data(), n * static_cast<long long>(sizeof(float)), 0);
  double d[4] = {r.train_loss, r.eval_loss, r.eval_acc, r.train_acc};
  long long c[3] = {r.steps, r.samples, r.epochs_done};
  comm.broadcast(d, sizeof d, 0);
  comm.broadcast(c, sizeof c, 0);
  r.train_loss = d[0], r.eval_loss = d[1], r.eval_acc = d[2], r.train_acc = d[3];
  r.steps = c[0], r.samples = c[1], r.epochs_done = c[2];
}

// `single` (default: the same options) configures the 1-rank reference run.
inline Runs run_both(const std::vector<std::string>& a, const std::vector<std::string>& single = {}) {
  Comm world;
  Runs runs;
  Config single_config;
  double failed = 0.0;
  try {
    runs.config = parse_train_args(a).config;
    single_config = single.empty() ? runs.config : parse_train_args(single).config;
    runs.multi = run_training(runs.config, world);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "P-rank run failed on rank " << world.rank() << ": " << e.what();
    failed = 1.0;
  }
  // A 1-rank communicator holding only world rank 0.
  MPI_Comm solo_parent = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split(world.get(), world.rank() == 0 ? 0 : MPI_UNDEFINED, 0, &solo_parent), "MPI_Comm_split");
  if (world.rank() == 0) {
    try {
      Comm solo(solo_parent);
      EXPECT_EQ(solo.size(), 1);
      runs.single = run_training(single_config, solo);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "1-rank run failed: " << e.what();
      failed = 1.0;
    }
    MPI_Comm_free(&solo_parent);
  }
  world.allreduce_max(&failed, 1);
  runs.ok = failed == 0.0;
  if (runs.ok) broadcast_result(world, runs.single);
  return runs;
}

inline bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

inline double rel_diff(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-30); }

// Checks the invariant on every rank; rank 0 prints the largest relative
// weight difference over all ranks.
inline void check_invariant(const Runs& runs, long long want_steps, long long want_samples, bool classification) {
  Comm world;
  const TrainResult& m = runs.multi;
  const TrainResult& s = runs.single;
  EXPECT_EQ(m.steps, want_steps);
  EXPECT_EQ(s.steps, want_steps);
  EXPECT_EQ(m.samples, want_samples);
  EXPECT_EQ(s.samples, want_samples);
  EXPECT_EQ(m.epochs_done, kEpochs);

  // Every rank applied the same updates: bitwise equal weights and metrics.
  TrainResult r0 = m;
  broadcast_result(world, r0);
  EXPECT_EQ(m.params.size(), r0.params.size());
  if (m.params.size() == r0.params.size()) {
    EXPECT_EQ(std::memcmp(m.params.data(), r0.params.data(), m.params.size() * sizeof(float)), 0)
        << "rank " << world.rank() << " weights differ from rank 0's";
  }
  EXPECT_TRUE(same_bits(m.eval_loss, r0.eval_loss)) << m.eval_loss << " vs rank 0 " << r0.eval_loss;
  EXPECT_TRUE(same_bits(m.eval_acc, r0.eval_acc)) << m.eval_acc << " vs rank 0 " << r0.eval_acc;
  EXPECT_TRUE(same_bits(m.train_loss, r0.train_loss)) << m.train_loss << " vs rank 0 " << r0.train_loss;

  // P ranks match 1 rank.
  double max_abs_diff = 0, max_abs_ref = 0;
  EXPECT_EQ(m.params.size(), s.params.size());
  for (size_t i = 0; i < std::min(m.params.size(), s.params.size()); ++i) {
    max_abs_diff = std::max(max_abs_diff, std::abs(static_cast<double>(m.params[i]) - s.params[i]));
    max_abs_ref = std::max(max_abs_ref, std::abs(static_cast<double>(s.params[i])));
  }
  double rel = max_abs_diff / std::max(max_abs_ref, 1e-30);
  EXPECT_LE(rel, kRelTol) << "P-rank weights differ from 1-rank weights on rank " << world.rank();
  EXPECT_LE(rel_diff(m.eval_loss, s.eval_loss), kRelTol) << m.eval_loss << " vs 1-rank " << s.eval_loss;
  EXPECT_LE(rel_diff(m.train_loss, s.train_loss), kRelTol) << m.train_loss << " vs 1-rank " << s.train_loss;
  if (classification) {
    EXPECT_EQ(m.eval_acc, s.eval_acc);  // deterministic: a 1e-6 weight change flips no argmax here
    EXPECT_EQ(m.train_acc, s.train_acc);
  } else {
    EXPECT_TRUE(std::isnan(m.eval_acc)) << "regression has no accuracy, got " << m.eval_acc;
  }

  // Training moved the weights away from their seeded start, so the
  // comparison above is not trivially true.
  Model init(runs.config.model, runs.config.activation, 1);
  init.init(runs.config.seed);
  const float* p0 = init.arena().params();
  EXPECT_EQ(static_cast<size_t>(init.arena().param_count()), s.params.size());
  double moved = 0, init_max = 0;
  for (size_t i = 0; i < std::min(s.params.size(), static_cast<size_t>(init.arena().param_count())); ++i) {
    moved = std::max(moved, std::abs(static_cast<double>(s.params[i]) - p0[i]));
    init_max = std::max(init_max, std::abs(static_cast<double>(p0[i])));
  }
  const double rel_moved = moved / std::max(init_max, 1e-30);
  EXPECT_GT(rel_moved, 1e3 * kRelTol) << "training barely changed the weights";

  world.allreduce_max(&rel, 1);
  if (world.rank() == 0)
    std::printf("[invariance] P=%d  max relative weight difference %.3g (weights moved %.3g)  eval loss %.6f vs "
                "1-rank %.6f\n", world.size(), rel, rel_moved, m.eval_loss, s.eval_loss);
}

}  // namespace invariance
}  // namespace mpitrain

// Tests of BatchSource (train/batch_source.hpp) on small HDF5 files whose
// rows name themselves (x = [row, 1000 + row/2], label row % 3): steps per
// epoch, global and shard rows of each step, chunking by capacity with the
// noise scale's small batch, the rows chunk() reads (the sampler's shard, in
// order, with and without prefetch), resuming mid-epoch, and every training
// row once per epoch over all ranks.
//
// In mpi_tests because a Comm needs MPI: hand-worked cases run on a 1-rank
// communicator (MPI_COMM_SELF) on every rank and on a 2-rank one (world ranks
// 0 and 1, skipped on one rank); the permutation test uses the whole world.
// Each rank writes its own dataset file, so only the all-reduce and the
// communicator split are collective (EXPECT_*, never ASSERT_*, before them).
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/data/dataset.hpp"
#include "mpitrain/data/dataset_writer.hpp"
#include "mpitrain/data/sampler.hpp"
#include "mpitrain/train/batch_source.hpp"

namespace fs = std::filesystem;

namespace mpitrain {
namespace {

constexpr int kWidth = 2, kClasses = 3;

float x0_of(std::int64_t row) { return static_cast<float>(row); }
float x1_of(std::int64_t row) { return 1000.0f + 0.5f * static_cast<float>(row); }
int label_of(std::int64_t row) { return static_cast<int>(row % kClasses); }

SplitArrays self_naming_split(int rows) {
  SplitArrays s;
  s.x_dims = {static_cast<std::uint64_t>(rows), kWidth};
  for (int r = 0; r < rows; ++r) {
    s.x_f32.push_back(x0_of(r));
    s.x_f32.push_back(x1_of(r));
    s.y_class.push_back(label_of(r));
  }
  return s;
}

// What one step read, chunk by chunk.
struct StepRead {
  Batch batch;
  std::vector<int> chunk_rows;     // rows of each chunk
  std::vector<std::int64_t> rows;  // the rows, in read order (from x[., 0])
};

class BatchSourceTest : public ::testing::Test {
 protected:
  BatchSourceTest() {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("mpitrain_batch_source_" + std::to_string(::getpid()) + "_r" +
                                        std::to_string(rank) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~BatchSourceTest() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A classification file with `rows` training rows (and a 5-row test split).
  const DatasetFile& file(int rows) {
    const std::string path = (dir_ / ("d" + std::to_string(files_.size()) + ".h5")).string();
    DatasetArrays d;
    d.train = self_naming_split(rows);
    d.test = self_naming_split(5);
    d.num_classes = kClasses;
    write_dataset_file(d, path);
    files_.push_back(std::make_unique<DatasetFile>(path));
    return *files_.back();
  }

  struct Setup {
    long long n = 0, global_batch = 0;
    int capacity = 0;
    bool prefetch = true;
    std::uint64_t seed = 5;
    bool drop_last = false;
    std::vector<std::int64_t> train_rows;
  };
  std::unique_ptr<BatchSource> source(const DatasetFile& f, const Comm& comm, const Setup& s) {
    direct_.assign(static_cast<size_t>(s.capacity) * kWidth, -1.0f);
    return std::make_unique<BatchSource>(
        BatchSourceSetup{&f, s.n, s.train_rows, s.global_batch, s.drop_last, s.seed, s.capacity, direct_.data(),
                         s.prefetch},
        comm);
  }

  // Takes the next step and reads all its chunks, checking every row's values.
  static StepRead read_step(BatchSource& src) {
    StepRead out;
    out.batch = src.next();
    double wait_s = 0;
    for (size_t i = 0; i < out.batch.chunks; ++i) {
      const ChunkRows c = src.chunk(i, wait_s);
      out.chunk_rows.push_back(c.rows);
      for (int r = 0; r < c.rows; ++r) {
        const auto row = static_cast<std::int64_t>(c.x[r * kWidth]);
        EXPECT_EQ(c.x[r * kWidth], x0_of(row));
        EXPECT_EQ(c.x[r * kWidth + 1], x1_of(row)) << "row " << row;
        EXPECT_EQ(c.labels[r], label_of(row)) << "row " << row;
        out.rows.push_back(row);
      }
    }
    return out;
  }

  fs::path dir_;
  std::vector<std::unique_ptr<DatasetFile>> files_;
  std::vector<float> direct_;
};

std::vector<std::int64_t> to_vector(std::span<const std::int64_t> s) { return {s.begin(), s.end()}; }

// ---- one rank (MPI_COMM_SELF) ----

TEST_F(BatchSourceTest, StepsAreCeilRowsOverBatch) {
  const Comm self(MPI_COMM_SELF);
  const DatasetFile& f = file(23);
  auto src = source(f, self, {.n = 23, .global_batch = 5, .capacity = 8, .prefetch = false});
  EXPECT_EQ(src->steps(), 5);  // ceil(23/5)
  src->start_epoch(0, 10, 0);  // a batch schedule changes B between epochs
  EXPECT_EQ(src->steps(), 3);  // ceil(23/10)
  src->start_epoch(1, 23, 0);
  EXPECT_EQ(src->steps(), 1);
  src->start_epoch(2, 24, 0);
  EXPECT_EQ(src->steps(), 1);
  auto dropping = source(f, self, {.n = 23, .global_batch = 5, .capacity = 8, .prefetch = false, .drop_last = true});
  EXPECT_EQ(dropping->steps(), 4);  // floor(23/5): the 3-row batch is dropped
}

TEST_F(BatchSourceTest, NextGivesGlobalRowsAndAPartialLastBatch) {
  const Comm self(MPI_COMM_SELF);
  const DatasetFile& f = file(23);
  for (const bool prefetch : {false, true}) {
    SCOPED_TRACE(prefetch ? "prefetch" : "no prefetch");
    auto src = source(f, self, {.n = 23, .global_batch = 5, .capacity = 8, .prefetch = prefetch});
    src->start_epoch(0, 5, 0);
    // 23 = 4 x 5 + 3. On one rank the shard is the batch and the small batch its first half (rounded down).
    const long long want_rows[] = {5, 5, 5, 5, 3};
    const size_t want_small[] = {2, 2, 2, 2, 1};
    long long total = 0;
    for (long long s = 0; s < 5; ++s) {
      const StepRead r = read_step(*src);
      EXPECT_EQ(r.batch.step, s);
      EXPECT_EQ(r.batch.global_rows, want_rows[s]) << "step " << s;
      EXPECT_EQ(r.batch.shard_rows, static_cast<size_t>(want_rows[s])) << "step " << s;
      EXPECT_EQ(r.batch.small_rows, want_small[s]) << "step " << s;
      // Capacity 8 holds each half in one chunk.
      EXPECT_EQ(r.batch.chunks, 2u) << "step " << s;
      EXPECT_EQ(r.batch.small_chunks, 1u) << "step " << s;
      EXPECT_EQ(r.rows.size(), static_cast<size_t>(want_rows[s])) << "step " << s;
      total += r.batch.global_rows;
    }
    EXPECT_EQ(total, 23);
  }
}

TEST_F(BatchSourceTest, OneRankChunksSplitAtTheSmallBatch) {
  const Comm self(MPI_COMM_SELF);
  struct Case {
    long long b;
    int capacity;
    size_t small_rows, small_chunks;
    std::vector<int> chunk_rows;
  };
  // Shard 10, capacity 4: halves of 5 rows, each cut 4 + 1 (not 4, 4, 2 across the half).
  // Shard 10, capacity 16: one chunk per half. Shard 7, capacity 4: 3 | 4.
  // Shard 8, capacity 4: exactly one chunk per half. Shard 1: an empty small batch.
  const Case cases[] = {{10, 4, 5, 2, {4, 1, 4, 1}},
                        {10, 16, 5, 1, {5, 5}},
                        {7, 4, 3, 1, {3, 4}},
                        {8, 4, 4, 1, {4, 4}},
                        {9, 2, 4, 2, {2, 2, 2, 2, 1}},
                        {1, 4, 0, 0, {1}}};
  for (const Case& c : cases) {
    const DatasetFile& f = file(static_cast<int>(c.b));
    for (const bool prefetch : {false, true}) {
      SCOPED_TRACE("B " + std::to_string(c.b) + " capacity " + std::to_string(c.capacity) +
                   (prefetch ? " prefetch" : ""));
      auto src = source(f, self, {.n = c.b, .global_batch = c.b, .capacity = c.capacity, .prefetch = prefetch});
      src->start_epoch(0, c.b, 0);
      const StepRead r = read_step(*src);
      EXPECT_EQ(r.batch.shard_rows, static_cast<size_t>(c.b));
      EXPECT_EQ(r.batch.small_rows, c.small_rows);
      EXPECT_EQ(r.batch.chunks, c.chunk_rows.size());
      EXPECT_EQ(r.batch.small_chunks, c.small_chunks);
      EXPECT_EQ(r.chunk_rows, c.chunk_rows);
    }
  }
}

// The rows chunk() reads are the sampler's shard of each step, in order, over
// two epochs, with and without prefetch (the next step's first chunk is read
// ahead); a drain() between steps (as before a checkpoint) loses nothing.
TEST_F(BatchSourceTest, ChunksReadTheSamplersShardInOrder) {
  const Comm self(MPI_COMM_SELF);
  const DatasetFile& f = file(23);
  std::vector<std::vector<std::int64_t>> seen[2];
  for (const bool prefetch : {false, true}) {
    SCOPED_TRACE(prefetch ? "prefetch" : "no prefetch");
    auto src = source(f, self, {.n = 23, .global_batch = 5, .capacity = 2, .prefetch = prefetch, .seed = 7});
    EpochSampler sampler(23, 5, false, 7);
    for (long long epoch = 0; epoch < 2; ++epoch) {
      src->start_epoch(epoch, 5, 0);
      sampler.start_epoch(epoch);
      for (long long s = 0; s < 5; ++s) {
        const StepRead r = read_step(*src);
        EXPECT_EQ(r.rows, to_vector(sampler.shard(s, 1, 0))) << "epoch " << epoch << " step " << s;
        for (int n : r.chunk_rows) EXPECT_LE(n, 2);
        seen[prefetch].push_back(r.rows);
        if (s % 2 == 1) src->drain();
      }
    }
  }
  EXPECT_EQ(seen[0], seen[1]);
  EXPECT_EQ(seen[0].size(), 10u);
  // Epoch 1 is not epoch 0 again (start_epoch passes the epoch on).
  if (seen[0].size() == 10u) EXPECT_NE(seen[0][0], seen[0][5]);
}

TEST_F(BatchSourceTest, StartEpochWithFirstStepResumesThere) {
  const Comm self(MPI_COMM_SELF);
  const DatasetFile& f = file(23);
  for (const bool prefetch : {false, true}) {
    SCOPED_TRACE(prefetch ? "prefetch" : "no prefetch");
    auto src = source(f, self, {.n = 23, .global_batch = 5, .capacity = 4, .prefetch = prefetch, .seed = 11});
    EpochSampler sampler(23, 5, false, 11);
    sampler.start_epoch(1);
    src->start_epoch(1, 5, 3);  // steps 0-2 of epoch 1 were done before the checkpoint
    const StepRead a = read_step(*src);
    EXPECT_EQ(a.batch.step, 3);
    EXPECT_EQ(a.batch.global_rows, 5);
    EXPECT_EQ(a.rows, to_vector(sampler.shard(3, 1, 0)));
    const StepRead b = read_step(*src);
    EXPECT_EQ(b.batch.step, 4);
    EXPECT_EQ(b.batch.global_rows, 3);  // the partial last batch
    EXPECT_EQ(b.rows, to_vector(sampler.shard(4, 1, 0)));
  }
}

// ---- two ranks (world ranks 0 and 1) ----

// An epoch left part-way (its next step's first chunk already queued) must
// not hand that stale chunk to the next epoch's first step.
TEST_F(BatchSourceTest, AnEpochLeftPartWayDoesNotLeakItsQueuedChunk) {
  const Comm self(MPI_COMM_SELF);
  const DatasetFile& f = file(23);
  for (const bool prefetch : {false, true}) {
    SCOPED_TRACE(prefetch ? "prefetch" : "no prefetch");
    auto src = source(f, self, {.n = 23, .global_batch = 5, .capacity = 4, .prefetch = prefetch, .seed = 11});
    src->start_epoch(0, 5, 0);
    read_step(*src);  // step 0 read whole: step 1's first chunk is queued, step 1 never runs
    EpochSampler sampler(23, 5, false, 11);
    sampler.start_epoch(1);
    src->start_epoch(1, 5, 0);
    const StepRead a = read_step(*src);
    EXPECT_EQ(a.rows, to_vector(sampler.shard(0, 1, 0)));
  }
}

TEST_F(BatchSourceTest, TwoRanksChunkTheWholeShardByCapacity) {
  int world_size = 0, world_rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  if (world_size < 2) GTEST_SKIP() << "needs 2 ranks";
  MPI_Comm pair_parent = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, world_rank < 2 ? 0 : MPI_UNDEFINED, world_rank, &pair_parent);
  if (pair_parent == MPI_COMM_NULL) return;
  {
    const Comm pair(pair_parent);
    const int r = pair.rank();
    const DatasetFile& f = file(27);
    for (const bool prefetch : {false, true}) {
      SCOPED_TRACE(prefetch ? "prefetch" : "no prefetch");
      // B 20 of 27 rows: step 0 gives each rank 10 rows, step 1 the 7 left: 3 and 4.
      auto src = source(f, pair, {.n = 27, .global_batch = 20, .capacity = 4, .prefetch = prefetch});
      src->start_epoch(0, 20, 0);
      const StepRead a = read_step(*src);
      EXPECT_EQ(a.batch.global_rows, 20);
      EXPECT_EQ(a.batch.shard_rows, 10u);
      // With more than one rank the small batch is the whole shard: 4, 4, 2.
      EXPECT_EQ(a.batch.small_rows, 10u);
      EXPECT_EQ(a.batch.chunks, 3u);
      EXPECT_EQ(a.batch.small_chunks, 3u);
      EXPECT_EQ(a.chunk_rows, (std::vector<int>{4, 4, 2}));
      const StepRead b = read_step(*src);
      EXPECT_EQ(b.batch.global_rows, 7);
      EXPECT_EQ(b.batch.shard_rows, r == 0 ? 3u : 4u);
      EXPECT_EQ(b.batch.small_rows, r == 0 ? 3u : 4u);
      EXPECT_EQ(b.batch.chunks, 1u);
      EXPECT_EQ(b.batch.small_chunks, 1u);
      EXPECT_EQ(b.chunk_rows, (std::vector<int>{r == 0 ? 3 : 4}));
      // Rank 0 reads the batch's first rows, rank 1 the rest.
      EpochSampler sampler(27, 20, false, 5);
      sampler.start_epoch(0);
      const auto batch0 = to_vector(sampler.batch(0));
      EXPECT_EQ(a.rows, std::vector<std::int64_t>(batch0.begin() + r * 10, batch0.begin() + r * 10 + 10));
      const auto batch1 = to_vector(sampler.batch(1));
      EXPECT_EQ(b.rows, r == 0 ? std::vector<std::int64_t>(batch1.begin(), batch1.begin() + 3)
                               : std::vector<std::int64_t>(batch1.begin() + 3, batch1.end()));
    }
  }
  MPI_Comm_free(&pair_parent);
}

// ---- all ranks ----

// Over all steps and ranks, an epoch reads each training row exactly once,
// and only training rows: here the odd rows of a 50-row file (train_rows
// table, as when a validation set is held out).
TEST_F(BatchSourceTest, EpochReadsEveryTrainingRowOnceOverAllRanks) {
  const Comm comm;
  const DatasetFile& f = file(50);
  std::vector<std::int64_t> odd;
  for (std::int64_t row = 1; row < 50; row += 2) odd.push_back(row);
  for (const bool prefetch : {true, false}) {
    SCOPED_TRACE(prefetch ? "prefetch" : "no prefetch");
    auto src = source(f, comm, {.n = 25, .global_batch = 6, .capacity = 2, .prefetch = prefetch, .train_rows = odd});
    for (long long epoch = 0; epoch < 2; ++epoch) {
      src->start_epoch(epoch, 6, 0);
      EXPECT_EQ(src->steps(), 5);  // ceil(25/6)
      std::vector<double> count(50, 0.0);
      long long global_rows = 0;
      size_t shard_rows = 0;
      for (long long s = 0; s < src->steps(); ++s) {
        const StepRead r = read_step(*src);
        global_rows += r.batch.global_rows;
        shard_rows += r.batch.shard_rows;
        EXPECT_EQ(r.rows.size(), r.batch.shard_rows);
        for (const std::int64_t row : r.rows)
          if (row >= 0 && row < 50) count[static_cast<size_t>(row)] += 1.0;
      }
      EXPECT_EQ(global_rows, 25);  // 6 + 6 + 6 + 6 + 1
      double shard_sum = static_cast<double>(shard_rows);
      comm.allreduce_sum(count.data(), static_cast<long long>(count.size()));
      comm.allreduce_sum(&shard_sum, 1);
      EXPECT_EQ(shard_sum, 25.0);
      for (int row = 0; row < 50; ++row)
        EXPECT_EQ(count[static_cast<size_t>(row)], row % 2 == 1 ? 1.0 : 0.0) << "epoch " << epoch << " row " << row;
    }
  }
}

}  // namespace
}  // namespace mpitrain

// Tests of PrefetchReader: chunks read on the worker thread equal what a plain
// SplitReader reads for the same rows (bitwise) and the stored values; chunks
// come back in request order; a held chunk is not overwritten by the read
// behind it; a failed read is rethrown by take()/drain() and never hangs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/data/dataset.hpp"
#include "mpitrain/data/dataset_writer.hpp"
#include "mpitrain/data/prefetch_reader.hpp"

namespace fs = std::filesystem;
using namespace mpitrain;

namespace {

constexpr int kRows = 100, kClasses = 10, kCapacity = 16, kTargetWidth = 2;
constexpr double kScale = 1.0 / 255.0;

// Known stored values, distinct across rows and features.
std::uint8_t stored_u8(long long r, int k) { return static_cast<std::uint8_t>((r * 7 + k * 31 + 3) % 251); }
int label_of(long long r) { return static_cast<int>((r * 3) % kClasses); }
float stored_f32(long long r, int k) { return static_cast<float>(r) + 0.25f * static_cast<float>(k); }
float target_of(long long r, int j) { return 0.5f * static_cast<float>(r) - static_cast<float>(j); }

// uint8 x [N, 6] with int labels (classification), or float32 x [N, 2, 3]
// with [N, 2] targets (regression). A 5-row test split, as readers require.
SplitArrays make_split(int rows, bool u8) {
  SplitArrays s;
  s.x_dims = u8 ? std::vector<std::uint64_t>{static_cast<std::uint64_t>(rows), 6}
                : std::vector<std::uint64_t>{static_cast<std::uint64_t>(rows), 2, 3};
  for (int r = 0; r < rows; ++r) {
    for (int k = 0; k < 6; ++k) {
      if (u8) s.x_u8.push_back(stored_u8(r, k));
      else s.x_f32.push_back(stored_f32(r, k));
    }
    if (u8) {
      s.y_class.push_back(label_of(r));
    } else {
      for (int j = 0; j < kTargetWidth; ++j) s.y_target.push_back(target_of(r, j));
    }
  }
  s.scale = u8 ? kScale : 1.0;
  s.target_width = u8 ? 0 : kTargetWidth;
  return s;
}

class PrefetchReaderTest : public ::testing::Test {
 protected:
  PrefetchReaderTest() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("mpitrain_prefetch_" + std::to_string(getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (const bool u8 : {true, false}) {
      DatasetArrays d;
      d.train = make_split(kRows, u8);
      d.test = make_split(5, u8);
      d.num_classes = u8 ? kClasses : 0;
      d.source = "test_prefetch_reader";
      write_dataset_file(d, path(u8));
    }
  }
  ~PrefetchReaderTest() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(bool u8) const { return (dir_ / (u8 ? "u8.h5" : "f32.h5")).string(); }

  // Checks one chunk against the stored values of `rows`, in order.
  static void expect_rows(const PrefetchReader::Chunk& c, const std::vector<std::int64_t>& rows, bool u8) {
    ASSERT_EQ(c.rows, static_cast<int>(rows.size()));
    ASSERT_NE(c.x, nullptr);
    for (size_t i = 0; i < rows.size(); ++i) {
      for (int k = 0; k < 6; ++k) {
        const float want = u8 ? static_cast<float>(stored_u8(rows[i], k)) * static_cast<float>(kScale)
                              : stored_f32(rows[i], k);
        EXPECT_FLOAT_EQ(c.x[i * 6 + static_cast<size_t>(k)], want) << "position " << i << " row " << rows[i];
      }
      if (u8) {
        ASSERT_NE(c.labels, nullptr);
        EXPECT_EQ(c.labels[i], label_of(rows[i])) << "position " << i << " row " << rows[i];
      } else {
        ASSERT_NE(c.targets, nullptr);
        for (int j = 0; j < kTargetWidth; ++j)
          EXPECT_EQ(c.targets[i * kTargetWidth + static_cast<size_t>(j)], target_of(rows[i], j)) << "row " << rows[i];
      }
    }
  }

  // A shuffled epoch of all rows cut into chunks of uneven sizes (<= capacity),
  // plus one chunk that repeats rows and one with adjacent rows to merge.
  static std::vector<std::vector<std::int64_t>> shuffled_chunks() {
    std::vector<std::int64_t> perm(kRows);
    std::iota(perm.begin(), perm.end(), 0);
    std::mt19937 rng(12345);
    std::shuffle(perm.begin(), perm.end(), rng);
    std::vector<std::vector<std::int64_t>> chunks;
    const int sizes[] = {16, 3, 16, 1, 11, 16};
    size_t off = 0;
    for (int i = 0; off < perm.size(); ++i) {
      const size_t n = std::min<size_t>(static_cast<size_t>(sizes[i % 6]), perm.size() - off);
      chunks.emplace_back(perm.begin() + static_cast<long>(off), perm.begin() + static_cast<long>(off + n));
      off += n;
    }
    chunks.push_back({7, 7, 3, 99, 7});
    chunks.push_back({40, 41, 42, 43, 12, 13, 0, 99, 98});
    return chunks;
  }

  fs::path dir_;
};

// (1) Shuffled chunks through the pipeline (two requested ahead, as the
// trainer would) are bitwise what SplitReader::read_rows gives, and a taken
// chunk stays intact while the reads behind it run.
TEST_F(PrefetchReaderTest, PrefetchMatchesSplitReaderBitwise) {
  for (const bool u8 : {true, false}) {
    SCOPED_TRACE(u8 ? "uint8 x, class labels" : "float32 x, targets");
    const DatasetFile file(path(u8));
    SplitReader plain(file, "train", kCapacity);
    PrefetchReader pre(file, "train", kCapacity);
    ASSERT_EQ(pre.info().rows, kRows);
    ASSERT_EQ(pre.info().x_width, 6);
    const int yw = pre.info().y_width;
    ASSERT_EQ(yw, u8 ? 0 : kTargetWidth);

    const auto chunks = shuffled_chunks();
    std::vector<float> x(kCapacity * 6), targets(kCapacity * kTargetWidth);
    std::vector<int> labels(kCapacity);
    pre.request(chunks[0]);
    pre.request(chunks[1]);
    for (size_t i = 0; i < chunks.size(); ++i) {
      const PrefetchReader::Chunk c = pre.take();
      if (i + 2 < chunks.size()) pre.request(chunks[i + 2]);
      // Chunk i + 1 is read now; chunk i + 2 must wait for its buffer, which
      // chunk i holds until the next take(). After drain() neither may run
      // over chunk i, so it is checked only now.
      pre.drain();
      plain.read_rows(chunks[i], x.data(), labels.data(), targets.data());
      const size_t n = chunks[i].size();
      ASSERT_EQ(c.rows, static_cast<int>(n)) << "chunk " << i;
      EXPECT_EQ(std::memcmp(c.x, x.data(), n * 6 * sizeof(float)), 0) << "chunk " << i;
      if (u8) {
        EXPECT_EQ(c.targets, nullptr);
        EXPECT_EQ(std::memcmp(c.labels, labels.data(), n * sizeof(int)), 0) << "chunk " << i;
      } else {
        EXPECT_EQ(c.labels, nullptr);
        EXPECT_EQ(std::memcmp(c.targets, targets.data(), n * kTargetWidth * sizeof(float)), 0) << "chunk " << i;
      }
      expect_rows(c, chunks[i], u8);  // and both equal the stored values
    }
    EXPECT_GT(pre.read_s(), 0.0);
    EXPECT_GE(pre.wait_s(), 0.0);
  }
}

// (2) Two chunks requested before either is taken come back in request order.
TEST_F(PrefetchReaderTest, PrefetchTwoOutstandingTakenInOrder) {
  const DatasetFile file(path(true));
  PrefetchReader pre(file, "train", kCapacity);
  const std::vector<std::int64_t> a = {5, 1, 90, 2}, b = {60, 61, 62, 10, 0, 33, 71};
  pre.request(a);
  pre.request(b);
  EXPECT_THROW(pre.request(a), SystemError);  // a third would need a third buffer
  const PrefetchReader::Chunk ca = pre.take();
  expect_rows(ca, a, true);
  const PrefetchReader::Chunk cb = pre.take();
  expect_rows(cb, b, true);
  EXPECT_NE(ca.x, cb.x);  // two buffers
  EXPECT_THROW(pre.take(), SystemError);  // nothing left: throws, does not wait forever
  // The third request is accepted again once a chunk is taken.
  pre.request(a);
  expect_rows(pre.take(), a, true);
}

// Requests beyond the capacity are refused on the calling thread.
TEST_F(PrefetchReaderTest, PrefetchRefusesMoreRowsThanCapacity) {
  const DatasetFile file(path(true));
  PrefetchReader pre(file, "train", kCapacity);
  std::vector<std::int64_t> rows(kCapacity + 1);
  std::iota(rows.begin(), rows.end(), 0);
  EXPECT_THROW(pre.request(rows), SystemError);
  rows.pop_back();
  pre.request(rows);
  expect_rows(pre.take(), rows, true);
}

// (3) A row out of range fails the read on the worker; take() rethrows it,
// drain() reports it too, the reader stays usable, and the destructor joins.
TEST_F(PrefetchReaderTest, PrefetchRowOutOfRangeThrowsFromTake) {
  const DatasetFile file(path(true));
  {
    PrefetchReader pre(file, "train", kCapacity);
    const std::vector<std::int64_t> bad = {3, kRows, 4}, good = {8, 9, 1};
    pre.request(bad);
    pre.request(good);
    EXPECT_THROW(pre.drain(), SystemError);
    try {
      (void)pre.take();
      ADD_FAILURE() << "take() of a chunk with row " << kRows << " did not throw";
    } catch (const SystemError& e) {
      EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
    }
    expect_rows(pre.take(), good, true);  // the failure does not spill into the next chunk
    pre.drain();                          // and is reported once taken: no more throws
    const std::vector<std::int64_t> negative = {-1};
    pre.request(negative);
    EXPECT_THROW((void)pre.take(), SystemError);
  }
  {
    // Destroyed with a failed chunk never taken and a read queued behind it.
    PrefetchReader pre(file, "train", kCapacity);
    const std::vector<std::int64_t> bad = {kRows + 5}, good = {0};
    pre.request(bad);
    pre.request(good);
  }
  SUCCEED();  // reaching here means both destructors joined
}

// (4) drain() returns at once when nothing is pending, and also when the only
// queued read waits for a buffer the caller holds (it must not wait for it).
TEST_F(PrefetchReaderTest, PrefetchDrainDoesNotWaitForever) {
  const DatasetFile file(path(false));
  PrefetchReader pre(file, "train", kCapacity);
  pre.drain();
  EXPECT_EQ(pre.read_s(), 0.0);
  EXPECT_EQ(pre.wait_s(), 0.0);
  const std::vector<std::int64_t> a = {1, 2}, b = {3}, c = {99, 0};
  pre.request(a);
  const PrefetchReader::Chunk ca = pre.take();
  pre.request(b);
  pre.request(c);
  pre.drain();  // b is read; c waits for a's buffer
  expect_rows(ca, a, false);
  expect_rows(pre.take(), b, false);
  expect_rows(pre.take(), c, false);
  pre.drain();
  EXPECT_GT(pre.read_s(), 0.0);
}

// (5) An empty request gives a chunk of 0 rows, in its place in the order.
TEST_F(PrefetchReaderTest, PrefetchEmptyRequestGivesEmptyChunk) {
  const DatasetFile file(path(true));
  PrefetchReader pre(file, "train", kCapacity);
  const std::vector<std::int64_t> none, some = {50, 49};
  pre.request(some);
  pre.request(none);
  expect_rows(pre.take(), some, true);
  const PrefetchReader::Chunk empty = pre.take();
  EXPECT_EQ(empty.rows, 0);
  pre.request(some);
  expect_rows(pre.take(), some, true);
}

}  // namespace

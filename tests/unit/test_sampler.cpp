// Tests of the step -> global rows -> rank shard mapping (sampler.hpp): the
// epoch arithmetic, the balanced shard split, and the rule that the rows of a
// step depend on (seed, epoch, step) only, never on the rank count P.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "mpitrain/data/sampler.hpp"

using namespace mpitrain;

namespace {

std::vector<std::int64_t> to_vector(std::span<const std::int64_t> s) { return {s.begin(), s.end()}; }

// The whole epoch, concatenated step by step and, inside a step, rank by rank.
std::vector<std::int64_t> concat_shards(const EpochSampler& s, int ranks) {
  std::vector<std::int64_t> out;
  for (long long step = 0; step < s.steps(); ++step)
    for (int r = 0; r < ranks; ++r) {
      const auto shard = s.shard(step, ranks, r);
      out.insert(out.end(), shard.begin(), shard.end());
    }
  return out;
}

}  // namespace

TEST(Sampler, StepsPerEpochAndLastBatch) {
  EXPECT_EQ(steps_per_epoch(10000, 32, false), 313);
  EXPECT_EQ(steps_per_epoch(10000, 32, true), 312);
  EXPECT_EQ(batch_rows(10000, 32, 0), 32);
  EXPECT_EQ(batch_rows(10000, 32, 311), 32);
  EXPECT_EQ(batch_rows(10000, 32, 312), 16);
  // Exact division: no partial batch either way.
  EXPECT_EQ(steps_per_epoch(64, 32, false), 2);
  EXPECT_EQ(steps_per_epoch(64, 32, true), 2);
  EXPECT_EQ(batch_rows(64, 32, 1), 32);
  // Fewer rows than one batch.
  EXPECT_EQ(steps_per_epoch(5, 32, false), 1);
  EXPECT_EQ(steps_per_epoch(5, 32, true), 0);
  EXPECT_EQ(batch_rows(5, 32, 0), 5);
}

TEST(Sampler, ShardRangeBatchNotDivisibleByRanks) {
  // b = 10, P = 4: [0,2) [2,5) [5,7) [7,10).
  const long long expect_begin[] = {0, 2, 5, 7};
  const long long expect_size[] = {2, 3, 2, 3};
  for (int r = 0; r < 4; ++r) {
    const RowRange rr = shard_range(10, 4, r);
    EXPECT_EQ(rr.begin, expect_begin[r]) << "rank " << r;
    EXPECT_EQ(rr.size(), expect_size[r]) << "rank " << r;
  }
}

TEST(Sampler, ShardRangesTileTheBatchAndDifferByAtMostOne) {
  for (long long b : {0LL, 1LL, 3LL, 7LL, 10LL, 16LL, 33LL, 1000LL})
    for (int p : {1, 2, 3, 4, 5, 8, 13}) {
      long long next = 0, lo = b, hi = 0;
      for (int r = 0; r < p; ++r) {
        const RowRange rr = shard_range(b, p, r);
        ASSERT_EQ(rr.begin, next) << "b " << b << " P " << p << " rank " << r;
        ASSERT_GE(rr.size(), 0);
        next = rr.end;
        lo = std::min(lo, rr.size());
        hi = std::max(hi, rr.size());
      }
      EXPECT_EQ(next, b) << "b " << b << " P " << p;
      EXPECT_LE(hi - lo, 1) << "b " << b << " P " << p;
      EXPECT_LE(hi, max_shard_rows(b, p)) << "b " << b << " P " << p;
    }
}

TEST(Sampler, LastBatchSmallerThanRankCount) {
  // b = 3, P = 4: one rank gets nothing, the others one row each.
  long long total = 0, zeros = 0;
  for (int r = 0; r < 4; ++r) {
    const long long n = shard_range(3, 4, r).size();
    EXPECT_TRUE(n == 0 || n == 1) << "rank " << r << " got " << n;
    zeros += n == 0 ? 1 : 0;
    total += n;
  }
  EXPECT_EQ(total, 3);
  EXPECT_EQ(zeros, 1);

  // The same through the sampler: N = 11, B = 4 leaves a last batch of 3.
  EpochSampler s(11, 4, false, 9);
  s.start_epoch(0);
  ASSERT_EQ(s.steps(), 3);
  std::vector<std::int64_t> rows;
  for (int r = 0; r < 4; ++r) {
    const auto shard = s.shard(2, 4, r);
    EXPECT_LE(shard.size(), 1u);
    rows.insert(rows.end(), shard.begin(), shard.end());
  }
  EXPECT_EQ(rows, to_vector(s.batch(2)));
  EXPECT_EQ(rows.size(), 3u);
}

TEST(Sampler, MaxShardRowsIsTheLargestShard) {
  EXPECT_EQ(max_shard_rows(10, 4), 3);
  EXPECT_EQ(max_shard_rows(8, 4), 2);
  EXPECT_EQ(max_shard_rows(3, 4), 1);
  EXPECT_EQ(max_shard_rows(256, 1), 256);
}

TEST(Sampler, ShardsCoverTheEpochPermutationExactly) {
  struct Case { long long n, b; int p; bool drop_last; };
  const Case cases[] = {{100, 10, 4, false}, {103, 10, 4, false}, {103, 10, 4, true}, {10000, 32, 3, false},
                        {10000, 32, 3, true}, {7, 3, 4, false},   {7, 3, 4, true},    {5, 8, 2, false},
                        {64, 64, 1, true},    {1, 1, 3, false},   {50, 7, 7, true}};
  const std::uint64_t seed = 1234;
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "N " << c.n << " B " << c.b << " P " << c.p << " drop_last "
                                    << c.drop_last);
    EpochSampler s(c.n, c.b, c.drop_last, seed);
    s.start_epoch(3);
    // The epoch permutation: all batches of the same epoch without drop_last.
    EpochSampler full(c.n, c.b, false, seed);
    full.start_epoch(3);
    std::vector<std::int64_t> perm;
    for (long long step = 0; step < full.steps(); ++step) {
      const auto rows = full.batch(step);
      perm.insert(perm.end(), rows.begin(), rows.end());
    }
    ASSERT_EQ(static_cast<long long>(perm.size()), c.n);
    const long long covered = c.drop_last ? (c.n / c.b) * c.b : c.n;
    const std::vector<std::int64_t> expected(perm.begin(), perm.begin() + covered);
    EXPECT_EQ(concat_shards(s, c.p), expected);

    // Each row at most once, and every one of the N rows when not dropping.
    auto sorted = concat_shards(s, c.p);
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
    if (!c.drop_last) {
      ASSERT_EQ(static_cast<long long>(sorted.size()), c.n);
      EXPECT_EQ(sorted.front(), 0);
      EXPECT_EQ(sorted.back(), c.n - 1);
    }
    // With drop_last every step is a full global batch.
    for (long long step = 0; step < s.steps(); ++step) {
      if (c.drop_last) {
        EXPECT_EQ(static_cast<long long>(s.batch(step).size()), c.b);
      }
      long long biggest = 0;
      for (int r = 0; r < c.p; ++r) biggest = std::max<long long>(biggest, static_cast<long long>(s.shard(step, c.p, r).size()));
      EXPECT_LE(biggest, max_shard_rows(c.b, c.p));
    }
  }
}

TEST(Sampler, BatchRowsDoNotDependOnRankCount) {
  EpochSampler s(1000, 48, false, 77);
  s.start_epoch(2);
  const auto reference = concat_shards(s, 1);
  for (int p : {2, 3, 4, 5, 7, 16, 64}) EXPECT_EQ(concat_shards(s, p), reference) << "P " << p;
  // A sampler built elsewhere (e.g. another run at another P) agrees.
  EpochSampler other(1000, 48, false, 77);
  other.start_epoch(2);
  for (long long step = 0; step < s.steps(); ++step)
    ASSERT_EQ(to_vector(other.batch(step)), to_vector(s.batch(step))) << "step " << step;
}

TEST(Sampler, EpochsAndSeedsChangeTheOrderDeterministically) {
  EpochSampler a(500, 50, false, 5), b(500, 50, false, 5), c(500, 50, false, 6);
  a.start_epoch(0);
  const auto e0 = to_vector(a.batch(0));
  a.start_epoch(1);
  const auto e1 = to_vector(a.batch(0));
  EXPECT_NE(e0, e1);
  b.start_epoch(0);
  EXPECT_EQ(to_vector(b.batch(0)), e0);  // same seed, same epoch: same order
  a.start_epoch(0);
  EXPECT_EQ(to_vector(a.batch(0)), e0);  // restarting an epoch (resume) repeats it
  c.start_epoch(0);
  EXPECT_NE(to_vector(c.batch(0)), e0);  // another seed: another order
  // The epoch order is shuffled, not the identity.
  std::vector<std::int64_t> first(50);
  for (int i = 0; i < 50; ++i) first[static_cast<size_t>(i)] = i;
  EXPECT_NE(e0, first);
}

TEST(Sampler, BatchBeforeStartEpochThrows) {
  EpochSampler s(10, 4, false, 1);
  EXPECT_THROW(s.batch(0), std::logic_error);
}

namespace mpitrain {
namespace {

// --global-batch auto changes B between two steps of an epoch: the epoch's
// order continues where it stands, so every row is still taken once, the
// steps after the change are the order's next B rows, and a run resumed at
// (step, offset) sees the same batches.
TEST(Sampler, ChangingTheBatchMidEpochContinuesTheOrder) {
  EpochSampler s(100, 8, false, 5);
  s.start_epoch(2);
  EpochSampler whole(100, 100, false, 5);
  whole.start_epoch(2);
  const auto order = to_vector(whole.batch(0));
  std::vector<std::int64_t> seen;
  for (long long step = 0; step < 3; ++step) {
    const auto b = to_vector(s.batch(step));
    seen.insert(seen.end(), b.begin(), b.end());
  }
  s.set_global_batch(30, 3, s.offset_of(3));  // after 3 steps of 8 rows: 24 taken
  EXPECT_EQ(s.offset_of(3), 24);
  ASSERT_EQ(s.steps(), 3 + 3);                // 76 rows left: 30, 30, 16
  for (long long step = 3; step < s.steps(); ++step) {
    const auto b = to_vector(s.batch(step));
    EXPECT_EQ(static_cast<long long>(b.size()), step < 5 ? 30 : 16);
    seen.insert(seen.end(), b.begin(), b.end());
  }
  EXPECT_EQ(seen, order);  // the same order, every row once
  EXPECT_THROW(s.batch(2), std::out_of_range);  // steps before the change belong to the old batch

  EpochSampler resumed(100, 30, false, 5);  // a resume at step 4 (offset 54)
  resumed.set_global_batch(30, 4, 54);
  resumed.start_epoch(2);
  EXPECT_EQ(to_vector(resumed.batch(4)), to_vector(s.batch(4)));
  EXPECT_EQ(resumed.steps(), s.steps());

  EpochSampler dropped(100, 8, true, 5);  // --drop-last drops the new batch's partial tail
  dropped.start_epoch(2);
  dropped.set_global_batch(30, 3, 24);
  EXPECT_EQ(dropped.steps(), 5);
  EXPECT_THROW(s.set_global_batch(30, 3, 101), std::invalid_argument);
}

}  // namespace
}  // namespace mpitrain

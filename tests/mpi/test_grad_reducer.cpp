// The bucketed, non-blocking gradient all-reduce (GradientReducer) on every
// rank count: bucket boundaries fall on parameter boundaries and respect the
// size limit, the result equals one blocking MPI_Allreduce of the whole
// buffer (stats included), whatever point of backward each rank has reached
// when it starts its buckets, and the local norm is taken before reduction.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <vector>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/comm/gradient_reducer.hpp"
#include "mpitrain/core/arena.hpp"

namespace mpitrain {
namespace {

// Three "layers" of parameters: 100 + 10, 50 + 5, 7 floats (with 64-byte alignment padding).
Arena make_arena() {
  Arena a;
  a.add("l0/W", {10, 10});
  a.add("l0/b", {10});
  a.add("l1/W", {10, 5});
  a.add("l1/b", {5});
  a.add("l2/W", {7});
  a.allocate();
  return a;
}

// Rank-dependent values in stats and gradients (padding stays zero).
void fill(Arena& a, int rank) {
  for (int i = 0; i < Arena::kStatSlots; ++i) a.stats()[i] = static_cast<float>(rank * 100 + i);
  for (const auto& v : a.views())
    for (long long i = 0; i < v.size; ++i)
      a.grads()[v.offset + i] = static_cast<float>((rank + 1) * (i % 7 + 1)) * 0.25f + static_cast<float>(v.offset);
}

TEST(GradientReducer, BucketsCoverTheBufferOnParameterBoundaries) {
  Comm comm;
  Arena a = make_arena();
  GradientReducer one(a, comm, 0, false);
  EXPECT_EQ(one.bucket_count(), 1);
  GradientReducer tiny(a, comm, 4, false);  // every parameter its own bucket
  EXPECT_EQ(tiny.bucket_count(), 5);
  GradientReducer mid(a, comm, 60 * 4, false);  // >= 60 floats: l2+l1 (7, 5, 50+pad) then l0 and the stats
  EXPECT_EQ(mid.bucket_count(), 2);
}

TEST(GradientReducer, EqualsOneAllreduceWhateverEachRankHasReached) {
  Comm comm;
  for (long long bucket_bytes : {0LL, 4LL, 240LL, 1LL << 20}) {
    Arena a = make_arena(), want = make_arena();
    fill(a, comm.rank());
    fill(want, comm.rank());
    MPI_Allreduce(MPI_IN_PLACE, want.reduce_buffer(), static_cast<int>(want.reduce_count()), MPI_FLOAT, MPI_SUM,
                  comm.get());
    GradientReducer r(a, comm, bucket_bytes, true);
    r.begin_step();
    // Rank 0 reports the layers as backward would (last first); the others do
    // not (an empty shard runs no backward): the buckets must still match up.
    if (comm.rank() == 0)
      for (size_t layer = 3; layer-- > 0;) r.after_layer(layer, a.views()[layer * 2].offset);
    r.finish();
    for (long long i = 0; i < a.reduce_count(); ++i)
      EXPECT_EQ(a.reduce_buffer()[i], want.reduce_buffer()[i]) << "bucket_bytes " << bucket_bytes << " index " << i;
    EXPECT_GE(r.last_comm_s(), r.last_wait_s());
  }
}

TEST(GradientReducer, LocalNormIsTakenBeforeTheSum) {
  Comm comm;
  Arena a = make_arena();
  fill(a, comm.rank());
  double want = 0;
  for (long long i = 0; i < a.param_count(); ++i) want += static_cast<double>(a.grads()[i]) * a.grads()[i];
  GradientReducer r(a, comm, 4, true);  // with a thread when P > 1
  r.begin_step();
  r.after_layer(2, a.views()[4].offset);  // the last layer's bucket is sent and may already be summed
  r.after_layer(1, a.views()[2].offset);
  const double got = r.local_sq_norm();
  r.finish();
  EXPECT_NEAR(got, want, 1e-9 * want);
  // A second step reuses the reducer.
  fill(a, comm.rank());
  r.begin_step();
  r.after_layer(2, a.views()[4].offset);
  EXPECT_NEAR(r.local_sq_norm(), want, 1e-9 * want);
  r.finish();
}

}  // namespace
}  // namespace mpitrain

// How the gradient all-reduce cuts the reduce buffer (the stat slots, then the
// gradients in forward order; Arena::reduce_buffer()) into buckets. A pure
// function of the arena's layout and the bucket size, so GradientReducer and
// `mpitrain inspect --model` (which the study tools read) cut the same way.
#pragma once
#include <vector>

#include "mpitrain/core/arena.hpp"

namespace mpitrain {

// --bucket-bytes when not given: the trainer's, and what inspect and bench assume.
inline constexpr long long kDefaultBucketBytes = 256 * 1024;

struct GradientBucket {
  long long begin = 0, end = 0;  // in floats, into the reduce buffer
};

// The buckets in buffer order. Walking the parameters from the last to the
// first, a bucket closes once it holds at least bucket_bytes / 4 floats; a
// bucket never splits a parameter, and the first one holds the stat slots and
// whatever is left. bucket_bytes <= 0: one bucket, the whole buffer.
std::vector<GradientBucket> plan_buckets(const Arena& arena, long long bucket_bytes);

}  // namespace mpitrain

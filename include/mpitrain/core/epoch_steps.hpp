// How many steps one epoch has: the vocabulary's "epoch" (DESIGN.md) as
// arithmetic, in core/ because both the sampler (data/) and the learning-rate
// schedule (optim/) count steps and neither area may depend on the other.
#pragma once

namespace mpitrain {

// Steps in one pass over n rows at global batch B: ceil(n/B), the last batch
// partial, or floor(n/B) with drop_last (N=10000, B=32: 313, or 312).
inline long long steps_per_epoch(long long n, long long global_batch, bool drop_last) {
  return drop_last ? n / global_batch : (n + global_batch - 1) / global_batch;
}

}  // namespace mpitrain

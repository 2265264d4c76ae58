#include "mpitrain/comm/bucket_plan.hpp"

#include <algorithm>

namespace mpitrain {

std::vector<GradientBucket> plan_buckets(const Arena& arena, long long bucket_bytes) {
  const long long stats = Arena::kStatSlots;
  const long long total = arena.reduce_count();
  const long long limit = bucket_bytes > 0 ? std::max<long long>(bucket_bytes / 4, 1) : total;
  // Backward finishes the last layer first, so buckets are cut from the end.
  std::vector<GradientBucket> reversed;
  long long end = total;
  const auto& views = arena.views();
  for (size_t i = views.size(); i-- > 1;) {
    const long long begin = stats + views[i].offset;
    if (end - begin >= limit) {
      reversed.push_back({begin, end});
      end = begin;
    }
  }
  reversed.push_back({0, end});  // the stats and the first parameter(s)
  return {reversed.rbegin(), reversed.rend()};
}

}  // namespace mpitrain

#include "mpitrain/data/sampler.hpp"

#include <algorithm>
#include <stdexcept>

#include "mpitrain/core/rng.hpp"

namespace mpitrain {

long long batch_rows(long long n, long long global_batch, long long step) {
  return std::clamp(n - step * global_batch, 0LL, global_batch);
}

RowRange shard_range(long long b, int ranks, int rank) {
  return RowRange{rank * b / ranks, (rank + 1) * b / ranks};
}

long long max_shard_rows(long long global_batch, int ranks) {
  return (global_batch + ranks - 1) / ranks;
}

EpochSampler::EpochSampler(long long n, long long global_batch, bool drop_last, std::uint64_t seed,
                           std::vector<std::int64_t> row_table)
    : n_(n), global_batch_(global_batch), drop_last_(drop_last), seed_(seed), row_table_(std::move(row_table)) {
  if (!row_table_.empty() && static_cast<long long>(row_table_.size()) != n_)
    throw std::invalid_argument("EpochSampler: row table size differs from n");
}

void EpochSampler::start_epoch(long long epoch) {
  perm_ = random_permutation(n_, stream_key(seed_, 0x65706f6368 /* "epoch" */, static_cast<std::uint64_t>(epoch)));
  if (!row_table_.empty())
    for (auto& p : perm_) p = row_table_[static_cast<size_t>(p)];
}

std::span<const std::int64_t> EpochSampler::batch(long long step) const {
  if (perm_.empty() && n_ > 0) throw std::logic_error("EpochSampler::batch before start_epoch");
  if (step < 0 || step >= steps()) throw std::out_of_range("EpochSampler::batch: step out of range");
  const long long b = batch_rows(n_, global_batch_, step);
  return std::span<const std::int64_t>(perm_).subspan(static_cast<size_t>(step * global_batch_),
                                                       static_cast<size_t>(b));
}

std::span<const std::int64_t> EpochSampler::shard(long long step, int ranks, int rank) const {
  const auto rows = batch(step);
  const RowRange r = shard_range(static_cast<long long>(rows.size()), ranks, rank);
  return rows.subspan(static_cast<size_t>(r.begin), static_cast<size_t>(r.size()));
}

}  // namespace mpitrain

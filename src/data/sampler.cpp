#include "mpitrain/data/sampler.hpp"

#include <algorithm>
#include <stdexcept>

#include "mpitrain/core/rng.hpp"

namespace mpitrain {

long long batch_rows(long long n, long long global_batch, long long step) {
  return std::clamp(n - step * global_batch, 0LL, global_batch);
}

long long unit_count(long long b, long long unit_rows) { return (b + unit_rows - 1) / unit_rows; }

RowRange shard_range(long long b, int ranks, int rank, long long unit_rows) {
  if (unit_rows <= 0) return RowRange{rank * b / ranks, (rank + 1) * b / ranks};
  const long long n = unit_count(b, unit_rows);
  return RowRange{std::min(rank * n / ranks * unit_rows, b), std::min((rank + 1) * n / ranks * unit_rows, b)};
}

long long max_shard_rows(long long global_batch, int ranks, long long unit_rows) {
  if (unit_rows <= 0) return (global_batch + ranks - 1) / ranks;
  const long long n = unit_count(global_batch, unit_rows);
  return std::min((n + ranks - 1) / ranks * unit_rows, global_batch);
}

EpochSampler::EpochSampler(long long n, long long global_batch, bool drop_last, std::uint64_t seed,
                           std::vector<std::int64_t> row_table, long long unit_rows)
    : n_(n),
      global_batch_(global_batch),
      drop_last_(drop_last),
      seed_(seed),
      row_table_(std::move(row_table)),
      unit_rows_(unit_rows) {
  if (!row_table_.empty() && static_cast<long long>(row_table_.size()) != n_)
    throw std::invalid_argument("EpochSampler: row table size differs from n");
}

void EpochSampler::start_epoch(long long epoch) {
  perm_ = random_permutation(n_, stream_key(seed_, 0x65706f6368 /* "epoch" */, static_cast<std::uint64_t>(epoch)));
  if (!row_table_.empty())
    for (auto& p : perm_) p = row_table_[static_cast<size_t>(p)];
}

void EpochSampler::set_global_batch(long long global_batch, long long from_step, long long from_offset) {
  if (global_batch < 1 || from_step < 0 || from_offset < 0 || from_offset > n_)
    throw std::invalid_argument("EpochSampler::set_global_batch: bad batch or origin");
  global_batch_ = global_batch;
  origin_step_ = from_step;
  origin_offset_ = from_offset;
}

long long EpochSampler::offset_of(long long step) const {
  if (step < origin_step_) throw std::out_of_range("EpochSampler::offset_of: step before the batch's origin");
  return std::min(n_, origin_offset_ + (step - origin_step_) * global_batch_);
}

std::span<const std::int64_t> EpochSampler::batch(long long step) const {
  if (perm_.empty() && n_ > 0) throw std::logic_error("EpochSampler::batch before start_epoch");
  if (step < origin_step_ || step >= steps()) throw std::out_of_range("EpochSampler::batch: step out of range");
  const long long offset = offset_of(step);
  const long long b = std::min(n_ - offset, global_batch_);
  return std::span<const std::int64_t>(perm_).subspan(static_cast<size_t>(offset), static_cast<size_t>(b));
}

std::span<const std::int64_t> EpochSampler::shard(long long step, int ranks, int rank) const {
  const auto rows = batch(step);
  const RowRange r = shard_range(static_cast<long long>(rows.size()), ranks, rank, unit_rows_);
  return rows.subspan(static_cast<size_t>(r.begin), static_cast<size_t>(r.size()));
}

}  // namespace mpitrain

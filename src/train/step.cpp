#include "mpitrain/train/step.hpp"

#include <algorithm>

#include "mpitrain/core/clock.hpp"
#include "mpitrain/core/vector_math.hpp"

namespace mpitrain {
namespace {

// Stat slots of the all-reduce buffer (Arena::stats()).
enum Stat { kLossSum = 0, kCorrect = 1, kSmallSq = 2, kInvSmall = 3, kContributors = 4 };
// The same statistics per unit (--deterministic), summed exactly.
constexpr int kUnitStats = 5;

// The step's sums from the reduced stat slots (floats of the all-reduce, or
// the exact sums of --deterministic): the noise scale's means over contributors.
template <class T>
StepSums sums_from(const T* stats) {
  StepSums sums;
  sums.loss = stats[kLossSum];
  sums.correct = stats[kCorrect];
  sums.contributors = stats[kContributors];
  if (sums.contributors > 0) {
    sums.small_sq_mean = stats[kSmallSq] / sums.contributors;
    sums.inv_small_mean = stats[kInvSmall] / sums.contributors;
  }
  return sums;
}

}  // namespace

void CommBatchSum::sum(double* data, int count, int units) {
  if (exact_) {
    exact_sum_.sum(&comm_, data, units, count, data);
    return;
  }
  for (int u = 1; u < units; ++u)
    for (int k = 0; k < count; ++k) data[k] += data[static_cast<long long>(u) * count + k];
  if (units == 0) std::fill(data, data + count, 0.0);
  if (comm_.size() > 1) comm_.allreduce_sum(data, count);
}

namespace {
std::vector<std::pair<long long, long long>> tensors_of(const Arena& arena) {
  std::vector<std::pair<long long, long long>> t;
  for (const auto& v : arena.views()) t.emplace_back(v.offset, v.size);
  return t;
}
}  // namespace

UnitGradients::UnitGradients(const Arena& arena, long long max_units)
    : sums_(tensors_of(arena), arena.param_count(), max_units),
      sq_(static_cast<size_t>(max_units)) {}

void UnitGradients::begin(long long first_unit, long long units, long long total_units) {
  sums_.begin(units, total_units);
  first_unit_ = first_unit;
}

void UnitGradients::add(long long unit, long long offset, long long count) { sums_.add(unit - first_unit_, offset, count); }

GradientStep::GradientStep(Model& model, const Comm& comm, int num_classes, long long bucket_bytes, std::uint64_t seed,
                           int unit_rows, long long max_shard_rows)
    : model_(model),
      comm_(comm),
      num_classes_(num_classes),
      seed_(seed),
      batch_sum_(comm, unit_rows > 0),
      reducer_(model.arena(), comm, model.uses_batch_statistics() || unit_rows > 0 ? 0 : bucket_bytes,
               /*track_local_norm=*/comm.size() > 1 && unit_rows == 0),
      unit_rows_(unit_rows),
      stat_sum_(kUnitStats) {
  if (unit_rows_ > 0) {
    const long long max_units = std::max(1LL, (max_shard_rows + unit_rows - 1) / unit_rows);
    units_ = std::make_unique<UnitGradients>(model.arena(), max_units);
    partials_.resize(static_cast<size_t>(max_units * kUnitStats));
    model_.pass().unit_rows = unit_rows;
    model_.pass().unit_sink = units_.get();
  }
}

StepSums GradientStep::run(BatchSource& source, const Batch& batch, long long global_step, StepTimes& times) {
  Pass& pass = model_.pass();
  pass.training = true;
  pass.seed = seed_;
  pass.step = global_step;
  pass.batch_sum = &batch_sum_;
  if (unit_rows_ > 0) return run_units(source, batch, times);
  Arena& arena = model_.arena();
  arena.zero_grads();
  reducer_.begin_step();
  const long long b = batch.global_rows;
  const size_t split = batch.small_chunks;
  const size_t small = batch.small_rows;

  const auto grad_scale = 1.0f / static_cast<float>(b);  // sum over rows / b: the all-reduce gives the mean
  double loss = 0, correct = 0, small_sq = 0;
  // Batch statistics: every rank runs one pass, an empty one when it has no rows.
  const size_t passes = model_.uses_batch_statistics() ? 1 : batch.chunks;
  for (size_t i = 0; i < passes; ++i) {
    const ChunkRows in = i < batch.chunks ? source.chunk(i, times.data)
                                          : ChunkRows{model_.input(), nullptr, nullptr, 0, batch.first_row};
    const double t0 = now_s();
    const int rows = in.rows;
    pass.first_row = in.first_row;
    const LossSums l = forward_loss(model_, num_classes_, rows, in.x, in.labels, in.targets, grad_scale);
    // The last chunk's backward starts the all-reduce of each bucket as it completes.
    model_.backward(rows, i + 1 == passes ? &reducer_ : nullptr);
    loss += l.loss;
    correct += l.correct;
    if (comm_.size() == 1 && i + 1 == split) {
      const double n = l2_norm(arena.grads(), arena.param_count());
      small_sq = n * n;
    }
    times.compute += now_s() - t0;
  }
  const double t0 = now_s();
  if (comm_.size() > 1) small_sq = reducer_.local_sq_norm();
  float* stats = arena.stats();
  stats[kLossSum] = static_cast<float>(loss);
  stats[kCorrect] = static_cast<float>(correct);
  // The arena holds sum/b; the small batch's mean gradient is that x b/small.
  const double to_mean = small > 0 ? static_cast<double>(b) / static_cast<double>(small) : 0.0;
  stats[kSmallSq] = static_cast<float>(small_sq * to_mean * to_mean);
  stats[kInvSmall] = small > 0 ? 1.0f / static_cast<float>(small) : 0.0f;
  stats[kContributors] = small > 0 ? 1.0f : 0.0f;
  times.compute += now_s() - t0;
  reducer_.finish();  // every rank takes part, also with an empty shard
  times.allreduce_wait += reducer_.last_wait_s();
  times.comm += reducer_.last_comm_s();

  return sums_from(stats);
}

StepSums GradientStep::run_units(BatchSource& source, const Batch& batch, StepTimes& times) {
  Arena& arena = model_.arena();
  Pass& pass = model_.pass();
  const long long b = batch.global_rows;
  const long long u = unit_rows_;
  const long long first_unit = batch.first_row / u;
  const auto units = static_cast<int>((static_cast<long long>(batch.shard_rows) + u - 1) / u);
  units_->begin(first_unit, units, (b + u - 1) / u);
  const auto grad_scale = 1.0f / static_cast<float>(b);
  const size_t passes = model_.uses_batch_statistics() ? 1 : batch.chunks;
  int done = 0;  // units of this rank so far
  for (size_t i = 0; i < passes; ++i) {
    const ChunkRows in = i < batch.chunks ? source.chunk(i, times.data)
                                          : ChunkRows{model_.input(), nullptr, nullptr, 0, batch.first_row};
    const double t0 = now_s();
    pass.first_row = in.first_row;
    done += forward_loss_units(model_, num_classes_, in.rows, in.x, in.labels, in.targets, grad_scale,
                               partials_.data() + static_cast<long long>(done) * kUnitStats, kUnitStats);
    model_.backward(in.rows);  // each unit's gradients go to units_ (pass.unit_sink)
    times.compute += now_s() - t0;
  }
  const double t0 = now_s();
  // Every rank takes part, also with an empty shard. A tensor with a value
  // that is not finite sums to NaN: the divergence check stops the run.
  units_->reduce_into(comm_, arena.grads());
  // Per unit: its mean gradient's squared norm (the arena held sum/b), 1/rows, and 1 (a contributor).
  for (int k = 0; k < units; ++k) {
    const long long rows = std::min(u, static_cast<long long>(batch.shard_rows) - k * u);
    const double to_mean = static_cast<double>(b) / static_cast<double>(rows);
    double* p = partials_.data() + static_cast<long long>(k) * kUnitStats;
    p[kSmallSq] = units_->unit_sq(k) * to_mean * to_mean;
    p[kInvSmall] = 1.0 / static_cast<double>(rows);
    p[kContributors] = 1.0;
  }
  double totals[kUnitStats];
  stat_sum_.sum(&comm_, partials_.data(), units, kUnitStats, totals);
  const double t1 = now_s();
  times.allreduce_wait += t1 - t0;  // the whole exact sum, its integer conversions included
  times.comm += t1 - t0;

  return sums_from(totals);
}


}  // namespace mpitrain

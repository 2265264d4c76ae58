#include "mpitrain/train/step.hpp"

#include "mpitrain/core/clock.hpp"
#include "mpitrain/io/json_lines.hpp"
#include "mpitrain/optim/optimizer.hpp"

namespace mpitrain {
namespace {

// Stat slots of the all-reduce buffer (Arena::stats()).
enum Stat { kLossSum = 0, kCorrect = 1, kSmallSq = 2, kInvSmall = 3, kContributors = 4 };

}  // namespace

GradientStep::GradientStep(Model& model, const DatasetFile& data, const Comm& comm, int num_classes,
                           int capacity_rows, long long bucket_bytes, bool prefetch)
    : model_(model),
      comm_(comm),
      num_classes_(num_classes),
      capacity_(capacity_rows),
      reducer_(model.arena(), comm, bucket_bytes, /*track_local_norm=*/comm.size() > 1),
      targets_(capacity_rows, data.split("train").y_width) {
  if (prefetch) prefetch_ = std::make_unique<PrefetchReader>(data, "train", capacity_rows);
  else reader_.emplace(data, "train", capacity_rows);
  // Sized once: a shard is at most ceil(B/P) rows, but B can change with a
  // batch schedule, so the vectors may grow once at such an epoch, never per step.
  chunks_.reserve(64);
  next_chunks_.reserve(64);
}

size_t GradientStep::plan_chunks(std::span<const std::int64_t> shard,
                                 std::vector<std::span<const std::int64_t>>& out) const {
  out.clear();
  const size_t small = small_batch_rows(shard);
  const auto cap = static_cast<size_t>(capacity_);
  const auto add = [&out, cap](std::span<const std::int64_t> part) {
    for (size_t off = 0; off < part.size(); off += cap) out.push_back(part.subspan(off, std::min(cap, part.size() - off)));
  };
  add(shard.first(small));
  const size_t split = out.size();
  add(shard.subspan(small));
  return split;
}

GradientStep::Input GradientStep::read(std::span<const std::int64_t> rows, StepTimes& times) {
  const double t0 = now_s();
  Input in{};
  if (prefetch_) {
    const PrefetchReader::Chunk c = prefetch_->take();
    in = {c.x, c.labels, c.targets};
  } else {
    reader_->read_rows(rows, model_.input(), targets_.labels.data(), targets_.targets.data());
    in = {model_.input(), targets_.labels.data(), targets_.targets.data()};
  }
  times.data += now_s() - t0;
  return in;
}

StepSums GradientStep::run(std::span<const std::int64_t> shard, long long b, std::span<const std::int64_t> next_shard,
                           StepTimes& times) {
  Arena& arena = model_.arena();
  arena.zero_grads();
  reducer_.begin_step();
  const size_t split = plan_chunks(shard, chunks_);
  const size_t small = small_batch_rows(shard);
  if (prefetch_ && !next_first_requested_ && !chunks_.empty()) prefetch_->request(chunks_.front());
  next_first_requested_ = false;

  const auto grad_scale = 1.0f / static_cast<float>(b);  // sum over rows / b: the all-reduce gives the mean
  double loss = 0, correct = 0, small_sq = 0;
  for (size_t i = 0; i < chunks_.size(); ++i) {
    const Input in = read(chunks_[i], times);
    // Queue the next chunk, of this step or the next, before computing this one.
    if (prefetch_) {
      if (i + 1 < chunks_.size()) {
        prefetch_->request(chunks_[i + 1]);
      } else if (!next_shard.empty()) {
        plan_chunks(next_shard, next_chunks_);
        prefetch_->request(next_chunks_.front());
        next_first_requested_ = true;
      }
    }
    const double t0 = now_s();
    const int rows = static_cast<int>(chunks_[i].size());
    const LossSums l = forward_loss(model_, num_classes_, rows, in.x, in.labels, in.targets, grad_scale);
    // The last chunk's backward starts the all-reduce of each bucket as it completes.
    model_.backward(rows, i + 1 == chunks_.size() ? &reducer_ : nullptr);
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

void GradientStep::drain() {
  if (prefetch_) prefetch_->drain();
}

}  // namespace mpitrain

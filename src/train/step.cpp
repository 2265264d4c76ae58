#include "mpitrain/train/step.hpp"

#include "mpitrain/core/clock.hpp"
#include "mpitrain/core/vector_math.hpp"

namespace mpitrain {
namespace {

// Stat slots of the all-reduce buffer (Arena::stats()).
enum Stat { kLossSum = 0, kCorrect = 1, kSmallSq = 2, kInvSmall = 3, kContributors = 4 };

}  // namespace

GradientStep::GradientStep(Model& model, const Comm& comm, int num_classes, long long bucket_bytes, std::uint64_t seed)
    : model_(model),
      comm_(comm),
      num_classes_(num_classes),
      seed_(seed),
      batch_sum_(comm),
      reducer_(model.arena(), comm, model.uses_batch_statistics() ? 0 : bucket_bytes,
               /*track_local_norm=*/comm.size() > 1) {}

StepSums GradientStep::run(BatchSource& source, const Batch& batch, long long global_step, StepTimes& times) {
  Arena& arena = model_.arena();
  arena.zero_grads();
  reducer_.begin_step();
  const long long b = batch.global_rows;
  const size_t split = batch.small_chunks;
  const size_t small = batch.small_rows;

  const auto grad_scale = 1.0f / static_cast<float>(b);  // sum over rows / b: the all-reduce gives the mean
  double loss = 0, correct = 0, small_sq = 0;
  Pass& pass = model_.pass();
  pass.training = true;
  pass.seed = seed_;
  pass.step = global_step;
  pass.batch_sum = &batch_sum_;
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


}  // namespace mpitrain

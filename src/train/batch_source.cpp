#include "mpitrain/train/batch_source.hpp"

#include <algorithm>

#include "mpitrain/core/clock.hpp"

namespace mpitrain {

BatchSource::BatchSource(BatchSourceSetup s, const Comm& comm)
    : comm_(comm),
      sampler_(s.train_count, s.global_batch, s.drop_last, s.seed, std::move(s.train_rows), s.unit_rows),
      whole_shard_(s.whole_shard),
      unit_rows_(s.unit_rows),
      augment_(s.augment),
      image_(s.image),
      seed_(s.seed),
      augment_scratch_(s.augment.enabled() ? static_cast<size_t>(s.image.size()) : 0),
      capacity_(s.capacity_rows),
      direct_input_(s.direct_input),
      targets_(s.capacity_rows, s.data->split("train").y_width) {
  if (s.prefetch) prefetch_ = std::make_unique<PrefetchReader>(*s.data, "train", s.capacity_rows);
  else reader_.emplace(*s.data, "train", s.capacity_rows);
  // Sized once: a shard is at most ceil(B/P) rows, but B can change with a
  // batch schedule, so the vectors may grow once at such an epoch, never per step.
  chunks_.reserve(64);
  next_chunks_.reserve(64);
}

// A chunk queued for a step that will not run as planned (an epoch left
// part-way, or a batch changed) is dropped, so the next read is its own.
void BatchSource::drop_queued_next() {
  if (prefetch_ && next_first_requested_) prefetch_->take();
  next_first_requested_ = false;
}

void BatchSource::start_epoch(long long epoch, long long global_batch, long long first_step, long long first_offset) {
  drop_queued_next();
  sampler_.set_global_batch(global_batch, first_step,
                            first_offset >= 0 ? first_offset
                                              : std::min(first_step * global_batch, sampler_.rows()));
  sampler_.start_epoch(epoch);
  epoch_ = epoch;
  step_ = first_step;
}

void BatchSource::change_batch(long long global_batch) {
  drop_queued_next();
  sampler_.set_global_batch(global_batch, step_, sampler_.offset_of(step_));
}

size_t BatchSource::small_batch_rows(std::span<const std::int64_t> shard) const {
  if (comm_.size() > 1 || unit_rows_ > 0) return shard.size();  // units: each unit is a small batch
  return whole_shard_ ? 0 : shard.size() / 2;
}

size_t BatchSource::plan_chunks(std::span<const std::int64_t> shard,
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

Batch BatchSource::next() {
  const long long step = step_++;
  const auto shard = sampler_.shard(step, comm_.size(), comm_.rank());
  shard_ = shard;
  next_shard_ = step + 1 < sampler_.steps() ? sampler_.shard(step + 1, comm_.size(), comm_.rank())
                                            : std::span<const std::int64_t>{};
  Batch b;
  b.step = step;
  b.global_rows = static_cast<long long>(sampler_.batch(step).size());
  b.first_row = shard_range(b.global_rows, comm_.size(), comm_.rank(), unit_rows_).begin;
  shard_first_row_ = b.first_row;
  b.shard_rows = shard.size();
  b.small_rows = small_batch_rows(shard);
  b.small_chunks = plan_chunks(shard, chunks_);
  b.chunks = chunks_.size();
  if (prefetch_ && !next_first_requested_ && !chunks_.empty()) prefetch_->request(chunks_.front());
  next_first_requested_ = false;
  return b;
}

ChunkRows BatchSource::chunk(size_t i, double& wait_s) {
  const double t0 = now_s();
  ChunkRows in{};
  in.rows = static_cast<int>(chunks_[i].size());
  in.first_row = shard_first_row_ + (chunks_[i].data() - shard_.data());
  if (prefetch_) {
    const PrefetchReader::Chunk c = prefetch_->take();
    in.x = c.x;
    in.labels = c.labels;
    in.targets = c.targets;
  } else {
    reader_->read_rows(chunks_[i], direct_input_, targets_.labels.data(), targets_.targets.data());
    in.x = direct_input_;
    in.labels = targets_.labels.data();
    in.targets = targets_.targets.data();
  }
  if (augment_.enabled())  // in place: the buffer is this step's own (the reader's or the model's input)
    augment_images(const_cast<float*>(in.x), in.rows, image_.c, image_.h, image_.w, chunks_[i].data(), seed_, epoch_,
                   augment_, augment_scratch_.data());
  wait_s += now_s() - t0;  // reading (or waiting for) and augmenting the rows
  // Queue the next chunk, of this step or the next, before this one computes.
  if (prefetch_) {
    if (i + 1 < chunks_.size()) {
      prefetch_->request(chunks_[i + 1]);
    } else if (!next_shard_.empty()) {
      plan_chunks(next_shard_, next_chunks_);
      prefetch_->request(next_chunks_.front());
      next_first_requested_ = true;
    }
  }
  return in;
}

void BatchSource::drain() {
  if (prefetch_) prefetch_->drain();
}

}  // namespace mpitrain

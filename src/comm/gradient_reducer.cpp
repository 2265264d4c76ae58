#include "mpitrain/comm/gradient_reducer.hpp"

#include <mpi.h>

#include <algorithm>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/vector_math.hpp"

namespace mpitrain {

bool overlap_enabled(const std::string& mode, int node_count, int ranks_on_node, int threads_per_rank,
                     int cores_on_node) {
  if (mode == "on") return true;
  if (mode == "off") return false;
  return node_count > 1 || ranks_on_node * (threads_per_rank + 1) <= cores_on_node;
}

GradientReducer::GradientReducer(Arena& arena, const Comm& comm, long long bucket_bytes, bool track_local_norm)
    : arena_(arena), comm_(comm), track_local_norm_(track_local_norm), buckets_(plan_buckets(arena, bucket_bytes)) {
  next_ = handed_ = done_ = buckets_.size();
  // A thread only pays off with something to overlap: several buckets and
  // other ranks. It may call MPI only if MPI allows a second thread to.
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  if (comm.size() > 1 && buckets_.size() > 1 && level >= MPI_THREAD_SERIALIZED)
    worker_ = std::thread([this] { worker_loop(); });
}

GradientReducer::~GradientReducer() {
  if (!worker_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_one();
  worker_.join();
}

void GradientReducer::begin_step() {
  next_ = buckets_.size();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    handed_ = done_ = buckets_.size();
  }
  local_sq_ = 0;
  local_sq_done_ = false;
  wait_s_ = comm_s_ = 0;
  t_first_ = 0;
}

double GradientReducer::sq_norm(size_t bucket) const {
  const Bucket& b = buckets_[bucket];
  const float* x = arena_.grads() - Arena::kStatSlots;  // the reduce buffer
  const long long from = std::max<long long>(b.begin, Arena::kStatSlots);  // the stats are not gradients
  return sum_of_squares(x + from, b.end - from);
}

void GradientReducer::reduce(size_t bucket) {
  const Bucket& b = buckets_[bucket];
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, arena_.reduce_buffer() + b.begin, checked_int(b.end - b.begin, "bucket size"),
                          MPI_FLOAT, MPI_SUM, comm_.get()),
            "MPI_Allreduce");
}

void GradientReducer::hand_over(size_t bucket) {
  // The local norm is taken before the sum over ranks overwrites the local values.
  if (track_local_norm_ && !local_sq_done_) local_sq_ += sq_norm(bucket);
  if (t_first_ == 0) t_first_ = MPI_Wtime();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    handed_ = bucket;
  }
  work_cv_.notify_one();
}

void GradientReducer::worker_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    work_cv_.wait(lock, [this] { return stop_ || handed_ < done_; });
    if (stop_) return;
    const size_t bucket = done_ - 1;  // the thread reduces from the back, one after another
    lock.unlock();
    try {
      if (!error_) reduce(bucket);
    } catch (...) {
      error_ = std::current_exception();  // rethrown by finish() on the main thread
    }
    lock.lock();
    done_ = bucket;
    done_cv_.notify_one();
  }
}

void GradientReducer::after_layer(size_t, long long ready_from) {
  if (!worker_.joinable()) return;  // everything is reduced in finish()
  // Bucket k (k >= 1) is final when its first gradient is at or after ready_from.
  while (next_ > 1 && buckets_[next_ - 1].begin >= Arena::kStatSlots + ready_from) hand_over(--next_);
}

double GradientReducer::local_sq_norm() {
  if (!local_sq_done_)
    for (size_t k = 0; k < next_; ++k) local_sq_ += sq_norm(k);  // the buckets not handed over
  local_sq_done_ = true;
  return local_sq_;
}

void GradientReducer::finish() {
  const double t0 = MPI_Wtime();
  if (t_first_ == 0) t_first_ = t0;
  if (worker_.joinable()) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_cv_.wait(lock, [this] { return done_ == handed_; });
    if (error_) std::rethrow_exception(error_);
  }
  while (next_ > 0) reduce(--next_);  // on this thread, after the thread's buckets
  const double t1 = MPI_Wtime();
  wait_s_ = t1 - t0;
  comm_s_ = t1 - t_first_;
}

}  // namespace mpitrain

// Bucketed gradient all-reduce, overlapped with backward (Horovod / PyTorch
// DDP style). The reduce buffer (stat slots, then the gradients in forward
// order) is cut into buckets of about `bucket_bytes` at parameter
// boundaries. Backward finishes the last layer first, so buckets become final
// from the end of the buffer; each is handed, as soon as it is final, to a
// communication thread that runs a blocking MPI_Allreduce on it while
// backward continues on the main thread.
//
// Why a thread and blocking calls, not MPI_Iallreduce: Open MPI 4.1
// progresses a non-blocking collective only inside MPI calls, so it stalls
// during a long sgemm, and its libnbc algorithms are much slower than the
// tuned blocking MPI_Allreduce here (docs/performance.md). A thread inside the blocking call
// progresses it by itself, with the tuned algorithm. MPI is initialised with
// MPI_THREAD_SERIALIZED: while buckets are in flight only the communication
// thread calls MPI; finish() waits for it before the main thread goes on.
//
// Buckets not handed over by the end of backward (at least the first one,
// which holds the stats the caller writes last) are reduced by finish() on
// the main thread, after the thread's. Every rank thus reduces the buckets
// in the same order (from the last to the first), whatever its shard size,
// as MPI requires for collectives.
#pragma once
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "mpitrain/comm/bucket_plan.hpp"
#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/core/arena.hpp"
#include "mpitrain/nn/model.hpp"

namespace mpitrain {

// --overlap: whether reducing buckets during backward pays. On one host
// with every core computing it does not: the copies are CPU work, and a
// communication thread waiting for a slower peer spins on the core its own
// rank computes on (docs/performance.md). Across hosts the network
// does the work, and overlap hides it. "auto" turns it on when the job spans
// hosts or each rank has a core to spare for the thread.
bool overlap_enabled(const std::string& mode, int node_count, int ranks_on_node, int threads_per_rank,
                     int cores_on_node);

class GradientReducer final : public Model::BackwardHook {
 public:
  static constexpr long long kDefaultBucketBytes = mpitrain::kDefaultBucketBytes;

  // bucket_bytes <= 0: one bucket (the whole buffer, reduced after backward).
  // track_local_norm: keep local_sq_norm() (costs one pass over the gradients).
  GradientReducer(Arena& arena, const Comm& comm, long long bucket_bytes, bool track_local_norm);
  ~GradientReducer() override;  // stops and joins the thread; never throws
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Starts a step: no bucket handed over yet. Call before the step's last
  // backward pass, and pass the reducer to that Model::backward as its hook.
  void begin_step();
  // Model::BackwardHook: hands every bucket whose gradients are now final to
  // the communication thread.
  void after_layer(size_t layer_index, long long ready_from) override;
  // Sum of squares of this rank's local gradients (before reduction): the
  // noise scale's small-batch norm. Call after backward, before finish(),
  // with track_local_norm set.
  double local_sq_norm();
  // Reduces the buckets not handed over (at least the first, with the stats
  // the caller has written by now) after waiting for the thread's. Afterwards
  // the arena holds the sums over ranks.
  void finish();

  int bucket_count() const { return static_cast<int>(buckets_.size()); }
  bool overlaps() const { return worker_.joinable(); }  // false: all buckets are reduced in finish()
  // Of the last step: seconds finish() took (the exposed communication) and
  // seconds from the first bucket's hand-over to the end of finish() (the
  // time communication was in flight).
  double last_wait_s() const { return wait_s_; }
  double last_comm_s() const { return comm_s_; }

 private:
  using Bucket = GradientBucket;  // cut by plan_buckets
  void reduce(size_t bucket);  // blocking MPI_Allreduce of one bucket
  double sq_norm(size_t bucket) const;
  void hand_over(size_t bucket);
  void worker_loop();

  Arena& arena_;
  const Comm& comm_;
  bool track_local_norm_;
  std::vector<Bucket> buckets_;  // in buffer order; reduced from the back
  size_t next_ = 0;              // buckets_[next_, size) are handed over; counts down
  double local_sq_ = 0;
  bool local_sq_done_ = false;
  double t_first_ = 0, wait_s_ = 0, comm_s_ = 0;

  // Shared with the communication thread (under mutex_).
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable work_cv_, done_cv_;
  size_t handed_ = 0;  // buckets_[handed_, size) were handed to the thread
  size_t done_ = 0;    // buckets_[done_, size) are reduced by it
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace mpitrain

#include "mpitrain/data/prefetch_reader.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/io/h5.hpp"

namespace mpitrain {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

PrefetchReader::PrefetchReader(const DatasetFile& file, const std::string& split, int capacity_rows)
    : reader_(file, split, capacity_rows), capacity_(std::max(capacity_rows, 1)) {
  const auto cap = static_cast<size_t>(capacity_);
  const SplitInfo& info = reader_.info();
  for (Slot& s : slots_) {
    s.rows.reserve(cap);
    s.x.resize(cap * static_cast<size_t>(info.x_width));
    if (info.y_width == 0) s.labels.resize(cap);
    else s.targets.resize(cap * static_cast<size_t>(info.y_width));
  }
  worker_ = std::thread([this] { run(); });  // last: nothing after it may throw
}

PrefetchReader::~PrefetchReader() {
  try {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    work_cv_.notify_all();
    if (worker_.joinable()) worker_.join();
  } catch (...) {  // lock/join fail only on a broken system; a destructor must not throw
  }
}

bool PrefetchReader::can_start_locked() const {
  // Read k writes buffer k % 2, which chunk k - 2 holds until chunk k - 1 is taken.
  return started_ < requested_ && (started_ < 2 || taken_ >= started_);
}

void PrefetchReader::run() {
  bool silenced = false;
  std::unique_lock lock(mutex_);
  for (;;) {
    work_cv_.wait(lock, [this] { return stop_ || can_start_locked(); });
    if (stop_) return;
    Slot& s = slots_[started_ % 2];
    ++started_;
    lock.unlock();
    // Unlocked: the caller touches neither this slot nor HDF5 until the read finishes.
    const auto t0 = Clock::now();
    std::exception_ptr error;
    try {
      // HDF5 built thread-safe keeps error printing per thread; failures are thrown, not printed.
      if (!silenced) {
        h5::silence_errors();
        silenced = true;
      }
      reader_.read_rows(s.rows, s.x.data(), s.labels.data(), s.targets.data());
    } catch (...) {
      error = std::current_exception();
    }
    const double dt = seconds_since(t0);
    lock.lock();
    s.error = std::move(error);
    read_s_ += dt;
    ++finished_;
    done_cv_.notify_all();
  }
}

void PrefetchReader::request(std::span<const std::int64_t> rows) {
  if (rows.size() > static_cast<size_t>(capacity_))
    throw SystemError("PrefetchReader::request: " + std::to_string(rows.size()) + " rows exceed the capacity of " +
                      std::to_string(capacity_));
  {
    std::lock_guard lock(mutex_);
    if (requested_ - taken_ >= 2)
      throw SystemError("PrefetchReader::request: two chunks are already requested and not taken");
    // Chunk requested_ - 2 was taken, so its read is over: the worker no longer uses this row list.
    Slot& s = slots_[requested_ % 2];
    s.rows.assign(rows.begin(), rows.end());  // within the reserved capacity: no allocation
    s.error = nullptr;
    ++requested_;
  }
  work_cv_.notify_one();
}

PrefetchReader::Chunk PrefetchReader::take() {
  std::unique_lock lock(mutex_);
  if (taken_ == requested_) throw SystemError("PrefetchReader::take: no chunk was requested");
  const auto t0 = Clock::now();
  done_cv_.wait(lock, [this] { return finished_ > taken_; });
  wait_s_ += seconds_since(t0);
  Slot& s = slots_[taken_ % 2];
  ++taken_;  // releases chunk taken_ - 2's buffer: a queued read may start
  const bool start = can_start_locked();
  std::exception_ptr error = std::exchange(s.error, nullptr);
  lock.unlock();
  if (start) work_cv_.notify_one();
  if (error) std::rethrow_exception(error);
  return {s.x.data(), s.labels.data(), s.targets.data(), static_cast<int>(s.rows.size())};
}

void PrefetchReader::drain() {
  std::unique_lock lock(mutex_);
  done_cv_.wait(lock, [this] { return finished_ == started_ && !can_start_locked(); });
  for (long long k = taken_; k < finished_; ++k)
    if (const std::exception_ptr& error = slots_[k % 2].error) std::rethrow_exception(error);
}

double PrefetchReader::wait_s() const {
  std::lock_guard lock(mutex_);
  return wait_s_;
}

double PrefetchReader::read_s() const {
  std::lock_guard lock(mutex_);
  return read_s_;
}

}  // namespace mpitrain

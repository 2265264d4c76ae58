// Double-buffered reading of a split: a background thread reads and converts
// the rows of the next chunk of a step (through a SplitReader: sorted rows,
// consecutive rows merged into one hyperslab) into one of two buffers while
// the caller computes on the chunk in the other.
//
// Chunk k lives in buffer k % 2. The worker starts read k only when buffer
// k % 2 is free, i.e. chunk k - 2 was released by the take() of chunk k - 1.
//
// HDF5 thread safety: Debian's libhdf5 is built without its global lock, so
// no two threads may be inside the library at once. The contract is:
//  - the file is opened (DatasetFile) and the datasets are opened and closed
//    (the SplitReader's constructor and destructor) on the constructing thread;
//  - the worker calls HDF5 (H5Dread and its selections, via
//    SplitReader::read_rows) only while a read is in flight: between a
//    request() and the completion of that chunk;
//  - the caller must not call HDF5 itself (evaluation, checkpoint writes,
//    another reader) while a read may be in flight. drain() makes sure none
//    is: after it returns the worker stays idle until the next request() or
//    take(), so call drain() first, and do not request()/take() until those
//    HDF5 calls are done.
// Every thread other than the constructing one and the worker must keep out
// of all three while the reader exists.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "mpitrain/core/tensor.hpp"
#include "mpitrain/data/dataset.hpp"

namespace mpitrain {

class PrefetchReader {
 public:
  // Opens the split's datasets (on this thread), sizes both buffers for
  // capacity_rows (at least 1) and starts the worker thread.
  PrefetchReader(const DatasetFile& file, const std::string& split, int capacity_rows);
  ~PrefetchReader();  // stops after the read in flight (if any) and joins; never throws
  PrefetchReader(const PrefetchReader&) = delete;
  PrefetchReader& operator=(const PrefetchReader&) = delete;

  // One chunk: x (rows, x_width) converted features; labels (rows) class ids
  // when y_width == 0, else nullptr; targets (rows, y_width) when y_width > 0,
  // else nullptr. Points into the reader's buffers.
  struct Chunk {
    const float* x;
    const int* labels;
    const float* targets;
    int rows;
  };

  // Queues a read of `rows` (at most capacity, copied, any order, each in
  // [0, info().rows)). At most two chunks may be requested and not yet taken
  // (the one being computed holds the other buffer). Throws SystemError, on
  // this thread and without queueing, if either limit is broken; a row out of
  // range is found by the read and thrown by take().
  void request(std::span<const std::int64_t> rows);

  // Waits for the oldest requested chunk and returns it, rows in request
  // order; it stays valid until the next take(). Rethrows here any exception
  // its read threw (the chunk then counts as taken). Throws SystemError if
  // nothing is requested.
  Chunk take();

  // Waits until no read is in flight and none can start without a further
  // request() or take() (a read whose buffer is still held waits for take()).
  // Then rethrows the exception of the oldest read chunk not yet taken, if its
  // read failed (take() still throws it too).
  void drain();

  double wait_s() const;  // total time take() blocked (the "data wait")
  double read_s() const;  // total time the worker spent reading and converting
  const SplitInfo& info() const { return reader_.info(); }
  int capacity_rows() const { return capacity_; }

 private:
  struct Slot {
    std::vector<std::int64_t> rows;  // (capacity) reserved once; the request's rows
    AlignedBuffer<float> x;          // (capacity, x_width)
    AlignedBuffer<int> labels;       // (capacity) when y_width == 0
    AlignedBuffer<float> targets;    // (capacity, y_width) when y_width > 0
    std::exception_ptr error;        // the read's exception, if it failed
  };
  void run();                                     // the worker's loop
  bool can_start_locked() const;                  // read number started_ may begin

  SplitReader reader_;  // used only by the worker after construction
  int capacity_;
  Slot slots_[2];

  mutable std::mutex mutex_;
  std::condition_variable work_cv_;  // worker waits: a read may start, or stop
  std::condition_variable done_cv_;  // caller waits: a read finished
  // Chunks are numbered from 0 in request order; a read is in flight while
  // started_ > finished_. Invariant:
  // taken_ <= finished_ <= started_ <= requested_ <= taken_ + 2.
  long long requested_ = 0, started_ = 0, finished_ = 0, taken_ = 0;
  bool stop_ = false;
  double wait_s_ = 0.0, read_s_ = 0.0;
  std::thread worker_;  // last member: started once everything above exists
};

}  // namespace mpitrain

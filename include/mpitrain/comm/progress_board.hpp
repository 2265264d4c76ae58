// Every rank's training progress in memory shared by the ranks of a node (an
// MPI shared-memory window), so that the watchdog of a rank waiting in a
// collective can name the local rank that stopped arriving -- also one that
// cannot run at all (stopped by SIGSTOP, its own watchdog frozen with it) --
// without an MPI call from the watchdog's thread.
#pragma once
#include <mpi.h>

#include <atomic>
#include <string>

#include "mpitrain/comm/communicator.hpp"

namespace mpitrain {

struct ProgressSlot {
  std::atomic<double> beat_s{0};  // steady clock (CLOCK_MONOTONIC: the same on every process of a node)
  std::atomic<long long> epoch{0}, step{0};
  std::atomic<int> phase{0};
  std::atomic<int> rank{-1};      // the rank in the job's communicator
};

class ProgressBoard {
 public:
  explicit ProgressBoard(const Comm& comm);  // collective over comm
  ~ProgressBoard();                          // collective over the node's ranks
  ProgressBoard(const ProgressBoard&) = delete;
  ProgressBoard& operator=(const ProgressBoard&) = delete;

  ProgressSlot& mine() { return slots_[local_rank_]; }
  int local_ranks() const { return local_size_; }
  const ProgressSlot& slot(int local) const { return slots_[local]; }
  const std::string& host() const { return host_; }

 private:
  MPI_Comm node_ = MPI_COMM_NULL;
  MPI_Win win_ = MPI_WIN_NULL;
  ProgressSlot* slots_ = nullptr;
  int local_rank_ = 0, local_size_ = 1;
  std::string host_;
};

}  // namespace mpitrain

// A per-rank watchdog thread. The training loop reports each phase it enters
// (compute, all-reduce, evaluation, checkpoint) with the epoch and step; if a
// rank makes no progress for --stall-timeout-s, its watchdog prints one line
// naming the step and what it was doing, and exits the process, which makes
// the launcher end the whole job. A rank stuck outside a collective fires
// first: ranks waiting inside the all-reduce give it a grace period, so the
// message names the rank that did not arrive. A rank that cannot report (a
// stopped process, whose watchdog stops with it) is named from the progress
// board its node shares (comm/progress_board.hpp): the lowest rank of the
// node that still waits prints one line naming the ranks behind, and the
// others end quietly.
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "mpitrain/comm/progress_board.hpp"

namespace mpitrain {

inline constexpr int kExitStalled = 5;

class Watchdog {
 public:
  enum class Phase : int { kStartup, kCompute, kAllreduce, kEvaluate, kCheckpoint };
  // timeout_s <= 0 disables the watchdog. board (may be null) is where this
  // rank's progress is shared with the other ranks of its node.
  Watchdog(int rank, double timeout_s, ProgressBoard* board = nullptr);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Marks progress: entering `phase` of (1-based) epoch and step.
  void beat(Phase phase, long long epoch, long long step);

 private:
  void run();
  // The line a rank waiting in the all-reduce prints about its node, or ""
  // when a lower waiting rank of the node prints it.
  std::string waiting_report(double stalled) const;
  int rank_;
  ProgressBoard* board_;
  double timeout_s_;
  std::atomic<double> last_beat_s_;
  std::atomic<int> phase_{0};
  std::atomic<long long> epoch_{0}, step_{0};
  std::mutex mutex_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Test-only: MPITRAIN_TEST_STALL="RANK:STEP:SECONDS" makes that rank sleep in
// the compute phase of that (1-based, global) step, to exercise the watchdog;
// SECONDS < 0 stops the process there (SIGSTOP), as an operator or a hung
// node would.
void maybe_test_stall(int rank, long long global_step);

}  // namespace mpitrain

#include "mpitrain/train/watchdog.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "mpitrain/core/clock.hpp"
#include "mpitrain/io/json_lines.hpp"

namespace mpitrain {
namespace {

const char* phase_text(Watchdog::Phase p) {
  switch (p) {
    case Watchdog::Phase::kStartup: return "start-up";
    case Watchdog::Phase::kCompute: return "computing (it did not arrive at the all-reduce)";
    case Watchdog::Phase::kAllreduce: return "waiting in the all-reduce for ranks that did not arrive";
    case Watchdog::Phase::kEvaluate: return "evaluating";
    case Watchdog::Phase::kCheckpoint: return "writing or waiting for a checkpoint";
  }
  return "?";
}

}  // namespace

Watchdog::Watchdog(int rank, double timeout_s, ProgressBoard* board)
    : rank_(rank), board_(board), timeout_s_(timeout_s), last_beat_s_(now_s()) {
  if (board_) board_->mine().beat_s.store(now_s());
  if (timeout_s_ > 0) thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::beat(Phase phase, long long epoch, long long step) {
  phase_.store(static_cast<int>(phase), std::memory_order_relaxed);
  epoch_.store(epoch, std::memory_order_relaxed);
  step_.store(step, std::memory_order_relaxed);
  const double t = now_s();
  last_beat_s_.store(t, std::memory_order_release);
  if (board_) {
    ProgressSlot& s = board_->mine();
    s.phase.store(static_cast<int>(phase), std::memory_order_relaxed);
    s.epoch.store(epoch, std::memory_order_relaxed);
    s.step.store(step, std::memory_order_relaxed);
    s.beat_s.store(t, std::memory_order_release);
  }
}

std::string Watchdog::waiting_report(double stalled) const {
  const double now = now_s();
  const long long epoch = epoch_.load(), step = step_.load();
  std::vector<int> waiting{rank_};
  std::string behind;
  for (int i = 0; i < board_->local_ranks(); ++i) {
    const ProgressSlot& s = board_->slot(i);
    const int r = s.rank.load();
    if (r == rank_ || r < 0) continue;
    if (s.phase.load() == static_cast<int>(Phase::kAllreduce) && s.epoch.load() == epoch && s.step.load() == step) {
      waiting.push_back(r);
    } else if (now - s.beat_s.load(std::memory_order_acquire) >= timeout_s_) {
      char line[192];
      std::snprintf(line, sizeof line, "%srank %d (no progress for %.0f s, last in epoch %lld step %lld, %s)",
                    behind.empty() ? "" : " and ", r, now - s.beat_s.load(), s.epoch.load(), s.step.load(),
                    phase_text(static_cast<Phase>(s.phase.load())));
      behind += line;
    }
  }
  std::sort(waiting.begin(), waiting.end());
  if (waiting.front() != rank_) return "";  // the lowest waiting rank reports for the node
  std::string who = waiting.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < waiting.size(); ++i) who += (i ? "," : "") + std::to_string(waiting[i]);
  char head[256];
  std::snprintf(head, sizeof head, "mpitrain: error: stall: %s on host %s waited %.0f s in the all-reduce of epoch %lld "
                "step %lld ", who.c_str(), board_->host().c_str(), stalled, epoch, step);
  std::string text = head;
  text += behind.empty() ? "for a rank on another host (every rank of this host arrived)" : "for " + behind;
  return text + "; aborting the job (raise --stall-timeout-s if steps are legitimately this slow)\n";
}

void Watchdog::run() {
  // Ranks inside a collective wait a little longer, so the rank that is
  // stuck elsewhere reports first and names itself.
  const double grace_s = std::max(2.0, 0.1 * timeout_s_);
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    stop_cv_.wait_for(lock, std::chrono::milliseconds(200));
    if (stop_) break;
    const auto phase = static_cast<Phase>(phase_.load(std::memory_order_relaxed));
    const double limit = timeout_s_ + (phase == Phase::kAllreduce ? grace_s : 0.0);
    const double stalled = now_s() - last_beat_s_.load(std::memory_order_acquire);
    if (stalled < limit) continue;
    if (phase == Phase::kAllreduce && board_) {
      const std::string report = waiting_report(stalled);
      if (report.empty()) {  // a lower rank of this node reports; end quietly once it had time to
        lock.unlock();
        std::this_thread::sleep_for(std::chrono::duration<double>(grace_s));
        std::_Exit(kExitStalled);
      }
      std::fputs(report.c_str(), stderr);
      std::fflush(stderr);
      std::_Exit(kExitStalled);
    }
    std::fprintf(stderr,
                 "mpitrain: error: stall on rank %d: no progress for %.0f s in epoch %lld step %lld, %s; "
                 "aborting the job (raise --stall-timeout-s if steps are legitimately this slow)\n",
                 rank_, stalled, epoch_.load(), step_.load(), phase_text(phase));
    std::fflush(stderr);
    std::_Exit(kExitStalled);  // the launcher ends the other ranks
  }
}

void maybe_test_stall(int rank, long long global_step) {
  static const char* spec = std::getenv("MPITRAIN_TEST_STALL");
  if (!spec) return;
  int r = -1;
  long long s = -1;
  double seconds = 0;
  if (std::sscanf(spec, "%d:%lld:%lf", &r, &s, &seconds) == 3 && r == rank && s == global_step) {
    if (seconds < 0) std::raise(SIGSTOP);
    else std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  }
}

}  // namespace mpitrain

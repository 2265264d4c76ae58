#include "mpitrain/train/watchdog.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

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

Watchdog::Watchdog(int rank, double timeout_s) : rank_(rank), timeout_s_(timeout_s), last_beat_s_(now_s()) {
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
  last_beat_s_.store(now_s(), std::memory_order_release);
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
  if (std::sscanf(spec, "%d:%lld:%lf", &r, &s, &seconds) == 3 && r == rank && s == global_step)
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
}

}  // namespace mpitrain

#include "mpitrain/train/progress.hpp"

#include <cmath>
#include <cstdio>
#include <string>

#include <unistd.h>

#include "mpitrain/core/clock.hpp"
#include "mpitrain/io/json_lines.hpp"

namespace mpitrain {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long long s = std::llround(seconds);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%llds", s);
  return buf;
}

bool stdout_is_terminal() {
  if (!isatty(fileno(stdout))) return false;
  // Parent is the launcher (mpirun/orted) when we run under one.
  const std::string link = "/proc/" + std::to_string(getppid()) + "/fd/1";
  char target[256];
  const ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
  if (n <= 0) return true;  // no /proc or no access: trust our own stdout
  const std::string t(target, static_cast<size_t>(n));
  return t.starts_with("/dev/pts/") || t.starts_with("/dev/tty") || t == "/dev/console";
}

Progress::Progress(bool enabled, bool updates, bool tty, double interval_s)
    : enabled_(enabled), updates_(updates), tty_(tty), interval_s_(interval_s), last_print_s_(now_s()) {}

void Progress::update(const ProgressState& s) {
  if (!enabled_ || !updates_) return;
  const double t = now_s();
  const double period = tty_ ? 0.1 : interval_s_;
  if (t - last_print_s_ < period && s.step != s.steps) return;
  if (!tty_ && s.step == s.steps) return;  // the epoch line follows at once
  last_print_s_ = t;
  char line[256];
  std::snprintf(line, sizeof line, "epoch %lld/%lld  step %lld/%lld  loss %.4f  %.0f samples/s  ETA %s",
                s.epoch, s.epochs, s.step, s.steps, s.loss, s.samples_per_s, format_duration(s.eta_s).c_str());
  if (tty_) {
    std::printf("\r\033[K%s", line);
    live_line_ = true;
  } else {
    std::printf("%s\n", line);
  }
  std::fflush(stdout);
}

void Progress::println(const std::string& line) {
  if (!enabled_) return;
  if (live_line_) std::printf("\r\033[K");
  live_line_ = false;
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

}  // namespace mpitrain

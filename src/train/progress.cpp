#include "mpitrain/train/progress.hpp"

#include <cmath>
#include <cstdio>
#include <string>

#include <unistd.h>

#include "mpitrain/core/clock.hpp"
#include "mpitrain/core/number_text.hpp"
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

std::string format_epoch_line(const EpochRecord& r, long long epochs, bool classes, std::optional<double> b_noise,
                              const std::optional<std::string>& target_reached) {
  std::string line = "epoch " + std::to_string(r.epoch) + "/" + std::to_string(epochs) + "  train loss " +
                     format_number("%.4f", r.train_loss);
  if (classes) line += " acc " + format_number("%.4f", r.train_acc);
  for (const std::string split : {"val", "test"}) {
    if (!r.metrics->count(split + "_loss")) continue;
    line += "  " + split + " loss " + format_number("%.4f", r.metrics->at(split + "_loss"));
    if (classes) line += " acc " + format_number("%.4f", r.metrics->at(split + "_acc"));
  }
  line += "  lr " + format_number("%.4g", r.lr) + "  B " + std::to_string(r.global_batch) + "  " + format_number("%.1f", r.epoch_time_s) +
          "s  " + format_number("%.0f", r.samples_per_s) + " samples/s";
  if (b_noise) line += "  B_noise " + format_number("%.0f", *b_noise);
  if (target_reached) line += "  [target " + *target_reached + " reached]";
  return line;
}

void print_run_summary(const TrainResult& r, bool show_acc, const std::optional<Target>& target) {
  std::printf("done: %lld epochs, %lld steps, %.1fs, %.0f samples/s overall", r.epochs_done, r.steps, r.time_s,
              static_cast<double>(r.samples) / r.time_s);
  if (show_acc) std::printf(", final acc %.4f", r.eval_acc);
  std::printf("\n");
  if (target) {
    if (r.target_reached)
      std::printf("target %s reached after epoch %lld: %lld steps, %lld samples, %.1fs\n", target->text.c_str(),
                  r.target_epoch, r.target_step, r.target_samples, r.target_time_s);
    else
      std::printf("target %s not reached in %lld epochs\n", target->text.c_str(), r.epochs_done);
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

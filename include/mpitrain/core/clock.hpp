// Time and memory as the trainer measures them: a monotonic wall clock in
// seconds and this process's peak resident set size.
#pragma once
#include <chrono>

namespace mpitrain {

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// This process's peak resident set size so far, in MB (getrusage).
double peak_rss_mb();

}  // namespace mpitrain

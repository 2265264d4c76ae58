// Text of a number: the shortest text that reads back to exactly the same
// value (messages and recorded configurations: what they show is the value
// that was used), and printf-formatted text for log lines.
#pragma once
#include <charconv>
#include <cstdio>
#include <string>

namespace mpitrain {

inline std::string shortest_text(double x) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);
  return ec == std::errc() ? std::string(buf, end) : std::string("?");
}

// One number through a printf format such as "%.4f" (log lines).
inline std::string format_number(const char* format, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, x);
  return buf;
}

}  // namespace mpitrain

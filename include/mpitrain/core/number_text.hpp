// Text of a number for messages and recorded configurations: the shortest
// text that reads back to exactly the same value, so what a message or a run
// header shows is the value that was used.
#pragma once
#include <charconv>
#include <string>

namespace mpitrain {

inline std::string shortest_text(double x) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);
  return ec == std::errc() ? std::string(buf, end) : std::string("?");
}

}  // namespace mpitrain

// Option values that are lists: "30,60,80", "5:512,10:1024". One home for
// splitting and reading them, so every list option reads alike.
#pragma once
#include <charconv>
#include <string>
#include <vector>

namespace mpitrain {

inline std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

// Comma-separated items, each trimmed; blank text has no items.
inline std::vector<std::string> split_items(const std::string& text_in) {
  std::vector<std::string> items;
  if (trim(text_in).empty()) return items;
  for (std::size_t start = 0;;) {
    const auto comma = text_in.find(',', start);
    items.push_back(trim(text_in.substr(start, comma - start)));
    if (comma == std::string::npos) return items;
    start = comma + 1;
  }
}

// The whole text must be one number; from_chars accepts no sign '+'.
template <typename T>
bool parse_number(const std::string& s, T& out) {
  const char* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, out);
  return !s.empty() && ec == std::errc() && ptr == end;
}

// "A:B" as two integers (each trimmed).
inline bool parse_integer_pair(const std::string& item, long long& a, long long& b) {
  const auto colon = item.find(':');
  return colon != std::string::npos && parse_number(trim(item.substr(0, colon)), a) &&
         parse_number(trim(item.substr(colon + 1)), b);
}

}  // namespace mpitrain

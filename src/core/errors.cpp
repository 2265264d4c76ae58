#include "mpitrain/core/errors.hpp"

#include <climits>

namespace mpitrain {

int checked_int(long long value, const char* what) {
  if (value < INT_MIN || value > INT_MAX)
    throw SystemError(std::string(what) + " = " + std::to_string(value) +
                      " does not fit in an int");
  return static_cast<int>(value);
}

std::string printable(const std::string& text, size_t max_chars) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (out.size() >= max_chars) return out + "...";
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace mpitrain
